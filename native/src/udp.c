/*
 * UDP sockets for the NAT (src/nat/udp-nat.ts) and the UDP port forwards
 * (src/nat/port-forwarder.ts): batched receive and send, one JS call per batch.
 *
 * Theory of operation
 * - openUdpSocket({bindAddress, bindPort, connectAddress, connectPort,
 *   bufferBytes}) → {fd, port}: a non-blocking socket (IPv6 when the bind
 *   address is one, else IPv4), kernel buffers of bufferBytes both ways
 *   (SO_RCVBUFFORCE/SO_SNDBUFFORCE where allowed, else capped by
 *   net.core.rmem_max/wmem_max), bound, connected, and its local port.
 *   Errors throw with `code` = the errno name (EADDRINUSE, ENETUNREACH).
 * - UdpBuffers(slotSize): what every socket of one NAT (or one forwarder)
 *   shares, so that 4096 flows do not cost 4096 slabs. `rxSlab` holds
 *   RX_BATCH slots; a slot's payload starts UDP_HEADROOM bytes in (room for
 *   the headers of the frame toward the guest), and for an IPv6 peer the
 *   slot's first 16 bytes are its address. `rxMeta` entry i is
 *   [offset, length, address, port] of the payload: address is IPv4 (a
 *   v4-mapped peer of an IPv6 socket included), 0 for an IPv6 peer. JS
 *   packs datagrams to send into `txSlab` and describes them in `txMeta` the
 *   same way: port 0 = the connected peer; on an IPv6 socket address 0 takes
 *   the 16 bytes UDP_HEADROOM before the payload. `status` is [failed, errno]
 *   of the last send.
 * - UdpSocket(fd, buffers, onDatagrams(count, truncated), onError(code, fatal)):
 *   a uv_poll (polled.c); on readable, recvmmsg() into the slots, one
 *   onDatagrams per batch, at most BATCHES_PER_WAKEUP batches so one busy
 *   flow cannot starve the loop. The slab is valid only during the call.
 *   Datagrams longer than slotSize (MSG_TRUNC) are not delivered: counted in
 *   `truncated`. An error the socket reports (ECONNREFUSED after an ICMP port
 *   unreachable, sk_err, polled as EPOLLERR) goes to onError(code, false) and
 *   reading goes on; any other goes to onError(code, true), then the socket
 *   is closed.
 * - send(start, count) → consumed: sendmmsg() of txMeta entries
 *   [start, start+count) until the kernel says EAGAIN/ENOBUFS (the rest is
 *   JS's to drop: UDP may drop, nothing queues here). A datagram refused for
 *   another reason is consumed and counted in status (ECONNREFUSED from a
 *   pending sk_err lands here when a send comes before the poll).
 *   Consecutive entries to one destination of one size (the last may be
 *   shorter) go as one message with UDP_SEGMENT (Linux 4.18+, udp(7)): the
 *   kernel builds one super-datagram and cuts it on the way, so the IP
 *   output path runs once for up to GSO_MAX_SEGMENTS datagrams. A socket
 *   whose kernel or route refuses that (EMSGSIZE, EINVAL, EIO: a datagram
 *   over the path MTU, a device without checksum offload) sends one by one
 *   from then on. status[segmented] counts the datagrams that left in such messages.
 * - close() is idempotent; no callback runs after it, even from inside one.
 */
#include "busy_poll.h"
#include "polled.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Datagrams per recvmmsg and per JS call. */
#define RX_BATCH 64
#define BATCHES_PER_WAKEUP 4
/* Bytes before each payload: an IPv6 peer's address, then room for Ethernet + IPv4 + UDP headers. */
#define UDP_HEADROOM 64
#define META_SLOTS 4
/* Largest UDP payload over IPv4 (65535 − 20 − 8). */
#define MAX_SLOT_SIZE 65507
#define TX_SLAB_SIZE (1024 * 1024)
#define TX_BATCH 256
/* Datagrams per sendmmsg. */
#define SEND_CHUNK 64
#define STATUS_FAILED 0
#define STATUS_ERRNO 1
#define STATUS_SEGMENTED 2
#define STATUS_SLOTS 3
/* Most datagrams one UDP_SEGMENT message carries (UDP_MAX_SEGMENTS of Linux 4.18–6.x). */
#define GSO_MAX_SEGMENTS 64
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103 /* linux/udp.h */
#endif
#ifndef SOL_UDP
#define SOL_UDP 17 /* IPPROTO_UDP, as linux/socket.h has it */
#endif

