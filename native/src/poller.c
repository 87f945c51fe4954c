/*
 * Poller: frame I/O on one non-blocking fd (a TAP device or a datagram
 * socket), driven by libuv.
 *
 * Theory of operation
 * - Read side: a uv_poll watches the fd. When it is readable, frames are read
 *   one per read()/recv() into `rxSlab`, packed 8-byte aligned, until EAGAIN,
 *   RX_BATCH_FRAMES frames, or too little room for one more. Their
 *   [offset, length] pairs go to `rxMeta` and JS is called once with the
 *   count. The slab is reused for the next batch: a frame belongs to JS only
 *   until `onFrames` returns. JS is entered with napi_make_callback, so the
 *   microtasks it queued (e.g. flushing sends) run before the next batch is
 *   read. At most BATCHES_PER_WAKEUP batches per wakeup keep the loop fair.
 * - Write side (poller_write.c): JS fills `txSlab`/`txMeta` and calls
 *   writeSlab(count), or passes its own frames to writeFrames(). Both stop at
 *   EAGAIN and say how many frames were consumed; JS keeps the rest and asks
 *   watchWritable(true), which calls `onWritable` when the fd can take more.
 * - Errors that end the fd (a deleted TAP device) stop polling and call
 *   `onError(message)` once. Transient socket errors (a restarted peer) are
 *   cleared and polling goes on.
 * - close() stops the handle and closes the fd. It is idempotent, and no JS
 *   callback runs after it, even when called from inside one.
 *
 * Lifetime: the struct is freed when both the uv handle has closed and the JS
 * object is collected. The object cannot be collected while open (its wrap
 * reference is strong until close()), so the slabs, which are its properties,
 * live as long as anything here uses them. Never transfer those buffers.
 */
#include "poller.h"

#include "busy_poll.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define END_OF_FILE (-1)

/* Stops everything; `finalizing` means the env may be going away, so only release what must be. */
static void close_poller(vnet_poller *p, bool finalizing) {
  if (!vnet_polled_close(&p->base, finalizing)) return;
  p->want_writable = false;
  vnet_delete_ref(p->base.env, &p->on_frames);
  vnet_delete_ref(p->base.env, &p->on_writable);
  vnet_delete_ref(p->base.env, &p->on_error);
}

/* The class's methods, bound to each Poller in its constructor (bound_methods.h); set by vnet_init_poller. */
#define POLLER_METHODS 6
static napi_property_descriptor poller_methods[POLLER_METHODS];

static void finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  vnet_poller *p = data;
  close_poller(p, true);
  vnet_polled_finalized(env, &p->base);
}

static int update_poll(vnet_poller *p);

/* Stops reading and tells JS the fd is unusable. */
static void report_error(vnet_poller *p, int err) {
  char message[256];
  if (err == END_OF_FILE) {
    snprintf(message, sizeof message, "fd %d: end of file", p->base.fd);
  } else if (!p->is_socket && (err == EBADF || err == EBADFD)) {
    snprintf(message, sizeof message, "fd %d: the device went away (deleted?) (%s)", p->base.fd,
             uv_err_name(-err));
  } else {
    snprintf(message, sizeof message, "fd %d: %s (%s)", p->base.fd, strerror(err), uv_err_name(-err));
  }
  p->base.reading = false;
  p->want_writable = false;
  update_poll(p);
  napi_value argv[1];
  if (napi_create_string_utf8(p->base.env, message, NAPI_AUTO_LENGTH, &argv[0]) != napi_ok) return;
  vnet_polled_call(&p->base, p->on_error, 1, argv);
}

/* Errors a datagram socket reports when its peer went away; the next peer may come back. */
static bool is_transient(int err) {
  return err == ECONNREFUSED || err == ECONNRESET || err == ENOTCONN;
}

/* Remembers the sender of a datagram as the peer (learnPeer); unnamed senders cannot be answered. */
static void learn_peer(vnet_poller *p, const struct sockaddr_un *from, socklen_t from_len) {
  if (from_len <= offsetof(struct sockaddr_un, sun_path)) return;
  if (p->has_peer && from_len == p->peer_len && memcmp(from, &p->peer, from_len) == 0) return;
  memcpy(&p->peer, from, from_len);
  p->peer_len = from_len;
  p->has_peer = true;
  p->connected = false;
}

