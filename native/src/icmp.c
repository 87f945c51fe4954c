/*
 * ICMP echo toward outside hosts (src/nat/icmp-echo.ts): one socket per NAT.
 *
 * Theory of operation
 * - openIcmpSocket() tries an unprivileged ping socket first
 *   (SOCK_DGRAM/IPPROTO_ICMP, allowed when net.ipv4.ping_group_range holds our
 *   gid): the kernel fills in the echo identifier (the socket's) and the
 *   checksum, delivers only replies carrying that identifier, and reports
 *   ICMP errors about our requests on the error queue (IP_RECVERR). Else a raw
 *   socket (CAP_NET_RAW): everything is ours to write, and it receives every
 *   echo reply and error of the namespace with its IP header (an ICMP_FILTER
 *   keeps only types 0, 3 and 11); JS picks out its own by identifier.
 * - icmpSendTo() is one sendto(); it throws on any error, EAGAIN included,
 *   and JS counts the drop.
 * - IcmpReceiver reads the socket like the Poller does (poller.c): a uv_poll,
 *   batches of recvfrom() into a reused slab, one JS call per batch. Each
 *   entry of `rxMeta` is [offset, length, address, info]: the bytes are always
 *   an ICMP message (a raw socket's IP header is skipped here). info 0: a
 *   message from `address`. info ERROR_QUEUE_ENTRY|type<<8|code: an error
 *   queue entry of a ping socket; the bytes are our request as quoted by the
 *   error and `address` is where that request went.
 *   close() is idempotent and no callback runs after it, even from inside one.
 */
#include "polled.h"

#include <stddef.h>

#include <errno.h>
#include <linux/errqueue.h>
#include <linux/icmp.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define ICMP_RX_BATCH 64
#define ICMP_META_SLOTS 4
/* A whole IPv4 datagram, so nothing is truncated. */
#define ICMP_READ_MAX 65536
#define ICMP_SLAB_SIZE (256 * 1024)
#define ICMP_BATCHES_PER_WAKEUP 4
/* info bit of an error queue entry (ping sockets). */
#define ERROR_QUEUE_ENTRY 0x10000u

#define ICMP_TYPE_ECHO_REPLY 0
#define ICMP_TYPE_UNREACHABLE 3
#define ICMP_TYPE_TIME_EXCEEDED 11

typedef struct {
  vnet_polled base;    /* first: the shared lifecycle (polled.h) */
  napi_ref on_packets, on_error;
  bool raw;            /* SOCK_RAW: packets come with their IP header */
  uint8_t *slab;
  uint32_t *meta;
} icmp_receiver;

_Static_assert(offsetof(icmp_receiver, base) == 0, "vnet_polled must come first (polled.h)");

/* ---- sockets ---- */

static int open_ping_socket(void) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP);
  if (fd < 0) return -errno;
  int on = 1;
  if (setsockopt(fd, IPPROTO_IP, IP_RECVERR, &on, sizeof on) != 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  return fd;
}

static int open_raw_socket(void) {
  int fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP);
  if (fd < 0) return -errno;
  /* Set bits are filtered out. */
  struct icmp_filter filter = {
      .data = ~((1u << ICMP_TYPE_ECHO_REPLY) | (1u << ICMP_TYPE_UNREACHABLE) |
                (1u << ICMP_TYPE_TIME_EXCEEDED))};
  if (setsockopt(fd, SOL_RAW, ICMP_FILTER, &filter, sizeof filter) != 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  return fd;
}

/* Binds `fd` to the IPv4 address `text` (empty: nothing to do): echo requests leave from it. 0 or an errno. */
static int bind_icmp(int fd, const char *text) {
  if (text[0] == '\0') return 0;
  struct sockaddr_in6 at; /* room for either family; only IPv4 will do */
  socklen_t len;
  if (!vnet_ip_address(text, 0, &at, &len) || at.sin6_family != AF_INET) return EINVAL;
  return bind(fd, (struct sockaddr *)&at, len) == 0 ? 0 : errno;
}

