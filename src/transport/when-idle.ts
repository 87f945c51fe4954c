/**
 * Work that can wait until the event loop has nothing else to do
 * (native/src/busy_poll.c, "Idle work"): tasks queued here run together
 * before the loop would sleep, and at the latest 1 ms after the first was
 * queued, so a loop that never sleeps runs them in batches. Without the
 * addon, on the loop's next turn (setImmediate).
 *
 * For what nobody waits for but still costs the daemon: done in front of the
 * next frame, it delays that frame.
 */
import { NativeAddonMissingError, nativeAddon } from './native.js';

let queued: Array<() => void> = [];
let requested = false;
/** The addon's requestIdle, once set up; null without the addon. */
let request: (() => void) | null | undefined;

/** Runs `task` when the loop would next sleep, or within 1 ms (with the others queued by then, in order). */
export function whenIdle(task: () => void): void {
  queued.push(task);
  if (requested) return;
  requested = true;
  if (request === undefined) request = setUp();
  if (request !== null) request();
  else setImmediate(runQueued);
}

function setUp(): (() => void) | null {
  try {
    const addon = nativeAddon();
    addon.setIdleCallback(runQueued);
    return addon.requestIdle;
  } catch (err) {
    if (err instanceof NativeAddonMissingError) return null;
    throw err;
  }
}

function runQueued(): void {
  requested = false;
  const tasks = queued;
  queued = [];
  let next = 0;
  try {
    while (next < tasks.length) tasks[next++]!();
  } finally {
    // After one that threw, the rest wait for the next round: they close fds.
    for (const task of tasks.slice(next)) whenIdle(task);
  }
}
