/**
 * Suite `nat`: vnet's NAT next to slirp4netns and pasta, each serving a guest
 * namespace through a TAP from a "host" namespace (bench/nat-engines.ts), by
 * the method of /work/shared/bench-anchors/bench.py:
 *
 *   tcp_*   iperf3 bulk (`-t DURATION`), receiver's Gbit/s
 *   udp_*   iperf3 -u -b 1G -l 1400: received Gbit/s and loss
 *   rr_*    64-byte request/response over one TCP connection, TCP_NODELAY
 *   crr_*   connect / 1 byte each way / close, 2,000 times in a row
 *
 * `g2h`: client in the guest, server on the host's 127.0.0.1 (through the
 * engine's host-loopback mapping); `h2g` with `-R`; `fwd_h2g`: client on the
 * host → 127.0.0.1:15201-3 → the engine's port forward → server in the guest;
 * `fwdalt_h2g`: the same via the host's own address (pasta and vnet: their TAP
 * path, where 127.0.0.1 is spliced socket to socket).
 *
 * Per MTU all engines are up at once; each rep runs every test on every engine
 * before the next test (the engine that goes first rotates per rep), so all of
 * them see the same machine. Before each measurement a quiet gate waits (at
 * most QUIET_MAX_MS) until other processes, and the hypervisor's steal, use
 * < QUIET_PCT % of a core; a measurement during which either took more than
 * NOISY_PCT is flagged `noisy`
 * (and re-run once if the gate had found the machine quiet). The table uses
 * noisy measurements only where no clean one exists.
 * After each connection-rate test the suite pauses CRR_SETTLE_MS: libslirp
 * keeps its ~2,000 closed connections for ~10 s and walks them on every poll,
 * which would slow slirp4netns's next test.
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { foreignCpuPct, markLoad, stealPct, waitQuiet } from './host-load.js';
import { sleep, waitFor, type Lab } from './lab.js';
import { FWD_PORT_OFFSET, GUEST_PORTS, NatEngines, type NatEngine, type NatEngineName } from './nat-engines.js';
import { REPO } from './pairs.js';
import { cpuPercent, markCpu, memory, type CpuMark } from './proc-usage.js';

export interface NatOptions {
  mtus: number[];
  reps: number;
  /** iperf3 `-t`, seconds. */
  duration: number;
  engines: NatEngineName[];
  /** Test names to run (null: all). */
  tests: string[] | null;
  /** No new rep starts after this (Date.now() ms); the quiet gate never waits past it. */
  deadline: number;
}

export type NatKind = 'tcp' | 'udp' | 'rr' | 'crr';

interface NatTest {
  name: string;
  kind: NatKind;
  /** Where the client runs. */
  from: 'guest' | 'host';
  /** What it dials: the host through the engine, a forward on 127.0.0.1, or a forward on the host's own address. */
  via: 'host' | 'fwd' | 'fwdalt';
  /** iperf3 -R: the server sends. */
  reverse?: boolean;
}

export const NAT_TESTS: readonly NatTest[] = [
  { name: 'tcp_g2h', kind: 'tcp', from: 'guest', via: 'host' },
  { name: 'tcp_h2g', kind: 'tcp', from: 'guest', via: 'host', reverse: true },
  { name: 'tcp_fwd_h2g', kind: 'tcp', from: 'host', via: 'fwd' },
  { name: 'tcp_fwdalt_h2g', kind: 'tcp', from: 'host', via: 'fwdalt' },
  { name: 'udp_g2h', kind: 'udp', from: 'guest', via: 'host' },
  { name: 'udp_h2g', kind: 'udp', from: 'guest', via: 'host', reverse: true },
  { name: 'udp_fwd_h2g', kind: 'udp', from: 'host', via: 'fwd' },
  { name: 'udp_fwdalt_h2g', kind: 'udp', from: 'host', via: 'fwdalt' },
  { name: 'rr_g2h', kind: 'rr', from: 'guest', via: 'host' },
  { name: 'rr_fwd_h2g', kind: 'rr', from: 'host', via: 'fwd' },
  { name: 'rr_fwdalt_h2g', kind: 'rr', from: 'host', via: 'fwdalt' },
  { name: 'crr_g2h', kind: 'crr', from: 'guest', via: 'host' },
  { name: 'crr_fwd_h2g', kind: 'crr', from: 'host', via: 'fwd' },
  { name: 'crr_fwdalt_h2g', kind: 'crr', from: 'host', via: 'fwdalt' },
];