typedef struct {
  uint32_t slot_size;
  size_t stride;
  uint8_t *rx_slab;
  uint32_t *rx_meta;
  uint8_t *tx_slab;
  uint32_t *tx_meta;
  uint32_t *status;
} udp_buffers;

typedef struct {
  vnet_polled base; /* first: the shared lifecycle (polled.h) */
  napi_ref on_datagrams, on_error;
  napi_ref buffers_ref; /* keeps the buffers (and so their slabs) alive while open */
  udp_buffers *buffers;
  bool ipv6;
  bool no_segmentation; /* the kernel refused a UDP_SEGMENT send: one by one from now on */
} udp_socket;

_Static_assert(offsetof(udp_socket, base) == 0, "vnet_polled must come first (polled.h)");

/* Marks UdpBuffers objects, so that a UdpSocket never takes another wrapped object for one. */
static const napi_type_tag BUFFERS_TAG = {0x766e65742d756470ULL, 0x2d62756666657273ULL};

typedef union {
  struct sockaddr sa;
  struct sockaddr_in v4;
  struct sockaddr_in6 v6;
} udp_address;

/* ---- opening ---- */

/* Sets a buffer size, forced past the sysctl cap where we may (CAP_NET_ADMIN). */
static void set_buffer(int fd, int forced, int plain, int bytes) {
  if (setsockopt(fd, SOL_SOCKET, forced, &bytes, sizeof bytes) != 0) {
    setsockopt(fd, SOL_SOCKET, plain, &bytes, sizeof bytes);
  }
}

/* Throws for `syscall` on `text`:`port` with the errno name as `code`, and closes fd. */
static void throw_socket_error(napi_env env, int fd, int err, const char *syscall, const char *text,
                               uint32_t port) {
  if (fd >= 0) close(fd);
  char what[128];
  snprintf(what, sizeof what, "%s %s:%u", syscall, text, (unsigned)port);
  vnet_throw_errno(env, uv_err_name(-err), err, what);
}

static bool option_string(napi_env env, napi_value options, const char *name, char *buf,
                          size_t size, bool *absent) {
  napi_value value;
  if (napi_get_named_property(env, options, name, &value) != napi_ok) return false;
  return vnet_arg_string(env, value, name, buf, size, absent);
}

/* openUdpSocket({bindAddress?, bindPort?, connectAddress?, connectPort?, bufferBytes?}) → {fd, port}. */
static napi_value open_udp_socket(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char bind_text[INET6_ADDRSTRLEN], connect_text[INET6_ADDRSTRLEN];
  bool no_bind, no_connect;
  uint32_t bind_port, connect_port, buffer_bytes;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 1) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "openUdpSocket(options)");
    return NULL;
  }
  if (!option_string(env, argv[0], "bindAddress", bind_text, sizeof bind_text, &no_bind) ||
      !option_string(env, argv[0], "connectAddress", connect_text, sizeof connect_text,
                     &no_connect) ||
      !vnet_option_uint32(env, argv[0], "bindPort", 0, &bind_port) ||
      !vnet_option_uint32(env, argv[0], "connectPort", 0, &connect_port) ||
      !vnet_option_uint32(env, argv[0], "bufferBytes", 0, &buffer_bytes)) {
    return NULL;
  }
  udp_address local, remote;
  socklen_t local_len = 0, remote_len = 0;
  if (no_bind) strcpy(bind_text, !no_connect && strchr(connect_text, ':') != NULL ? "::" : "0.0.0.0");
  if (bind_port > 65535 || connect_port > 65535 || buffer_bytes > INT32_MAX ||
      (!no_connect && connect_port == 0)) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "ports must be 0-65535 (a connect port 1-65535)");
    return NULL;
  }
  if (!vnet_ip_address(bind_text, (uint16_t)bind_port, &local, &local_len) ||
      (!no_connect && !vnet_ip_address(connect_text, (uint16_t)connect_port, &remote, &remote_len))) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "bindAddress and connectAddress must be IP addresses");
    return NULL;
  }
  if (!no_connect && remote.sa.sa_family != local.sa.sa_family) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "bindAddress and connectAddress must be the same family");
    return NULL;
  }
  int fd = socket(local.sa.sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw_socket_error(env, -1, errno, "socket", bind_text, bind_port);
    return NULL;
  }
  if (buffer_bytes > 0) {
    set_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, (int)buffer_bytes);
    set_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, (int)buffer_bytes);
  }
  /* An unbound socket that connects gets an ephemeral port from connect(). */
  if ((!no_bind || bind_port != 0 || no_connect) && bind(fd, &local.sa, local_len) != 0) {
    throw_socket_error(env, fd, errno, "bind", bind_text, bind_port);
    return NULL;
  }
  if (!no_connect && connect(fd, &remote.sa, remote_len) != 0) {
    throw_socket_error(env, fd, errno, "connect", connect_text, connect_port);
    return NULL;
  }
  udp_address bound;
  socklen_t bound_len = sizeof bound;
  if (getsockname(fd, &bound.sa, &bound_len) != 0) {
    throw_socket_error(env, fd, errno, "getsockname", bind_text, bind_port);
    return NULL;
  }
  uint16_t port = ntohs(bound.sa.sa_family == AF_INET6 ? bound.v6.sin6_port : bound.v4.sin_port);
  napi_value result, fd_value, port_value;
  if (napi_create_object(env, &result) != napi_ok ||
      napi_create_int32(env, fd, &fd_value) != napi_ok ||
      napi_create_uint32(env, port, &port_value) != napi_ok ||
      napi_set_named_property(env, result, "fd", fd_value) != napi_ok ||
      napi_set_named_property(env, result, "port", port_value) != napi_ok) {
    close(fd);
    return NULL;
  }
  return result;
}

