/**
 * iperf3 TCP bulk between two namespaces: a server kept running in one, one
 * bounded client run per measurement in the other, results read from `-J`.
 */
import type { ChildProcess } from 'node:child_process';
import { waitFor, type Lab } from './lab.js';

export const IPERF_PORT = 5201;

/** Slack on top of `-t` before the client is killed (connect, JSON, teardown). */
const CLIENT_SLACK_MS = 20_000;

export interface TcpResult {
  /** Receiver-side throughput, Gbit/s. */
  gbps: number;
  /** Sender retransmits over the run. */
  retransmits: number;
  /** Best 1-second interval, Gbit/s. */
  peak1sGbps: number;
  /** 1-second intervals below 10 % of the best one. */
  stalled1s: number;
  /** iperf3's own CPU (client and server), % of the machine. */
  clientCpuPct: number;
  serverCpuPct: number;
}

/** Start `iperf3 -s` in `netns` and wait until it listens. Stopped by the lab. */
export async function startServer(lab: Lab, netns: string): Promise<ChildProcess> {
  const server = lab.spawn(netns, 'iperf3', ['-s', '-p', String(IPERF_PORT)]);
  server.stdout!.resume();
  server.stderr!.resume();
  await waitFor(`iperf3 server in ${netns}`, async () => {
    if (server.exitCode !== null) throw new Error(`iperf3 -s in ${netns} exited ${server.exitCode}`);
    const ss = await lab.exec(netns, 'ss', ['-Hltn', `sport = :${IPERF_PORT}`]);
    return ss.stdout.includes(String(IPERF_PORT));
  }, 5_000);
  return server;
}

/**
 * One TCP run from `netns` to `address` for `seconds` (`reverse`: the server
 * sends). Throws with iperf3's own message if the run failed.
 */
export async function runTcp(lab: Lab, netns: string, address: string, seconds: number, reverse: boolean): Promise<TcpResult> {
  const args = ['-c', address, '-p', String(IPERF_PORT), '-t', String(seconds), '-J', '--connect-timeout', '3000'];
  if (reverse) args.push('-R');
  const result = await lab.exec(netns, 'iperf3', args, { timeoutMs: seconds * 1000 + CLIENT_SLACK_MS });
  let report: IperfJson;
  try {
    report = JSON.parse(result.stdout) as IperfJson;
  } catch {
    throw new Error(`iperf3 ${args.join(' ')} in ${netns} exited ${result.code} without a report: ${result.stderr.trim()}`);
  }
  if (report.error || !report.end?.sum_received) {
    throw new Error(`iperf3 ${args.join(' ')} in ${netns}: ${report.error ?? 'no summary'}`);
  }
  const intervals = (report.intervals ?? []).map((i) => i.sum.bits_per_second / 1e9);
  const peak = intervals.length ? Math.max(...intervals) : 0;
  return {
    gbps: report.end.sum_received.bits_per_second / 1e9,
    retransmits: report.end.sum_sent?.retransmits ?? 0,
    peak1sGbps: peak,
    stalled1s: intervals.filter((g) => g < peak / 10).length,
    clientCpuPct: report.end.cpu_utilization_percent?.host_total ?? NaN,
    serverCpuPct: report.end.cpu_utilization_percent?.remote_total ?? NaN,
  };
}

/** The parts of iperf3's `-J` report that we read. */
interface IperfJson {
  error?: string;
  intervals?: { sum: { bits_per_second: number } }[];
  end?: {
    sum_sent?: { bits_per_second: number; retransmits?: number };
    sum_received?: { bits_per_second: number };
    cpu_utilization_percent?: { host_total: number; remote_total: number };
  };
}
