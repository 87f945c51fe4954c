/*
 * Busy polling: after an fd event, the event loop keeps polling without
 * sleeping for a short window, so the next frame or reply is picked up
 * without a wake-up.
 *
 * Why: request/response and connection set-up are chains of hops through
 * the daemon, and the daemon sleeps in epoll between them. Waking a sleeping
 * thread costs more than the daemon's own work for the hop, and far more on
 * a VM whose idle vCPU halts at once (guest halt polling off, the common
 * cloud default): the hypervisor has to run it again. This is the user-space
 * form of what Linux does with net.core.busy_poll and KVM with halt_poll_ns:
 * spend a bounded slice of CPU after activity to save the wake-up. An idle
 * daemon never spins: a window starts at an event.
 *
 * How: a uv_idle handle. While one is active, libuv polls with a zero
 * timeout, so the loop turns without entering JS (the idle callback is C and
 * only checks the clock). It is unref'd, so it never keeps the process alive.
 * Events reach JS only through vnet_make_callback (polled.c), which calls
 * vnet_busy_poll_touch.
 *
 * How long: adaptive, as KVM's halt polling (virt/kvm/kvm_main.c,
 * grow_halt_poll_ns/shrink_halt_poll_ns). The window starts at 0 and, for
 * the gap before each loop turn that has events:
 * - gap within the window: polling caught it; the window stays;
 * - gap longer than the window but within the budget: a longer window would
 *   have caught it; the window doubles (from GROW_START_NS), up to the budget;
 * - gap longer than the budget: polling would not have caught it; the window
 *   halves.
 * So a request/response exchange polls through the peer's turn, and sparse
 * traffic stops polling after a few events.
 *
 * Not for streams: VNET_BULK_BYTES read within STREAM_SPAN_NS, in one read
 * (a TAP batch, a host socket read) or in several (a stream of datagrams,
 * which polling picks up one or two at a time), end the window, and none
 * starts for BULK_HOLD_NS after them, so the small turns between a
 * stream's reads (its ACKs) do not poll either. A stream keeps the daemon
 * busy anyway, and spinning between its reads only takes the CPU from the
 * processes at both ends: measured, guest→host iperf3 ran 11–13 Gbit/s with
 * polling against 13–15 without, at a quarter more CPU per byte, and a UDP
 * receiver behind the daemon got 14 % more of a 1 Gbit/s stream once its
 * datagrams were counted (docs/performance.md).
 *
 * Idle work: JS may ask for one callback, `onIdle` (setIdleCallback), to run
 * when the loop has nothing else to do, i.e. is about to sleep, and at the
 * latest IDLE_MAX_DELAY_NS after it was asked for (requestIdle), so a loop
 * that never sleeps still runs it. A uv_prepare handle, active only while a
 * request is pending, decides before each poll. Why: the last steps of a
 * close nobody waits for (the second FIN, the fd's close) done at once land
 * in front of the next connection's SYN or request; deferred, a stream of
 * short connections does a millisecond's worth of them in one go
 * (docs/performance.md, "The second FIN when idle").
 *
 * State is per Node environment (napi instance data); the addon is used on
 * the main thread only, but a worker loading it gets its own handles.
 */
#include "busy_poll.h"

#include "polled.h" /* vnet_call_js, vnet_delete_ref */

#include <stdlib.h>

/* The first window after a gap that polling would have caught (KVM's halt_poll_ns_grow_start). */
#define GROW_START_NS 10000
/* Reads that add up to VNET_BULK_BYTES within this span are a stream's (655 Mbit/s and more). */
#define STREAM_SPAN_NS 200000
/* After a stream is seen, how long no window starts: the smaller turns between its reads (its ACKs) do not poll either. */
#define BULK_HOLD_NS 1000000
/* Idle work waits at most this long for the loop to go to sleep. */
#define IDLE_MAX_DELAY_NS 1000000

typedef struct busy_poll {
  uv_loop_t *loop;
  uv_idle_t idle;
  uint64_t budget_ns; /* the longest window; 0: off */
  uint64_t window_ns; /* the current window */
  uint64_t last_event_ns;
  uint64_t last_turn; /* libuv's loop_count of the last turn with an event */
  uint64_t bulk_until_ns; /* no window starts before this: bulk data moved just before */
  uint64_t moved_since_ns; /* start of the current span */
  size_t moved;            /* bytes read in it, while fewer than VNET_BULK_BYTES */
  uint64_t deadline_ns;
  bool active;
  bool closing;
  int handles_open;
  double polled; /* loop turns whose events came within the window: no sleep before them */
  double slept;  /* loop turns whose events came after the window */
  double bulk;   /* streams seen (VNET_BULK_BYTES within STREAM_SPAN_NS): no window for BULK_HOLD_NS after each */
  /* Idle work */
  napi_env env;
  uv_prepare_t prepare;
  napi_ref on_idle;              /* setIdleCallback's function, or NULL */
  napi_async_context idle_context;
  bool idle_requested;
  uint64_t idle_asked_ns;
  double idle_runs;    /* onIdle calls */
  double idle_overdue; /* of which, after IDLE_MAX_DELAY_NS of a loop that did not sleep */
} busy_poll;

