/**
 * Other people's CPU: how much the processes that are not this bench's (not
 * our descendants, not the engines we measure, not kernel threads) used over
 * an interval, in % of ONE core. A NAT measurement on a shared 2-core VM is
 * only worth something when that figure is low; the quiet gate waits for it
 * before a test, and a test during which it was high is re-run or flagged.
 *
 * Per-task utime+stime from /proc/PID/stat (the scheduler's own accounting),
 * not /proc/stat: on these VMs the per-CPU tick counters miss timer-paced
 * work (iperf3 -u) almost entirely.
 *
 * The hypervisor's share counts too: `steal` (/proc/stat's cpu line, from
 * the paravirtual steal clock) is time our vCPUs were ready but not run.
 * On these VMs it comes in bursts of 10–20 % of the machine, during which
 * every engine's latency figures (request/response, connections/s) swing
 * 2–4×; the quiet gate waits it out too, and a measurement it hit is noisy.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { sleep } from './lab.js';

/** Clock ticks per second of /proc/PID/stat times (USER_HZ). */
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

interface Task {
  ppid: number;
  /** utime + stime, clock ticks. */
  ticks: number;
  kernelThread: boolean;
}

export interface LoadMark {
  wallSeconds: number;
  tasks: Map<number, Task>;
  /** /proc/stat's steal, all CPUs, clock ticks. */
  stealTicks: number;
}

function stealTicks(): number {
  try {
    // "cpu  user nice system idle iowait irq softirq steal ..."
    const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/);
    return Number(fields[8]) || 0;
  } catch {
    return 0;
  }
}

/** Every process on the machine, now. */
export function markLoad(): LoadMark {
  const tasks = new Map<number, Task>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const pid = Number(name);
    const ppid = Number(fields[1]);
    tasks.set(pid, { ppid, ticks: Number(fields[11]) + Number(fields[12]), kernelThread: pid === 2 || ppid === 2 });
  }
  return { wallSeconds: performance.now() / 1000, tasks, stealTicks: stealTicks() };
}

/** Our processes in `tasks`: this one, its descendants, and `enginePids`. */
function ours(tasks: Map<number, Task>, enginePids: readonly number[]): Set<number> {
  const mine = new Set(enginePids);
  for (const pid of tasks.keys()) {
    let at = pid;
    for (let depth = 0; at > 1 && depth < 64; depth++) {
      if (at === process.pid) {
        mine.add(pid);
        break;
      }
      at = tasks.get(at)?.ppid ?? 1;
    }
  }
  return mine;
}

/** CPU used between two marks by processes that are not ours, in % of one core. */
export function foreignCpuPct(before: LoadMark, after: LoadMark, enginePids: readonly number[]): number {
  const mine = new Set([...ours(before.tasks, enginePids), ...ours(after.tasks, enginePids)]);
  let ticks = 0;
  for (const [pid, task] of after.tasks) {
    if (mine.has(pid) || task.kernelThread) continue;
    ticks += task.ticks - (before.tasks.get(pid)?.ticks ?? 0);
  }
  const wall = Math.max(after.wallSeconds - before.wallSeconds, 1e-6);
  return (100 * ticks) / CLK_TCK / wall;
}

/** Time the hypervisor took from our vCPUs between two marks, in % of one core. */
export function stealPct(before: LoadMark, after: LoadMark): number {
  const wall = Math.max(after.wallSeconds - before.wallSeconds, 1e-6);
  return (100 * (after.stealTicks - before.stealTicks)) / CLK_TCK / wall;
}

/**
 * Wait until others (processes, and the hypervisor's steal) use less than
 * `quietPct` % of a core over one window, for at most `maxMs`. Returns the
 * larger figure last seen (≥ quietPct: gave up).
 */
export async function waitQuiet(quietPct: number, maxMs: number, enginePids: readonly number[]): Promise<number> {
  const deadline = Date.now() + maxMs;
  for (;;) {
    const before = markLoad();
    await sleep(QUIET_WINDOW_MS);
    const after = markLoad();
    const pct = Math.max(foreignCpuPct(before, after, enginePids), stealPct(before, after));
    if (pct < quietPct || Date.now() >= deadline) return pct;
  }
}

const QUIET_WINDOW_MS = 1_000;
