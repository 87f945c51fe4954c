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
 * - Busy polling (busy_poll.c) sees these events as it sees those that
 *   reach JS: a request/response through a pair keeps the loop polling, a
 *   stream does not.
 * - Pipes that end empty are kept (up to VNET_SPARE_PIPES) for the next
 *   pairs: a short connection then costs no pipe2/fcntl/close of its own.
 */
#include "tcp_sockets.h"

#include "busy_poll.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* Pipe capacity asked for: the default 64 KiB moves a 64 KiB frame's worth per call; 1 MiB (the
 * default pipe-max-size) lets one call take what a fast socket holds. Falls back silently. An
 * empty pipe costs its slot array (~10 KiB at 1 MiB), not its capacity. */
#define PIPE_BYTES (1024 * 1024)
/* Read-then-write rounds per event at most, so one busy pair does not starve the loop. */
#define PUMP_ROUNDS 8

typedef struct {
  vnet_pipe pipe;
  size_t pending; /* bytes in the pipe */
  bool eof;       /* the source sent FIN */
  bool shut;      /* ...and the sink was shut down after the pipe emptied */
} splice_direction;

struct tcp_splice {
  tcp_sockets *owner;
  tcp_socket *ends[2];
  splice_direction dirs[2]; /* dirs[k]: ends[k] → ends[1 - k] */
};

static int side_of(const tcp_splice *p, const tcp_socket *s) {
  return p->ends[0] == s ? 0 : 1;
}

/* A pipe for a direction: a spare one, or a new one as large as allowed; 0 or an errno. */
static int take_pipe(tcp_sockets *o, vnet_pipe *pipe) {
  if (o->spare_pipe_count > 0) {
    *pipe = o->spare_pipes[--o->spare_pipe_count];
    return 0;
  }
  if (pipe2(pipe->fds, O_NONBLOCK | O_CLOEXEC) != 0) return errno;
  fcntl(pipe->fds[1], F_SETPIPE_SZ, PIPE_BYTES);
  int size = fcntl(pipe->fds[1], F_GETPIPE_SZ);
  pipe->capacity = size > 0 ? (size_t)size : 65536;
  return 0;
}

/* Back to the spares if it is empty and there is room, else closed. */
static void give_back_pipe(tcp_sockets *o, splice_direction *d) {
  if (d->pipe.fds[0] < 0) return;
  if (d->pending == 0 && !o->closed && o->spare_pipe_count < VNET_SPARE_PIPES) {
    o->spare_pipes[o->spare_pipe_count++] = d->pipe;
  } else {
    close(d->pipe.fds[0]);
    close(d->pipe.fds[1]);
  }
  d->pipe.fds[0] = d->pipe.fds[1] = -1;
}

static void give_back_pipes(tcp_splice *p) {
  for (int k = 0; k < 2; k++) give_back_pipe(p->owner, &p->dirs[k]);
}

void vnet_splice_close_spares(tcp_sockets *o) {
  while (o->spare_pipe_count > 0) {
    vnet_pipe *pipe = &o->spare_pipes[--o->spare_pipe_count];
    close(pipe->fds[0]);
    close(pipe->fds[1]);
  }
}

/* Moves what it can in direction k, adding the bytes read to `*moved`; 0, or an errno that ends the pair. */
static int pump(tcp_splice *p, int k, size_t *moved) {
  splice_direction *d = &p->dirs[k];
  int source = p->ends[k]->fd, sink = p->ends[1 - k]->fd;
  for (int round = 0; round < PUMP_ROUNDS; round++) {
    if (d->pending > 0) {
      ssize_t n = splice(d->pipe.fds[0], NULL, sink, NULL, d->pending, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n < 0) return errno == EAGAIN ? 0 : errno;
      d->pending -= (size_t)n;
      if (d->pending > 0) return 0; /* the sink is full: wait until it is writable */
    }
    if (d->eof) {
      if (!d->shut && shutdown(sink, SHUT_WR) != 0 && errno != ENOTCONN) return errno;
      d->shut = true;
      return 0;
    }
    ssize_t n = splice(source, NULL, d->pipe.fds[1], NULL, d->pipe.capacity, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n < 0) return errno == EAGAIN ? 0 : errno;
    if (n == 0) d->eof = true;
    d->pending += (size_t)n;
    *moved += (size_t)n;
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
  tcp_sockets *o = p->owner;
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
    if (err != 0) return err;
  }
  return 0;
}

int vnet_splice_start(tcp_socket *a, tcp_socket *b) {
  tcp_splice *p = calloc(1, sizeof *p);
  if (p == NULL) return ENOMEM;
  p->owner = a->owner;
  p->ends[0] = a;
  p->ends[1] = b;
  for (int k = 0; k < 2; k++) p->dirs[k].pipe.fds[0] = p->dirs[k].pipe.fds[1] = -1;
  int err = 0;
  for (int k = 0; k < 2 && err == 0; k++) err = take_pipe(p->owner, &p->dirs[k].pipe);
  if (err == 0) {
    a->splice = b->splice = p;
    err = repoll(p);
    if (err != 0) {
      /* Back as they were: unspliced, not polled. */
      vnet_tcp_poll(a, 0);
      vnet_tcp_poll(b, 0);
      a->splice = b->splice = NULL;
    }
  }
  if (err != 0) {
    give_back_pipes(p);
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
  size_t moved = 0;
  if (err == 0 && (events & UV_READABLE)) err = pump(p, k, &moved);
  if (err == 0 && (events & UV_WRITABLE)) err = pump(p, 1 - k, &moved);
  /* As for events that reach JS (busy_poll.c): an exchange keeps the loop polling, a stream does not. */
  vnet_busy_poll_moved(p->owner->env, moved);
  vnet_busy_poll_touch(p->owner->env);
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
    give_back_pipes(p);
    free(p);
  }
}