/* ---- shared buffers ---- */

static void finalize_buffers(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

/*
 * Adds a read-only property `name`: a new ArrayBuffer of `size` bytes, or a
 * Uint32Array of size/4. Only the arrays are cleared: a slab's bytes are
 * written (by the kernel or by JS) before they are read, and clearing a
 * receive slab of 64 slots of 64 KiB would make all 4 MiB of it resident.
 */
static bool add_buffer(napi_env env, napi_value self, const char *name, size_t size, bool words,
                       void **data) {
  napi_value buffer, value;
  if (napi_create_arraybuffer(env, size, data, &buffer) != napi_ok) return false;
  if (words) memset(*data, 0, size);
  value = buffer;
  if (words && napi_create_typedarray(env, napi_uint32_array, size / sizeof(uint32_t), buffer, 0,
                                      &value) != napi_ok) {
    return false;
  }
  napi_property_descriptor property = {name, NULL, NULL, NULL, NULL, value, napi_enumerable, NULL};
  return napi_define_properties(env, self, 1, &property) == napi_ok;
}

/* new UdpBuffers(slotSize): the slabs every socket of one NAT or forwarder shares. */
static napi_value buffers_new(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], self, new_target;
  uint32_t slot_size;
  if (napi_get_cb_info(env, info, &argc, argv, &self, NULL) != napi_ok) return NULL;
  if (napi_get_new_target(env, info, &new_target) != napi_ok || new_target == NULL) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "UdpBuffers must be called with new");
    return NULL;
  }
  if (argc < 1 || !vnet_arg_uint32(env, argv[0], "slotSize", &slot_size)) {
    if (argc < 1) vnet_throw(env, "VNET_ERR_INVALID_ARG", "new UdpBuffers(slotSize)");
    return NULL;
  }
  if (slot_size < 1 || slot_size > MAX_SLOT_SIZE) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "slotSize must be 1-65507");
    return NULL;
  }
  udp_buffers *b = calloc(1, sizeof *b);
  if (b == NULL) {
    vnet_throw_errno(env, "VNET_ERR_UDP", ENOMEM, "allocate UDP buffers");
    return NULL;
  }
  b->slot_size = slot_size;
  b->stride = (UDP_HEADROOM + (size_t)slot_size + 7) & ~(size_t)7;
  void *raw;
  bool ok = add_buffer(env, self, "rxSlab", RX_BATCH * b->stride, false, &raw);
  b->rx_slab = raw;
  ok = ok && add_buffer(env, self, "rxMeta", RX_BATCH * META_SLOTS * sizeof(uint32_t), true, &raw);
  b->rx_meta = raw;
  ok = ok && add_buffer(env, self, "txSlab", TX_SLAB_SIZE, false, &raw);
  b->tx_slab = raw;
  ok = ok && add_buffer(env, self, "txMeta", TX_BATCH * META_SLOTS * sizeof(uint32_t), true, &raw);
  b->tx_meta = raw;
  ok = ok && add_buffer(env, self, "status", STATUS_SLOTS * sizeof(uint32_t), true, &raw);
  b->status = raw;
  if (!ok || napi_type_tag_object(env, self, &BUFFERS_TAG) != napi_ok ||
      napi_wrap(env, self, b, finalize_buffers, NULL, NULL) != napi_ok) {
    free(b);
    return NULL;
  }
  return self;
}

