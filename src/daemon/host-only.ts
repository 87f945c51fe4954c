/**
 * Host-only interfaces, realised: `vboxnetN` is a persistent TAP in the
 * daemon's network namespace, owned by the daemon, with the interface's
 * address. Its other side is a port (kind `host`) of the interface's switch,
 * which the VMs' host-only NICs and the interface's DHCP server join:
 *
 *   host kernel (vboxnet0 192.168.56.1/24) ─ TAP fd ─► switch ◄─ VM NICs
 *                                                        └─ DHCP server .100
 *
 * Nothing routes off that segment: host, guests and nothing else (the host
 * forwards only if the administrator turned on ip_forward). The TAP stays
 * when the daemon stops, with its address, and is re-opened by the next one.
 */
import { VnetError, invalidState, notFound } from '../errors.js';
import { ip } from '../host/netns.js';
import { applyHostOnlyIpconfig, hostOnlyNetworkName, nextHostOnlyIf, toNumber } from '../model/host-only.js';
import type { HostOnlyIfConfig } from '../model/types.js';
import { Switch, type SwitchPort } from '../switch/switch.js';
import { TapTransport } from '../transport/tap.js';
import type { DhcpServers, NetworkLink, StateAccess } from './dhcp-servers.js';

interface LiveInterface {
  tap: TapTransport;
  switch: Switch;
  port: SwitchPort;
  users: number;
}

export interface HostOnlyIfView extends HostOnlyIfConfig {
  /** VirtualBox's name for the interface's network (its DHCP server's `--network`). */
  networkName: string;
  mac: string;
  status: 'Up' | 'Down';
  /** NICs plugged into it now. */
  nics: number;
}

/** VirtualBox's host-only MAC prefix: vboxnetN is 0a:00:27:00:00:0N. */
const hostOnlyMac = (index: number): string => `0a:00:27:00:${((index >> 8) & 0xff).toString(16).padStart(2, '0')}:${(index & 0xff).toString(16).padStart(2, '0')}`;

const prefixOf = (netmask: string): number => 32 - Math.log2((~toNumber(netmask) >>> 0) + 1);

/** `ip …` in the daemon's namespace; a missing privilege becomes a message that says which. */
function hostIp(args: string[], what: string): string {
  try {
    return ip(args);
  } catch (err) {
    if ((err as VnetError).code === 'VNET_ERR_PERMISSION') {
      throw new VnetError(
        'VNET_ERR_PERMISSION',
        `cannot ${what}: making and configuring network interfaces needs CAP_NET_ADMIN in the daemon's network namespace ` +
          `(run 'vnet daemon' as root, or give it the capability: setcap cap_net_admin+ep); ${(err as Error).message}`,
        { cause: err },
      );
    }
    throw err;
  }
}

/** True when interface `name` exists in the daemon's own namespace. */
export function hostLinkExists(name: string): boolean {
  try {
    ip(['link', 'show', 'dev', name]);
    return true;
  } catch {
    return false;
  }
}

export class HostOnlyIfs {
  private readonly live = new Map<string, LiveInterface>();

  constructor(
    private readonly access: StateAccess,
    private readonly dhcp: DhcpServers,
    private readonly log: (line: string) => void = () => {},
  ) {}

  private get configs(): HostOnlyIfConfig[] {
    return (this.access.state().hostOnlyIfs ??= []);
  }

  /** Re-open every configured interface (recreating TAPs a reboot removed). Failures are logged. */
  resume(): void {
    for (const config of this.configs) {
      try {
        this.realise(config);
      } catch (err) {
        this.log(`host-only interface ${config.name} could not be brought up: ${(err as Error).message}`);
      }
    }
  }

  list(): HostOnlyIfView[] {
    return this.configs.map((c) => ({
      ...c,
      networkName: hostOnlyNetworkName(c.name),
      mac: hostOnlyMac(this.index(c.name)),
      status: this.live.has(c.name) ? 'Up' : 'Down',
      nics: this.live.get(c.name)?.users ?? 0,
    }));
  }

  /** `hostonlyif create`: the next vboxnetN (or `name`), VirtualBox's default address and DHCP server. */
  create(name?: string): HostOnlyIfConfig {
    const config = nextHostOnlyIf(this.configs, name);
    if (hostLinkExists(config.name)) throw new VnetError('VNET_ERR_EXISTS', `an interface named '${config.name}' already exists in the daemon's network namespace`);
    this.realise(config);
    this.configs.push(config);
    this.access.save();
    this.dhcp.addHostOnlyDefault(config);
    this.log(`host-only interface ${config.name} ${config.ip}/${config.netmask} created`);
    return { ...config };
  }

