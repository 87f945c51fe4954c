/**
 * CPU and memory of one process, from /proc: utime+stime (all threads) before
 * and after a test give its CPU as a percentage of ONE core; VmRSS / VmHWM
 * give its resident memory now and at peak.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Clock ticks per second for /proc/PID/stat times (USER_HZ; 100 on Linux/x86). */
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

export interface CpuMark {
  /** utime + stime, in seconds. */
  cpuSeconds: number;
  /** stime alone (kernel work on the process's behalf: syscalls, and softirqs they run), in seconds. */
  sysSeconds: number;
  /** Wall clock, in seconds (monotonic). */
  wallSeconds: number;
}

/** utime+stime of `pid` now; null if the process is gone. */
export function markCpu(pid: number): CpuMark | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // comm (field 2) may contain spaces and parentheses: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  const [utime, stime] = [Number(fields[11]), Number(fields[12])];
  return { cpuSeconds: (utime + stime) / CLK_TCK, sysSeconds: stime / CLK_TCK, wallSeconds: performance.now() / 1000 };
}

/** CPU used between two marks, in percent of one core: all of it, and the kernel's part. */
export function cpuPercent(before: CpuMark, after: CpuMark): { total: number; sys: number } {
  const wall = after.wallSeconds - before.wallSeconds;
  if (wall <= 0) return { total: 0, sys: 0 };
  return {
    total: (100 * (after.cpuSeconds - before.cpuSeconds)) / wall,
    sys: (100 * (after.sysSeconds - before.sysSeconds)) / wall,
  };
}

export interface Memory {
  rssMb: number;
  hwmMb: number;
}

/** Resident memory of `pid` now and at its peak, in MB; null if the process is gone. */
export function memory(pid: number): Memory | null {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024 };
}

/** Busy and total jiffies of all CPUs, from the first line of /proc/stat. */
function machineTicks(): { busy: number; total: number } {
  const [, ...fields] = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/);
  const n = fields.map(Number);
  const total = n.slice(0, 8).reduce((sum, v) => sum + v, 0); // user … steal (guest time is inside user)
  const idle = n[3]! + n[4]!; // idle + iowait
  return { busy: total - idle, total };
}

/** How busy the whole machine is over the next `ms`, in % of ALL cores. */
export async function machineBusyPercent(ms: number): Promise<number> {
  const before = machineTicks();
  await new Promise((r) => setTimeout(r, ms));
  const after = machineTicks();
  const total = after.total - before.total;
  return total > 0 ? (100 * (after.busy - before.busy)) / total : 0;
}
