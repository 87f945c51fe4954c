/*
 * Spliced pairs: two TCP sockets of a TcpSockets joined in the kernel, bytes
 * moving both ways through a pipe each with splice(2), never through JS or
 * user memory. What a port forward from the host's loopback into a
 * namespace guest uses when the NIC asks for it (`--nat-splice<N> on`):
 * pasta's trick, the cheapest relay Linux has.
 *
 * Theory of operation
 * - splice(a, b) gives both slots to the pair; from then on their poll
 *   events come here, not to JS. Direction k moves ends[k] → ends[1-k]
 *   through dirs[k].pipe: read the source into the empty pipe, then write
 *   the pipe into the sink; what the sink does not take stays in the pipe and
 *   the sink is polled for writability (the source is not read meanwhile: the
 *   pipe bounds what one direction holds).
 * - End of file from a source: once its pipe is empty, the sink is shut down
 *   (FIN). Both directions shut down: both sockets close, and JS hears
 *   onEvent(ends[0].id, VNET_SPLICE_ENDED).
 * - An error on either side (a reset, EPIPE): both close, the survivor with
 *   RST so that its peer learns, and JS hears onEvent(ends[0].id, -errno).
 * - close(id) or closeAll() of a spliced slot closes its pair quietly.
 */
#include "tcp_sockets.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* Pipe capacity asked for: the default 64 KiB moves a 64 KiB frame's worth per call; 1 MiB (the
 * default pipe-max-size) lets one call take what a fast socket holds. Falls back silently. */
#define PIPE_BYTES (1024 * 1024)
/* Read-then-write rounds per event at most, so one busy pair does not starve the loop. */
#define PUMP_ROUNDS 8

typedef struct {
  int pipe[2];    /* read end, write end */
  size_t pending; /* bytes in the pipe */
  bool eof;       /* the source sent FIN */
  bool shut;      /* ...and the sink was shut down after the pipe emptied */
} splice_direction;

struct tcp_splice {
  tcp_socket *ends[2];
  splice_direction dirs[2]; /* dirs[k]: ends[k] → ends[1 - k] */
  size_t pipe_bytes;
};

static int side_of(const tcp_splice *p, const tcp_socket *s) {
  return p->ends[0] == s ? 0 : 1;
}

static void close_pipes(tcp_splice *p) {
  for (int k = 0; k < 2; k++) {
    for (int i = 0; i < 2; i++) {
      if (p->dirs[k].pipe[i] >= 0) close(p->dirs[k].pipe[i]);
    }
  }
}

/* Moves what it can in direction k; 0, or an errno that ends the pair. */
static int pump(tcp_splice *p, int k) {
  splice_direction *d = &p->dirs[k];
  int source = p->ends[k]->fd, sink = p->ends[1 - k]->fd;
  for (int round = 0; round < PUMP_ROUNDS; round++) {
    if (d->pending > 0) {
      ssize_t n = splice(d->pipe[0], NULL, sink, NULL, d->pending, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n < 0) return errno == EAGAIN ? 0 : errno;
      d->pending -= (size_t)n;
      if (d->pending > 0) return 0; /* the sink is full: wait until it is writable */
    }
    if (d->eof) {
      if (!d->shut && shutdown(sink, SHUT_WR) != 0 && errno != ENOTCONN) return errno;
      d->shut = true;
      return 0;
    }
    ssize_t n = splice(source, NULL, d->pipe[1], NULL, p->pipe_bytes, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n < 0) return errno == EAGAIN ? 0 : errno;
    if (n == 0) d->eof = true;
    d->pending += (size_t)n;
  }
  return 0;
}

/* What end k waits for: readable as direction k's source (pipe empty), writable as direction 1-k's sink. */
static int wanted_events(const tcp_splice *p, int k) {
  int events = 0;
  if (!p->dirs[k].eof && p->dirs[k].pending == 0) events |= UV_READABLE;
  if (p->dirs[1 - k].pending > 0) events |= UV_WRITABLE;
  return events;
}

/* Both ends close (with RST after an error) and JS hears how it ended. */
static void end_pair(tcp_splice *p, int err) {
  tcp_sockets *o = p->ends[0]->owner;
  int32_t id = p->ends[0]->id;
  tcp_socket *a = p->ends[0], *b = p->ends[1];
  vnet_tcp_release(o, a, err != 0);
  vnet_tcp_release(o, b, err != 0); /* the pair is freed with its last end */
  vnet_tcp_report(o, id, err != 0 ? -err : VNET_SPLICE_ENDED);
}

/* The pair's next poll interest; 0 or an errno. */
static int repoll(tcp_splice *p) {
  for (int k = 0; k < 2; k++) {
    int err = vnet_tcp_poll(p->ends[k], wanted_events(p, k));
    if (err != 0) return -err;
  }
  return 0;
}

int vnet_splice_start(tcp_socket *a, tcp_socket *b) {
  tcp_splice *p = calloc(1, sizeof *p);
  if (p == NULL) return ENOMEM;
  p->ends[0] = a;
  p->ends[1] = b;
  p->pipe_bytes = PIPE_BYTES;
  for (int k = 0; k < 2; k++) p->dirs[k].pipe[0] = p->dirs[k].pipe[1] = -1;
  for (int k = 0; k < 2; k++) {
    if (pipe2(p->dirs[k].pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
      int err = errno;
      close_pipes(p);
      free(p);
      return err;
    }
    /* Whatever size the pipe got bounds what one call moves. */
    fcntl(p->dirs[k].pipe[1], F_SETPIPE_SZ, PIPE_BYTES);
    int size = fcntl(p->dirs[k].pipe[1], F_GETPIPE_SZ);
    if (size > 0 && (size_t)size < p->pipe_bytes) p->pipe_bytes = (size_t)size;
  }
  a->splice = b->splice = p;
  int err = repoll(p);
  if (err != 0) {
    /* Back as they were: unspliced, not polled. */
    vnet_tcp_poll(a, 0);
    vnet_tcp_poll(b, 0);
    a->splice = b->splice = NULL;
    close_pipes(p);
    free(p);
  }
  return err;
}

void vnet_splice_on_poll(tcp_socket *s, int status, int events) {
  tcp_splice *p = s->splice;
  int k = side_of(p, s);
  int err = 0;
  if (status < 0) {
    /* POLLERR comes as UV_EBADF: the socket's pending error says what happened. */
    socklen_t len = sizeof err;
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err == 0) err = EIO;
  }
  if (err == 0 && (events & UV_READABLE)) err = pump(p, k);
  if (err == 0 && (events & UV_WRITABLE)) err = pump(p, 1 - k);
  if (err == 0 && p->dirs[0].shut && p->dirs[1].shut) return end_pair(p, 0);
  if (err == 0) err = repoll(p);
  if (err != 0) end_pair(p, err);
}

tcp_socket *vnet_splice_partner(tcp_socket *s) {
  tcp_splice *p = s->splice;
  return p == NULL ? NULL : p->ends[1 - side_of(p, s)];
}

void vnet_splice_forget(tcp_socket *s) {
  tcp_splice *p = s->splice;
  p->ends[side_of(p, s)] = NULL;
  s->splice = NULL;
  if (p->ends[0] == NULL && p->ends[1] == NULL) {
    close_pipes(p);
    free(p);
  }
}
