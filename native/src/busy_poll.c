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
 * Not for streams: a bulk read (a TAP batch or a host socket read of
 * VNET_BULK_BYTES or more) ends the window, and none starts for
 * BULK_HOLD_NS after it, so the small turns between a stream's reads (its
 * ACKs) do not poll either. A stream keeps the daemon busy anyway, and
 * spinning between its batches only takes the CPU from the processes at
 * both ends: measured, guest→host iperf3 ran 11–13 Gbit/s with polling
 * against 13–15 without, at a quarter more CPU per byte
 * (docs/performance.md).
 *
 * State is per Node environment (napi instance data); the addon is used on
 * the main thread only, but a worker loading it gets its own handle.
 */
#include "busy_poll.h"

#include <stdlib.h>

/* The first window after a gap that polling would have caught (KVM's halt_poll_ns_grow_start). */
#define GROW_START_NS 10000
/* After a bulk read, how long no window starts: the smaller turns between a stream's reads (its ACKs) do not poll either. */
#define BULK_HOLD_NS 1000000

typedef struct busy_poll {
  uv_loop_t *loop;
  uv_idle_t idle;
  uint64_t budget_ns; /* the longest window; 0: off */
  uint64_t window_ns; /* the current window */
  uint64_t last_event_ns;
  uint64_t last_turn; /* libuv's loop_count of the last turn with an event */
  uint64_t bulk_until_ns; /* no window starts before this: bulk data moved just before */
  uint64_t deadline_ns;
  bool active;
  bool closing;
  double polled; /* loop turns whose events came within the window: no sleep before them */
  double slept;  /* loop turns whose events came after the window */
  double bulk;   /* bulk reads: no window for BULK_HOLD_NS after each */
} busy_poll;

static void on_idle(uv_idle_t *handle) {
  busy_poll *b = handle->data;
  if (uv_hrtime() < b->deadline_ns) return;
  uv_idle_stop(handle);
  b->active = false;
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
  if (!b->active && uv_idle_start(&b->idle, on_idle) == 0) b->active = true;
}

void vnet_busy_poll_bulk(napi_env env) {
  busy_poll *b = NULL;
  if (napi_get_instance_data(env, (void **)&b) != napi_ok || b == NULL || b->budget_ns == 0) return;
  b->bulk++;
  b->bulk_until_ns = uv_hrtime() + BULK_HOLD_NS;
  b->deadline_ns = 0; /* the idle callback stops polling when this turn is over */
}

static void free_on_close(uv_handle_t *handle) { free(handle->data); }

/* The environment is going away: close the handle; the memory goes with its close callback. */
static void cleanup(void *arg) {
  busy_poll *b = arg;
  b->closing = true;
  uv_close((uv_handle_t *)&b->idle, free_on_close);
}

/* This environment's state, created on first use; NULL (and thrown) if it cannot be. */
static busy_poll *state_of(napi_env env) {
  busy_poll *b = NULL;
  if (napi_get_instance_data(env, (void **)&b) == napi_ok && b != NULL) return b;
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || (b = calloc(1, sizeof *b)) == NULL) goto failed;
  b->loop = loop;
  if (uv_idle_init(loop, &b->idle) != 0) {
    free(b);
    goto failed;
  }
  b->idle.data = b;
  uv_unref((uv_handle_t *)&b->idle);
  if (napi_add_env_cleanup_hook(env, cleanup, b) != napi_ok) {
    uv_close((uv_handle_t *)&b->idle, free_on_close);
    goto failed;
  }
  /* Last: nothing may find the state before it is whole, nor after it is gone. */
  if (napi_set_instance_data(env, b, NULL, NULL) != napi_ok) {
    napi_remove_env_cleanup_hook(env, cleanup, b);
    uv_close((uv_handle_t *)&b->idle, free_on_close);
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

static bool set_number(napi_env env, napi_value object, const char *name, double value) {
  napi_value number;
  return napi_create_double(env, value, &number) == napi_ok &&
         napi_set_named_property(env, object, name, number) == napi_ok;
}

/* busyPollStats(): { budgetUs, windowUs, polled, slept, bulk } (all 0 before setBusyPoll). */
static napi_value busy_poll_stats(napi_env env, napi_callback_info info) {
  busy_poll *b = NULL;
  napi_get_instance_data(env, (void **)&b);
  busy_poll none = {0};
  if (b == NULL) b = &none;
  napi_value stats;
  if (napi_create_object(env, &stats) != napi_ok || !set_number(env, stats, "budgetUs", b->budget_ns / 1000.0) ||
      !set_number(env, stats, "windowUs", b->window_ns / 1000.0) || !set_number(env, stats, "polled", b->polled) ||
      !set_number(env, stats, "slept", b->slept) || !set_number(env, stats, "bulk", b->bulk)) {
    return NULL;
  }
  return stats;
}

bool vnet_init_busy_poll(napi_env env, napi_value exports) {
  return vnet_export_function(env, exports, "setBusyPoll", set_busy_poll) &&
         vnet_export_function(env, exports, "busyPollStats", busy_poll_stats);
}