export interface NatMeasurement {
  suite: 'nat';
  test: string;
  engine: NatEngineName;
  mtu: number;
  rep: number;
  at: string;
  /** 1 = first try; 2 = re-run because the first was noisy. */
  attempt: number;
  /** Other processes, or the hypervisor's steal, took more than NOISY_PCT % of a core during the measurement. */
  noisy: boolean;
  /** CPU other processes used during the measurement, % of one core. */
  foreignCpuPct: number;
  /** Time the hypervisor took from our vCPUs, % of a core (host-load.ts). */
  stealPct: number;
  /** The same over the last second of the quiet gate, just before (≥ QUIET_PCT: the gate gave up waiting). */
  quietBeforePct?: number;
  // tcp
  gbps?: number;
  retransmits?: number;
  peak1sGbps?: number;
  stalled1s?: number;
  // udp
  rxGbps?: number;
  sentGbps?: number;
  lossPct?: number;
  /** Datagrams the kernel dropped for a full socket receive buffer (/proc/net/snmp RcvbufErrors) in each namespace. */
  guestRcvbufErrors?: number;
  hostRcvbufErrors?: number;
  // rr, crr
  rtPerS?: number;
  connPerS?: number;
  failed?: number;
  p50Us?: number;
  p99Us?: number;
  /** The engine's utime+stime during the measurement, % of ONE core, and the kernel's part of it. */
  engineCpuPct?: number | null;
  engineSysCpuPct?: number | null;
  engineRssMb?: number | null;
  engineHwmMb?: number | null;
  /** Set when the run produced no number. */
  error?: string;
}

const TOOL = join(REPO, 'bench', 'tools', 'tcpload.py');
const UDP_RATE = '1G';
const UDP_LEN = 1400;
const RR_COUNT = 10_000;
const CRR_COUNT = 2_000;
/** Wall-clock bound of one rr/crr client run. */
const SMALL_CLIENT_TIMEOUT_MS = 120_000;
/** Slack on top of iperf3's `-t` before its client is killed. */
const IPERF_SLACK_MS = 20_000;

const QUIET_PCT = 5;
const QUIET_MAX_MS = 10_000;
const NOISY_PCT = 10;
const RETRIES = 1;
const PAUSE_MS = 500;
const CRR_SETTLE_MS = 15_000;

/** Run the suite; `record` gets every measurement as soon as it exists. */
export async function runNat(lab: Lab, options: NatOptions, record: (m: NatMeasurement) => void): Promise<void> {
  const engines = new NatEngines(lab);
  const tests = NAT_TESTS.filter((t) => !options.tests || options.tests.includes(t.name));
  const start = Date.now();
  for (const [mtuIndex, mtu] of options.mtus.entries()) {
    // Each MTU gets its share of the time budget, so a noisy first MTU cannot starve the next.
    const deadline = start + ((options.deadline - start) * (mtuIndex + 1)) / options.mtus.length;
    const up: NatEngine[] = [];
    const servers: ChildProcess[] = [];
    try {
      for (const name of options.engines) {
        const engine = await engines.up(name, mtu);
        up.push(engine);
        for (const ns of [engine.hostNs, engine.guestNs]) {
          servers.push(await startListener(lab, ns, ['rr-server', '--port', String(GUEST_PORTS.rr)], GUEST_PORTS.rr));
          servers.push(await startListener(lab, ns, ['crr-server', '--port', String(GUEST_PORTS.crr)], GUEST_PORTS.crr));
        }
        await smokeTest(lab, engine);
        console.error(`nat MTU ${mtu}: ${engine.version} up (guest MTU ${engine.guestMtu}, host seen from the guest as ${engine.hostIp})`);
      }
      const allPids = () => up.flatMap((e) => e.pids);
      const gaveUp = new Set<string>();
      for (let rep = 1; rep <= options.reps; rep++) {
        if (rep > 1 && Date.now() > deadline) {
          console.error(`nat MTU ${mtu}: time budget spent, stopping after ${rep - 1} rep(s)`);
          break;
        }
        const shift = (rep - 1 + mtuIndex) % up.length;
        const order = [...up.slice(shift), ...up.slice(0, shift)];
        for (const test of tests) {
          let ran = false;
          for (const engine of order) {
            const key = `${engine.name} ${test.name}`;
            if (!applicable(engine, test) || gaveUp.has(key)) continue;
            if (lab.closing) throw new Error('interrupted');
            const m = await measureQuietly(lab, engine, test, rep, options.duration, deadline, allPids());
            if (lab.closing) throw new Error('interrupted');
            // A test that fails on an engine fails the same way every time (pasta's UDP
            // forward from 127.0.0.1, say): say so once, don't spend its timeout again.
            if (m.error) gaveUp.add(key);
            record(m);
            ran = true;
            await sleep(PAUSE_MS);
          }
          if (ran && test.kind === 'crr') await sleep(CRR_SETTLE_MS);
        }
      }
    } finally {
      // A process keeps a deleted namespace alive: servers first, then the engines.
      for (const server of servers) await lab.stop(server);
      for (const engine of up.reverse()) await engine.down();
    }
  }
}

