/* Entry point: gathers the parts listed in vnet.h. */
#include "vnet.h"

static napi_value init(napi_env env, napi_value exports) {
  if (!vnet_init_tap(env, exports)) return NULL;
  if (!vnet_init_unix_dgram(env, exports)) return NULL;
  if (!vnet_init_poller(env, exports)) return NULL;
  if (!vnet_init_icmp(env, exports)) return NULL;
  if (!vnet_init_udp(env, exports)) return NULL;
  if (!vnet_init_tcp_sockets(env, exports)) return NULL;
  if (!vnet_init_busy_poll(env, exports)) return NULL;
  if (!vnet_init_exec(env, exports)) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
