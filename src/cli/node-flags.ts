/**
 * The V8 flags the daemon runs with, and the in-place restart that gives
 * them to a daemon started without them (`node bin/vnet daemon`: npm start,
 * the tests, a unit file).
 *
 * - `--interrupt-budget=4096`: V8 optimizes a function once it has run this
 *   many bytes of bytecode (V8 11's default is 67,584). A daemon's packet
 *   path is hot for hours, so it should reach optimized code early: on a
 *   fresh daemon the first thousands of NAT'd connections cost 2–4× the CPU
 *   of later ones while the connection code still runs unoptimized, and
 *   after a burst of bulk traffic part of it is deoptimized (paths and
 *   number representations it had not seen) and runs unoptimized again
 *   until it is recompiled. 16,384 made the first phase about half as
 *   long; 4,096 then ran the short connections of a fresh daemon and those
 *   right after bulk traffic 1.13× as fast as 16,384, and warm ones alike
 *   (docs/performance.md, "JIT warm-up" and "Optimized sooner, and again
 *   after bulk traffic").
 * - `--no-memory-reducer`: once a process goes quiet after allocating, V8's
 *   memory reducer runs garbage collections that shrink the heap. Those
 *   collections do not keep maps alive (V8 skips `--retain-maps-for-n-gc`
 *   when it reduces memory), so the maps of objects that live only while
 *   traffic flows (connections, frame views, Node's immediates) die with
 *   their objects, and every optimized function that embedded one is thrown
 *   away ("weak objects" in `--trace-deopt`). The next burst runs
 *   unoptimized and is compiled again: measured, the first 2,000 connections
 *   after a minute without traffic cost as much CPU as on a fresh daemon
 *   (docs/performance.md, "Idle minutes that threw the JIT's work away").
 *   A daemon is quiet, then busy, by nature. The price: the heap is not
 *   shrunk while idle (it stays at what the last collection left).
 *
 * A flag the command line already sets, either way (`--memory-reducer`,
 * `--interrupt-budget=N`), is left as given.
 */
import { constants } from 'node:os';
import v8 from 'node:v8';
import { nativeAddon } from '../transport/native.js';

/** Optimize after this many bytes of bytecode (V8's default is 67,584). */
export const INTERRUPT_BUDGET = 4096;

export const DAEMON_NODE_FLAGS: readonly string[] = [`--interrupt-budget=${INTERRUPT_BUDGET}`, '--no-memory-reducer'];

/** The daemon's flags that `execArgv` does not set, either way. */
export function missingNodeFlags(execArgv: readonly string[]): string[] {
  const given = new Set(execArgv.map(flagName));
  return DAEMON_NODE_FLAGS.filter((flag) => !given.has(flagName(flag)));
}

/** A V8 flag's name without its value or `no-`, in dashes: `--no-memory_reducer=x` → `--memory-reducer`. */
function flagName(flag: string): string {
  return flag.replace(/=.*$/, '').replace(/^--no-/, '--').replace(/_/g, '-');
}

/**
 * Restarts this process in place (same pid) with the missing flags added.
 * Returns only when it cannot (the addon is not built, execve failed), after
 * setting what V8 still takes at run time; the result says what is lost.
 */
export function restartWithNodeFlags(): string | null {
  const missing = missingNodeFlags(process.execArgv);
  if (missing.length === 0) return null;
  let reason: string;
  try {
    const err = nativeAddon().execNode(process.execPath, [process.execPath, ...process.execArgv, ...missing, ...process.argv.slice(1)]);
    reason = errnoName(err);
  } catch (err) {
    reason = (err as Error).message;
  }
  const late = missing.filter((flag) => flag.startsWith('--interrupt-budget'));
  for (const flag of late) v8.setFlagsFromString(flag);
  const lost = missing.filter((flag) => !late.includes(flag));
  return lost.length > 0 ? `running without ${lost.join(' ')} (could not restart node with it: ${reason})` : null;
}

function errnoName(err: number): string {
  return Object.entries(constants.errno).find(([, value]) => value === err)?.[0] ?? `errno ${err}`;
}