/* ---- receiving ---- */

/* Errors a UDP socket reports about what it sent (ICMP errors: sk_err); the socket stays usable. */
static bool is_transient(int err) {
  return err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH || err == EHOSTDOWN ||
         err == ENETDOWN || err == ENONET || err == ENOPROTOOPT || err == EPROTO ||
         err == EMSGSIZE || err == EOPNOTSUPP || err == EACCES || err == EPERM || err == ETIMEDOUT;
}

static void close_socket(udp_socket *s, bool finalizing) {
  if (!vnet_polled_close(&s->base, finalizing)) return;
  vnet_delete_ref(s->base.env, &s->on_datagrams);
  vnet_delete_ref(s->base.env, &s->on_error);
  vnet_delete_ref(s->base.env, &s->buffers_ref);
}

static void finalize_socket(napi_env env, void *data, void *hint) {
  (void)hint;
  udp_socket *s = data;
  close_socket(s, true);
  vnet_polled_finalized(env, &s->base);
}

/* Tells JS about `err`; anything but a transient error then closes the socket. */
static void report_error(udp_socket *s, int err) {
  bool fatal = !is_transient(err);
  napi_value argv[2];
  if (napi_create_string_utf8(s->base.env, uv_err_name(-err), NAPI_AUTO_LENGTH, &argv[0]) == napi_ok &&
      napi_get_boolean(s->base.env, fatal, &argv[1]) == napi_ok) {
    vnet_polled_call(&s->base, s->on_error, 2, argv);
  }
  if (fatal) close_socket(s, false);
}

/* One recvmmsg into the slots; returns datagrams read (≥ 0) or -errno. */
static int read_batch(udp_socket *s, uint32_t *delivered, uint32_t *truncated, size_t *bytes) {
  udp_buffers *b = s->buffers;
  struct mmsghdr messages[RX_BATCH];
  struct iovec iov[RX_BATCH];
  udp_address from[RX_BATCH];
  memset(messages, 0, sizeof messages);
  for (int i = 0; i < RX_BATCH; i++) {
    iov[i].iov_base = b->rx_slab + (size_t)i * b->stride + UDP_HEADROOM;
    iov[i].iov_len = b->slot_size;
    messages[i].msg_hdr.msg_iov = &iov[i];
    messages[i].msg_hdr.msg_iovlen = 1;
    messages[i].msg_hdr.msg_name = &from[i];
    messages[i].msg_hdr.msg_namelen = sizeof from[i];
  }
  int got = recvmmsg(s->base.fd, messages, RX_BATCH, 0, NULL);
  if (got < 0) return -errno;
  uint32_t n = 0;
  for (int i = 0; i < got; i++) {
    *bytes += messages[i].msg_len;
    if (messages[i].msg_hdr.msg_flags & MSG_TRUNC) {
      (*truncated)++;
      continue;
    }
    uint8_t *slot = b->rx_slab + (size_t)i * b->stride;
    uint32_t address = 0;
    uint16_t port;
    if (from[i].sa.sa_family == AF_INET6) {
      const struct in6_addr *a = &from[i].v6.sin6_addr;
      memcpy(slot, a, 16);
      if (IN6_IS_ADDR_V4MAPPED(a)) memcpy(&address, &a->s6_addr[12], 4);
      port = from[i].v6.sin6_port;
    } else {
      address = from[i].v4.sin_addr.s_addr;
      port = from[i].v4.sin_port;
    }
    uint32_t *m = b->rx_meta + META_SLOTS * n++;
    m[0] = (uint32_t)(slot - b->rx_slab) + UDP_HEADROOM;
    m[1] = messages[i].msg_len;
    m[2] = ntohl(address);
    m[3] = ntohs(port);
  }
  *delivered = n;
  return got;
}