static napi_value opened(napi_env env, int fd, const char *kind, const char *bind_text) {
  int err = bind_icmp(fd, bind_text);
  if (err != 0) {
    close(fd);
    char what[96];
    snprintf(what, sizeof what, "cannot send ICMP from %s", bind_text);
    vnet_throw_errno(env, "VNET_ERR_ICMP", err, what);
    return NULL;
  }
  napi_value result, fd_value, kind_value;
  if (napi_create_object(env, &result) != napi_ok ||
      napi_create_int32(env, fd, &fd_value) != napi_ok ||
      napi_create_string_utf8(env, kind, NAPI_AUTO_LENGTH, &kind_value) != napi_ok ||
      napi_set_named_property(env, result, "fd", fd_value) != napi_ok ||
      napi_set_named_property(env, result, "kind", kind_value) != napi_ok) {
    close(fd);
    return NULL;
  }
  return result;
}

/*
 * openIcmpSocket(kind?: 'ping' | 'raw' | null, bindAddress?: string | null)
 * → {fd, kind}: non-blocking, close-on-exec; bound to bindAddress if given.
 */
static napi_value open_icmp_socket(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  char kind[8];
  char bind_text[INET_ADDRSTRLEN] = "";
  bool any = true;
  bool unbound = true;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc >= 1 && !vnet_arg_string(env, argv[0], "kind", kind, sizeof kind, &any)) return NULL;
  if (argc >= 2 && !vnet_arg_string(env, argv[1], "bindAddress", bind_text, sizeof bind_text, &unbound)) return NULL;
  if (unbound) bind_text[0] = '\0';
  bool want_ping = any || strcmp(kind, "ping") == 0;
  bool want_raw = any || strcmp(kind, "raw") == 0;
  if (!want_ping && !want_raw) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "kind must be 'ping', 'raw' or null");
    return NULL;
  }
  int ping_err = 0;
  if (want_ping) {
    int fd = open_ping_socket();
    if (fd >= 0) return opened(env, fd, "ping", bind_text);
    ping_err = -fd;
  }
  int raw_err = 0;
  if (want_raw) {
    int fd = open_raw_socket();
    if (fd >= 0) return opened(env, fd, "raw", bind_text);
    raw_err = -fd;
  }
  char what[256];
  if (want_raw && want_ping) {
    snprintf(what, sizeof what,
             "no ICMP socket: a ping socket needs net.ipv4.ping_group_range to include gid %u "
             "(ping socket: %s), a raw socket needs CAP_NET_RAW; raw socket",
             (unsigned)getgid(), strerror(ping_err));
  } else if (want_raw) {
    snprintf(what, sizeof what, "raw ICMP socket (needs CAP_NET_RAW)");
  } else {
    snprintf(what, sizeof what,
             "ping socket (needs net.ipv4.ping_group_range to include gid %u)", (unsigned)getgid());
  }
  vnet_throw_errno(env, "VNET_ERR_ICMP", want_raw ? raw_err : ping_err, what);
  return NULL;
}

/* Reads (typed array, name) as bytes; throws VNET_ERR_INVALID_ARG. */
static bool arg_bytes(napi_env env, napi_value value, const char *name, uint8_t **data,
                      size_t *length) {
  bool is_typedarray = false;
  napi_typedarray_type type;
  void *raw;
  size_t byte_offset;
  napi_value buffer;
  if (napi_is_typedarray(env, value, &is_typedarray) == napi_ok && is_typedarray &&
      napi_get_typedarray_info(env, value, &type, length, &raw, &buffer, &byte_offset) ==
          napi_ok &&
      type == napi_uint8_array) {
    *data = raw;
    return true;
  }
  char message[64];
  snprintf(message, sizeof message, "%s must be a Uint8Array", name);
  vnet_throw(env, "VNET_ERR_INVALID_ARG", message);
  return false;
}

