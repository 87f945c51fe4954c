/* The shared lifecycle of a polled fd wrapped in a JS object (see polled.h). */
#include "polled.h"

#include "busy_poll.h"

#include <stdio.h>

#include <stdlib.h>
#include <unistd.h>

static void free_when_done(vnet_polled *o) {
  if (!o->handle_open && o->finalized && o->methods.alive == 0) free(o); /* the owner: o is its first member */
}

static void release_bound(void *owner) { free_when_done(owner); }

bool vnet_polled_bind(vnet_polled *o, napi_value self, const napi_property_descriptor *methods, size_t count) {
  o->methods.owner = o;
  o->methods.release = release_bound;
  return vnet_bind_methods(o->env, self, methods, count, &o->methods);
}

static void on_handle_closed(uv_handle_t *handle) {
  vnet_polled *o = handle->data;
  o->handle_open = false;
  free_when_done(o);
}

void vnet_delete_ref(napi_env env, napi_ref *ref) {
  if (*ref != NULL) napi_delete_reference(env, *ref);
  *ref = NULL;
}

int vnet_polled_init(vnet_polled *o, napi_env env, int fd) {
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return -EINVAL;
  o->env = env;
  o->fd = fd;
  o->finalized = true; /* until vnet_polled_wrap succeeds, nothing but the constructor owns it */
  int err = uv_poll_init(loop, &o->handle, fd);
  if (err != 0) return err;
  o->handle.data = o;
  o->handle_open = true;
  return 0;
}

bool vnet_polled_wrap(vnet_polled *o, napi_value self, const char *name, napi_finalize finalize) {
  napi_env env = o->env;
  napi_value name_value;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &name_value) != napi_ok ||
      napi_async_init(env, self, name_value, &o->async_context) != napi_ok ||
      napi_wrap(env, self, o, finalize, NULL, &o->self) != napi_ok) {
    return false;
  }
  o->finalized = false;
  napi_reference_ref(env, o->self, NULL);
  return true;
}

void vnet_polled_abandon(vnet_polled *o) {
  if (o->async_context != NULL) napi_async_destroy(o->env, o->async_context);
  o->async_context = NULL;
  uv_close((uv_handle_t *)&o->handle, on_handle_closed);
}

bool vnet_polled_call(vnet_polled *o, napi_ref fn_ref, size_t argc, const napi_value *argv) {
  napi_env env = o->env;
  napi_value fn, recv;
  if (fn_ref == NULL || napi_get_reference_value(env, fn_ref, &fn) != napi_ok || fn == NULL) {
    return true;
  }
  if (napi_get_reference_value(env, o->self, &recv) != napi_ok || recv == NULL) {
    napi_get_undefined(env, &recv);
  }
  o->dispatching = true;
  bool ok = vnet_make_callback(env, o->async_context, recv, fn, argc, argv);
  o->dispatching = false;
  return ok;
}

bool vnet_make_callback(napi_env env, napi_async_context context, napi_value recv, napi_value fn, size_t argc,
                        const napi_value *argv) {
  vnet_busy_poll_touch(env);
  return vnet_call_js(env, context, recv, fn, argc, argv);
}

bool vnet_call_js(napi_env env, napi_async_context context, napi_value recv, napi_value fn, size_t argc,
                  const napi_value *argv) {
  if (napi_make_callback(env, context, recv, fn, argc, argv, NULL) == napi_ok) return true;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value exception;
    napi_get_and_clear_last_exception(env, &exception);
    napi_fatal_exception(env, exception);
  }
  return false;
}

bool vnet_polled_close(vnet_polled *o, bool finalizing) {
  if (o->closed) return false;
  o->closed = true;
  o->reading = false;
  /* uv_close also removes the fd from epoll, so it must come before close(fd). */
  uv_close((uv_handle_t *)&o->handle, on_handle_closed);
  close(o->fd);
  o->fd = -1;
  if (!finalizing) {
    napi_reference_unref(o->env, o->self, NULL);
    /* Destroying the context of the callback we are inside waits until it returns (see the on_poll handlers). */
    if (!o->dispatching && o->async_context != NULL) {
      napi_async_destroy(o->env, o->async_context);
      o->async_context = NULL;
    }
  }
  return true;
}

void *vnet_this(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv, const char *kind) {
  napi_value self;
  void *data = NULL;
  size_t none = 0;
  if (napi_get_cb_info(env, info, argc != NULL ? argc : &none, argv, &self, &data) != napi_ok) {
    return NULL;
  }
  if (data != NULL) return data; /* a bound method (bound_methods.h) */
  if (napi_unwrap(env, self, &data) != napi_ok || data == NULL) {
    char message[64];
    snprintf(message, sizeof message, "not a %s", kind);
    vnet_throw(env, "VNET_ERR_INVALID_ARG", message);
    return NULL;
  }
  return data;
}

void vnet_throw_closed(napi_env env, const char *kind) {
  char message[64];
  snprintf(message, sizeof message, "the %s is closed", kind);
  vnet_throw(env, "VNET_ERR_CLOSED", message);
}

vnet_polled *vnet_polled_this(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv,
                              bool require_open, const char *kind) {
  vnet_polled *o = vnet_this(env, info, argc, argv, kind);
  if (o != NULL && require_open && o->closed) {
    vnet_throw_closed(env, kind);
    return NULL;
  }
  return o;
}

void vnet_polled_callbacks_done(vnet_polled *o) {
  if (o->closed && o->async_context != NULL) {
    napi_async_destroy(o->env, o->async_context);
    o->async_context = NULL;
  }
}

void vnet_polled_finalized(napi_env env, vnet_polled *o) {
  vnet_delete_ref(env, &o->self);
  o->finalized = true;
  free_when_done(o);
}