function applicable(engine: NatEngine, test: NatTest): boolean {
  return test.via !== 'fwdalt' || engine.fwdAltAddr !== null;
}

/**
 * Quiet gate, measurement, and one re-run if the machine was quiet before but
 * not during it (a burst); a machine that stays busy gets no re-runs (they
 * would be as noisy), nor does anything after the deadline.
 */
async function measureQuietly(lab: Lab, engine: NatEngine, test: NatTest, rep: number, duration: number, deadline: number, pids: number[]): Promise<NatMeasurement> {
  for (let attempt = 1; ; attempt++) {
    const quietBeforePct = await waitQuiet(QUIET_PCT, Math.max(0, Math.min(QUIET_MAX_MS, deadline - Date.now())), pids);
    const m = await measure(lab, engine, test, rep, duration, pids);
    m.attempt = attempt;
    m.quietBeforePct = round(quietBeforePct, 1);
    const retry = m.noisy && !m.error && attempt <= RETRIES && quietBeforePct < QUIET_PCT && Date.now() < deadline;
    if (!retry) return m;
    console.error(`${progressHead(m)} noisy (others used ${m.foreignCpuPct.toFixed(0)} %, steal ${m.stealPct.toFixed(0)} % of a core), re-running`);
  }
}

async function measure(lab: Lab, engine: NatEngine, test: NatTest, rep: number, duration: number, allPids: number[]): Promise<NatMeasurement> {
  const [clientNs, serverNs] = test.from === 'guest' ? [engine.guestNs, engine.hostNs] : [engine.hostNs, engine.guestNs];
  const guestPort = test.kind === 'tcp' || test.kind === 'udp' ? GUEST_PORTS.iperf : GUEST_PORTS[test.kind];
  const [address, port] =
    test.via === 'host' ? [engine.hostIp, guestPort] : [test.via === 'fwd' ? engine.fwdAddr : engine.fwdAltAddr!, guestPort + FWD_PORT_OFFSET];
  const base = { suite: 'nat' as const, test: test.name, engine: engine.name, mtu: engine.mtu, rep, attempt: 1 };

  const iperfServer = test.kind === 'tcp' || test.kind === 'udp' ? await startIperfServer(lab, serverNs) : null;
  const drops0 = test.kind === 'udp' ? await udpRcvbufErrors(lab, engine) : null;
  const load0 = markLoad();
  const cpu0 = engine.pids.map(markCpu);
  let metrics: Partial<NatMeasurement>;
  try {
    metrics = iperfServer
      ? await iperfClient(lab, clientNs, address, port, duration, test)
      : await smallClient(lab, clientNs, test.kind as 'rr' | 'crr', address, port);
  } catch (err) {
    metrics = { error: (err as Error).message };
  }
  const cpu1 = engine.pids.map(markCpu);
  const load1 = markLoad();
  if (iperfServer) await lab.stop(iperfServer);
  if (drops0) {
    const drops1 = await udpRcvbufErrors(lab, engine);
    metrics.guestRcvbufErrors = drops1.guest - drops0.guest;
    metrics.hostRcvbufErrors = drops1.host - drops0.host;
  }

  const foreign = foreignCpuPct(load0, load1, allPids);
  const steal = stealPct(load0, load1);
  const usage = engineUsage(cpu0, cpu1, engine.pids);
  const noisy = foreign > NOISY_PCT || steal > NOISY_PCT;
  return { ...base, at: new Date().toISOString(), noisy, foreignCpuPct: round(foreign, 1), stealPct: round(steal, 1), ...metrics, ...usage };
}

