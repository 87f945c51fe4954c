/*
 * AF_UNIX datagram sockets, one Ethernet frame per datagram (QEMU
 * `-netdev dgram,local.type=unix,…`). Node core has none.
 *
 * Only the bind happens here; the peer (given, or learned from the first
 * datagram) is the poller's business because it reconnects when the peer
 * restarts (see poller_write.c).
 */
#include "vnet.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int vnet_unix_address(const char *path, struct sockaddr_un *addr, socklen_t *len) {
  size_t length = strlen(path);
  if (length == 0) return EINVAL;
  if (length >= sizeof addr->sun_path) return ENAMETOOLONG;
  memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  memcpy(addr->sun_path, path, length);
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + length + 1);
  return 0;
}

/* Removes a socket left at `path` by an earlier run; refuses to remove anything else. */
static int remove_stale_socket(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : errno;
  if (!S_ISSOCK(st.st_mode)) return EEXIST;
  if (unlink(path) != 0 && errno != ENOENT) return errno;
  return 0;
}

/* openUnixDgram(localPath) → fd: non-blocking, close-on-exec, bound to localPath. */
static napi_value open_unix_dgram(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  /* Longer than sun_path holds, so that vnet_unix_address names the problem (ENAMETOOLONG). */
  char path[PATH_MAX];
  char what[sizeof path + 64];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 1) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "openUnixDgram(localPath)");
    return NULL;
  }
  if (!vnet_arg_string(env, argv[0], "localPath", path, sizeof path, NULL)) return NULL;

  struct sockaddr_un addr;
  socklen_t addr_len;
  int err = vnet_unix_address(path, &addr, &addr_len);
  if (err == 0) err = remove_stale_socket(path);
  if (err != 0) {
    snprintf(what, sizeof what, "unix socket path %s", path);
    vnet_throw_errno(env, "VNET_ERR_UNIX_DGRAM", err, what);
    return NULL;
  }
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    vnet_throw_errno(env, "VNET_ERR_UNIX_DGRAM", errno, "socket(AF_UNIX, SOCK_DGRAM)");
    return NULL;
  }
  if (bind(fd, (struct sockaddr *)&addr, addr_len) != 0) {
    err = errno;
    close(fd);
    snprintf(what, sizeof what, "bind %s", path);
    vnet_throw_errno(env, "VNET_ERR_UNIX_DGRAM", err, what);
    return NULL;
  }
  napi_value result;
  if (napi_create_int32(env, fd, &result) != napi_ok) {
    close(fd);
    return NULL;
  }
  return result;
}

bool vnet_init_unix_dgram(napi_env env, napi_value exports) {
  return vnet_export_function(env, exports, "openUnixDgram", open_unix_dgram);
}
