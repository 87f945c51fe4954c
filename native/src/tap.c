/*
 * TAP devices: open one inside a network namespace, set its carrier.
 *
 * A TAP device is created in the network namespace of the thread that opened
 * /dev/net/tun, and TUNSETIFF looks the name up there too. So openTap moves
 * the calling (JS) thread into the target namespace with setns(), opens and
 * configures the device, and moves the thread back. Other threads (libuv's
 * pool) are never affected: setns(CLONE_NEWNET) is per thread.
 */
#include "vnet.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define NETNS_PATH_MAX 4096

/* linux/if_tun.h of Linux 6.2 (Debian 12's headers are older). */
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#define TUN_F_USO6 0x40
#endif

/* Moves the thread into the netns at `path`; `*original` gets an fd of the one it left. */
static bool enter_netns(napi_env env, const char *path, int *original) {
  char what[NETNS_PATH_MAX + 32];
  *original = open(VNET_SELF_NETNS, O_RDONLY | O_CLOEXEC);
  if (*original < 0) {
    vnet_throw_errno(env, "VNET_ERR_NETNS", errno, "open " VNET_SELF_NETNS);
    return false;
  }
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int err = errno;
    close(*original);
    snprintf(what, sizeof what, "open network namespace %s", path);
    vnet_throw_errno(env, "VNET_ERR_NETNS", err, what);
    return false;
  }
  int rc = setns(target, CLONE_NEWNET);
  int err = errno;
  close(target);
  if (rc != 0) {
    close(*original);
    snprintf(what, sizeof what, "enter network namespace %s", path);
    vnet_throw_errno(env, "VNET_ERR_NETNS", err, what);
    return false;
  }
  return true;
}

void vnet_netns_return(int home, const char *who) {
  if (setns(home, CLONE_NEWNET) != 0) {
    napi_fatal_error(who, NAPI_AUTO_LENGTH, "cannot return to the original network namespace", NAPI_AUTO_LENGTH);
  }
}

/* Moves the thread back into the namespace enter_netns left, and closes its fd. */
static void leave_netns(int original) {
  vnet_netns_return(original, "vnet openTap");
  close(original);
}

/* Opens /dev/net/tun and attaches it to TAP `ifr->ifr_name` (created if missing); returns fd or -errno. */
static int open_tun(struct ifreq *ifr) {
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -errno;
  if (ioctl(fd, TUNSETIFF, ifr) != 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  return fd;
}

/*
 * Whether frames we write may be UDP super-datagrams (virtio-net GSO_UDP_L4,
 * Linux 6.2+): the kernel cuts them into datagrams on the guest's side, so
 * many datagrams of one flow cost one write. Writes need no feature flag, but
 * the kernels that parse such headers are the ones that accept TUN_F_USO4/6
 * here; the probe then restores `offloads`, so the guest never sends us UDP
 * super-datagrams (the NAT takes datagrams one by one).
 */
static bool takes_udp_segmentation(int fd, unsigned offloads) {
  if (ioctl(fd, TUNSETOFFLOAD, offloads | TUN_F_USO4 | TUN_F_USO6) != 0) return false;
  return ioctl(fd, TUNSETOFFLOAD, offloads) == 0;
}

/* openTap(ifname, netnsPath | null, {vnetHdr?, offload?, multiQueue?}) → {fd, ifname, udpSegmentation} */
static napi_value open_tap(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 2) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "openTap(ifname, netnsPath, options)");
    return NULL;
  }
  char ifname[IFNAMSIZ];
  char netns[NETNS_PATH_MAX];
  bool in_current_netns, vnet_hdr, multi_queue, offload;
  if (!vnet_arg_string(env, argv[0], "ifname", ifname, sizeof ifname, NULL)) return NULL;
  if (!vnet_arg_string(env, argv[1], "netnsPath", netns, sizeof netns, &in_current_netns)) {
    return NULL;
  }
  napi_value options = argc > 2 ? argv[2] : NULL;
  if (options == NULL) napi_get_undefined(env, &options);
  if (!vnet_option_bool(env, options, "vnetHdr", false, &vnet_hdr)) return NULL;
  if (!vnet_option_bool(env, options, "multiQueue", false, &multi_queue)) return NULL;
  if (!vnet_option_bool(env, options, "offload", false, &offload)) return NULL;
  if (offload && !vnet_hdr) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "openTap: offload needs vnetHdr");
    return NULL;
  }

  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (vnet_hdr) ifr.ifr_flags |= IFF_VNET_HDR;
  if (multi_queue) ifr.ifr_flags |= IFF_MULTI_QUEUE;
  memcpy(ifr.ifr_name, ifname, strlen(ifname));

  int original = -1;
  if (!in_current_netns && !enter_netns(env, netns, &original)) return NULL;
  int fd = open_tun(&ifr);
  if (original >= 0) leave_netns(original);

  if (fd < 0) {
    char what[IFNAMSIZ + NETNS_PATH_MAX + 64];
    snprintf(what, sizeof what, "open TAP %s in %s", ifname[0] ? ifname : "(any)",
             in_current_netns ? "the current network namespace" : netns);
    vnet_throw_errno(env, "VNET_ERR_TAP_OPEN", -fd, what);
    return NULL;
  }

  /*
   * Checksum offload and TSO: the guest may then hand us TCP super-segments
   * with partial checksums, and take them from us, each described by its
   * virtio-net header. Cuts per-frame costs by up to 40x at MTU 1500.
   */
  const unsigned offloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
  if (offload && ioctl(fd, TUNSETOFFLOAD, offloads) != 0) {
    int err = errno;
    close(fd);
    vnet_throw_errno(env, "VNET_ERR_TAP_OPEN", err, "TUNSETOFFLOAD");
    return NULL;
  }
  bool udp_segmentation = offload && takes_udp_segmentation(fd, offloads);

  napi_value result, fd_value, name_value, uso_value;
  ifr.ifr_name[IFNAMSIZ - 1] = '\0';
  if (napi_create_object(env, &result) != napi_ok ||
      napi_create_int32(env, fd, &fd_value) != napi_ok ||
      napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &name_value) != napi_ok ||
      napi_get_boolean(env, udp_segmentation, &uso_value) != napi_ok ||
      napi_set_named_property(env, result, "fd", fd_value) != napi_ok ||
      napi_set_named_property(env, result, "ifname", name_value) != napi_ok ||
      napi_set_named_property(env, result, "udpSegmentation", uso_value) != napi_ok) {
    close(fd);
    return NULL;
  }
  return result;
}

/* setCarrier(fd, on): link state as the guest's stack sees it (cable pulled = off). */
static napi_value set_carrier(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd;
  bool on;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 2) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "setCarrier(fd, on)");
    return NULL;
  }
  if (!vnet_arg_int32(env, argv[0], "fd", &fd)) return NULL;
  if (!vnet_arg_bool(env, argv[1], "on", &on)) return NULL;
  int carrier = on ? 1 : 0;
  if (ioctl(fd, TUNSETCARRIER, &carrier) != 0) {
    vnet_throw_errno(env, "VNET_ERR_TAP_CARRIER", errno, "TUNSETCARRIER");
  }
  return NULL;
}

bool vnet_init_tap(napi_env env, napi_value exports) {
  return vnet_export_function(env, exports, "openTap", open_tap) &&
         vnet_export_function(env, exports, "setCarrier", set_carrier);
}