static void on_idle(uv_idle_t *handle) {
  busy_poll *b = handle->data;
  if (uv_hrtime() < b->deadline_ns) return;
  uv_idle_stop(handle);
  b->active = false;
}

/* Keeps the loop turning without sleeping until on_idle sees deadline_ns pass. */
static void keep_turning(busy_poll *b) {
  if (!b->active && uv_idle_start(&b->idle, on_idle) == 0) b->active = true;
}

/* Adapts the window to the gap since the previous event (see "How long"). */
static void adapt(busy_poll *b, uint64_t gap_ns) {
  if (gap_ns <= b->window_ns) {
    b->polled++;
    return;
  }
  b->slept++;
  if (gap_ns > b->budget_ns) {
    b->window_ns /= 2;
  } else {
    uint64_t grown = b->window_ns < GROW_START_NS ? GROW_START_NS : b->window_ns * 2;
    b->window_ns = grown < b->budget_ns ? grown : b->budget_ns;
  }
}

void vnet_busy_poll_touch(napi_env env) {
  busy_poll *b = NULL;
  if (napi_get_instance_data(env, (void **)&b) != napi_ok || b == NULL || b->budget_ns == 0) return;
  uint64_t now = uv_hrtime();
  uv_metrics_t metrics;
  /* Several events of one loop turn are one gap; a stream's gaps say nothing about exchanges. */
  bool streaming = now < b->bulk_until_ns;
  if (uv_metrics_info(b->loop, &metrics) == 0 && metrics.loop_count != b->last_turn) {
    b->last_turn = metrics.loop_count;
    if (!streaming) adapt(b, now - b->last_event_ns);
  }
  b->last_event_ns = now;
  if (b->window_ns == 0 || b->closing || streaming) return;
  b->deadline_ns = now + b->window_ns;
  keep_turning(b);
}

void vnet_busy_poll_moved(napi_env env, size_t bytes) {
  busy_poll *b = NULL;
  if (napi_get_instance_data(env, (void **)&b) != napi_ok || b == NULL || b->budget_ns == 0) return;
  uint64_t now = uv_hrtime();
  if (now - b->moved_since_ns > STREAM_SPAN_NS) {
    b->moved_since_ns = now;
    b->moved = 0;
  }
  b->moved += bytes;
  if (b->moved < VNET_BULK_BYTES) return;
  b->moved = 0;
  b->moved_since_ns = now;
  b->bulk++;
  b->bulk_until_ns = now + BULK_HOLD_NS;
  b->deadline_ns = 0; /* the idle callback stops polling when this turn is over */
}

/* The memory goes with the last of the two handles' close callbacks. */
static void free_on_close(uv_handle_t *handle) {
  busy_poll *b = handle->data;
  if (--b->handles_open == 0) free(b);
}

static void close_handles(busy_poll *b) {
  uv_close((uv_handle_t *)&b->idle, free_on_close);
  uv_close((uv_handle_t *)&b->prepare, free_on_close);
}

/* The environment is going away: close the handles; the memory goes with their close callbacks. */
static void cleanup(void *arg) {
  busy_poll *b = arg;
  b->closing = true;
  close_handles(b); /* uv_close stops an active handle */
}

/* This environment's state, created on first use; NULL (and thrown) if it cannot be. */
static busy_poll *state_of(napi_env env) {
  busy_poll *b = NULL;
  if (napi_get_instance_data(env, (void **)&b) == napi_ok && b != NULL) return b;
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || (b = calloc(1, sizeof *b)) == NULL) goto failed;
  b->loop = loop;
  b->env = env;
  if (uv_idle_init(loop, &b->idle) != 0 || uv_prepare_init(loop, &b->prepare) != 0) {
    free(b); /* uv_idle_init and uv_prepare_init cannot fail on Linux; nothing to close */
    goto failed;
  }
  b->idle.data = b;
  b->prepare.data = b;
  b->handles_open = 2;
  uv_unref((uv_handle_t *)&b->idle);
  uv_unref((uv_handle_t *)&b->prepare);
  if (napi_add_env_cleanup_hook(env, cleanup, b) != napi_ok) {
    close_handles(b);
    goto failed;
  }
  /* Last: nothing may find the state before it is whole, nor after it is gone. */
  if (napi_set_instance_data(env, b, NULL, NULL) != napi_ok) {
    napi_remove_env_cleanup_hook(env, cleanup, b);
    close_handles(b);
    goto failed;
  }
  return b;
failed:
  vnet_throw(env, "VNET_ERR_BUSY_POLL", "cannot set up busy polling");
  return NULL;
}

