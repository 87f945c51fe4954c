/* Errors with a stable code and errno text; readers for JS arguments and the addresses they name. */
#include "vnet.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

static void throw_error(napi_env env, const char *code, const char *message, int err) {
  napi_value code_value, message_value, error, errno_value;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_value) != napi_ok) return;
  if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &message_value) != napi_ok) return;
  if (napi_create_error(env, code_value, message_value, &error) != napi_ok) return;
  if (err != 0 && napi_create_int32(env, err, &errno_value) == napi_ok) {
    napi_set_named_property(env, error, "errno", errno_value);
  }
  napi_throw(env, error);
}

void vnet_throw_errno(napi_env env, const char *code, int err, const char *what) {
  char message[512];
  /* libuv's error numbers are negated errnos on Linux, so its names are the errno names. */
  snprintf(message, sizeof message, "%s: %s (%s)", what, strerror(err), uv_err_name(-err));
  throw_error(env, code, message, err);
}

void vnet_throw(napi_env env, const char *code, const char *message) {
  throw_error(env, code, message, 0);
}

static bool invalid(napi_env env, const char *name, const char *expected) {
  char message[256];
  snprintf(message, sizeof message, "%s must be %s", name, expected);
  vnet_throw(env, "VNET_ERR_INVALID_ARG", message);
  return false;
}

bool vnet_arg_int32(napi_env env, napi_value value, const char *name, int32_t *out) {
  if (napi_get_value_int32(env, value, out) != napi_ok) return invalid(env, name, "a number");
  return true;
}

bool vnet_arg_uint32(napi_env env, napi_value value, const char *name, uint32_t *out) {
  if (napi_get_value_uint32(env, value, out) != napi_ok) return invalid(env, name, "a number");
  return true;
}

bool vnet_arg_bool(napi_env env, napi_value value, const char *name, bool *out) {
  if (napi_get_value_bool(env, value, out) != napi_ok) return invalid(env, name, "a boolean");
  return true;
}

bool vnet_arg_string(napi_env env, napi_value value, const char *name, char *buf, size_t size,
                     bool *is_null) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok) return invalid(env, name, "a string");
  if (is_null != NULL) {
    *is_null = type == napi_null || type == napi_undefined;
    if (*is_null) {
      buf[0] = '\0';
      return true;
    }
  }
  if (type != napi_string) return invalid(env, name, "a string");
  size_t length;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok) {
    return invalid(env, name, "a string");
  }
  if (length + 1 > size) {
    char expected[64];
    snprintf(expected, sizeof expected, "at most %zu bytes long", size - 1);
    return invalid(env, name, expected);
  }
  napi_get_value_string_utf8(env, value, buf, size, &length);
  if (strlen(buf) != length) return invalid(env, name, "a string without NUL characters");
  return true;
}

/* Gets `object[name]`, or reports absence (undefined, or object itself null/undefined). */
static bool option(napi_env env, napi_value object, const char *name, napi_value *out,
                   bool *present) {
  napi_valuetype type;
  *present = false;
  if (napi_typeof(env, object, &type) != napi_ok) return invalid(env, "options", "an object");
  if (type == napi_undefined || type == napi_null) return true;
  if (type != napi_object) return invalid(env, "options", "an object");
  if (napi_get_named_property(env, object, name, out) != napi_ok) return false;
  if (napi_typeof(env, *out, &type) != napi_ok) return false;
  *present = type != napi_undefined;
  return true;
}

bool vnet_option_bool(napi_env env, napi_value object, const char *name, bool fallback, bool *out) {
  napi_value value;
  bool present;
  if (!option(env, object, name, &value, &present)) return false;
  if (!present) {
    *out = fallback;
    return true;
  }
  return vnet_arg_bool(env, value, name, out);
}

bool vnet_option_uint32(napi_env env, napi_value object, const char *name, uint32_t fallback,
                        uint32_t *out) {
  napi_value value;
  bool present;
  if (!option(env, object, name, &value, &present)) return false;
  if (!present) {
    *out = fallback;
    return true;
  }
  return vnet_arg_uint32(env, value, name, out);
}

bool vnet_export_function(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn) != napi_ok) return false;
  return napi_set_named_property(env, exports, name, fn) == napi_ok;
}

bool vnet_ip_address(const char *text, uint16_t port, void *out, socklen_t *len) {
  struct sockaddr_in *v4 = out;
  struct sockaddr_in6 *v6 = out;
  memset(out, 0, sizeof *v6);
  if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    *len = sizeof *v4;
    return true;
  }
  if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    *len = sizeof *v6;
    return true;
  }
  return false;
}