/* icmpSendTo(fd, message, address) → bytes sent. `address` is an IPv4 number (10.0.2.2 = 0x0a000202). */
static napi_value icmp_send_to(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd;
  uint32_t address;
  uint8_t *data;
  size_t length;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 3) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "icmpSendTo(fd, message, address)");
    return NULL;
  }
  if (!vnet_arg_int32(env, argv[0], "fd", &fd) || !arg_bytes(env, argv[1], "message", &data, &length) ||
      !vnet_arg_uint32(env, argv[2], "address", &address)) {
    return NULL;
  }
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(address)};
  ssize_t sent;
  do {
    sent = sendto(fd, data, length, 0, (struct sockaddr *)&to, sizeof to);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) {
    int err = errno;
    char what[64];
    snprintf(what, sizeof what, "sendto %u.%u.%u.%u", address >> 24, (address >> 16) & 0xff,
             (address >> 8) & 0xff, address & 0xff);
    vnet_throw_errno(env, "VNET_ERR_ICMP", err, what);
    return NULL;
  }
  napi_value result;
  napi_create_uint32(env, (uint32_t)sent, &result);
  return result;
}

/* ---- receiver ---- */

static void close_receiver(icmp_receiver *r, bool finalizing) {
  if (!vnet_polled_close(&r->base, finalizing)) return;
  vnet_delete_ref(r->base.env, &r->on_packets);
  vnet_delete_ref(r->base.env, &r->on_error);
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  icmp_receiver *r = data;
  close_receiver(r, true);
  vnet_polled_finalized(env, &r->base);
}

static void report_error(icmp_receiver *r, int err) {
  char message[128];
  snprintf(message, sizeof message, "ICMP socket: %s (%s)", strerror(err), uv_err_name(-err));
  r->base.reading = false;
  uv_poll_stop(&r->base.handle);
  napi_value argv[1];
  if (napi_create_string_utf8(r->base.env, message, NAPI_AUTO_LENGTH, &argv[0]) != napi_ok) return;
  vnet_polled_call(&r->base, r->on_error, 1, argv);
}

/* Errors an ICMP socket reports for one of our requests (sk_err); reading goes on. */
static bool is_transient(int err) {
  return err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH || err == EHOSTDOWN ||
         err == ENETDOWN || err == EPROTO || err == EMSGSIZE || err == EACCES || err == ENOPROTOOPT;
}

static void put_entry(icmp_receiver *r, uint32_t n, size_t offset, size_t length, uint32_t address,
                      uint32_t info) {
  uint32_t *m = r->meta + ICMP_META_SLOTS * n;
  m[0] = (uint32_t)offset;
  m[1] = (uint32_t)length;
  m[2] = address;
  m[3] = info;
}

/* One error queue entry (ping sockets); returns bytes stored (>0), 0 if it is not ours, or -errno. */
static ssize_t read_error_entry(icmp_receiver *r, uint32_t n, size_t offset) {
  uint8_t control[512];
  struct sockaddr_in to;
  struct iovec iov = {r->slab + offset, ICMP_READ_MAX};
  struct msghdr msg = {.msg_name = &to, .msg_namelen = sizeof to, .msg_iov = &iov,
                       .msg_iovlen = 1, .msg_control = control,
                       .msg_controllen = sizeof control};
  ssize_t got = recvmsg(r->base.fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT);
  if (got < 0) return -errno;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != IPPROTO_IP || c->cmsg_type != IP_RECVERR) continue;
    struct sock_extended_err *e = (struct sock_extended_err *)CMSG_DATA(c);
    if (e->ee_origin != SO_EE_ORIGIN_ICMP) return 0;
    size_t stored = (size_t)got < ICMP_READ_MAX ? (size_t)got : ICMP_READ_MAX;
    put_entry(r, n, offset, stored, ntohl(to.sin_addr.s_addr),
              ERROR_QUEUE_ENTRY | ((uint32_t)e->ee_type << 8) | e->ee_code);
    return stored > 0 ? (ssize_t)stored : 0;
  }
  return 0;
}

