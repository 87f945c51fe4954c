/*
 * Host TCP sockets of the NAT, without a net.Socket each
 * (src/transport/tcp-socket.ts).
 *
 * Why: a NAT'd connection that moves one byte each way costs Node's
 * net.Socket more than everything else the NAT does for it (stream state,
 * listeners, ticks at connect, 'end' and close). Here a socket is an fd, a
 * uv_poll and a slot number; JS does the reading and writing through plain
 * calls, so a short connection costs its syscalls and little more.
 *
 * Theory of operation
 * - TcpSockets(onEvent): one per NAT. Sockets are numbered slots (reused
 *   once closed); onEvent(id, events) reports a slot's poll: events is
 *   READABLE (1) | WRITABLE (2), or a negative errno when polling failed
 *   (libuv reports POLLERR, a pending socket error, as EBADF: SO_ERROR,
 *   connectError(), has the real one).
 * - connect(host, port, netnsFd?, bindAddress?) → id, or a negative errno (nothing is
 *   left open): a non-blocking socket (IPv4 or IPv6 by the address),
 *   TCP_NODELAY, reno toward the loopback (set_loopback_congestion),
 *   connect(2) under way (on loopback it is already established on
 *   return; state() tells). With netnsFd (an open
 *   /var/run/netns/NAME), the socket is made in that network namespace;
 *   with bindAddress (a fourth argument), it leaves from that address.
 * - listen(host, port) → id, or a negative errno: a listening socket (IPv4,
 *   or IPv6 dual-stack for an IPv6 host; SO_REUSEADDR as Node's) for port
 *   forwards; localPort(id) says which port it got. When it polls readable,
 *   accept(id) → the new connection's id (non-blocking, TCP_NODELAY), or a
 *   negative errno (-EAGAIN: none left); peer(id) → the client as
 *   address·65536 + port (address 0 for an IPv6 client). No net.Socket is
 *   made for what is accepted.
 * - poll(id, events): what to be told about; 0 stops polling. Polling is
 *   level-triggered: a readable socket JS does not read reports again.
 * - Poll changes: what poll() asks for is applied in the loop's prepare
 *   phase, just before it polls, not at the call. A short connection asks
 *   for several (a forward's socket is paused until the guest's handshake,
 *   then read), and libuv makes each uv_poll_init, uv_poll_start and
 *   uv_poll_stop cost epoll_ctl and ioctl calls; made at once, they stood
 *   between an event and the frames JS sends for it. Applied later, they
 *   follow those frames, a start and stop within one turn cost nothing, and
 *   a slot that never polls (closed before) never makes its uv_poll.
 * - read(id, buffer) → bytes read, 0 at end of file, or a negative errno
 *   (-EAGAIN: nothing now). write(id, buffer, offset, length) → bytes taken
 *   (send(2) with MSG_NOSIGNAL), or a negative errno. writev(id, buffers)
 *   does the same for up to WRITEV_MAX buffers in one sendmsg(2): one push
 *   of the whole run, so the reader is woken once, not once per buffer.
 * - shutdown(id) (FIN after what was written), connectError(id) (SO_ERROR:
 *   0 or a positive errno), state(id) (TCP_INFO's tcpi_state).
 * - splice(a, b) → 0 or a negative errno: the two slots move bytes to each
 *   other in the kernel from now on (tcp_splice.c); JS hears of them once,
 *   when the pair has ended: onEvent(a, SPLICE_ENDED (4)) or onEvent(a,
 *   -errno), both slots closed by then.
 * - close(id, reset): reset sets SO_LINGER 0 first, so close(2) sends RST.
 *   A spliced slot's partner closes with it.
 *   No event for the slot follows, even from inside its own callback.
 * - closeAll(): every slot closed; the object serves no more, and lets go
 *   of onEvent (JS's closure over it), so it can be collected.
 * Methods are bound to the object (bound_methods.h): a call costs no unwrap.
 */
#include "tcp_sockets.h"

#include "busy_poll.h"
#include "polled.h" /* vnet_this, vnet_delete_ref, vnet_make_callback */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

static void on_handle_closed(uv_handle_t *handle) {
  free(handle->data);
}