  /** `hostonlyif ipconfig IF --ip A --netmask M`. */
  ipconfig(name: string, address: unknown, netmask?: unknown): HostOnlyIfConfig {
    const current = this.find(name);
    const next = applyHostOnlyIpconfig(current, address, netmask ?? '255.255.255.0');
    if (this.live.has(name)) this.setAddress(next);
    const state = this.access.state();
    state.hostOnlyIfs = this.configs.map((c) => (c.name === name ? next : c));
    this.access.save();
    this.dhcp.followHostOnly(current, next);
    return { ...next };
  }

  /** `hostonlyif remove IF`: refused while NICs use it. */
  remove(name: string): void {
    this.find(name);
    const live = this.live.get(name);
    if (live && live.users > 0) throw invalidState(`host-only interface '${name}' is used by ${live.users} running NIC(s): power their VMs off first`);
    this.dhcp.removeHostOnly(name);
    if (live) {
      live.tap.close();
      this.live.delete(name);
    }
    if (hostLinkExists(name)) hostIp(['link', 'delete', 'dev', name], `remove host-only interface '${name}'`);
    const state = this.access.state();
    state.hostOnlyIfs = this.configs.filter((c) => c.name !== name);
    this.access.save();
    this.log(`host-only interface ${name} removed`);
  }

  /** A NIC joins host-only interface `name`. */
  acquire(name: string): NetworkLink {
    if (!name) throw new VnetError('VNET_ERR_INVALID_VALUE', "a host-only NIC needs an interface: --host-only-adapter<N> vboxnet0");
    this.find(name);
    let live = this.live.get(name);
    if (!live) {
      this.realise(this.find(name));
      live = this.live.get(name)!;
    }
    live.users++;
    this.dhcp.nicJoined(hostOnlyNetworkName(name));
    let closed = false;
    return {
      switch: live.switch,
      close: () => {
        if (closed) return;
        closed = true;
        live.users--;
      },
    };
  }

  /** Stop serving the TAPs (the daemon stops); they stay, with their addresses. */
  closeAll(): void {
    for (const [name, live] of this.live) {
      this.dhcp.detachNetwork(hostOnlyNetworkName(name));
      live.tap.close();
    }
    this.live.clear();
  }

  /** The interface's switch, for stats. */
  switchOf(name: string): Switch | undefined {
    return this.live.get(name)?.switch;
  }

  private find(name: string): HostOnlyIfConfig {
    const found = this.configs.find((c) => c.name === name);
    if (!found) throw notFound(`no host-only interface named '${name}'; create one with 'vnet hostonlyif create'`);
    return found;
  }

  private index(name: string): number {
    const match = /(\d+)$/.exec(name);
    return match ? Number(match[1]) : 0;
  }

  /** Make the TAP (persistent), give it its MAC and address, open it, and wire it to a new switch. */
  private realise(config: HostOnlyIfConfig): void {
    const { name } = config;
    const created = !hostLinkExists(name);
    if (created) hostIp(['tuntap', 'add', 'dev', name, 'mode', 'tap'], `create host-only interface '${name}'`);
    try {
      hostIp(['link', 'set', 'dev', name, 'address', hostOnlyMac(this.index(name)), 'up'], `configure host-only interface '${name}'`);
      this.setAddress(config);
      const tap = TapTransport.open({ ifname: name });
      const sw = new Switch(`hostonly:${name}`);
      const port = sw.attach({ name: `${name}/host`, mac: Uint8Array.from(hostOnlyMac(this.index(name)).split(':'), (h) => parseInt(h, 16)), kind: 'host', deliver: (f) => tap.send(f) });
      tap.onFrame = (frame) => port.send(frame);
      tap.onClose = (reason) => this.log(`host-only interface ${name} went away: ${reason}`);
      tap.start();
      this.live.set(name, { tap, switch: sw, port, users: 0 });
      this.dhcp.attachNetwork(hostOnlyNetworkName(name), sw);
    } catch (err) {
      if (created) {
        try {
          ip(['link', 'delete', 'dev', name]);
        } catch {
          // Best effort: the error below says what went wrong first.
        }
      }
      throw err;
    }
  }

  private setAddress(config: HostOnlyIfConfig): void {
    const what = `set the address of host-only interface '${config.name}'`;
    hostIp(['-4', 'addr', 'flush', 'dev', config.name], what);
    hostIp(['addr', 'add', `${config.ip}/${prefixOf(config.netmask)}`, 'dev', config.name], what);
  }
}
