/* The poller's state, shared by poller.c (lifecycle, reads) and poller_write.c (writes). */
#ifndef VNET_POLLER_H
#define VNET_POLLER_H

#include "polled.h"

#include <stddef.h>

/* Frames per JS call on the read side; also the most frames one write call takes. */
#define RX_BATCH_FRAMES 64
#define TX_BATCH_FRAMES 64
/* Room one read needs: a whole frame plus its prefix, rounded up. */
#define RX_READ_MAX 65600
/* 256 KiB holds a full batch of MTU-1500 frames; 64 KiB frames make batches of ~3. */
#define RX_SLAB_SIZE (256 * 1024)
#define TX_SLAB_SIZE (256 * 1024)
/* A wakeup reads at most this many batches before yielding to the rest of the loop. */
#define BATCHES_PER_WAKEUP 4

/* status[] slots filled by every write call. */
enum { STATUS_FAILED = 0, STATUS_BYTES = 1, STATUS_ERRNO = 2, STATUS_SLOTS = 3 };

typedef struct vnet_poller {
  vnet_polled base; /* first: the shared lifecycle (polled.h) */
  napi_ref on_frames, on_writable, on_error;
  bool is_socket;
  bool want_writable;  /* watchWritable(true) */
  uint32_t header_length; /* bytes before each frame (virtio-net header), stripped/added here */
  bool tx_header_in_frame; /* frames given to write already start with their header */

  uint8_t *rx_slab;    /* backing store of the rxSlab ArrayBuffer */
  uint32_t *rx_meta;   /* [offset, length] per frame of the batch just read */
  uint8_t *tx_slab;    /* backing store of txSlab, filled by JS */
  uint32_t *tx_meta;   /* [offset, length] per frame JS put in txSlab */
  uint32_t *status;    /* STATUS_* of the last write call */

  /* Datagram sockets only: where frames toward the guest go. */
  bool learn_peer;     /* take the peer from received datagrams */
  bool has_peer;
  bool connected;
  struct sockaddr_un peer;
  socklen_t peer_len;
} vnet_poller;

_Static_assert(offsetof(vnet_poller, base) == 0, "vnet_polled must come first (polled.h)");

/*
 * Writes frames (pointer/length pairs) until EAGAIN; returns how many were
 * consumed (written or failed). `header` goes before each frame; NULL: the
 * Poller's default (zeros of headerLength, or nothing when JS puts it in the frame).
 */
uint32_t vnet_poller_write(vnet_poller *p, const struct iovec *frames, uint32_t count,
                           const struct iovec *header);
/* Adds writeSlab, writeFrames and writeFrame to the Poller prototype's property list. */
extern const napi_property_descriptor vnet_poller_write_methods[3];

/* Unwraps `this` of a Poller method and its arguments; throws and returns NULL if `this` is
 * not a Poller, or if it is closed and `require_open`. */
vnet_poller *vnet_poller_this(napi_env env, napi_callback_info info, size_t *argc,
                              napi_value *argv, bool require_open);

#endif
