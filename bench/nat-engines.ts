/**
 * The engines of the NAT suite, each serving one guest namespace through a
 * TAP from a "host" namespace, set up the way /work/shared/bench-anchors
 * does it (engines/vnet.sh, slirp4netns.sh, pasta.sh):
 *
 *   host netns (vnb-<e>h-<id>)                   guest netns (vnb-<e>g<MTU>-<id>)
 *   lo 127.0.0.1 ← host-side servers            lo
 *   uplink0 10.254.0.1/24, default via           TAP (eth0 / tap0) served by the engine,
 *     10.254.0.254: a black hole (a veth pair      default route through it
 *     with both ends here; nothing answers ARP)
 *   ENGINE PROCESS (its host sockets live here)
 *
 *   engine       guest address     host (its lo) as seen by the guest   forwards
 *   vnet         DHCP 10.0.2.15    10.0.2.2 (--nat-localhostreachable)  15201-3 → 5201-3 (--nat-pf); from 127.0.0.1
 *                                                                       spliced (--nat-splice1), from 10.254.0.1 via the TAP
 *   slirp4netns  10.0.2.100        10.0.2.2                             127.0.0.1:15201-3 → 5201-3 (add_hostfwd)
 *   pasta        10.254.0.1 (copy) 10.254.0.254 (mapped gateway)        15201-3 → 5201-3 (-t/-u); from 127.0.0.1
 *                                                                       spliced, from 10.254.0.1 via the TAP
 *
 * UDP is forwarded on the first pair only (iperf3 -u needs TCP and UDP on one port).
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { must, run, waitFor, type Lab } from './lab.js';
import { REPO, VnetDaemon } from './pairs.js';

export type NatEngineName = 'vnet' | 'slirp4netns' | 'pasta';
export const NAT_ENGINES: readonly NatEngineName[] = ['vnet', 'slirp4netns', 'pasta'];

/** Guest-side ports: iperf3, request/response, connection rate. */
export const GUEST_PORTS = { iperf: 5201, rr: 5202, crr: 5203 } as const;
/** Host port of a forward = guest port + this. */
export const FWD_PORT_OFFSET = 10_000;

/** One engine serving one guest at one MTU, ready (the guest has a default route) when returned. */
export interface NatEngine {
  name: NatEngineName;
  mtu: number;
  hostNs: string;
  guestNs: string;
  /** The host as the guest dials it (the engine maps it to the host's 127.0.0.1). */
  hostIp: string;
  /** Where a host client dials a forwarded port. */
  fwdAddr: string;
  /** A second host address for forwards that takes the engine's TAP path (pasta, vnet), or null. */
  fwdAltAddr: string | null;
  /** The engine's processes, for CPU and memory. */
  pids: number[];
  guestMtu: number;
  version: string;
  /** Stop the engine and delete the guest namespace. */
  down(): Promise<void>;
}

const UDHCPC_SCRIPT = join(REPO, 'bench', 'tools', 'udhcpc.sh');
/** The host namespace's own address (uplink0): a forward dialled there takes the engine's TAP path. */
const HOST_OWN_IP = '10.254.0.1';
const ALL_GUEST_PORTS = [GUEST_PORTS.iperf, GUEST_PORTS.rr, GUEST_PORTS.crr];

/** Host namespaces live for the whole run (one per engine); guests per MTU. */
export class NatEngines {
  private readonly hostNamespaces = new Map<NatEngineName, string>();
  private daemon: VnetDaemon | null = null;

  constructor(private readonly lab: Lab) {}

  /** The vnet daemon, if started (its pid is what the quiet gate must not count). */
  get vnetDaemon(): VnetDaemon | null {
    return this.daemon;
  }

  async up(name: NatEngineName, mtu: number): Promise<NatEngine> {
    switch (name) {
      case 'vnet':
        return this.vnet(mtu);
      case 'slirp4netns':
        return this.slirp4netns(mtu);
      case 'pasta':
        return this.pasta(mtu);
    }
  }

  private async hostNs(name: NatEngineName): Promise<string> {
    let ns = this.hostNamespaces.get(name);
    if (ns) return ns;
    if (name === 'vnet') {
      // The daemon makes its own namespace (pairs.ts, which also honours VNET_BENCH_CPU_PROF).
      this.daemon = await VnetDaemon.start(this.lab);
      ns = this.daemon.netns;
    } else {
      ns = await this.lab.netns(name === 'pasta' ? 'pah' : 'slh');
    }
    await tuneNs(ns);
    await blackHoleUplink(ns);
    this.hostNamespaces.set(name, ns);
    return ns;
  }

  private async guestNs(name: NatEngineName, mtu: number): Promise<string> {
    const ns = await this.lab.netns(`${{ vnet: 'vn', slirp4netns: 'sl', pasta: 'pa' }[name]}g${mtu}`);
    await tuneNs(ns);
    return ns;
  }