/* One frame in; for datagrams the result is the datagram's real length even if truncated. */
static ssize_t read_one(vnet_poller *p, uint8_t *buf, size_t size) {
  if (!p->is_socket) return read(p->base.fd, buf, size);
  if (!p->learn_peer) return recv(p->base.fd, buf, size, MSG_TRUNC);
  struct sockaddr_un from;
  socklen_t from_len = sizeof from;
  ssize_t n = recvfrom(p->base.fd, buf, size, MSG_TRUNC, (struct sockaddr *)&from, &from_len);
  if (n >= 0) learn_peer(p, &from, from_len);
  return n;
}

/* Reads at most one batch (`*count` frames, `*bytes` of them); returns 0, or an errno (END_OF_FILE) that ends the fd. */
static int read_batch(vnet_poller *p, uint32_t *count, size_t *bytes, bool *drained) {
  uint32_t n = 0;
  uint32_t transient = 0;
  size_t offset = 0;
  *bytes = 0;
  *drained = false;
  while (n < RX_BATCH_FRAMES && offset + RX_READ_MAX <= RX_SLAB_SIZE) {
    ssize_t got = read_one(p, p->rx_slab + offset, RX_READ_MAX);
    if (got < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        *drained = true;
        break;
      }
      if (p->is_socket && is_transient(err) && ++transient < RX_BATCH_FRAMES) continue;
      *count = n;
      return err;
    }
    if (got == 0 && !p->is_socket) {
      *count = n;
      return END_OF_FILE;
    }
    /* Shorter than its prefix: reported as an empty frame, which JS counts as a drop. A
     * truncated datagram keeps its real length, which JS finds oversized. */
    size_t header = p->header_length;
    p->rx_meta[2 * n] = (uint32_t)(offset + header);
    p->rx_meta[2 * n + 1] = (size_t)got >= header ? (uint32_t)((size_t)got - header) : 0;
    *bytes += p->rx_meta[2 * n + 1];
    n++;
    size_t stored = (size_t)got < RX_READ_MAX ? (size_t)got : RX_READ_MAX;
    offset += (stored + 7) & ~(size_t)7;
  }
  *count = n;
  return 0;
}

static void read_batches(vnet_poller *p) {
  for (int batch = 0; batch < BATCHES_PER_WAKEUP && p->base.reading && !p->base.closed; batch++) {
    uint32_t count;
    size_t bytes;
    bool drained;
    int err = read_batch(p, &count, &bytes, &drained);
    if (count > 0) {
      vnet_busy_poll_moved(p->base.env, bytes);
      napi_value argv[1];
      if (napi_create_uint32(p->base.env, count, &argv[0]) != napi_ok) return;
      if (!vnet_polled_call(&p->base, p->on_frames, 1, argv)) return;
    }
    if (p->base.closed) return;
    if (err != 0) {
      report_error(p, err);
      return;
    }
    if (drained) return;
  }
}

/* libuv reports EPOLLERR as UV_EBADF; for sockets that is often just a pending SO_ERROR. */
static void on_poll_error(vnet_poller *p, int status) {
  if (p->is_socket) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(p->base.fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && (err == 0 || is_transient(err))) {
      if (update_poll(p) == 0) return;
    }
    if (err != 0) {
      report_error(p, err);
      return;
    }
  }
  report_error(p, status == UV_EBADF ? EBADF : -status);
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  vnet_poller *p = handle->data;
  if (p->base.closed) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(p->base.env, &scope) != napi_ok) return;
  if (status < 0) {
    on_poll_error(p, status);
  } else {
    if (events & UV_READABLE) read_batches(p);
    if (!p->base.closed && p->want_writable && (events & UV_WRITABLE)) {
      vnet_polled_call(&p->base, p->on_writable, 0, NULL);
    }
  }
  vnet_polled_callbacks_done(&p->base);
  napi_close_handle_scope(p->base.env, scope);
}

static int update_poll(vnet_poller *p) {
  if (p->base.closed) return 0;
  int events = (p->base.reading ? UV_READABLE : 0) | (p->want_writable ? UV_WRITABLE : 0);
  if (events == 0) return uv_poll_stop(&p->base.handle);
  return uv_poll_start(&p->base.handle, events, on_poll);
}

vnet_poller *vnet_poller_this(napi_env env, napi_callback_info info, size_t *argc,
                              napi_value *argv, bool require_open) {
  return (vnet_poller *)vnet_polled_this(env, info, argc, argv, require_open, "Poller");
}

/* start(): begin reading. */
static napi_value poller_start(napi_env env, napi_callback_info info) {
  vnet_poller *p = vnet_poller_this(env, info, NULL, NULL, true);
  if (p == NULL) return NULL;
  p->base.reading = true;
  int err = update_poll(p);
  if (err != 0) vnet_throw_errno(env, "VNET_ERR_POLLER", -err, "uv_poll_start");
  return NULL;
}