/* One datagram; returns bytes used in the slab (>0), 0 to skip, or -errno. */
static ssize_t read_message(icmp_receiver *r, uint32_t n, size_t offset) {
  struct sockaddr_in from;
  socklen_t from_len = sizeof from;
  uint8_t *buf = r->slab + offset;
  ssize_t got = recvfrom(r->base.fd, buf, ICMP_READ_MAX, MSG_TRUNC, (struct sockaddr *)&from, &from_len);
  if (got < 0) return -errno;
  size_t stored = (size_t)got < ICMP_READ_MAX ? (size_t)got : ICMP_READ_MAX;
  size_t start = 0;
  if (r->raw) {
    /* Skip the IP header; anything that is not IPv4 carrying ICMP is not ours. */
    if (stored < 20 || (buf[0] >> 4) != 4 || buf[9] != IPPROTO_ICMP) return 0;
    start = (size_t)(buf[0] & 0x0f) * 4;
    if (start < 20 || start > stored) return 0;
  }
  /* A datagram cut short keeps its real length; JS finds it oversized and drops it. */
  put_entry(r, n, offset + start, (size_t)got - start, ntohl(from.sin_addr.s_addr), 0);
  return stored > 0 ? (ssize_t)stored : 1;
}

/* Reads at most one batch from the error queue (if `errors`) or the receive queue. */
static int read_batch(icmp_receiver *r, bool errors, uint32_t *count, bool *drained) {
  uint32_t n = 0;
  size_t offset = 0;
  uint32_t skipped = 0;
  *drained = false;
  while (n < ICMP_RX_BATCH && offset + ICMP_READ_MAX <= ICMP_SLAB_SIZE) {
    ssize_t used = errors ? read_error_entry(r, n, offset) : read_message(r, n, offset);
    if (used < 0) {
      int err = (int)-used;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        *drained = true;
        break;
      }
      if (is_transient(err) && ++skipped < ICMP_RX_BATCH) continue;
      *count = n;
      return err;
    }
    if (used == 0) {
      if (++skipped >= 4 * ICMP_RX_BATCH) break;
      continue;
    }
    n++;
    offset += ((size_t)used + 7) & ~(size_t)7;
  }
  *count = n;
  return 0;
}

static void read_batches(icmp_receiver *r, bool errors) {
  for (int batch = 0; batch < ICMP_BATCHES_PER_WAKEUP && r->base.reading && !r->base.closed; batch++) {
    uint32_t count;
    bool drained;
    int err = read_batch(r, errors, &count, &drained);
    if (count > 0) {
      napi_value argv[1];
      if (napi_create_uint32(r->base.env, count, &argv[0]) != napi_ok) return;
      if (!vnet_polled_call(&r->base, r->on_packets, 1, argv)) return;
    }
    if (r->base.closed) return;
    if (err != 0) {
      report_error(r, err);
      return;
    }
    if (drained) return;
  }
}

static void on_poll(uv_poll_t *handle, int status, int events);

static int restart_poll(icmp_receiver *r) {
  if (r->base.closed || !r->base.reading) return 0;
  return uv_poll_start(&r->base.handle, UV_READABLE, on_poll);
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  icmp_receiver *r = handle->data;
  if (r->base.closed) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(r->base.env, &scope) != napi_ok) return;
  if (status < 0) {
    /* libuv stops the poll on EPOLLERR: here that means a queued ICMP error (IP_RECVERR) or
     * a pending sk_err. Take both, then poll again. */
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(r->base.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (!r->raw) read_batches(r, true);
    if (!r->base.closed && r->base.reading) read_batches(r, false);
    if (!r->base.closed && r->base.reading && err != 0 && !is_transient(err)) {
      report_error(r, err);
    } else {
      int poll_err = restart_poll(r);
      if (poll_err != 0 && !r->base.closed) report_error(r, -poll_err);
    }
  } else if (events & UV_READABLE) {
    read_batches(r, false);
  }
  vnet_polled_callbacks_done(&r->base);
  napi_close_handle_scope(r->base.env, scope);
}

static icmp_receiver *receiver_this(napi_env env, napi_callback_info info, bool require_open) {
  return (icmp_receiver *)vnet_polled_this(env, info, NULL, NULL, require_open, "IcmpReceiver");
}

/* start(): begin reading. */
static napi_value receiver_start(napi_env env, napi_callback_info info) {
  icmp_receiver *r = receiver_this(env, info, true);
  if (r == NULL) return NULL;
  r->base.reading = true;
  int err = restart_poll(r);
  if (err != 0) vnet_throw_errno(env, "VNET_ERR_ICMP", -err, "uv_poll_start");
  return NULL;
}

