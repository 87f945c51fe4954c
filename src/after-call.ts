/**
 * The packet path's deferral (a base module: any layer may use it, as
 * src/errors.ts). `afterCall(fn)` runs `fn` once the current call stack has
 * returned, before the event loop moves on (a promise job). It costs less
 * there than the two ways Node offers:
 * `queueMicrotask` wraps every callback in an AsyncResource, and a
 * `process.nextTick` makes Node run its JS tick processing (ticks, then
 * microtasks, then rejection bookkeeping) after the libuv callback that
 * queued it, instead of V8's native microtask checkpoint. A profile of
 * forwarded connections had that tick processing at ~6 % of the daemon's
 * user time with two ticks per connection (docs/performance.md).
 *
 * Order: jobs run in the order queued, after the ticks and with the other
 * microtasks. A throw inside `fn` is an unhandled rejection, which ends the
 * process as an uncaught exception would.
 */
const settled = Promise.resolve();

export function afterCall(fn: () => void): void {
  void settled.then(fn);
}
