/*
 * vnet native addon: what Node cannot do by itself.
 *
 * - tap.c         open a TAP device inside a network namespace; set its carrier
 * - unix_dgram.c  bind an AF_UNIX datagram socket (QEMU -netdev dgram)
 * - poller.c      one uv_poll per fd: batched reads into a reused slab, one JS call per batch
 * - poller_write.c batched writes from a JS-filled slab or a list of frames
 * - icmp.c        ICMP echo sockets (ping or raw) for the NAT: open, sendto, batched receive
 * - udp.c         UDP sockets for the NAT and port forwards: open, recvmmsg/sendmmsg in batches
 * - tcp_sockets.c TCP sockets for the NAT: connect or adopt, poll, read, write, shutdown, close
 * - tcp_splice.c  two of those sockets joined in the kernel (splice(2)), for port forwards
 * - bound_methods.c a class's methods made per instance with the native object as their data
 * - busy_poll.c   keep the loop polling, not sleeping, for a short budget after fd events
 * - exec.c        restart the process in place with other node flags (execve)
 * - errors.c      errors with a stable code and errno text; argument helpers
 *
 * Everything runs on the JS thread; nothing here starts threads.
 */
#ifndef VNET_H
#define VNET_H

#define NAPI_VERSION 8
#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

/* Largest Ethernet frame: 65535-byte IP packet + 14-byte header + 802.1Q tag (src/transport/types.ts). */
#define VNET_MAX_FRAME (65535 + 14 + 4)
/* Largest prefix before a frame (struct virtio_net_hdr_v1 is 12 bytes). */
#define VNET_MAX_HEADER 12

/* Throws an Error with `code`, message "<what>: <strerror> (<ENAME>)" and an `errno` property. */
void vnet_throw_errno(napi_env env, const char *code, int err, const char *what);
/* Throws an Error with `code` and `message`. */
void vnet_throw(napi_env env, const char *code, const char *message);

/* Argument readers: on failure they throw VNET_ERR_INVALID_ARG naming `name` and return false. */
bool vnet_arg_int32(napi_env env, napi_value value, const char *name, int32_t *out);
bool vnet_arg_uint32(napi_env env, napi_value value, const char *name, uint32_t *out);
bool vnet_arg_bool(napi_env env, napi_value value, const char *name, bool *out);
/* Copies a string of at most size-1 bytes; `*is_null` (if given) reports null/undefined instead. */
bool vnet_arg_string(napi_env env, napi_value value, const char *name, char *buf, size_t size,
                     bool *is_null);
/* Reads an optional boolean property of an options object (absent or undefined = `fallback`). */
bool vnet_option_bool(napi_env env, napi_value object, const char *name, bool fallback, bool *out);
bool vnet_option_uint32(napi_env env, napi_value object, const char *name, uint32_t fallback,
                        uint32_t *out);

/* The calling thread's own network namespace (open it to come back after a setns() elsewhere). */
#define VNET_SELF_NETNS "/proc/thread-self/ns/net"
/* Moves the thread back into `home` (an fd of its namespace), or ends the process (tap.c): every
 * later socket would be made in the wrong namespace. `who` names the caller in the message. */
void vnet_netns_return(int home, const char *who);

/* Adds a function property to `exports`. */
bool vnet_export_function(napi_env env, napi_value exports, const char *name, napi_callback cb);

/* Fills a sockaddr_un for a filesystem path; returns 0 or an errno (ENAMETOOLONG, EINVAL). */
int vnet_unix_address(const char *path, struct sockaddr_un *addr, socklen_t *len);
/* An IPv4 or IPv6 address literal and `port` as a sockaddr in `out`, which has room for a
 * sockaddr_in6 (errors.c); false when `text` is neither. */
bool vnet_ip_address(const char *text, uint16_t port, void *out, socklen_t *len);

/* Module parts; each adds its functions or classes to `exports`. */
bool vnet_init_tap(napi_env env, napi_value exports);
bool vnet_init_unix_dgram(napi_env env, napi_value exports);
bool vnet_init_poller(napi_env env, napi_value exports);
bool vnet_init_icmp(napi_env env, napi_value exports);
bool vnet_init_udp(napi_env env, napi_value exports);
bool vnet_init_tcp_sockets(napi_env env, napi_value exports);
bool vnet_init_busy_poll(napi_env env, napi_value exports);
bool vnet_init_exec(napi_env env, napi_value exports);

#endif