static void read_batches(udp_socket *s) {
  for (int batch = 0; batch < BATCHES_PER_WAKEUP && s->base.reading && !s->base.closed; batch++) {
    uint32_t count = 0, truncated = 0;
    size_t bytes = 0;
    int got = read_batch(s, &count, &truncated, &bytes);
    if (got < 0) {
      if (got == -EINTR) continue;
      if (got == -EAGAIN || got == -EWOULDBLOCK) return;
      report_error(s, -got);
      continue;
    }
    if (got > 0) {
      vnet_busy_poll_moved(s->base.env, bytes);
      napi_value argv[2];
      if (napi_create_uint32(s->base.env, count, &argv[0]) != napi_ok ||
          napi_create_uint32(s->base.env, truncated, &argv[1]) != napi_ok) {
        return;
      }
      if (!vnet_polled_call(&s->base, s->on_datagrams, 2, argv)) return;
    }
    if (got < RX_BATCH) return; /* drained */
  }
}

static void on_poll(uv_poll_t *handle, int status, int events);

static int restart_poll(udp_socket *s) {
  if (s->base.closed || !s->base.reading) return 0;
  return uv_poll_start(&s->base.handle, UV_READABLE, on_poll);
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  udp_socket *s = handle->data;
  if (s->base.closed) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(s->base.env, &scope) != napi_ok) return;
  if (status < 0) {
    /* libuv reports EPOLLERR as UV_EBADF and stops polling: here it is a pending sk_err
     * (an ICMP error about what we sent). Take it, read what is queued, poll again. */
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(s->base.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) report_error(s, err);
    if (!s->base.closed) read_batches(s);
    int poll_err = restart_poll(s);
    if (poll_err != 0 && !s->base.closed) report_error(s, -poll_err);
  } else if (events & UV_READABLE) {
    read_batches(s);
  }
  vnet_polled_callbacks_done(&s->base);
  napi_close_handle_scope(s->base.env, scope);
}

static udp_socket *socket_this(napi_env env, napi_callback_info info, size_t *argc,
                               napi_value *argv, bool require_open) {
  return (udp_socket *)vnet_polled_this(env, info, argc, argv, require_open, "UdpSocket");
}

/* start(): begin reading. */
static napi_value socket_start(napi_env env, napi_callback_info info) {
  udp_socket *s = socket_this(env, info, NULL, NULL, true);
  if (s == NULL) return NULL;
  s->base.reading = true;
  int err = restart_poll(s);
  if (err != 0) vnet_throw_errno(env, "VNET_ERR_UDP", -err, "uv_poll_start");
  return NULL;
}

/* close(): stop reading and close the fd. Idempotent. */
static napi_value socket_close(napi_env env, napi_callback_info info) {
  udp_socket *s = socket_this(env, info, NULL, NULL, false);
  if (s != NULL) close_socket(s, false);
  return NULL;
}

/* ---- sending ---- */

/* Fills `to` for txMeta entry `m`; false for the connected peer (no address). */
static bool destination(const udp_socket *s, const uint32_t *m, udp_address *to, socklen_t *len) {
  if (m[3] == 0) return false;
  memset(to, 0, sizeof *to);
  if (!s->ipv6) {
    to->v4.sin_family = AF_INET;
    to->v4.sin_addr.s_addr = htonl(m[2]);
    to->v4.sin_port = htons((uint16_t)m[3]);
    *len = sizeof to->v4;
    return true;
  }
  to->v6.sin6_family = AF_INET6;
  to->v6.sin6_port = htons((uint16_t)m[3]);
  if (m[2] != 0) {
    to->v6.sin6_addr.s6_addr[10] = 0xff;
    to->v6.sin6_addr.s6_addr[11] = 0xff;
    uint32_t v4 = htonl(m[2]);
    memcpy(&to->v6.sin6_addr.s6_addr[12], &v4, 4);
  } else {
    memcpy(&to->v6.sin6_addr, s->buffers->tx_slab + m[0] - UDP_HEADROOM, 16);
  }
  *len = sizeof to->v6;
  return true;
}

/*
 * How many entries from `first` (before `end`, at most `room`) may leave as
 * one UDP_SEGMENT message: one destination, one size but for a shorter last
 * one, within GSO_MAX_SEGMENTS and one IPv4 datagram's payload in all. IPv6
 * peers named in the headroom are not compared: they go one by one.
 */
