/* Busy polling after fd events (busy_poll.c). */
#ifndef VNET_BUSY_POLL_H
#define VNET_BUSY_POLL_H

#include "vnet.h"

#include <uv.h>

/* The largest budget setBusyPoll takes, in microseconds. */
#define VNET_BUSY_POLL_MAX_US 10000

/* An fd event is being handled: keep the loop polling until the budget after now. */
void vnet_busy_poll_touch(napi_env env);

/* Reads of this many bytes, in one go or in a short span, are a stream's, not an exchange's (see vnet_busy_poll_moved). */
#define VNET_BULK_BYTES 16384

/* A read moved `bytes`: once they add up to a stream's, the polling window ends and none starts for a while (busy_poll.c, "Not for streams"). */
void vnet_busy_poll_moved(napi_env env, size_t bytes);

#endif