void vnet_tcp_release(tcp_sockets *o, tcp_socket *s, bool reset) {
  if (s->splice != NULL) vnet_splice_forget(s);
  if (reset) {
    struct linger linger = {1, 0};
    setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &linger, sizeof linger);
  }
  /* uv_close takes the fd out of epoll, so it comes before close(2). A queued change finds the slot empty (or another's). */
  if (s->polled) uv_close((uv_handle_t *)&s->handle, on_handle_closed);
  close(s->fd);
  o->slots[s->id] = NULL;
  o->free_list[o->free_count++] = s->id;
  if (!s->polled) free(s);
}

void vnet_tcp_report(tcp_sockets *o, int32_t id, int32_t value) {
  napi_env env = o->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value fn, recv, argv[2];
  if (napi_get_reference_value(env, o->on_event, &fn) == napi_ok && fn != NULL &&
      napi_get_reference_value(env, o->self, &recv) == napi_ok && recv != NULL &&
      napi_create_int32(env, id, &argv[0]) == napi_ok && napi_create_int32(env, value, &argv[1]) == napi_ok) {
    o->dispatching = true;
    vnet_make_callback(env, o->async_context, recv, fn, 2, argv);
    o->dispatching = false;
  }
  napi_close_handle_scope(env, scope);
  /* A closeAll() from inside the callback left the context to us. */
  if (o->closed && o->async_context != NULL) {
    napi_async_destroy(env, o->async_context);
    o->async_context = NULL;
  }
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  tcp_socket *s = handle->data;
  /* libuv stops a poll that failed (POLLERR comes as UV_EBADF). */
  if (status < 0) s->events = 0;
  if (s->splice != NULL) return vnet_splice_on_poll(s, status, events);
  vnet_tcp_report(s->owner, s->id, status < 0 ? status : events & (UV_READABLE | UV_WRITABLE));
}

/* A poll that could not be made: reported as a failed one is. */
static void poll_failed(tcp_socket *s, int err) {
  s->events = 0;
  s->wanted = 0;
  if (s->splice != NULL) return vnet_splice_on_poll(s, err, 0);
  vnet_tcp_report(s->owner, s->id, err);
}

/* Makes the slot's uv_poll match what was asked for. */
static void apply_change(tcp_socket *s) {
  s->change_queued = false;
  if (s->wanted == s->events) return;
  if (!s->polled) {
    int err = uv_poll_init(s->owner->loop, &s->handle, s->fd);
    if (err != 0) return poll_failed(s, err);
    s->handle.data = s;
    s->polled = true;
  }
  int err = s->wanted == 0 ? uv_poll_stop(&s->handle) : uv_poll_start(&s->handle, s->wanted, on_poll);
  if (err != 0) return poll_failed(s, err);
  s->events = s->wanted;
}

/* The prepare phase: every queued change, those that JS queues meanwhile (a failure's report) too. */
static void on_apply(uv_prepare_t *handle) {
  tcp_sockets *o = handle->data;
  for (uint32_t i = 0; i < o->changed_count; i++) {
    int32_t id = o->changed[i];
    tcp_socket *s = (uint32_t)id < o->used ? o->slots[id] : NULL;
    if (s != NULL && s->change_queued) apply_change(s);
  }
  o->changed_count = 0;
  uv_prepare_stop(handle);
}

int vnet_tcp_poll(tcp_socket *s, int events) {
  s->wanted = events;
  tcp_sockets *o = s->owner;
  if (s->change_queued || events == s->events || o->closed) return 0;
  if (!o->apply_ready) {
    if (uv_prepare_init(o->loop, &o->apply) != 0) return ENOMEM;
    o->apply.data = o;
    uv_unref((uv_handle_t *)&o->apply);
    o->apply_ready = true;
  }
  if (o->changed_count == o->changed_capacity) {
    uint32_t capacity = o->changed_capacity == 0 ? 64 : o->changed_capacity * 2;
    int32_t *changed = realloc(o->changed, capacity * sizeof *changed);
    if (changed == NULL) return ENOMEM;
    o->changed = changed;
    o->changed_capacity = capacity;
  }
  o->changed[o->changed_count++] = s->id;
  s->change_queued = true;
  uv_prepare_start(&o->apply, on_apply);
  return 0;
}

