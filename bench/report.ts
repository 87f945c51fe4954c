/**
 * Results: one JSON line per measurement (the first line describes the run),
 * and a Markdown table of medians that sets vnet next to the reference
 * measured in the same run.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync } from 'node:fs';
import { cpus, hostname, loadavg, release } from 'node:os';
import { join } from 'node:path';
import type { Engine } from './pairs.js';

export interface Measurement {
  suite: string;
  /** What was measured, e.g. `tcp_a2b`; rows of the table group by test and MTU. */
  test: string;
  engine: Engine;
  mtu: number;
  rep: number;
  at: string;
  gbps?: number;
  retransmits?: number;
  peak1sGbps?: number;
  stalled1s?: number;
  clientCpuPct?: number;
  serverCpuPct?: number;
  /** The engine process's utime+stime during the test, % of ONE core (null for the kernel bridge). */
  engineCpuPct?: number | null;
  /** The kernel's part of engineCpuPct (stime): syscalls, and the receive path they run for the TAP. */
  engineSysCpuPct?: number | null;
  engineRssMb?: number | null;
  engineHwmMb?: number | null;
  /** 1-minute load average when the test ended: a hint of noise from other work on the machine. */
  load1?: number;
  /** Machine CPU (% of all cores) just before the test, our guests idle; high means someone else was busy. */
  busyBeforePct?: number;
  counters?: unknown;
  /** Set when the run produced no number. */
  error?: string;
}

/** Appends JSONL to `<dir>/<suite>-<stamp>.jsonl`. */
export class JsonlWriter {
  readonly path: string;

  constructor(dir: string, label: string, meta: Record<string, unknown>) {
    mkdirSync(dir, { recursive: true });
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
    this.path = join(dir, `${label}-${stamp}.jsonl`);
    this.write({ kind: 'meta', ...meta });
  }

  write(record: object): void {
    appendFileSync(this.path, JSON.stringify(record) + '\n');
  }
}

/** What describes the run: machine, versions, options. */
export function runMetadata(repo: string, options: object): Record<string, unknown> {
  const quiet = (cmd: string, args: string[]) => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8', cwd: repo, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return null;
    }
  };
  return {
    date: new Date().toISOString(),
    host: hostname(),
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? null,
    kernel: release(),
    node: process.version,
    iperf3: quiet('iperf3', ['--version'])?.split('\n')[0] ?? null,
    vnetCommit: quiet('git', ['rev-parse', '--short', 'HEAD']),
    vnetDirty: quiet('git', ['status', '--porcelain'])?.length ? true : false,
    load1: loadavg()[0],
    options,
  };
}

export function median(values: number[]): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Machine CPU (% of all cores) before a test above which the test counts as noisy. */
export const NOISY_BUSY_PCT = 15;

const TEST_TITLES: Record<string, string> = {
  tcp_a2b: 'TCP A→B',
  tcp_b2a: 'TCP B→A (-R)',
};

const fixed = (value: number, digits: number): string => (Number.isFinite(value) ? value.toFixed(digits) : '—');

/** "median (min–max)" of Gbit/s, or "—" / "failed" when there is nothing. */
function gbpsCell(rows: Measurement[]): string {
  const values = rows.flatMap((r) => (r.gbps === undefined ? [] : [r.gbps]));
  if (!values.length) return rows.some((r) => r.error) ? 'failed' : '—';
  const range = values.length > 1 ? ` (${fixed(Math.min(...values), 2)}–${fixed(Math.max(...values), 2)})` : '';
  return `${fixed(median(values), 2)}${range}`;
}

const medianOf = (rows: Measurement[], pick: (r: Measurement) => number | null | undefined): number =>
  median(rows.flatMap((r) => {
    const v = pick(r);
    return typeof v === 'number' && Number.isFinite(v) ? [v] : [];
  }));

/** The Markdown table of medians: one row per test and MTU, the reference next to vnet. */
export function markdownTable(results: Measurement[], reference: Engine = 'bridge'): string {
  const keys = [...new Set(results.map((r) => `${r.mtu}\t${r.test}`))];
  const lines = [
    `| test | MTU | ${reference} Gbit/s | vnet Gbit/s | ratio vnet/${reference} | vnet CPU % (sys) | vnet RSS MB | retransmits ${reference} / vnet |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const key of keys) {
    const [mtu, test] = key.split('\t') as [string, string];
    const rows = results.filter((r) => String(r.mtu) === mtu && r.test === test);
    const ref = rows.filter((r) => r.engine === reference);
    const vnet = rows.filter((r) => r.engine === 'vnet');
    const ratio = medianOf(vnet, (r) => r.gbps) / medianOf(ref, (r) => r.gbps);
    lines.push(
      `| ${TEST_TITLES[test] ?? test} | ${mtu} | ${gbpsCell(ref)} | ${gbpsCell(vnet)} | ${Number.isFinite(ratio) ? `${fixed(100 * ratio, 0)} %` : '—'} ` +
        `| ${fixed(medianOf(vnet, (r) => r.engineCpuPct), 0)} (${fixed(medianOf(vnet, (r) => r.engineSysCpuPct), 0)}) ` +
        `| ${fixed(medianOf(vnet, (r) => r.engineRssMb), 0)} ` +
        `| ${fixed(medianOf(ref, (r) => r.retransmits), 0)} / ${fixed(medianOf(vnet, (r) => r.retransmits), 0)} |`,
    );
  }
  return lines.join('\n');
}

/** One progress line for a finished measurement. */
export function progressLine(m: Measurement): string {
  const head = `${m.suite} rep ${m.rep} MTU ${m.mtu} ${m.test} ${m.engine}`.padEnd(36);
  if (m.error) return `${head} FAILED: ${m.error}`;
  const cpu = m.engineCpuPct == null ? '' : `  engine CPU ${fixed(m.engineCpuPct, 0)} % (sys ${fixed(m.engineSysCpuPct ?? NaN, 0)})  RSS ${fixed(m.engineRssMb ?? NaN, 0)} MB`;
  const noise = m.busyBeforePct !== undefined && m.busyBeforePct >= NOISY_BUSY_PCT ? `  (machine ${fixed(m.busyBeforePct, 0)} % busy before: noisy)` : '';
  return `${head} ${fixed(m.gbps ?? NaN, 2)} Gbit/s  retr ${m.retransmits}${cpu}${noise}`;
}
