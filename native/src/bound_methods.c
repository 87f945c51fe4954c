/* Methods bound to one native object (see bound_methods.h). */
#include "bound_methods.h"

static void on_method_collected(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  vnet_binding *b = data;
  b->alive--;
  b->release(b->owner);
}

bool vnet_bind_methods(napi_env env, napi_value self, const napi_property_descriptor *methods, size_t count,
                       vnet_binding *b) {
  for (size_t i = 0; i < count; i++) {
    napi_property_descriptor own = {methods[i].utf8name, NULL, NULL, NULL, NULL, NULL, napi_default_method, NULL};
    if (napi_create_function(env, own.utf8name, NAPI_AUTO_LENGTH, methods[i].method, b->owner, &own.value) !=
            napi_ok ||
        napi_add_finalizer(env, own.value, b, on_method_collected, NULL, NULL) != napi_ok) {
      return false;
    }
    b->alive++;
    if (napi_define_properties(env, self, 1, &own) != napi_ok) return false;
  }
  return true;
}