  /** vnet as engines/vnet.sh drives it: a NAT NIC, forwards, DHCP from vnet. */
  private async vnet(mtu: number): Promise<NatEngine> {
    const hostNs = await this.hostNs('vnet');
    const daemon = this.daemon!;
    const guestNs = await this.guestNs('vnet', mtu);
    const vm = `nat${mtu}`;
    const modify = ['--nic1', 'nat', '--nat-localhostreachable1', 'on', '--nat-splice1', 'on', '--nic-mtu1', String(mtu)];
    for (const [tag, hostIp] of [['', '127.0.0.1'], ['alt', HOST_OWN_IP]]) {
      ALL_GUEST_PORTS.forEach((port, i) => modify.push('--nat-pf1', `t${i}${tag},tcp,${hostIp},${port + FWD_PORT_OFFSET},,${port}`));
      modify.push('--nat-pf1', `u0${tag},udp,${hostIp},${GUEST_PORTS.iperf + FWD_PORT_OFFSET},,${GUEST_PORTS.iperf}`);
    }
    await daemon.must(['createvm', '--name', vm, '--register']);
    await daemon.must(['modifyvm', vm, ...modify]);
    await daemon.must(['startvm', vm, '--type', 'netns', '--netns', guestNs]);
    const powerOff = this.lab.defer(`power off ${vm}`, () => daemon.must(['controlvm', vm, 'poweroff']).then(() => undefined));
    const down = async () => {
      await powerOff();
      await this.lab.deleteNetns(guestNs);
    };
    try {
      await waitFor(`${vm}'s eth0 in ${guestNs}`, async () => (await this.lab.exec(guestNs, 'ip', ['link', 'show', 'dev', 'eth0'])).code === 0, 10_000);
      await this.lab.mustExec(guestNs, 'busybox', ['udhcpc', '-i', 'eth0', '-n', '-q', '-f', '-t', '5', '-T', '1', '-s', UDHCPC_SCRIPT], { timeoutMs: 20_000 });
      await waitDefaultRoute(guestNs);
      return {
        name: 'vnet', mtu, hostNs, guestNs, hostIp: '10.0.2.2', fwdAddr: '127.0.0.1', fwdAltAddr: HOST_OWN_IP,
        pids: [daemon.pid], guestMtu: await linkMtu(guestNs, 'eth0'), version: await vnetVersion(), down,
      };
    } catch (err) {
      await down().catch(() => undefined);
      throw err;
    }
  }

  /** slirp4netns as engines/slirp4netns.sh: it opens tap0 in the guest itself; forwards through its API socket. */
  private async slirp4netns(mtu: number): Promise<NatEngine> {
    const hostNs = await this.hostNs('slirp4netns');
    const guestNs = await this.guestNs('slirp4netns', mtu);
    const api = join(this.lab.tempDir('slirp'), 'api.sock');
    const child = this.lab.spawn(hostNs, 'slirp4netns', [
      '--configure', `--mtu=${mtu}`, '--disable-dns', '--netns-type=path', `--api-socket=${api}`, `/run/netns/${guestNs}`, 'tap0',
    ]);
    const log = keepLog(child);
    const down = async () => {
      await this.lab.stop(child);
      await this.lab.deleteNetns(guestNs);
    };
    try {
      await waitDefaultRoute(guestNs, child, log);
      await waitFor('the slirp4netns API socket', () => existsSync(api), 5_000);
      for (const [proto, port] of [...ALL_GUEST_PORTS.map((p) => ['tcp', p] as const), ['udp', GUEST_PORTS.iperf] as const]) {
        const reply = await slirpApi(api, {
          execute: 'add_hostfwd',
          arguments: { proto, host_addr: '127.0.0.1', host_port: port + FWD_PORT_OFFSET, guest_port: port },
        });
        if (!reply.includes('"return"')) throw new Error(`slirp4netns add_hostfwd ${proto} ${port}: ${reply.trim()}`);
      }
      const version = (await must('slirp4netns', ['--version'])).split('\n').slice(0, 3).join(', ');
      return {
        name: 'slirp4netns', mtu, hostNs, guestNs, hostIp: '10.0.2.2', fwdAddr: '127.0.0.1', fwdAltAddr: null,
        pids: [child.pid!], guestMtu: await linkMtu(guestNs, 'tap0'), version, down,
      };
    } catch (err) {
      await down().catch(() => undefined);
      throw err;
    }
  }