/* A slot for `fd`: its id (≥ 0), or a negative errno (the fd is then still the caller's). */
static int32_t add_socket(tcp_sockets *o, int fd) {
  if (o->free_count == 0 && o->used == o->capacity) {
    uint32_t capacity = o->capacity == 0 ? 256 : o->capacity * 2;
    tcp_socket **slots = realloc(o->slots, capacity * sizeof *slots);
    if (slots == NULL) return -ENOMEM;
    o->slots = slots;
    int32_t *free_list = realloc(o->free_list, capacity * sizeof *free_list);
    if (free_list == NULL) return -ENOMEM;
    o->free_list = free_list;
    o->capacity = capacity;
  }
  tcp_socket *s = calloc(1, sizeof *s);
  if (s == NULL) return -ENOMEM;
  s->owner = o;
  s->fd = fd;
  s->id = o->free_count > 0 ? o->free_list[--o->free_count] : (int32_t)o->used++;
  o->slots[s->id] = s;
  return s->id;
}

static void set_no_delay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Whether `to` is on the host's loopback: 127.0.0.0/8, ::1, or 127.0.0.0/8 as a v4-mapped IPv6 address. */
static bool is_loopback(const struct sockaddr_storage *to) {
  if (to->ss_family == AF_INET) return ntohl(((const struct sockaddr_in *)to)->sin_addr.s_addr) >> 24 == 127;
  const struct in6_addr *a = &((const struct sockaddr_in6 *)to)->sin6_addr;
  return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

/*
 * A connection to the host's loopback uses reno, whatever the host's default.
 * Why: a congestion control that paces, BBR above all (the default of this
 * machine's namespaces, and of many hosts), paces from inside TCP when no
 * fq qdisc does it, with a timer per burst it holds back; loopback has no
 * queue to spare and no bandwidth to probe, so the timers are pure cost
 * for the daemon, which is the sender toward a guest's localhost server.
 * Measured with BBR as the default: guest→host iperf3 to 127.0.0.1 through
 * 10.0.2.2 ran 1.22× the throughput at 0.75× the CPU per Gbit/s
 * (docs/performance.md, "Reno toward the host's loopback"). It must be set
 * before connect(2): a control chosen later keeps the first one's pacing.
 * Failure (reno not allowed in this namespace) leaves the default.
 */
static void set_loopback_congestion(int fd, const struct sockaddr_storage *to) {
  static const char reno[] = "reno";
  if (is_loopback(to)) setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, reno, sizeof reno - 1);
}

/* The object behind `this`, with its arguments; throws and returns NULL when it is not one or is closed. */
static tcp_sockets *sockets_this(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  tcp_sockets *o = vnet_this(env, info, argc, argv, "TcpSockets");
  if (o != NULL && o->closed) {
    vnet_throw_closed(env, "TcpSockets");
    return NULL;
  }
  return o;
}

/* The open socket in slot argv[0]; throws and returns NULL otherwise. */
static tcp_socket *socket_arg(napi_env env, tcp_sockets *o, napi_value value) {
  int32_t id;
  if (!vnet_arg_int32(env, value, "id", &id)) return NULL;
  if (id < 0 || (uint32_t)id >= o->used || o->slots[id] == NULL) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "no open socket with that id");
    return NULL;
  }
  return o->slots[id];
}

static napi_value int_value(napi_env env, int32_t value) {
  napi_value result;
  napi_create_int32(env, value, &result);
  return result;
}

/* Method prologue: `this`, then the socket named by the first argument. */
#define SOCKET_METHOD(nargs)                                   \
  size_t argc = (nargs);                                       \
  napi_value argv[(nargs) > 0 ? (nargs) : 1];                  \
  tcp_sockets *o = sockets_this(env, info, &argc, argv);       \
  if (o == NULL) return NULL;                                  \
  if (argc < (nargs)) {                                        \
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "missing argument"); \
    return NULL;                                               \
  }                                                            \
  tcp_socket *s = socket_arg(env, o, argv[0]);                 \
  if (s == NULL) return NULL;

/* An IPv4 or IPv6 address and a port as a sockaddr; false (and thrown) when `host` is neither. */
static bool socket_address(napi_env env, napi_value host_value, napi_value port_value, bool port_zero_ok,
                           struct sockaddr_storage *out, socklen_t *len) {
  char host[64];
  uint32_t port;
  if (!vnet_arg_string(env, host_value, "host", host, sizeof host, NULL) ||
      !vnet_arg_uint32(env, port_value, "port", &port)) {
    return false;
  }
  if (port <= 65535 && (port != 0 || port_zero_ok) && vnet_ip_address(host, (uint16_t)port, out, len)) return true;
  vnet_throw(env, "VNET_ERR_INVALID_ARG", "host must be an IP address and port 0-65535 (1-65535 to connect)");
  return false;
}

