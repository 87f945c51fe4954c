/*
 * Methods bound to one native object: the class's methods made again for
 * each instance, with the object's pointer as the function's data.
 *
 * Why: a prototype method finds its native object with napi_unwrap, a
 * private-property lookup through V8's runtime that costs ~300 ns; a short
 * NAT'd connection makes 13 such calls, 2 % of its CPU (measured: 2.7 %
 * more connections per second without them, docs/performance.md). A bound
 * method gets its pointer from napi_get_cb_info for nothing (vnet_this).
 *
 * The catch is lifetime. JS may keep a method after it dropped the object,
 * so the native object must outlive its methods, not only its JS object:
 * `alive` counts the functions not yet collected, and `release` runs each
 * time one is, so the owner can free itself once nothing holds it. A method
 * called after its object was finalized finds the object closed and throws.
 */
#ifndef VNET_BOUND_METHODS_H
#define VNET_BOUND_METHODS_H

#include "vnet.h"

typedef struct vnet_binding {
  void *owner;
  uint32_t alive;              /* bound functions not yet collected */
  void (*release)(void *owner); /* after one was: the owner frees itself if nothing else holds it */
} vnet_binding;

/*
 * Defines each of `methods` (descriptors with a `method` and no data) on
 * `self` as a function bound to b->owner. False on failure (an exception
 * pending); functions made before it still count in b->alive.
 */
bool vnet_bind_methods(napi_env env, napi_value self, const napi_property_descriptor *methods, size_t count,
                       vnet_binding *b);

#endif
