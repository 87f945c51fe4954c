/**
 * Two guest namespaces, A and B, on one LAN, built two ways:
 *
 *   bridge (reference)                      vnet
 *   ------------------                      ----
 *   A eth0 ─veth─┐                          A eth0 (TAP) ══ fd ══╗
 *                br0  (in a "host" ns)                            vnet daemon, intnet `bench`
 *   B eth0 ─veth─┘                          B eth0 (TAP) ══ fd ══╝ (in a "host" ns)
 *
 * Same addresses (A 10.77.0.1/24, B 10.77.0.2/24) and the same MTU on every
 * link. Each pair is ready (B answers A's ping) when its builder returns, and
 * `down()` removes it; the lab removes whatever is left on any error.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, waitFor, type Lab, type RunResult } from './lab.js';

export const ADDRESS_A = '10.77.0.1';
export const ADDRESS_B = '10.77.0.2';
const PREFIX = 24;

/** The repository root (this file runs from dist/bench/). */
export const REPO = resolve(fileURLToPath(import.meta.url), '../../..');
const VNET_BIN = join(REPO, 'bin', 'vnet');

/** If set, the daemon runs under `node --cpu-prof` and writes its profile into this folder on exit. */
export const CPU_PROFILE_ENV = 'VNET_BENCH_CPU_PROF';
/** Extra node options for the daemon, space-separated. */
export const NODE_ARGS_ENV = 'VNET_BENCH_NODE_ARGS';
/** What runs the daemon instead of this node (a wrapper that keeps V8's trace output, say). */
export const NODE_ENV = 'VNET_BENCH_NODE';

export type Engine = 'bridge' | 'vnet';

export interface GuestPair {
  engine: Engine;
  mtu: number;
  /** Namespaces of guest A (client side) and guest B (server side). */
  a: string;
  b: string;
  /** The process doing the switching (null: the kernel). */
  enginePid: number | null;
  /** Engine counters worth keeping next to a result. */
  counters(): Promise<unknown>;
  down(): Promise<void>;
}