/*
 * A new socket of `family` in the network namespace `netns` (an fd its
 * caller keeps open): a socket belongs to the namespace of the thread that
 * makes it, so the JS thread steps in with setns() and back, as openTap does
 * (tap.c). The fd, or a negated errno.
 */
static int socket_in_netns(tcp_sockets *o, int netns, int family) {
  if (o->home_netns < 0) {
    o->home_netns = open(VNET_SELF_NETNS, O_RDONLY | O_CLOEXEC);
    if (o->home_netns < 0) return -errno;
  }
  if (setns(netns, CLONE_NEWNET) != 0) return -errno;
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int err = errno;
  vnet_netns_return(o->home_netns, "vnet TcpSockets.connect");
  return fd >= 0 ? fd : -err;
}

/*
 * What connect() and listen() start with: `this`, their (host, port) as a
 * sockaddr, and a new non-blocking socket of its family in `*fd` (or a
 * negated errno) — made in the network namespace of the fd given as a third
 * argument, if `netns_ok` and one is given. False when something was thrown.
 */
static bool address_and_socket(napi_env env, napi_callback_info info, bool port_zero_ok, bool netns_ok,
                               tcp_sockets **o, struct sockaddr_storage *at, socklen_t *len, int *fd,
                               napi_value *extra) {
  size_t argc = 4;
  napi_value argv[4];
  *o = sockets_this(env, info, &argc, argv);
  if (*o == NULL) return false;
  if (argc < 2) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "host and port are required");
    return false;
  }
  if (!socket_address(env, argv[0], argv[1], port_zero_ok, at, len)) return false;
  if (extra != NULL) *extra = argc >= 4 ? argv[3] : NULL;
  int32_t netns = -1;
  napi_valuetype type = napi_undefined;
  if (netns_ok && argc >= 3 && napi_typeof(env, argv[2], &type) == napi_ok && type != napi_undefined &&
      type != napi_null && !vnet_arg_int32(env, argv[2], "netnsFd", &netns)) {
    return false;
  }
  if (netns >= 0) {
    *fd = socket_in_netns(*o, netns, at->ss_family);
    return true;
  }
  *fd = socket(at->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (*fd < 0) *fd = -errno;
  return true;
}

/* How connect() and listen() end: after `err` (an errno), fd is closed and -err returned; else fd's new slot. */
static napi_value slot_or_close(napi_env env, tcp_sockets *o, int fd, int err) {
  if (err == 0) {
    int32_t id = add_socket(o, fd);
    if (id >= 0) return int_value(env, id);
    err = -id;
  }
  close(fd);
  return int_value(env, -err);
}

/*
 * Binds `fd` to the address in `value` (undefined or null: nothing to do)
 * before its connect, the port left to connect (IP_BIND_ADDRESS_NO_PORT, so
 * ports are not used up by bind's stricter choice). 0, an errno, or -1 when
 * something was thrown.
 */
static int bind_source(napi_env env, napi_value value, int fd, int family) {
  napi_valuetype type = napi_undefined;
  if (value == NULL || napi_typeof(env, value, &type) != napi_ok || type == napi_undefined || type == napi_null) return 0;
  char host[64];
  if (!vnet_arg_string(env, value, "bindAddress", host, sizeof host, NULL)) return -1;
  struct sockaddr_storage at;
  socklen_t len;
  if (!vnet_ip_address(host, 0, &at, &len) || at.ss_family != family) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "bindAddress must be an IP address of the destination's family");
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  return bind(fd, (struct sockaddr *)&at, len) == 0 ? 0 : errno;
}

static napi_value sockets_connect(napi_env env, napi_callback_info info) {
  tcp_sockets *o;
  struct sockaddr_storage to;
  socklen_t len;
  int fd;
  napi_value bind_value;
  if (!address_and_socket(env, info, false, true, &o, &to, &len, &fd, &bind_value)) return NULL;
  if (fd < 0) return int_value(env, fd);
  int err = bind_source(env, bind_value, fd, to.ss_family);
  if (err < 0) {
    close(fd);
    return NULL;
  }
  set_no_delay(fd);
  set_loopback_congestion(fd, &to);
  if (err == 0) err = connect(fd, (struct sockaddr *)&to, len) != 0 && errno != EINPROGRESS ? errno : 0;
  return slot_or_close(env, o, fd, err);
}