/** CPU (% of one core, summed over the engine's processes) and memory (summed). */
function engineUsage(before: (CpuMark | null)[], after: (CpuMark | null)[], pids: number[]): Partial<NatMeasurement> {
  let total = 0;
  let sys = 0;
  let rss = 0;
  let hwm = 0;
  for (const [i, pid] of pids.entries()) {
    const [b, a] = [before[i], after[i]];
    if (!b || !a) return { engineCpuPct: null, engineSysCpuPct: null, engineRssMb: null, engineHwmMb: null };
    const cpu = cpuPercent(b, a);
    total += cpu.total;
    sys += cpu.sys;
    const mem = memory(pid);
    rss += mem?.rssMb ?? NaN;
    hwm += mem?.hwmMb ?? NaN;
  }
  return { engineCpuPct: round(total, 1), engineSysCpuPct: round(sys, 1), engineRssMb: round(rss, 1), engineHwmMb: round(hwm, 1) };
}

const round = (value: number, digits: number): number => Number(value.toFixed(digits));

/**
 * UDP datagrams dropped so far because a socket's receive buffer was full, in
 * the guest and in the host namespace: where a UDP test's loss happened (the
 * host side's receiver is the engine for h2g and fwd, iperf3 for g2h).
 */
async function udpRcvbufErrors(lab: Lab, engine: NatEngine): Promise<{ guest: number; host: number }> {
  const read = async (ns: string) => {
    const lines = (await lab.mustExec(ns, 'cat', ['/proc/net/snmp'])).split('\n').filter((l) => l.startsWith('Udp: '));
    const [names, values] = lines.map((l) => l.split(/\s+/));
    return Number(values?.[names?.indexOf('RcvbufErrors') ?? -1] ?? NaN);
  };
  return { guest: await read(engine.guestNs), host: await read(engine.hostNs) };
}

/** `iperf3 -s -1` in `ns`, listening when returned. */
async function startIperfServer(lab: Lab, ns: string): Promise<ChildProcess> {
  const server = lab.spawn(ns, 'iperf3', ['-s', '-1', '-p', String(GUEST_PORTS.iperf)]);
  server.stdout!.resume();
  server.stderr!.resume();
  await waitListening(lab, ns, server, GUEST_PORTS.iperf);
  return server;
}

/** A tcpload.py server in `ns`, listening when returned; runs until the suite stops it. */
async function startListener(lab: Lab, ns: string, args: string[], port: number): Promise<ChildProcess> {
  const server = lab.spawn(ns, 'python3', [TOOL, ...args]);
  server.stdout!.resume();
  server.stderr!.resume();
  await waitListening(lab, ns, server, port);
  return server;
}

async function waitListening(lab: Lab, ns: string, server: ChildProcess, port: number): Promise<void> {
  await waitFor(`a listener on port ${port} in ${ns}`, async () => {
    if (server.exitCode !== null || server.signalCode !== null) throw new Error(`the server for port ${port} in ${ns} exited (${server.exitCode ?? server.signalCode})`);
    return (await lab.exec(ns, 'ss', ['-Hltn', `sport = :${port}`])).stdout.includes(`:${port}`);
  }, 5_000, 50);
}

/** Guest → host must work before anything is measured. */
async function smokeTest(lab: Lab, engine: NatEngine): Promise<void> {
  const result = await lab.exec(engine.guestNs, 'python3', [TOOL, 'rr-client', '--host', engine.hostIp, '--port', String(GUEST_PORTS.rr), '--count', '100', '--warmup', '0'], { timeoutMs: 20_000 });
  if (result.code !== 0) throw new Error(`${engine.name}: guest → host smoke test failed: ${(result.stderr || result.stdout).trim()}`);
}

