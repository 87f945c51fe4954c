/*
 * Poller writes: frames toward the guest, as many as the fd takes now.
 *
 * All three calls return how many frames were consumed: written, or failed for a
 * reason other than EAGAIN (those are dropped and counted in
 * status[STATUS_FAILED] with the last errno). JS keeps the unconsumed rest.
 *
 * - TAP: one write() per frame; the kernel has no batched TUN write.
 * - Datagram sockets: sendmmsg() on a socket connected to the peer. Being
 *   connected makes poll() report writable only when the peer's queue has
 *   room (an unconnected unix datagram socket is always "writable", which
 *   would spin). When the peer restarts, the send fails with ECONNREFUSED and
 *   the kernel drops the connection; we reconnect by path once and retry.
 */
#include "poller.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

/* The virtio-net header sent before each frame when headerLength > 0: no offloads, checksums done. */
static const uint8_t zero_header[VNET_MAX_HEADER];

typedef struct {
  uint32_t failed;
  uint32_t bytes;
  int last_errno;
} write_result;

static int connect_peer(vnet_poller *p) {
  if (!p->has_peer) return EDESTADDRREQ;
  if (connect(p->base.fd, (const struct sockaddr *)&p->peer, p->peer_len) != 0) return errno;
  p->connected = true;
  return 0;
}

static bool is_peer_gone(int err) {
  return err == ECONNREFUSED || err == ENOTCONN || err == EDESTADDRREQ || err == ENOENT;
}

/* The header write() adds in front of each frame by default: none when JS put it there. */
static struct iovec added_header(const vnet_poller *p) {
  return (struct iovec){(void *)zero_header, p->tx_header_in_frame ? 0 : p->header_length};
}

static uint32_t write_device(vnet_poller *p, const struct iovec *frames, uint32_t count,
                             struct iovec header, write_result *result) {
  uint32_t i = 0;
  while (i < count) {
    struct iovec iov[2] = {header, frames[i]};
    ssize_t written = header.iov_len > 0 ? writev(p->base.fd, iov, 2)
                                         : write(p->base.fd, frames[i].iov_base, frames[i].iov_len);
    if (written >= 0) {
      result->bytes += (uint32_t)frames[i].iov_len;
      i++;
      continue;
    }
    int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) break;
    result->failed++;
    result->last_errno = err;
    i++;
  }
  return i;
}

static uint32_t write_socket(vnet_poller *p, const struct iovec *frames, uint32_t count,
                             struct iovec header, write_result *result) {
  struct mmsghdr messages[TX_BATCH_FRAMES];
  struct iovec iov[TX_BATCH_FRAMES][2];
  memset(messages, 0, sizeof messages[0] * count);
  for (uint32_t k = 0; k < count; k++) {
    iov[k][0] = header;
    iov[k][1] = frames[k];
    messages[k].msg_hdr.msg_iov = header.iov_len > 0 ? iov[k] : &iov[k][1];
    messages[k].msg_hdr.msg_iovlen = header.iov_len > 0 ? 2 : 1;
  }
  uint32_t i = 0;
  bool reconnected = false;
  int err = p->connected ? 0 : connect_peer(p);
  while (err == 0 && i < count) {
    int sent = sendmmsg(p->base.fd, messages + i, count - i, MSG_DONTWAIT);
    if (sent > 0) {
      for (uint32_t k = i; k < i + (uint32_t)sent; k++) result->bytes += (uint32_t)frames[k].iov_len;
      i += (uint32_t)sent;
      continue;
    }
    err = errno;
    if (err == EINTR) {
      err = 0;
    } else if (err == EAGAIN || err == EWOULDBLOCK) {
      return i;
    } else if (is_peer_gone(err)) {
      p->connected = false;
      if (!reconnected) {
        reconnected = true;
        err = connect_peer(p);
      }
    } else {
      /* This frame only (EMSGSIZE, ENOBUFS): drop it and go on. */
      result->failed++;
      result->last_errno = err;
      i++;
      err = 0;
    }
  }
  if (err != 0) {
    /* No peer to send to: everything left is dropped. */
    result->failed += count - i;
    result->last_errno = err;
    i = count;
  }
  return i;
}

uint32_t vnet_poller_write(vnet_poller *p, const struct iovec *frames, uint32_t count,
                           const struct iovec *header) {
  write_result result = {0, 0, 0};
  struct iovec before = header != NULL ? *header : added_header(p);
  uint32_t consumed = p->is_socket ? write_socket(p, frames, count, before, &result)
                                   : write_device(p, frames, count, before, &result);
  p->status[STATUS_FAILED] = result.failed;
  p->status[STATUS_BYTES] = result.bytes;
  p->status[STATUS_ERRNO] = (uint32_t)result.last_errno;
  return consumed;
}