/** A bridge in a third namespace with a veth into each guest. */
export async function bridgePair(lab: Lab, mtu: number): Promise<GuestPair> {
  const host = await lab.netns('brh');
  const a = await lab.netns('bra');
  const b = await lab.netns('brb');
  const ipHost = (...args: string[]) => ipIn(host, args);
  await ipHost('link', 'add', 'br0', 'mtu', String(mtu), 'type', 'bridge', 'stp_state', '0');
  for (const [guest, port, address] of [[a, 'pa', ADDRESS_A], [b, 'pb', ADDRESS_B]] as const) {
    await ipHost('link', 'add', port, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', String(mtu), 'netns', guest);
    await ipHost('link', 'set', port, 'master', 'br0', 'up');
    await ipIn(guest, ['addr', 'add', `${address}/${PREFIX}`, 'dev', 'eth0']);
    await ipIn(guest, ['link', 'set', 'eth0', 'up']);
  }
  await ipHost('link', 'set', 'br0', 'up');
  await waitReachable(lab, a, ADDRESS_B);
  return {
    engine: 'bridge',
    mtu,
    a,
    b,
    enginePid: null,
    counters: async () => null,
    down: async () => {
      for (const ns of [a, b, host]) await lab.deleteNetns(ns);
    },
  };
}

/** A vnet daemon in its own namespace with a temp home; it serves every vnet pair of a run. */
export class VnetDaemon {
  log = '';

  private constructor(
    private readonly lab: Lab,
    readonly netns: string,
    readonly home: string,
    private readonly child: ChildProcess,
  ) {}

  static async start(lab: Lab): Promise<VnetDaemon> {
    const netns = await lab.netns('vnh');
    const home = lab.tempDir('home');
    const profileDir = process.env[CPU_PROFILE_ENV];
    // Sample every 100 µs: a connection or a round trip takes only a few hundred.
    const nodeArgs = profileDir ? ['--cpu-prof', '--cpu-prof-interval', '100', '--cpu-prof-dir', resolve(profileDir)] : [];
    // For perf and V8 tracing, e.g. VNET_BENCH_NODE_ARGS="--perf-basic-prof".
    nodeArgs.push(...(process.env[NODE_ARGS_ENV] ?? '').split(' ').filter(Boolean));
    const node = process.env[NODE_ENV] || process.execPath;
    const child = lab.spawn(netns, node, [...nodeArgs, VNET_BIN, 'daemon', '--home', home]);
    const daemon = new VnetDaemon(lab, netns, home, child);
    child.stdout!.on('data', (c: Buffer) => (daemon.log += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (daemon.log += c.toString()));
    // SIGTERM: the daemon exits on its own, so a CPU profile gets written.
    lab.defer('stop the vnet daemon', () => lab.stop(child));
    await waitFor('the vnet daemon to answer', async () => {
      if (!daemon.alive) throw new Error(`vnet daemon exited (${child.exitCode ?? child.signalCode}): ${daemon.log.trim()}`);
      return existsSync(join(home, 'vnet.sock')) && (await daemon.cli(['list', 'vms'])).code === 0;
    }, 20_000, 200);
    return daemon;
  }

  get pid(): number {
    return this.child.pid!;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** `vnet --home HOME ARGS`, from outside the daemon's namespace (the socket is a file). */
  cli(args: string[], timeoutMs = 30_000): Promise<RunResult> {
    return run(process.execPath, [VNET_BIN, '--home', this.home, ...args], { timeoutMs });
  }

  async must(args: string[]): Promise<string> {
    const result = await this.cli(args);
    if (result.code !== 0) {
      const died = this.alive ? '' : ` (the daemon has exited; its log:\n${this.log.trim()})`;
      throw new Error(`vnet ${args.join(' ')} exited ${result.code}: ${(result.stderr || result.stdout).trim()}${died}`);
    }
    return result.stdout;
  }

  /** Two netns VMs on intnet `bench` with NIC MTU `mtu`, started into namespaces of the lab. */
  async pair(mtu: number): Promise<GuestPair> {
    const { lab } = this;
    const guests: [vm: string, ns: string, address: string][] = [];
    const poweroffs: (() => Promise<void>)[] = [];
    const powerOffAll = async () => {
      for (const step of poweroffs.splice(0).reverse()) await step();
    };
    try {
      for (const [side, address] of [['a', ADDRESS_A], ['b', ADDRESS_B]] as const) {
        const vm = `${side}${mtu}`;
        const ns = await lab.netns(`vn${side}`);
        await this.must(['createvm', '--name', vm, '--register']);
        await this.must(['modifyvm', vm, '--nic1', 'intnet', '--intnet1', 'bench', '--nic-mtu1', String(mtu)]);
        await this.must(['startvm', vm, '--type', 'netns', '--netns', ns]);
        poweroffs.push(lab.defer(`power off ${vm}`, () => this.must(['controlvm', vm, 'poweroff']).then(() => undefined)));
        guests.push([vm, ns, address]);
      }
      for (const [vm, ns, address] of guests) {
        await waitFor(`${vm}'s eth0 in ${ns} to have carrier and MTU ${mtu}`, async () => {
          const link = await lab.exec(ns, 'ip', ['-o', 'link', 'show', 'dev', 'eth0']);
          return link.code === 0 && /LOWER_UP/.test(link.stdout) && link.stdout.includes(` mtu ${mtu} `);
        }, 10_000);
        await ipIn(ns, ['addr', 'add', `${address}/${PREFIX}`, 'dev', 'eth0']);
      }
      const [a, b] = [guests[0]![1], guests[1]![1]];
      await waitReachable(lab, a, ADDRESS_B);
      return {
        engine: 'vnet',
        mtu,
        a,
        b,
        enginePid: this.pid,
        counters: async () => {
          const result = await this.cli(['stats']);
          return result.code === 0 ? JSON.parse(result.stdout) : { error: result.stderr.trim() };
        },
        down: async () => {
          await powerOffAll();
          for (const [, ns] of guests) await lab.deleteNetns(ns);
        },
      };
    } catch (err) {
      await powerOffAll().catch(() => undefined);
      throw err;
    }
  }
}

async function ipIn(netns: string, args: string[]): Promise<void> {
  const result = await run('ip', ['-n', netns, ...args]);
  if (result.code !== 0) throw new Error(`ip -n ${netns} ${args.join(' ')}: ${result.stderr.trim()}`);
}

/** Until `address` answers one ping from `netns` (bounded: 15 s). */
async function waitReachable(lab: Lab, netns: string, address: string): Promise<void> {
  await waitFor(`${address} to answer a ping from ${netns}`, async () => {
    return (await lab.exec(netns, 'ping', ['-n', '-q', '-c', '1', '-W', '1', address], { timeoutMs: 3_000 })).code === 0;
  }, 15_000, 200);
}