static uint32_t segment_run(const udp_socket *s, const udp_buffers *b, uint32_t first, uint32_t end,
                            uint32_t room) {
  const uint32_t *head = b->tx_meta + META_SLOTS * first;
  const uint32_t size = head[1];
  if (s->no_segmentation || size == 0 || (head[2] == 0 && head[3] != 0)) return 1;
  uint32_t run = 1, total = size;
  while (run < GSO_MAX_SEGMENTS && run < room && first + run < end) {
    const uint32_t *m = b->tx_meta + META_SLOTS * (first + run);
    if (m[2] != head[2] || m[3] != head[3] || m[1] == 0 || m[1] > size || total + m[1] > MAX_SLOT_SIZE) break;
    total += m[1];
    run++;
    if (m[1] < size) break; /* only the last may be shorter */
  }
  return run;
}

/* send(start, count) → consumed: txMeta entries [start, start+count) to the kernel, until EAGAIN. */
static napi_value socket_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  uint32_t start, count;
  udp_socket *s = socket_this(env, info, &argc, argv, true);
  if (s == NULL) return NULL;
  if (argc < 2 || !vnet_arg_uint32(env, argv[0], "start", &start) ||
      !vnet_arg_uint32(env, argv[1], "count", &count)) {
    if (argc < 2) vnet_throw(env, "VNET_ERR_INVALID_ARG", "send(start, count)");
    return NULL;
  }
  udp_buffers *b = s->buffers;
  if (start > TX_BATCH || count > TX_BATCH - start) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "send: entries beyond txMeta");
    return NULL;
  }
  for (uint32_t i = start; i < start + count; i++) {
    const uint32_t *m = b->tx_meta + META_SLOTS * i;
    if (m[0] < UDP_HEADROOM || m[0] > TX_SLAB_SIZE || m[1] > TX_SLAB_SIZE - m[0] || m[3] > 65535) {
      vnet_throw(env, "VNET_ERR_INVALID_ARG", "send: a txMeta entry lies outside txSlab");
      return NULL;
    }
  }
  uint32_t failed = 0, last_errno = 0, done = 0, segmented = 0;
  struct mmsghdr messages[SEND_CHUNK];
  struct iovec iov[SEND_CHUNK];
  udp_address to[SEND_CHUNK];
  uint32_t datagrams[SEND_CHUNK]; /* per message */
  union {
    char buf[CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
  } control[SEND_CHUNK];
  while (done < count) {
    uint32_t n = 0, used = 0;
    while (n < SEND_CHUNK && used < SEND_CHUNK && done + used < count) {
      const uint32_t first = start + done + used;
      uint32_t run = segment_run(s, b, first, start + count, SEND_CHUNK - used);
      memset(&messages[n], 0, sizeof messages[n]);
      struct msghdr *h = &messages[n].msg_hdr;
      for (uint32_t k = 0; k < run; k++) {
        const uint32_t *m = b->tx_meta + META_SLOTS * (first + k);
        iov[used + k].iov_base = b->tx_slab + m[0];
        iov[used + k].iov_len = m[1];
      }
      h->msg_iov = &iov[used];
      h->msg_iovlen = run;
      socklen_t len;
      if (destination(s, b->tx_meta + META_SLOTS * first, &to[n], &len)) {
        h->msg_name = &to[n];
        h->msg_namelen = len;
      }
      if (run > 1) {
        h->msg_control = control[n].buf;
        h->msg_controllen = sizeof control[n].buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(h);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t size = (uint16_t)b->tx_meta[META_SLOTS * first + 1];
        memcpy(CMSG_DATA(c), &size, sizeof size);
      }
      datagrams[n++] = run;
      used += run;
    }
    int sent = sendmmsg(s->base.fd, messages, n, 0);
    if (sent > 0) {
      for (int k = 0; k < sent; k++) {
        done += datagrams[k];
        if (datagrams[k] > 1) segmented += datagrams[k];
      }
      continue;
    }
    int err = errno;
    if (sent < 0 && err == EINTR) continue;
    if (sent == 0 || err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) break;
    if (datagrams[0] > 1 && (err == EINVAL || err == EIO || err == EMSGSIZE || err == EOPNOTSUPP || err == ENOPROTOOPT)) {
      s->no_segmentation = true; /* this run again, one by one */
      continue;
    }
    /* This datagram is refused for good: skip it, go on with the next. */
    failed++;
    last_errno = (uint32_t)err;
    done++;
  }
  b->status[STATUS_FAILED] = failed;
  b->status[STATUS_ERRNO] = last_errno;
  b->status[STATUS_SEGMENTED] = segmented;
  napi_value result;
  napi_create_uint32(env, done, &result);
  return result;
}