/* setBusyPoll(microseconds): the longest window after an event; 0 turns busy polling off. */
static napi_value set_busy_poll(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  double microseconds;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 1 || napi_get_value_double(env, argv[0], &microseconds) != napi_ok || !(microseconds >= 0) ||
      microseconds > VNET_BUSY_POLL_MAX_US || microseconds != (double)(uint32_t)microseconds) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "microseconds must be a whole number from 0 to 10000");
    return NULL;
  }
  busy_poll *b = state_of(env);
  if (b == NULL) return NULL;
  b->budget_ns = (uint64_t)microseconds * 1000;
  if (b->window_ns > b->budget_ns) b->window_ns = b->budget_ns;
  if (b->budget_ns == 0 && b->active) {
    uv_idle_stop(&b->idle);
    b->active = false;
  }
  return NULL;
}

/* Before each poll while idle work is pending: run it if the loop is about to sleep, or it waited long enough. */
static void on_prepare(uv_prepare_t *handle) {
  busy_poll *b = handle->data;
  bool will_sleep = uv_backend_timeout(b->loop) != 0;
  if (!will_sleep && uv_hrtime() - b->idle_asked_ns < IDLE_MAX_DELAY_NS) return;
  uv_prepare_stop(handle);
  b->idle_requested = false;
  b->idle_runs++;
  if (!will_sleep) b->idle_overdue++;
  napi_handle_scope scope;
  if (napi_open_handle_scope(b->env, &scope) != napi_ok) return;
  napi_value fn, recv;
  if (b->on_idle != NULL && napi_get_reference_value(b->env, b->on_idle, &fn) == napi_ok && fn != NULL &&
      napi_get_global(b->env, &recv) == napi_ok) {
    vnet_call_js(b->env, b->idle_context, recv, fn, 0, NULL);
  }
  napi_close_handle_scope(b->env, scope);
  /* Asked again from inside: this turn's prepare phase is over, so keep its poll from sleeping; the next turn's serves it. */
  if (b->idle_requested && !b->closing) keep_turning(b);
}

/* setIdleCallback(fn): the function requestIdle() runs when the loop would next sleep (replaces any before). */
static napi_value set_idle_callback(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], name;
  napi_valuetype type;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 1 || napi_typeof(env, argv[0], &type) != napi_ok || type != napi_function) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "the idle callback must be a function");
    return NULL;
  }
  busy_poll *b = state_of(env);
  if (b == NULL) return NULL;
  vnet_delete_ref(env, &b->on_idle);
  if (b->idle_context == NULL && (napi_create_string_utf8(env, "vnet:idle", NAPI_AUTO_LENGTH, &name) != napi_ok ||
                                  napi_async_init(env, NULL, name, &b->idle_context) != napi_ok)) {
    return NULL;
  }
  if (napi_create_reference(env, argv[0], 1, &b->on_idle) != napi_ok) {
    vnet_throw(env, "VNET_ERR_BUSY_POLL", "cannot keep the idle callback");
  }
  return NULL;
}

/* requestIdle(): onIdle runs once, when the loop would next sleep (or IDLE_MAX_DELAY_NS from now). */
static napi_value request_idle(napi_env env, napi_callback_info info) {
  (void)info;
  busy_poll *b = state_of(env);
  if (b == NULL || b->idle_requested || b->closing) return NULL;
  b->idle_asked_ns = uv_hrtime();
  if (uv_prepare_start(&b->prepare, on_prepare) == 0) b->idle_requested = true;
  return NULL;
}

static bool set_number(napi_env env, napi_value object, const char *name, double value) {
  napi_value number;
  return napi_create_double(env, value, &number) == napi_ok &&
         napi_set_named_property(env, object, name, number) == napi_ok;
}

/* busyPollStats(): { budgetUs, windowUs, polled, slept, bulk, idleRuns, idleOverdue } (all 0 before first use). */
static napi_value busy_poll_stats(napi_env env, napi_callback_info info) {
  busy_poll *b = NULL;
  napi_get_instance_data(env, (void **)&b);
  busy_poll none = {0};
  if (b == NULL) b = &none;
  napi_value stats;
  if (napi_create_object(env, &stats) != napi_ok || !set_number(env, stats, "budgetUs", b->budget_ns / 1000.0) ||
      !set_number(env, stats, "windowUs", b->window_ns / 1000.0) || !set_number(env, stats, "polled", b->polled) ||
      !set_number(env, stats, "slept", b->slept) || !set_number(env, stats, "bulk", b->bulk) ||
      !set_number(env, stats, "idleRuns", b->idle_runs) || !set_number(env, stats, "idleOverdue", b->idle_overdue)) {
    return NULL;
  }
  return stats;
}

bool vnet_init_busy_poll(napi_env env, napi_value exports) {
  return vnet_export_function(env, exports, "setBusyPoll", set_busy_poll) &&
         vnet_export_function(env, exports, "busyPollStats", busy_poll_stats) &&
         vnet_export_function(env, exports, "setIdleCallback", set_idle_callback) &&
         vnet_export_function(env, exports, "requestIdle", request_idle);
}