  /** pasta as engines/pasta.sh (`--runas 0:0`: as root Debian 12's pasta cannot join the netns otherwise). */
  private async pasta(mtu: number): Promise<NatEngine> {
    const hostNs = await this.hostNs('pasta');
    const guestNs = await this.guestNs('pasta', mtu);
    const dir = this.lab.tempDir('pasta');
    const tcp = ALL_GUEST_PORTS.map((p) => `${p + FWD_PORT_OFFSET}:${p}`).join(',');
    const udp = `${GUEST_PORTS.iperf + FWD_PORT_OFFSET}:${GUEST_PORTS.iperf}`;
    const child = this.lab.spawn(hostNs, 'pasta', [
      '-f', '--runas', '0:0', '--config-net', '-I', 'tap0', '-m', String(mtu), '-4',
      '-t', tcp, '-u', udp, '-T', 'none', '-U', 'none',
      '--netns', guestNs, '-P', join(dir, 'pasta.pid'), '-l', join(dir, 'pasta.log'),
    ]);
    const log = keepLog(child);
    const down = async () => {
      await this.lab.stop(child);
      await this.lab.deleteNetns(guestNs);
    };
    try {
      await waitDefaultRoute(guestNs, child, log);
      // -m is what pasta announces (DHCP/NDP); make sure the link itself has the MTU.
      if ((await linkMtu(guestNs, 'tap0')) !== mtu) await must('ip', ['-n', guestNs, 'link', 'set', 'tap0', 'mtu', String(mtu)]);
      const pkg = await run('dpkg-query', ['-W', '-f=${Version}', 'passt']);
      return {
        name: 'pasta', mtu, hostNs, guestNs, hostIp: '10.254.0.254', fwdAddr: '127.0.0.1', fwdAltAddr: HOST_OWN_IP,
        pids: [child.pid!], guestMtu: await linkMtu(guestNs, 'tap0'),
        version: `pasta (passt ${pkg.code === 0 ? pkg.stdout.trim() : 'unknown'})`, down,
      };
    } catch (err) {
      await down().catch(() => undefined);
      throw err;
    }
  }
}

/** As bench.py: a wide ephemeral port range and TIME_WAIT reuse (connection-rate tests). */
async function tuneNs(ns: string): Promise<void> {
  for (const setting of ['net.ipv4.ip_local_port_range=20000 60999', 'net.ipv4.tcp_tw_reuse=1']) {
    await must('ip', ['netns', 'exec', ns, 'sysctl', '-qw', setting]);
  }
}

/**
 * The host namespace's "uplink", exactly as bench.py builds it: a veth pair
 * whose both ends stay in `ns`, 10.254.0.1/24 on one end, default route via
 * 10.254.0.254, which nothing answers. Engines that copy the host's config
 * (pasta) find a route; anything NATed "outside" dies here.
 */
async function blackHoleUplink(ns: string): Promise<void> {
  const ip = (...args: string[]) => must('ip', ['-n', ns, ...args]);
  await ip('link', 'add', 'uplink0', 'type', 'veth', 'peer', 'name', 'uplink0p');
  await ip('addr', 'add', '10.254.0.1/24', 'dev', 'uplink0');
  await ip('link', 'set', 'uplink0p', 'up');
  await ip('link', 'set', 'uplink0', 'up');
  await ip('route', 'add', 'default', 'via', '10.254.0.254', 'dev', 'uplink0');
}

/** The last few KB a child printed, for error messages; also keeps its pipes drained. */
function keepLog(child: ChildProcess): () => string {
  let text = '';
  const add = (chunk: Buffer) => (text = (text + chunk.toString()).slice(-4096));
  child.stdout!.on('data', add);
  child.stderr!.on('data', add);
  return () => text.trim();
}

async function waitDefaultRoute(ns: string, engine?: ChildProcess, log?: () => string): Promise<void> {
  await waitFor(`a default route in ${ns}`, async () => {
    if (engine && (engine.exitCode !== null || engine.signalCode !== null)) {
      throw new Error(`the engine exited (${engine.exitCode ?? engine.signalCode}): ${log?.() ?? ''}`);
    }
    return (await run('ip', ['-n', ns, '-4', 'route', 'show', 'default'])).stdout.includes('default');
  }, 10_000, 100);
}

async function linkMtu(ns: string, ifname: string): Promise<number> {
  return Number((await must('ip', ['netns', 'exec', ns, 'cat', `/sys/class/net/${ifname}/mtu`])).trim());
}

async function vnetVersion(): Promise<string> {
  const head = await run('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD']);
  const dirty = await run('git', ['-C', REPO, 'status', '--porcelain']);
  return `vnet ${head.code === 0 ? head.stdout.trim() : 'unknown'}${dirty.stdout.trim() ? ' + uncommitted changes' : ''}`;
}

/** One request on slirp4netns's API socket (JSON in, JSON out; bounded: 5 s). */
function slirpApi(path: string, request: object): Promise<string> {
  return new Promise((resolve, reject) => {
    let reply = '';
    const socket = createConnection(path);
    socket.setTimeout(5_000, () => socket.destroy(new Error(`slirp4netns API ${path}: no answer in 5 s`)));
    socket.on('connect', () => socket.end(JSON.stringify(request)));
    socket.on('data', (chunk) => (reply += chunk.toString()));
    socket.on('error', reject);
    socket.on('close', () => resolve(reply));
  });
}