/* ---- construction ---- */

static bool expect_function(napi_env env, napi_value value, const char *name) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) == napi_ok && type == napi_function) return true;
  char message[64];
  snprintf(message, sizeof message, "%s must be a function", name);
  vnet_throw(env, "VNET_ERR_INVALID_ARG", message);
  return false;
}

/* new UdpSocket(fd, buffers, onDatagrams(count, truncated), onError(code, fatal)) — takes over fd on success. */
static napi_value socket_new(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], self, new_target;
  int32_t fd;
  void *buffers = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, &self, NULL) != napi_ok) return NULL;
  if (napi_get_new_target(env, info, &new_target) != napi_ok || new_target == NULL) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "UdpSocket must be called with new");
    return NULL;
  }
  if (argc < 4) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "new UdpSocket(fd, buffers, onDatagrams, onError)");
    return NULL;
  }
  if (!vnet_arg_int32(env, argv[0], "fd", &fd) || !expect_function(env, argv[2], "onDatagrams") ||
      !expect_function(env, argv[3], "onError")) {
    return NULL;
  }
  napi_valuetype type;
  bool is_buffers = false;
  if (napi_typeof(env, argv[1], &type) != napi_ok || type != napi_object ||
      napi_check_object_type_tag(env, argv[1], &BUFFERS_TAG, &is_buffers) != napi_ok ||
      !is_buffers || napi_unwrap(env, argv[1], &buffers) != napi_ok || buffers == NULL) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "buffers must be a UdpBuffers");
    return NULL;
  }
  udp_address local;
  socklen_t local_len = sizeof local;
  if (getsockname(fd, &local.sa, &local_len) != 0) {
    vnet_throw_errno(env, "VNET_ERR_UDP", errno, "getsockname");
    return NULL;
  }
  udp_socket *s = calloc(1, sizeof *s);
  if (s == NULL) {
    vnet_throw_errno(env, "VNET_ERR_UDP", ENOMEM, "allocate UDP socket");
    return NULL;
  }
  s->buffers = buffers;
  s->ipv6 = local.sa.sa_family == AF_INET6;
  int err = vnet_polled_init(&s->base, env, fd);
  if (err != 0) {
    free(s);
    vnet_throw_errno(env, "VNET_ERR_UDP", -err, "uv_poll_init");
    return NULL;
  }
  if (napi_create_reference(env, argv[1], 1, &s->buffers_ref) != napi_ok ||
      napi_create_reference(env, argv[2], 1, &s->on_datagrams) != napi_ok ||
      napi_create_reference(env, argv[3], 1, &s->on_error) != napi_ok ||
      !vnet_polled_wrap(&s->base, self, "vnet:UdpSocket", finalize_socket)) {
    /* The fd stays the caller's: only the handle goes. */
    vnet_delete_ref(env, &s->buffers_ref);
    vnet_delete_ref(env, &s->on_datagrams);
    vnet_delete_ref(env, &s->on_error);
    vnet_polled_abandon(&s->base);
    return NULL;
  }
  return self;
}

bool vnet_init_udp(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"start", NULL, socket_start, NULL, NULL, NULL, napi_default, NULL},
      {"send", NULL, socket_send, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, socket_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value socket_class, buffers_class;
  if (napi_define_class(env, "UdpSocket", NAPI_AUTO_LENGTH, socket_new, NULL, 3, methods,
                        &socket_class) != napi_ok ||
      napi_set_named_property(env, exports, "UdpSocket", socket_class) != napi_ok ||
      napi_define_class(env, "UdpBuffers", NAPI_AUTO_LENGTH, buffers_new, NULL, 0, NULL,
                        &buffers_class) != napi_ok ||
      napi_set_named_property(env, exports, "UdpBuffers", buffers_class) != napi_ok) {
    return false;
  }
  return vnet_export_function(env, exports, "openUdpSocket", open_udp_socket);
}