async function iperfClient(lab: Lab, ns: string, address: string, port: number, duration: number, test: NatTest): Promise<Partial<NatMeasurement>> {
  const args = ['-c', address, '-p', String(port), '-t', String(duration), '-J', '--connect-timeout', '3000'];
  if (test.reverse) args.push('-R');
  if (test.kind === 'udp') args.push('-u', '-b', UDP_RATE, '-l', String(UDP_LEN));
  const limitMs = duration * 1000 + IPERF_SLACK_MS;
  const began = Date.now();
  const result = await lab.exec(ns, 'iperf3', args, { timeoutMs: limitMs });
  let report: IperfJson;
  try {
    report = JSON.parse(result.stdout) as IperfJson;
  } catch {
    const why = Date.now() - began >= limitMs - 100 ? `killed after ${limitMs / 1000} s` : `exited ${result.code}`;
    throw new Error(`iperf3 ${args.join(' ')} ${why} without a report: ${result.stderr.trim()}`);
  }
  if (report.error || !report.end) throw new Error(`iperf3 ${args.join(' ')}: ${report.error ?? 'no summary'}`);
  const end = report.end;
  if (test.kind === 'tcp') {
    if (!end.sum_received) throw new Error(`iperf3 ${args.join(' ')}: no receiver summary`);
    const seconds = (report.intervals ?? []).filter((i) => (i.sum.seconds ?? 1) > 0.5).map((i) => i.sum.bits_per_second / 1e9);
    const peak = seconds.length ? Math.max(...seconds) : 0;
    return {
      gbps: round(end.sum_received.bits_per_second / 1e9, 3),
      retransmits: end.sum_sent?.retransmits ?? 0,
      peak1sGbps: round(peak, 3),
      stalled1s: seconds.filter((g) => g < peak / 10).length,
    };
  }
  // UDP: `sum` holds the loss as the receiver saw it; newer iperf3 also splits sent / received.
  const sum = end.sum ?? end.sum_sent;
  if (!sum) throw new Error(`iperf3 ${args.join(' ')}: no UDP summary`);
  const loss = sum.lost_percent ?? 0;
  const sent = (end.sum_sent ?? sum).bits_per_second;
  const received = end.sum_received?.bits_per_second ?? sent * (1 - loss / 100);
  return { rxGbps: round(received / 1e9, 3), sentGbps: round(sent / 1e9, 3), lossPct: round(loss, 2) };
}

async function smallClient(lab: Lab, ns: string, kind: 'rr' | 'crr', address: string, port: number): Promise<Partial<NatMeasurement>> {
  const count = kind === 'rr' ? RR_COUNT : CRR_COUNT;
  const args = [TOOL, `${kind}-client`, '--host', address, '--port', String(port), '--count', String(count)];
  const result = await lab.exec(ns, 'python3', args, { timeoutMs: SMALL_CLIENT_TIMEOUT_MS });
  let out: { rtPerS?: number; connPerS?: number; failed?: number; p50Us?: number | null; p99Us?: number | null };
  try {
    out = JSON.parse(result.stdout);
  } catch {
    throw new Error(`tcpload.py ${kind}-client ${address}:${port} exited ${result.code}: ${(result.stderr || result.stdout).trim().split('\n').pop()}`);
  }
  return {
    ...(kind === 'rr' ? { rtPerS: out.rtPerS } : { connPerS: out.connPerS, failed: out.failed }),
    p50Us: out.p50Us ?? undefined,
    p99Us: out.p99Us ?? undefined,
  };
}

interface IperfSum {
  bits_per_second: number;
  retransmits?: number;
  lost_percent?: number;
  seconds?: number;
}

/** The parts of iperf3's `-J` report that we read. */
interface IperfJson {
  error?: string;
  intervals?: { sum: IperfSum }[];
  end?: { sum?: IperfSum; sum_sent?: IperfSum; sum_received?: IperfSum };
}

function progressHead(m: NatMeasurement): string {
  return `nat rep ${m.rep} MTU ${m.mtu} ${m.test} ${m.engine}`.padEnd(44);
}

/** One progress line for a finished measurement. */
export function natProgressLine(m: NatMeasurement): string {
  const head = progressHead(m);
  if (m.error) return `${head} FAILED: ${m.error}`;
  const figure =
    m.gbps !== undefined ? `${m.gbps.toFixed(2)} Gbit/s retr ${m.retransmits} stalled ${m.stalled1s}s`
    : m.rxGbps !== undefined ? `rx ${m.rxGbps.toFixed(3)} Gbit/s loss ${m.lossPct} % (rcvbuf drops guest ${m.guestRcvbufErrors} host ${m.hostRcvbufErrors})`
    : m.rtPerS !== undefined ? `${Math.round(m.rtPerS)} RT/s p50 ${m.p50Us} µs p99 ${m.p99Us} µs`
    : `${Math.round(m.connPerS ?? NaN)} conn/s p50 ${m.p50Us} µs failed ${m.failed}`;
  const cpu = m.engineCpuPct == null ? '' : `  CPU ${m.engineCpuPct.toFixed(0)} % (sys ${m.engineSysCpuPct?.toFixed(0)})  RSS ${m.engineRssMb?.toFixed(0)} MB`;
  const noise = m.noisy ? `  NOISY (others ${m.foreignCpuPct.toFixed(0)} %, steal ${m.stealPct.toFixed(0)} % of a core)` : '';
  return `${head} ${figure}${cpu}${noise}`;
}