/* watchWritable(on): call onWritable whenever the fd can take more frames, until turned off. */
static napi_value poller_watch_writable(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  bool on;
  vnet_poller *p = vnet_poller_this(env, info, &argc, argv, true);
  if (p == NULL) return NULL;
  if (argc < 1 || !vnet_arg_bool(env, argv[0], "on", &on)) return NULL;
  if (p->want_writable == on) return NULL;
  p->want_writable = on;
  int err = update_poll(p);
  if (err != 0) vnet_throw_errno(env, "VNET_ERR_POLLER", -err, "uv_poll_start");
  return NULL;
}

/* close(): stop polling and close the fd. Idempotent. */
static napi_value poller_close(napi_env env, napi_callback_info info) {
  vnet_poller *p = vnet_poller_this(env, info, NULL, NULL, false);
  if (p != NULL) close_poller(p, false);
  return NULL;
}

static bool expect_function(napi_env env, napi_value value, const char *name) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) == napi_ok && type == napi_function) return true;
  char message[64];
  snprintf(message, sizeof message, "%s must be a function", name);
  vnet_throw(env, "VNET_ERR_INVALID_ARG", message);
  return false;
}

/* Creates an ArrayBuffer of `size` bytes and returns its backing store in `*data`. */
static bool new_buffer(napi_env env, size_t size, void **data, napi_value *buffer) {
  if (napi_create_arraybuffer(env, size, data, buffer) != napi_ok) return false;
  memset(*data, 0, size);
  return true;
}

/* A Uint32Array of `length` elements over a new ArrayBuffer. */
static bool new_uint32_array(napi_env env, size_t length, uint32_t **data, napi_value *array) {
  napi_value buffer;
  void *raw;
  if (!new_buffer(env, length * sizeof(uint32_t), &raw, &buffer)) return false;
  *data = raw;
  return napi_create_typedarray(env, napi_uint32_array, length, buffer, 0, array) == napi_ok;
}

/* Creates the shared buffers and puts them on `self` as read-only properties. */
static bool attach_buffers(napi_env env, napi_value self, vnet_poller *p) {
  napi_value rx_slab, rx_meta, tx_slab, tx_meta, status;
  void *raw;
  if (!new_buffer(env, RX_SLAB_SIZE, &raw, &rx_slab)) return false;
  p->rx_slab = raw;
  if (!new_buffer(env, TX_SLAB_SIZE, &raw, &tx_slab)) return false;
  p->tx_slab = raw;
  if (!new_uint32_array(env, 2 * RX_BATCH_FRAMES, &p->rx_meta, &rx_meta)) return false;
  if (!new_uint32_array(env, 2 * TX_BATCH_FRAMES, &p->tx_meta, &tx_meta)) return false;
  if (!new_uint32_array(env, STATUS_SLOTS, &p->status, &status)) return false;
  napi_property_descriptor properties[] = {
      {"rxSlab", NULL, NULL, NULL, NULL, rx_slab, napi_enumerable, NULL},
      {"rxMeta", NULL, NULL, NULL, NULL, rx_meta, napi_enumerable, NULL},
      {"txSlab", NULL, NULL, NULL, NULL, tx_slab, napi_enumerable, NULL},
      {"txMeta", NULL, NULL, NULL, NULL, tx_meta, napi_enumerable, NULL},
      {"status", NULL, NULL, NULL, NULL, status, napi_enumerable, NULL},
  };
  return napi_define_properties(env, self, sizeof properties / sizeof properties[0], properties) ==
         napi_ok;
}

typedef struct {
  int32_t fd;
  uint32_t header_length;
  bool tx_header_in_frame;
  bool learn_peer;
  bool has_peer;
  struct sockaddr_un peer;
  socklen_t peer_len;
} poller_options;

