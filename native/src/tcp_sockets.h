/* The TCP sockets' state, shared by tcp_sockets.c (slots, JS methods) and tcp_splice.c (spliced pairs). */
#ifndef VNET_TCP_SOCKETS_H
#define VNET_TCP_SOCKETS_H

#include "bound_methods.h"
#include "vnet.h"

#include <uv.h>

typedef struct tcp_sockets tcp_sockets;
typedef struct tcp_splice tcp_splice;

/* Empty pipes kept from ended pairs for the next ones (tcp_splice.c). */
#define VNET_SPARE_PIPES 32

typedef struct {
  int fds[2];      /* read end, write end; -1 when none */
  size_t capacity; /* F_GETPIPE_SZ */
} vnet_pipe;

typedef struct {
  uv_poll_t handle; /* first: uv hands us the handle; freed in its close callback */
  tcp_sockets *owner;
  int fd;
  int32_t id;
  int events;       /* what uv_poll was started with; 0 = stopped */
  int wanted;       /* what JS (or the splice) asked for; applied before the loop polls */
  bool change_queued; /* on the owner's `changed` list */
  bool polled;      /* `handle` is initialized (at the first poll wanted) */
  uint32_t peer_ip; /* accepted sockets: the client (IPv4; 0 for IPv6) */
  uint16_t peer_port;
  tcp_splice *splice; /* set while the socket is one end of a spliced pair (tcp_splice.c) */
} tcp_socket;

struct tcp_sockets {
  napi_env env;
  napi_ref self; /* weak: the finalizer closes what is left */
  napi_ref on_event;
  napi_async_context async_context;
  uv_loop_t *loop;
  tcp_socket **slots;
  uint32_t capacity;
  uint32_t used; /* slots ever handed out; free ones below it are on the free list */
  int32_t *free_list;
  uint32_t free_count;
  bool closed;
  bool finalized;   /* the JS object is gone (or was never made whole) */
  bool dispatching; /* inside onEvent */
  int home_netns;   /* the JS thread's own network namespace (an fd), once a connect needed another */
  /* Poll changes wait for the loop's prepare phase (see "Poll changes" in tcp_sockets.c). */
  uv_prepare_t apply;
  bool apply_ready;  /* `apply` is initialized */
  bool apply_closed; /* ...and its close callback ran: the memory may go */
  int32_t *changed; /* ids of slots whose poll may have to change */
  uint32_t changed_count;
  uint32_t changed_capacity;
  vnet_pipe spare_pipes[VNET_SPARE_PIPES];
  uint32_t spare_pipe_count;
  vnet_binding methods; /* the class's methods, bound to this object (bound_methods.h) */
};

/* What onEvent reports for a spliced pair that ended cleanly (a broken one: a negative errno). */
#define VNET_SPLICE_ENDED 4

/*
 * Asks for `events` on `s` (UV_READABLE | UV_WRITABLE; 0 stops). Applied
 * before the loop next polls; a failure then reaches JS (or the splice) as a
 * failed poll would. 0, or ENOMEM when the change could not be queued.
 */
int vnet_tcp_poll(tcp_socket *s, int events);
/* Closes the slot (`reset`: RST through SO_LINGER 0). */
void vnet_tcp_release(tcp_sockets *o, tcp_socket *s, bool reset);
/* Calls onEvent(id, value). */
void vnet_tcp_report(tcp_sockets *o, int32_t id, int32_t value);

/* Joins `a` and `b` (tcp_splice.c): 0, or an errno (nothing changed). */
int vnet_splice_start(tcp_socket *a, tcp_socket *b);
/* A poll event of a spliced socket. */
void vnet_splice_on_poll(tcp_socket *s, int status, int events);
/* The other end of `s`'s pair (NULL when it has none). */
tcp_socket *vnet_splice_partner(tcp_socket *s);
/* `s` is being released: it leaves its pair (the pair goes with its last end). */
void vnet_splice_forget(tcp_socket *s);
/* Closes the spare pipes (closeAll). */
void vnet_splice_close_spares(tcp_sockets *o);

#endif
