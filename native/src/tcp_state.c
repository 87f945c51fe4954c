/*
 * Host TCP sockets of the NAT.
 *
 * tcpState(fd): the kernel's TCP state of a socket (TCP_INFO's tcpi_state).
 *
 * Why: when a peer's RST arrives while received data is still queued, Linux
 * reports end-of-file to read(), exactly as for a FIN. Only the state tells
 * them apart afterwards: TCP_CLOSE after a reset, TCP_CLOSE_WAIT after a
 * FIN. The TCP NAT uses it to pass a host reset on to the guest as a reset.
 */
#include "vnet.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

/* The one argument of both functions here: a socket fd. False (and thrown) when missing or not an int32. */
static bool fd_argument(napi_env env, napi_callback_info info, int32_t *fd) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return false;
  if (argc < 1) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "fd is required");
    return false;
  }
  return vnet_arg_int32(env, argv[0], "fd", fd);
}

static napi_value tcp_state(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!fd_argument(env, info, &fd)) return NULL;
  struct tcp_info tcpi;
  socklen_t len = sizeof(tcpi);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &tcpi, &len) != 0) {
    vnet_throw_errno(env, "VNET_ERR_TCP_INFO", errno, "getsockopt(TCP_INFO)");
    return NULL;
  }
  napi_value result;
  napi_create_int32(env, tcpi.tcpi_state, &result);
  return result;
}

/*
 * dupFd(fd): a second descriptor (close-on-exec) for the same socket.
 *
 * Why: Node's net.Server hands over accepted sockets already wrapped, and
 * only a socket made with `new net.Socket({ fd, onread })` reads into buffers
 * of ours (src/nat/tcp/block-pool.ts). The port forwarder takes a duplicate
 * for the new wrapper, then closes the server's wrapper; the connection
 * stays open through the duplicate.
 */
static napi_value dup_fd(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!fd_argument(env, info, &fd)) return NULL;
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) {
    vnet_throw_errno(env, "VNET_ERR_DUP", errno, "fcntl(F_DUPFD_CLOEXEC)");
    return NULL;
  }
  napi_value result;
  napi_create_int32(env, copy, &result);
  return result;
}

bool vnet_init_tcp_state(napi_env env, napi_value exports) {
  return vnet_export_function(env, exports, "tcpState", tcp_state) &&
         vnet_export_function(env, exports, "dupFd", dup_fd);
}
