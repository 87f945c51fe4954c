/**
 * Suite `intnet`: TCP bulk between two netns guests on one vnet internal
 * network, next to a Linux bridge between two namespaces built the same way,
 * at each MTU. Per MTU both pairs are up at once and the measurements
 * interleave (bridge and vnet alternate who goes first in each rep), so both
 * see the same machine noise.
 */
import { loadavg } from 'node:os';
import { runTcp, startServer } from './iperf.js';
import { sleep, type Lab } from './lab.js';
import { ADDRESS_B, bridgePair, VnetDaemon, type GuestPair } from './pairs.js';
import { cpuPercent, machineBusyPercent, markCpu, memory } from './proc-usage.js';
import { NOISY_BUSY_PCT, type Measurement } from './report.js';

export interface IntnetOptions {
  mtus: number[];
  reps: number;
  /** iperf3 `-t`, seconds. */
  duration: number;
  /** Also measure B→A (`iperf3 -R`). */
  reverse: boolean;
}

/** Pause between measurements so one run's tail does not overlap the next. */
const SETTLE_MS = 1_000;

/**
 * Quiet gate: before a measurement, wait (at most QUIET_MAX_MS) until the
 * machine, with our guests idle, is less than NOISY_BUSY_PCT busy — other
 * work on a shared 2-core VM skews a throughput figure more than anything.
 */
const QUIET_MAX_MS = 30_000;
const QUIET_WINDOW_MS = 500;

/** Wait for the quiet gate; returns the last busy figure seen (% of all cores). */
async function waitQuiet(): Promise<number> {
  const deadline = Date.now() + QUIET_MAX_MS;
  let busy = await machineBusyPercent(QUIET_WINDOW_MS);
  while (busy >= NOISY_BUSY_PCT && Date.now() < deadline) busy = await machineBusyPercent(QUIET_WINDOW_MS);
  return busy;
}

/** Run the suite; `record` gets every measurement as soon as it exists. */
export async function runIntnet(lab: Lab, options: IntnetOptions, record: (m: Measurement) => void): Promise<void> {
  const daemon = await VnetDaemon.start(lab);
  const tests = options.reverse ? (['tcp_a2b', 'tcp_b2a'] as const) : (['tcp_a2b'] as const);
  for (const mtu of options.mtus) {
    const bridge = await bridgePair(lab, mtu);
    const vnet = await daemon.pair(mtu);
    const servers = [await startServer(lab, bridge.b), await startServer(lab, vnet.b)];
    for (let rep = 1; rep <= options.reps; rep++) {
      const order = rep % 2 ? [bridge, vnet] : [vnet, bridge];
      for (const test of tests) {
        for (const pair of order) {
          await sleep(SETTLE_MS);
          const busyBeforePct = await waitQuiet();
          if (lab.closing) throw new Error('interrupted');
          if (pair.engine === 'vnet' && !daemon.alive) throw new Error(`the vnet daemon has exited; its log:\n${daemon.log.trim()}`);
          const result = await measure(lab, pair, test, rep, options.duration);
          if (lab.closing) throw new Error('interrupted');
          record({ ...result, busyBeforePct });
        }
      }
    }
    // A process keeps a deleted namespace alive: stop the servers first.
    for (const server of servers) await lab.stop(server);
    await vnet.down();
    await bridge.down();
  }
}

async function measure(lab: Lab, pair: GuestPair, test: 'tcp_a2b' | 'tcp_b2a', rep: number, duration: number): Promise<Measurement> {
  const base = { suite: 'intnet', test, engine: pair.engine, mtu: pair.mtu, rep };
  const pid = pair.enginePid;
  const before = pid === null ? null : markCpu(pid);
  try {
    const tcp = await runTcp(lab, pair.a, ADDRESS_B, duration, test === 'tcp_b2a');
    const after = pid === null ? null : markCpu(pid);
    const mem = pid === null ? null : memory(pid);
    const cpu = before && after ? cpuPercent(before, after) : null;
    return {
      ...base,
      at: new Date().toISOString(),
      ...tcp,
      engineCpuPct: cpu?.total ?? null,
      engineSysCpuPct: cpu?.sys ?? null,
      engineRssMb: mem?.rssMb ?? null,
      engineHwmMb: mem?.hwmMb ?? null,
      load1: loadavg()[0],
      counters: await pair.counters(),
    };
  } catch (err) {
    return { ...base, at: new Date().toISOString(), error: (err as Error).message, counters: await pair.counters().catch(() => null) };
  }
}