/* close(): stop reading and close the fd. Idempotent. */
static napi_value receiver_close(napi_env env, napi_callback_info info) {
  icmp_receiver *r = receiver_this(env, info, false);
  if (r != NULL) close_receiver(r, false);
  return NULL;
}

static bool is_function(napi_env env, napi_value value, const char *name) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) == napi_ok && type == napi_function) return true;
  char message[64];
  snprintf(message, sizeof message, "%s must be a function", name);
  vnet_throw(env, "VNET_ERR_INVALID_ARG", message);
  return false;
}

static bool attach_buffers(napi_env env, napi_value self, icmp_receiver *r) {
  napi_value slab, meta_buffer, meta;
  void *raw;
  if (napi_create_arraybuffer(env, ICMP_SLAB_SIZE, &raw, &slab) != napi_ok) return false;
  r->slab = raw;
  size_t meta_length = (size_t)ICMP_META_SLOTS * ICMP_RX_BATCH;
  if (napi_create_arraybuffer(env, meta_length * sizeof(uint32_t), &raw, &meta_buffer) != napi_ok) {
    return false;
  }
  memset(raw, 0, meta_length * sizeof(uint32_t));
  r->meta = raw;
  if (napi_create_typedarray(env, napi_uint32_array, meta_length, meta_buffer, 0, &meta) != napi_ok) {
    return false;
  }
  napi_property_descriptor properties[] = {
      {"rxSlab", NULL, NULL, NULL, NULL, slab, napi_enumerable, NULL},
      {"rxMeta", NULL, NULL, NULL, NULL, meta, napi_enumerable, NULL},
  };
  return napi_define_properties(env, self, 2, properties) == napi_ok;
}

/* new IcmpReceiver(fd, raw, onPackets(count), onError(message)) — takes over fd on success. */
static napi_value receiver_new(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], self, new_target;
  int32_t fd;
  bool raw;
  if (napi_get_cb_info(env, info, &argc, argv, &self, NULL) != napi_ok) return NULL;
  if (napi_get_new_target(env, info, &new_target) != napi_ok || new_target == NULL) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "IcmpReceiver must be called with new");
    return NULL;
  }
  if (argc < 4) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "new IcmpReceiver(fd, raw, onPackets, onError)");
    return NULL;
  }
  if (!vnet_arg_int32(env, argv[0], "fd", &fd) || !vnet_arg_bool(env, argv[1], "raw", &raw) ||
      !is_function(env, argv[2], "onPackets") || !is_function(env, argv[3], "onError")) {
    return NULL;
  }
  icmp_receiver *r = calloc(1, sizeof *r);
  if (r == NULL) {
    vnet_throw_errno(env, "VNET_ERR_ICMP", ENOMEM, "allocate ICMP receiver");
    return NULL;
  }
  r->raw = raw;
  int err = vnet_polled_init(&r->base, env, fd);
  if (err != 0) {
    free(r);
    vnet_throw_errno(env, "VNET_ERR_ICMP", -err, "uv_poll_init");
    return NULL;
  }
  if (!attach_buffers(env, self, r) ||
      napi_create_reference(env, argv[2], 1, &r->on_packets) != napi_ok ||
      napi_create_reference(env, argv[3], 1, &r->on_error) != napi_ok ||
      !vnet_polled_wrap(&r->base, self, "vnet:IcmpReceiver", finalize)) {
    /* The fd stays the caller's: only the handle goes. */
    vnet_delete_ref(env, &r->on_packets);
    vnet_delete_ref(env, &r->on_error);
    vnet_polled_abandon(&r->base);
    return NULL;
  }
  return self;
}

bool vnet_init_icmp(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"start", NULL, receiver_start, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, receiver_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value cls;
  if (napi_define_class(env, "IcmpReceiver", NAPI_AUTO_LENGTH, receiver_new, NULL, 2, methods,
                        &cls) != napi_ok ||
      napi_set_named_property(env, exports, "IcmpReceiver", cls) != napi_ok) {
    return false;
  }
  return vnet_export_function(env, exports, "openIcmpSocket", open_icmp_socket) &&
         vnet_export_function(env, exports, "icmpSendTo", icmp_send_to);
}