static napi_value sockets_listen(napi_env env, napi_callback_info info) {
  tcp_sockets *o;
  struct sockaddr_storage at;
  socklen_t len;
  int fd;
  if (!address_and_socket(env, info, true, false, &o, &at, &len, &fd, NULL)) return NULL;
  if (fd < 0) return int_value(env, fd);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  /* Like Node's: a listener on an IPv6 address takes IPv4 clients too (v4-mapped). */
  if (at.ss_family == AF_INET6) {
    int zero = 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  }
  int err = bind(fd, (struct sockaddr *)&at, len) != 0 || listen(fd, SOMAXCONN) != 0 ? errno : 0;
  return slot_or_close(env, o, fd, err);
}

static napi_value sockets_poll(napi_env env, napi_callback_info info) {
  SOCKET_METHOD(2)
  int32_t events;
  if (!vnet_arg_int32(env, argv[1], "events", &events)) return NULL;
  if (s->splice != NULL) {
    vnet_throw(env, "VNET_ERR_INVALID_STATE", "the socket is spliced");
    return NULL;
  }
  int err = vnet_tcp_poll(s, events & (UV_READABLE | UV_WRITABLE));
  if (err != 0) vnet_throw_errno(env, "VNET_ERR_POLL", err, "poll");
  return NULL;
}

/* The bytes of a Uint8Array argument. */
static bool bytes_arg(napi_env env, napi_value value, uint8_t **data, size_t *length) {
  napi_typedarray_type type;
  void *base;
  if (napi_get_typedarray_info(env, value, &type, length, &base, NULL, NULL) != napi_ok ||
      type != napi_uint8_array) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "buffer must be a Uint8Array");
    return false;
  }
  *data = base;
  return true;
}

static napi_value sockets_read(napi_env env, napi_callback_info info) {
  SOCKET_METHOD(2)
  uint8_t *data;
  size_t length;
  if (!bytes_arg(env, argv[1], &data, &length)) return NULL;
  ssize_t n = read(s->fd, data, length);
  if (n > 0) vnet_busy_poll_moved(env, (size_t)n);
  return int_value(env, n >= 0 ? (int32_t)n : -errno);
}

static napi_value sockets_write(napi_env env, napi_callback_info info) {
  SOCKET_METHOD(4)
  uint8_t *data;
  size_t length;
  uint32_t offset, count;
  if (!bytes_arg(env, argv[1], &data, &length) || !vnet_arg_uint32(env, argv[2], "offset", &offset) ||
      !vnet_arg_uint32(env, argv[3], "length", &count)) {
    return NULL;
  }
  if ((size_t)offset + count > length) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "offset + length is beyond the buffer");
    return NULL;
  }
  ssize_t n = send(s->fd, data + offset, count, MSG_NOSIGNAL | MSG_DONTWAIT);
  return int_value(env, n >= 0 ? (int32_t)n : -errno);
}

/* Buffers one writev takes at most; JS gathers no more than this. */
#define WRITEV_MAX 16

static napi_value sockets_writev(napi_env env, napi_callback_info info) {
  SOCKET_METHOD(2)
  uint32_t count;
  if (napi_get_array_length(env, argv[1], &count) != napi_ok || count == 0 || count > WRITEV_MAX) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "buffers must be an array of 1 to 16 Uint8Arrays");
    return NULL;
  }
  struct iovec iov[WRITEV_MAX];
  for (uint32_t i = 0; i < count; i++) {
    napi_value element;
    uint8_t *data;
    size_t length;
    if (napi_get_element(env, argv[1], i, &element) != napi_ok || !bytes_arg(env, element, &data, &length)) return NULL;
    iov[i].iov_base = data;
    iov[i].iov_len = length;
  }
  struct msghdr msg = {.msg_iov = iov, .msg_iovlen = count};
  ssize_t n = sendmsg(s->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  return int_value(env, n >= 0 ? (int32_t)n : -errno);
}

static napi_value sockets_shutdown(napi_env env, napi_callback_info info) {
  SOCKET_METHOD(1)
  return int_value(env, shutdown(s->fd, SHUT_WR) == 0 ? 0 : -errno);
}

