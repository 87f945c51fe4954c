/*
 * Poller writes: frames toward the guest, as many as the fd takes now.
 *
 * Both calls return how many frames were consumed: written, or failed for a
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

/* Bytes of header write() must add in front of each frame: none when JS put it there. */
static size_t added_header(const vnet_poller *p) {
  return p->tx_header_in_frame ? 0 : p->header_length;
}

static uint32_t write_device(vnet_poller *p, const struct iovec *frames, uint32_t count,
                             write_result *result) {
  uint32_t i = 0;
  size_t header = added_header(p);
  while (i < count) {
    struct iovec iov[2] = {{(void *)zero_header, header}, frames[i]};
    ssize_t written = header > 0 ? writev(p->base.fd, iov, 2)
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
                             write_result *result) {
  struct mmsghdr messages[TX_BATCH_FRAMES];
  struct iovec iov[TX_BATCH_FRAMES][2];
  memset(messages, 0, sizeof messages[0] * count);
  size_t header = added_header(p);
  for (uint32_t k = 0; k < count; k++) {
    iov[k][0].iov_base = (void *)zero_header;
    iov[k][0].iov_len = header;
    iov[k][1] = frames[k];
    messages[k].msg_hdr.msg_iov = header > 0 ? iov[k] : &iov[k][1];
    messages[k].msg_hdr.msg_iovlen = header > 0 ? 2 : 1;
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

uint32_t vnet_poller_write(vnet_poller *p, const struct iovec *frames, uint32_t count) {
  write_result result = {0, 0, 0};
  uint32_t consumed = p->is_socket ? write_socket(p, frames, count, &result)
                                   : write_device(p, frames, count, &result);
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
  return consumed_value(env, vnet_poller_write(p, frames, count));
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
    napi_typedarray_type type;
    size_t element_count;
    void *data;
    bool is_typedarray = false;
    if (napi_get_element(env, argv[0], start + i, &element) != napi_ok) return NULL;
    napi_is_typedarray(env, element, &is_typedarray);
    if (!is_typedarray ||
        napi_get_typedarray_info(env, element, &type, &element_count, &data, NULL, NULL) !=
            napi_ok ||
        type != napi_uint8_array) {
      vnet_throw(env, "VNET_ERR_INVALID_ARG", "frames must hold only Uint8Arrays");
      return NULL;
    }
    frames[i].iov_base = data;
    frames[i].iov_len = element_count;
  }
  return consumed_value(env, vnet_poller_write(p, frames, count));
}

const napi_property_descriptor vnet_poller_write_methods[2] = {
    {"writeSlab", NULL, write_slab, NULL, NULL, NULL, napi_default, NULL},
    {"writeFrames", NULL, write_frames, NULL, NULL, NULL, napi_default, NULL},
};
