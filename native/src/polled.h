/*
 * What the Poller (frames on a TAP or datagram fd) and the IcmpReceiver
 * share: a JS object wrapping a uv_poll_t on one fd, and its lifecycle.
 *
 * Embed `vnet_polled` as the FIRST member of the owner's struct (the owner
 * is freed through it, and uv callbacks get it as handle->data). The owner's
 * memory goes only when all have happened: the uv handle finished closing,
 * the JS object was finalized (or never existed), and its bound methods, if
 * any, were collected.
 */
#ifndef VNET_POLLED_H
#define VNET_POLLED_H

#include "bound_methods.h"
#include "vnet.h"

#include <uv.h>

typedef struct vnet_polled {
  napi_env env;
  /* From napi_wrap; strong (count 1) from construction until close, so an open object is never collected. */
  napi_ref self;
  napi_async_context async_context;
  uv_poll_t handle;
  int fd;
  bool reading;     /* start() called */
  bool closed;      /* closed: fd closed, no more callbacks */
  bool handle_open; /* uv handle not yet through its close callback */
  bool finalized;   /* JS object collected (or not wrapped yet) */
  bool dispatching; /* inside a JS callback */
  vnet_binding methods; /* methods bound to the owner (vnet_polled_bind), if any */
} vnet_polled;

/* Sets up polling of `fd` on the env's loop; 0, or a negative errno (then the caller frees the owner). */
int vnet_polled_init(vnet_polled *o, napi_env env, int fd);
/*
 * Finishes construction: an async context named `name`, `self` wrapping the
 * owner with `finalize` (which must end in vnet_polled_finalized), and the
 * strong reference. False on failure: then call vnet_polled_abandon.
 */
bool vnet_polled_wrap(vnet_polled *o, napi_value self, const char *name, napi_finalize finalize);
/*
 * Defines the class's `methods` on `self` bound to the owner (bound_methods.h).
 * False on failure (an exception pending); then call vnet_polled_abandon.
 */
bool vnet_polled_bind(vnet_polled *o, napi_value self, const napi_property_descriptor *methods, size_t count);
/* Construction failed: release the handle (the fd stays the caller's); the owner is freed once it closed. */
void vnet_polled_abandon(vnet_polled *o);
/*
 * napi_make_callback; false if `fn` threw (the exception goes to 'uncaughtException').
 * Every fd event reaches JS through here, so it also tells the busy poller (busy_poll.c).
 */
bool vnet_make_callback(napi_env env, napi_async_context context, napi_value recv, napi_value fn, size_t argc,
                        const napi_value *argv);
/* napi_make_callback without telling the busy poller (a callback that is not an fd event); false if `fn` threw. */
bool vnet_call_js(napi_env env, napi_async_context context, napi_value recv, napi_value fn, size_t argc,
                  const napi_value *argv);
/* Calls `fn` with the object as `this` in its async context; false if it threw (sent to 'uncaughtException'). */
bool vnet_polled_call(vnet_polled *o, napi_ref fn, size_t argc, const napi_value *argv);
/*
 * Stops polling and closes the fd; `finalizing` means the env may be going
 * away, so only what must be is released. False if it was closed already.
 */
bool vnet_polled_close(vnet_polled *o, bool finalizing);
/*
 * The native object of a method call: the function's data for a bound method
 * (bound_methods.h), else `this` unwrapped (napi_unwrap); with its
 * arguments (argc/argv may be NULL). Throws VNET_ERR_INVALID_ARG ("not a
 * <kind>") and returns NULL when there is none.
 */
void *vnet_this(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv, const char *kind);
/* Throws VNET_ERR_CLOSED: "the <kind> is closed". */
void vnet_throw_closed(napi_env env, const char *kind);
/*
 * The owner behind `this` of a method call, with its arguments (argc/argv may
 * be NULL). Throws VNET_ERR_INVALID_ARG ("not a <kind>") or, if
 * `require_open`, VNET_ERR_CLOSED ("the <kind> is closed") and returns NULL.
 */
vnet_polled *vnet_polled_this(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv,
                              bool require_open, const char *kind);
/* End of a uv callback that ran JS: a close() made inside it released the async context here. */
void vnet_polled_callbacks_done(vnet_polled *o);
/* The owner's finalizer, after closing: the JS side is gone. */
void vnet_polled_finalized(napi_env env, vnet_polled *o);
/* Deletes a reference if set, and clears it. */
void vnet_delete_ref(napi_env env, napi_ref *ref);

#endif