static napi_value sockets_connect_error(napi_env env, napi_callback_info info) {
  SOCKET_METHOD(1)
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  return int_value(env, err);
}

static napi_value sockets_state(napi_env env, napi_callback_info info) {
  SOCKET_METHOD(1)
  struct tcp_info tcpi;
  socklen_t len = sizeof tcpi;
  if (getsockopt(s->fd, IPPROTO_TCP, TCP_INFO, &tcpi, &len) != 0) return int_value(env, -errno);
  return int_value(env, tcpi.tcpi_state);
}

static napi_value sockets_accept(napi_env env, napi_callback_info info) {
  SOCKET_METHOD(1)
  struct sockaddr_storage from;
  socklen_t len = sizeof from;
  int fd = accept4(s->fd, (struct sockaddr *)&from, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) return int_value(env, -errno);
  set_no_delay(fd);
  int32_t id = add_socket(o, fd);
  if (id < 0) {
    close(fd);
    return int_value(env, id);
  }
  tcp_socket *child = o->slots[id];
  if (from.ss_family == AF_INET) {
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)&from;
    child->peer_ip = ntohl(v4->sin_addr.s_addr);
    child->peer_port = ntohs(v4->sin_port);
  } else if (from.ss_family == AF_INET6) {
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&from;
    if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
      uint32_t v4;
      memcpy(&v4, &v6->sin6_addr.s6_addr[12], 4);
      child->peer_ip = ntohl(v4);
    }
    child->peer_port = ntohs(v6->sin6_port);
  }
  return int_value(env, id);
}

static napi_value sockets_peer(napi_env env, napi_callback_info info) {
  SOCKET_METHOD(1)
  napi_value result;
  napi_create_double(env, (double)s->peer_ip * 65536.0 + s->peer_port, &result);
  return result;
}

static napi_value sockets_local_port(napi_env env, napi_callback_info info) {
  SOCKET_METHOD(1)
  struct sockaddr_storage at;
  socklen_t len = sizeof at;
  if (getsockname(s->fd, (struct sockaddr *)&at, &len) != 0) return int_value(env, -errno);
  uint16_t port = at.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&at)->sin6_port
                                           : ((struct sockaddr_in *)&at)->sin_port;
  return int_value(env, ntohs(port));
}

static napi_value sockets_splice(napi_env env, napi_callback_info info) {
  SOCKET_METHOD(2)
  tcp_socket *other = socket_arg(env, o, argv[1]);
  if (other == NULL) return NULL;
  if (other == s || s->splice != NULL || other->splice != NULL) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "splice takes two sockets that are not spliced yet");
    return NULL;
  }
  return int_value(env, -vnet_splice_start(s, other));
}

static napi_value sockets_close(napi_env env, napi_callback_info info) {
  SOCKET_METHOD(2)
  bool reset;
  if (!vnet_arg_bool(env, argv[1], "reset", &reset)) return NULL;
  tcp_socket *partner = vnet_splice_partner(s);
  vnet_tcp_release(o, s, reset);
  if (partner != NULL) vnet_tcp_release(o, partner, reset);
  return NULL;
}

/* The memory goes once the JS object was finalized, every bound method collected (bound_methods.h) and `apply` closed. */
static void free_when_done(void *owner) {
  tcp_sockets *o = owner;
  if (!o->finalized || o->methods.alive > 0 || !o->apply_closed) return;
  free(o->slots);
  free(o->free_list);
  free(o->changed);
  free(o);
}

static void on_apply_closed(uv_handle_t *handle) {
  tcp_sockets *o = handle->data;
  o->apply_closed = true;
  free_when_done(o);
}

/* `finalizing`: the env may be going away; release only the sockets. */
static void close_all(tcp_sockets *o, bool finalizing) {
  o->closed = true;
  for (uint32_t i = 0; i < o->used; i++) {
    if (o->slots[i] != NULL) vnet_tcp_release(o, o->slots[i], false);
  }
  if (o->home_netns >= 0) close(o->home_netns);
  o->home_netns = -1;
  vnet_splice_close_spares(o);
  o->changed_count = 0;
  if (o->apply_ready) uv_close((uv_handle_t *)&o->apply, on_apply_closed);
  else o->apply_closed = true;
  /* onEvent is JS's closure over this object: held, it would keep the object forever. */
  if (!finalizing) vnet_delete_ref(o->env, &o->on_event);
  /* The context of a callback we are inside goes when it returns (on_poll). */
  if (!finalizing && !o->dispatching && o->async_context != NULL) {
    napi_async_destroy(o->env, o->async_context);
    o->async_context = NULL;
  }
}

