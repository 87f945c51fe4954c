/**
 * Busy polling of the event loop after fd events (native/src/busy_poll.c):
 * the daemon's knob and its counters. Without the addon there is no native
 * fd I/O to poll for, so both are quiet no-ops then.
 */
import { NativeAddonMissingError, nativeAddon, type BusyPollStats } from './native.js';

/** Sets the longest polling window after an event, in µs (0: off, at most 10,000); false when the addon is not built. */
export function setBusyPoll(microseconds: number): boolean {
  try {
    nativeAddon().setBusyPoll(microseconds);
    return true;
  } catch (err) {
    if (err instanceof NativeAddonMissingError) return false;
    throw err;
  }
}

/** The poller's budget, current window and counters; null when the addon is not built. */
export function busyPollStats(): BusyPollStats | null {
  try {
    return nativeAddon().busyPollStats();
  } catch (err) {
    if (err instanceof NativeAddonMissingError) return null;
    throw err;
  }
}