static napi_value consumed_value(napi_env env, uint32_t consumed) {
  napi_value value;
  if (napi_create_uint32(env, consumed, &value) != napi_ok) return NULL;
  return value;
}

/* writeSlab(count) → consumed: the first `count` frames described by txMeta. */
static napi_value write_slab(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  uint32_t count;
  vnet_poller *p = vnet_poller_this(env, info, &argc, argv, true);
  if (p == NULL) return NULL;
  if (argc < 1 || !vnet_arg_uint32(env, argv[0], "count", &count)) return NULL;
  if (count > TX_BATCH_FRAMES) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "count is larger than txMeta holds");
    return NULL;
  }
  struct iovec frames[TX_BATCH_FRAMES];
  for (uint32_t i = 0; i < count; i++) {
    uint32_t offset = p->tx_meta[2 * i];
    uint32_t length = p->tx_meta[2 * i + 1];
    /* txMeta is written by JS: never trust it to stay inside the slab. */
    if (offset > TX_SLAB_SIZE || length > TX_SLAB_SIZE - offset) {
      vnet_throw(env, "VNET_ERR_INVALID_ARG", "txMeta describes a frame outside txSlab");
      return NULL;
    }
    frames[i].iov_base = p->tx_slab + offset;
    frames[i].iov_len = length;
  }
  return consumed_value(env, vnet_poller_write(p, frames, count, NULL));
}

/* The bytes of a Uint8Array argument as an iovec; false (and thrown) otherwise. */
static bool frame_arg(napi_env env, napi_value value, struct iovec *out) {
  bool is_typedarray = false;
  napi_typedarray_type type;
  size_t length;
  void *data;
  napi_is_typedarray(env, value, &is_typedarray);
  if (!is_typedarray || napi_get_typedarray_info(env, value, &type, &length, &data, NULL, NULL) != napi_ok ||
      type != napi_uint8_array) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "frames and headers must be Uint8Arrays");
    return false;
  }
  out->iov_base = data;
  out->iov_len = length;
  return true;
}

/* writeFrames(frames: Uint8Array[], start) → consumed: at most TX_BATCH_FRAMES from `start`. */
static napi_value write_frames(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  uint32_t start, length;
  bool is_array;
  vnet_poller *p = vnet_poller_this(env, info, &argc, argv, true);
  if (p == NULL) return NULL;
  if (argc < 2 || napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "writeFrames(frames: Uint8Array[], start)");
    return NULL;
  }
  if (!vnet_arg_uint32(env, argv[1], "start", &start)) return NULL;
  if (napi_get_array_length(env, argv[0], &length) != napi_ok) return NULL;
  uint32_t count = start < length ? length - start : 0;
  if (count > TX_BATCH_FRAMES) count = TX_BATCH_FRAMES;
  struct iovec frames[TX_BATCH_FRAMES];
  for (uint32_t i = 0; i < count; i++) {
    napi_value element;
    if (napi_get_element(env, argv[0], start + i, &element) != napi_ok) return NULL;
    if (!frame_arg(env, element, &frames[i])) return NULL;
  }
  return consumed_value(env, vnet_poller_write(p, frames, count, NULL));
}

/*
 * writeFrame(frame, header) → consumed (0 or 1): one frame straight from its
 * JS buffer, `header` (a virtio-net header) written before it in the same
 * writev; an empty `header` means the Poller's own default.
 */
static napi_value write_frame(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  struct iovec frame, header;
  vnet_poller *p = vnet_poller_this(env, info, &argc, argv, true);
  if (p == NULL) return NULL;
  if (argc < 2) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "writeFrame(frame: Uint8Array, header: Uint8Array)");
    return NULL;
  }
  if (!frame_arg(env, argv[0], &frame) || !frame_arg(env, argv[1], &header)) return NULL;
  if (header.iov_len > VNET_MAX_HEADER) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "header is longer than a virtio-net header");
    return NULL;
  }
  return consumed_value(env, vnet_poller_write(p, &frame, 1, header.iov_len > 0 ? &header : NULL));
}

const napi_property_descriptor vnet_poller_write_methods[3] = {
    {"writeSlab", NULL, write_slab, NULL, NULL, NULL, napi_default, NULL},
    {"writeFrames", NULL, write_frames, NULL, NULL, NULL, napi_default, NULL},
    {"writeFrame", NULL, write_frame, NULL, NULL, NULL, napi_default, NULL},
};