static napi_value sockets_close_all(napi_env env, napi_callback_info info) {
  tcp_sockets *o = vnet_this(env, info, NULL, NULL, "TcpSockets");
  if (o != NULL && !o->closed) close_all(o, false);
  return NULL;
}

static void finalize_sockets(napi_env env, void *data, void *hint) {
  tcp_sockets *o = data;
  if (!o->closed) close_all(o, true);
  vnet_delete_ref(env, &o->on_event);
  vnet_delete_ref(env, &o->self);
  o->finalized = true;
  free_when_done(o);
}

/* Bound to each TcpSockets in its constructor. */
static const napi_property_descriptor sockets_methods[] = {
    {"connect", NULL, sockets_connect, NULL, NULL, NULL, napi_default, NULL},
    {"listen", NULL, sockets_listen, NULL, NULL, NULL, napi_default, NULL},
    {"accept", NULL, sockets_accept, NULL, NULL, NULL, napi_default, NULL},
    {"peer", NULL, sockets_peer, NULL, NULL, NULL, napi_default, NULL},
    {"localPort", NULL, sockets_local_port, NULL, NULL, NULL, napi_default, NULL},
    {"poll", NULL, sockets_poll, NULL, NULL, NULL, napi_default, NULL},
    {"read", NULL, sockets_read, NULL, NULL, NULL, napi_default, NULL},
    {"write", NULL, sockets_write, NULL, NULL, NULL, napi_default, NULL},
    {"writev", NULL, sockets_writev, NULL, NULL, NULL, napi_default, NULL},
    {"shutdown", NULL, sockets_shutdown, NULL, NULL, NULL, napi_default, NULL},
    {"connectError", NULL, sockets_connect_error, NULL, NULL, NULL, napi_default, NULL},
    {"state", NULL, sockets_state, NULL, NULL, NULL, napi_default, NULL},
    {"splice", NULL, sockets_splice, NULL, NULL, NULL, napi_default, NULL},
    {"close", NULL, sockets_close, NULL, NULL, NULL, napi_default, NULL},
    {"closeAll", NULL, sockets_close_all, NULL, NULL, NULL, napi_default, NULL},
};

static napi_value sockets_new(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], self;
  if (napi_get_cb_info(env, info, &argc, argv, &self, NULL) != napi_ok) return NULL;
  napi_valuetype type = napi_undefined;
  if (argc < 1 || napi_typeof(env, argv[0], &type) != napi_ok || type != napi_function) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "onEvent must be a function");
    return NULL;
  }
  tcp_sockets *o = calloc(1, sizeof *o);
  if (o == NULL) {
    vnet_throw(env, "VNET_ERR_NOMEM", "out of memory");
    return NULL;
  }
  o->env = env;
  o->home_netns = -1;
  o->methods = (vnet_binding){.owner = o, .release = free_when_done};
  napi_value name;
  if (napi_get_uv_event_loop(env, &o->loop) != napi_ok ||
      napi_create_reference(env, argv[0], 1, &o->on_event) != napi_ok ||
      napi_create_string_utf8(env, "vnet:TcpSockets", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      !vnet_bind_methods(env, self, sockets_methods, sizeof sockets_methods / sizeof sockets_methods[0],
                         &o->methods) ||
      napi_async_init(env, self, name, &o->async_context) != napi_ok ||
      napi_wrap(env, self, o, finalize_sockets, NULL, &o->self) != napi_ok) {
    vnet_delete_ref(env, &o->on_event);
    if (o->async_context != NULL) napi_async_destroy(env, o->async_context);
    o->closed = true; /* for a bound method called before it is collected */
    o->finalized = true;
    o->apply_closed = true; /* never initialized */
    free_when_done(o);
    return NULL;
  }
  return self;
}

bool vnet_init_tcp_sockets(napi_env env, napi_value exports) {
  napi_value cls;
  return napi_define_class(env, "TcpSockets", NAPI_AUTO_LENGTH, sockets_new, NULL, 0, NULL, &cls) == napi_ok &&
         napi_set_named_property(env, exports, "TcpSockets", cls) == napi_ok;
}