/* Reads (fd, onFrames, onWritable, onError, {headerLength?, peerPath?, learnPeer?}). */
static bool read_constructor_args(napi_env env, size_t argc, napi_value *argv,
                                  poller_options *o) {
  if (argc < 4) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG",
               "new Poller(fd, onFrames, onWritable, onError, options)");
    return false;
  }
  if (!vnet_arg_int32(env, argv[0], "fd", &o->fd)) return false;
  if (!expect_function(env, argv[1], "onFrames") || !expect_function(env, argv[2], "onWritable") ||
      !expect_function(env, argv[3], "onError")) {
    return false;
  }
  napi_value options = argc > 4 ? argv[4] : NULL;
  if (options == NULL) napi_get_undefined(env, &options);
  if (!vnet_option_uint32(env, options, "headerLength", 0, &o->header_length)) return false;
  if (!vnet_option_bool(env, options, "txHeaderInFrame", false, &o->tx_header_in_frame)) return false;
  if (o->header_length > VNET_MAX_HEADER) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "headerLength must be at most 12");
    return false;
  }
  if (!vnet_option_bool(env, options, "learnPeer", false, &o->learn_peer)) return false;
  napi_valuetype type;
  napi_value peer_path;
  if (napi_typeof(env, options, &type) != napi_ok) return false;
  o->has_peer = false;
  if (type != napi_object) return true;
  if (napi_get_named_property(env, options, "peerPath", &peer_path) != napi_ok) return false;
  char path[PATH_MAX];
  bool absent;
  if (!vnet_arg_string(env, peer_path, "peerPath", path, sizeof path, &absent)) return false;
  if (absent) return true;
  int err = vnet_unix_address(path, &o->peer, &o->peer_len);
  if (err != 0) {
    vnet_throw_errno(env, "VNET_ERR_INVALID_ARG", err, "peerPath");
    return false;
  }
  o->has_peer = true;
  return true;
}

/* new Poller(fd, onFrames(count), onWritable(), onError(message), options?) — takes over fd on success. */
static napi_value poller_new(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5], self, new_target;
  if (napi_get_cb_info(env, info, &argc, argv, &self, NULL) != napi_ok) return NULL;
  if (napi_get_new_target(env, info, &new_target) != napi_ok || new_target == NULL) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "Poller must be called with new");
    return NULL;
  }
  poller_options o;
  if (!read_constructor_args(env, argc, argv, &o)) return NULL;

  struct stat st;
  if (fstat(o.fd, &st) != 0) {
    vnet_throw_errno(env, "VNET_ERR_POLLER", errno, "fstat");
    return NULL;
  }
  vnet_poller *p = calloc(1, sizeof *p);
  if (p == NULL) {
    vnet_throw_errno(env, "VNET_ERR_POLLER", ENOMEM, "allocate poller");
    return NULL;
  }
  p->is_socket = S_ISSOCK(st.st_mode);
  p->header_length = o.header_length;
  p->tx_header_in_frame = o.tx_header_in_frame;
  p->learn_peer = o.learn_peer;
  p->has_peer = o.has_peer;
  p->peer = o.peer;
  p->peer_len = o.peer_len;
  int err = vnet_polled_init(&p->base, env, o.fd);
  if (err != 0) {
    free(p);
    vnet_throw_errno(env, "VNET_ERR_POLLER", -err, "uv_poll_init");
    return NULL;
  }
  if (!attach_buffers(env, self, p) ||
      napi_create_reference(env, argv[1], 1, &p->on_frames) != napi_ok ||
      napi_create_reference(env, argv[2], 1, &p->on_writable) != napi_ok ||
      napi_create_reference(env, argv[3], 1, &p->on_error) != napi_ok ||
      !vnet_polled_bind(&p->base, self, poller_methods, POLLER_METHODS) ||
      !vnet_polled_wrap(&p->base, self, "vnet:Poller", finalize)) {
    /* The fd stays the caller's: only the handle goes (and the owner, once its bound methods are collected). */
    vnet_delete_ref(env, &p->on_frames);
    vnet_delete_ref(env, &p->on_writable);
    vnet_delete_ref(env, &p->on_error);
    vnet_polled_abandon(&p->base);
    return NULL;
  }
  return self;
}

bool vnet_init_poller(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"start", NULL, poller_start, NULL, NULL, NULL, napi_default, NULL},
      {"watchWritable", NULL, poller_watch_writable, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, poller_close, NULL, NULL, NULL, napi_default, NULL},
      vnet_poller_write_methods[0],
      vnet_poller_write_methods[1],
      vnet_poller_write_methods[2],
  };
  _Static_assert(sizeof methods == sizeof poller_methods, "POLLER_METHODS counts every method");
  memcpy(poller_methods, methods, sizeof poller_methods);
  napi_value cls;
  if (napi_define_class(env, "Poller", NAPI_AUTO_LENGTH, poller_new, NULL, 0, NULL, &cls) != napi_ok) {
    return false;
  }
  return napi_set_named_property(env, exports, "Poller", cls) == napi_ok;
}
