/**
 * VirtualBox's `dhcpserver` objects, realised. A server for an internal
 * network or a host-only interface is a small host on that network's switch:
 *
 *   guest ─► switch ─► responder port (own MAC, the server IP)
 *                        Gateway: ARP and ping for the server IP, IPv4 checks
 *                          └─ local: UDP :67 ─► DhcpServer ─► reply ─► switch ─► guest
 *
 * It answers nothing else and routes nowhere (no `forward` handler: an
 * internal network has no way out). A NAT Network already runs a DHCP server
 * in its NatLan; a `dhcpserver` for it only configures that one
 * (`natDhcp`), applied when the NAT Network next starts.
 *
 * Lifecycle: an intnet's responder is attached while at least one NIC is on
 * the intnet (`joinIntnet`), a host-only interface's while the interface
 * exists (`attachNetwork`). Any change of the server's settings rebuilds the
 * responder; leases survive in `$VNET_HOME/leases/dhcp_<network>.json`.
 */
import { createHash } from 'node:crypto';
import { VnetError, invalidState, notFound } from '../errors.js';
import { FileLeaseStore } from '../model/lease-store.js';
import {
  applyDhcpServerChange,
  createDhcpServer,
  defaultHostOnlyDhcp,
  encodeDhcpOption,
  resolveDhcpTarget,
  type DhcpServerChange,
  type DhcpTarget,
} from '../model/dhcp-server.js';
import { toNumber } from '../model/host-only.js';
import type { DhcpServerSettings, HostOnlyIfConfig, VnetState } from '../model/types.js';
import { DhcpServer } from '../services/dhcp/server.js';
import { Gateway } from '../stack/gateway.js';
import type { Switch, SwitchPort } from '../switch/switch.js';
import { BROADCAST_MAC, formatIpv4, formatMac, parseMac } from '../wire/address.js';
import { DhcpMessageType, DhcpView, DHCP_CLIENT_PORT, DHCP_SERVER_PORT, dhcpLength, emitDhcp, getMessageType, parseDhcp, type DhcpOptions } from '../wire/dhcpv4.js';
import { IpProtocol, type Ipv4View } from '../wire/ipv4.js';
import { UdpView } from '../wire/udp.js';
import { WireError } from '../wire/errors.js';

/** How the daemon's state is read and saved by the modules that manage a part of it. */
export interface StateAccess {
  state(): VnetState;
  save(): void;
}

/** A network a NIC is plugged into; `close` when the NIC leaves. */
export interface NetworkLink {
  switch: Switch;
  close(): void;
}

export interface DhcpServerHooks {
  natNetworkNames(): string[];
  /** True while NAT Network `name` runs (its DHCP server cannot change then). */
  natNetworkRunning(name: string): boolean;
  /** The MAC of a VM's NIC, for fixed addresses given per VM NIC. */
  macOf(vm: string, slot: number): string | undefined;
}

/** A lease of a vnet DHCP server, in the daemon's lease listing's terms. */
export interface DhcpServerLease {
  /** `intnet:NAME` or `hostonly:IF`. */
  network: string;
  mac: string;
  ip: string;
  hostname: string | null;
  state: string;
  expiresAt: string;
}

/** Most frames a responder's server MTU allows (Ethernet). */
const RESPONDER_MTU = 1500;

/** The key a server's leases are listed under: `intnet:lab`, `hostonly:vboxnet0`, `natnet:NAME`. */
export function leaseNetworkKey(settings: Pick<DhcpServerSettings, 'kind' | 'network'>): string {
  const name = settings.kind === 'hostonly' ? settings.network.replace(/^HostInterfaceNetworking-/, '') : settings.network;
  return `${settings.kind}:${name}`;
}

/** A DHCP server on one switch: its own port, MAC and address. */
class DhcpResponder {
  readonly server: DhcpServer;
  readonly gateway: Gateway;
  private readonly port: SwitchPort;
  private readonly serverIp: number;
  private readonly extra: DhcpOptions;

  constructor(
    private readonly sw: Switch,
    readonly settings: DhcpServerSettings,
    readonly fixed: { mac: string; ip: number }[],
    store: FileLeaseStore,
  ) {
    const mask = toNumber(settings.netmask);
    this.serverIp = toNumber(settings.serverIp);
    const network = (this.serverIp & mask) >>> 0;
    this.extra = new Map(Object.entries(settings.options).map(([code, text]) => [Number(code), encodeDhcpOption(Number(code), text)]));
    this.server = new DhcpServer(
      {
        serverIp: this.serverIp,
        netmask: mask,
        network,
        poolStart: toNumber(settings.lowerIp),
        poolEnd: toNumber(settings.upperIp),
        leaseTimeSec: settings.leaseTimeSec,
        fixed,
      },
      { store },
    );
    this.gateway = new Gateway({ mac: responderMac(settings.network), addresses: [this.serverIp], network, mask, mtu: RESPONDER_MTU });
    this.port = sw.attach({ name: `dhcp:${settings.network}`, mac: this.gateway.mac, kind: 'service', deliver: (f) => this.gateway.fromNetwork(f) });
    this.gateway.output = (frame) => this.port.send(frame);
    this.gateway.handlers = {
      local: (ip, mac) => this.local(ip, mac),
      forward: () => this.gateway.drop('ipv4:no-route'),
    };
  }

  private local(ip: Ipv4View, sourceMac: Uint8Array): void {
    if (ip.protocol !== IpProtocol.UDP) return this.gateway.drop('ipv4:local-protocol');
    const udp = UdpView.checked(ip.payload);
    if (!udp.verifyChecksum({ source: ip.source, destination: ip.destination })) throw new WireError('udp', 'bad-checksum');
    if (udp.destinationPort !== DHCP_SERVER_PORT) return this.gateway.drop('udp:no-service');
    const request = parseDhcp(DhcpView.checked(udp.payload));
    const answer = this.server.handle(request, { mac: formatMac(sourceMac), ip: ip.source });
    if (!answer) return;
    const type = getMessageType(answer.reply.options);
    if (type === DhcpMessageType.Offer || type === DhcpMessageType.Ack) {
      // `--set-opt`: the administrator's options, after the server's own.
      for (const [code, value] of this.extra) answer.reply.options.set(code, value);
    }
    const payload = new Uint8Array(dhcpLength(answer.reply));
    emitDhcp(answer.reply, payload, 0);
    const toMac = answer.broadcast ? BROADCAST_MAC : parseMac(answer.dstMac);
    this.gateway.sendUdp(this.serverIp, DHCP_SERVER_PORT, answer.dstIp, DHCP_CLIENT_PORT, payload, toMac);
  }

  close(): void {
    this.sw.detach(this.port);
    this.gateway.close();
  }
}

/** A locally administered MAC (02:…) derived from the network name, stable across restarts. */
function responderMac(network: string): Uint8Array {
  const hash = createHash('sha256').update(`vnet-dhcp:${network}`).digest();
  return Uint8Array.from([0x02, 0x56, 0x4e, hash[0]!, hash[1]!, hash[2]!]);
}

interface AttachedNetwork {
  switch: Switch;
  responder: DhcpResponder | null;
  /** NICs on an intnet (host-only networks are held by their interface, not counted). */
  users: number;
}

export class DhcpServers {
  /** Switches we serve, by the server's network name. */
  private readonly attached = new Map<string, AttachedNetwork>();

  constructor(
    private readonly access: StateAccess,
    private readonly home: string,
    private readonly hooks: DhcpServerHooks,
    private readonly log: (line: string) => void = () => {},
  ) {}

  private get servers(): DhcpServerSettings[] {
    const state = this.access.state();
    return (state.dhcpServers ??= []);
  }

  list(): (DhcpServerSettings & { running: boolean })[] {
    return this.servers.map((s) => ({
      ...structuredClone(s),
      running: s.kind === 'natnet' ? s.enabled && this.hooks.natNetworkRunning(s.network) : !!this.attached.get(s.network)?.responder,
    }));
  }

  get(target: DhcpTarget): DhcpServerSettings {
    const { network } = resolveDhcpTarget(target, this.hooks.natNetworkNames());
    const found = this.servers.find((s) => s.network === network);
    if (!found) throw notFound(`no DHCP server for network '${network}'; add one with 'vnet dhcpserver add'`);
    return found;
  }

  add(target: DhcpTarget, change: DhcpServerChange): DhcpServerSettings {
    const { network, kind, ifname } = resolveDhcpTarget(target, this.hooks.natNetworkNames());
    if (this.servers.some((s) => s.network === network)) throw new VnetError('VNET_ERR_EXISTS', `a DHCP server for network '${network}' already exists; change it with 'dhcpserver modify'`);
    if (kind === 'hostonly' && !this.hostOnly(ifname!)) throw notFound(`no host-only interface '${ifname}'; create it with 'vnet hostonlyif create'`);
    const settings = createDhcpServer(network, kind, change);
    this.checkNat(settings);
    this.servers.push(settings);
    this.access.save();
    this.refresh(network);
    return structuredClone(settings);
  }

  modify(target: DhcpTarget, change: DhcpServerChange): DhcpServerSettings {
    const current = this.get(target);
    const next = applyDhcpServerChange(current, change);
    this.checkNat(next, current);
    this.replace(next);
    return structuredClone(next);
  }

  remove(target: DhcpTarget): void {
    const current = this.get(target);
    if (current.kind === 'natnet' && this.hooks.natNetworkRunning(current.network)) {
      throw invalidState(`NAT network '${current.network}' is running: stop it and its VMs before removing its DHCP server`);
    }
    const state = this.access.state();
    state.dhcpServers = this.servers.filter((s) => s !== current);
    this.access.save();
    this.refresh(current.network);
  }

  /** Replace a server's settings (validated by the caller), save, and rebuild its responder. */
  replace(next: DhcpServerSettings): void {
    const state = this.access.state();
    state.dhcpServers = this.servers.map((s) => (s.network === next.network ? next : s));
    if (!state.dhcpServers.includes(next)) state.dhcpServers.push(next);
    this.access.save();
    this.refresh(next.network);
  }

  /** VirtualBox gives every new host-only interface a server: .100, pool .101-.254. */
  addHostOnlyDefault(iface: HostOnlyIfConfig): void {
    const settings = defaultHostOnlyDhcp(iface);
    if (this.servers.some((s) => s.network === settings.network)) return;
    this.servers.push(settings);
    this.access.save();
    this.refresh(settings.network);
  }

  /**
   * A host-only interface moved to another network: a server still on
   * VirtualBox's defaults for the old one follows it; a customised one stays.
   */
  followHostOnly(before: HostOnlyIfConfig, after: HostOnlyIfConfig): void {
    if (before.ip === after.ip && before.netmask === after.netmask) return;
    const old = defaultHostOnlyDhcp(before);
    const current = this.servers.find((s) => s.network === old.network);
    if (!current || current.serverIp !== old.serverIp || current.netmask !== old.netmask || current.lowerIp !== old.lowerIp || current.upperIp !== old.upperIp) return;
    const moved = defaultHostOnlyDhcp(after);
    this.replace({ ...moved, enabled: current.enabled, leaseTimeSec: current.leaseTimeSec, options: current.options });
  }

  /** The host-only interface went away: its server goes too. */
  removeHostOnly(ifname: string): void {
    const network = `HostInterfaceNetworking-${ifname}`;
    const state = this.access.state();
    state.dhcpServers = this.servers.filter((s) => s.network !== network);
    this.access.save();
    this.detachNetwork(network);
  }

  // --- Runtime ----------------------------------------------------------------

  /** A NIC joined intnet `name` (on `sw`): serve it if a server is configured. */
  joinIntnet(name: string, sw: Switch): NetworkLink {
    let entry = this.attached.get(name);
    if (!entry || entry.switch !== sw) {
      entry?.responder?.close();
      entry = { switch: sw, responder: null, users: 0 };
      this.attached.set(name, entry);
      this.refresh(name);
    } else {
      this.nicJoined(name);
    }
    entry.users++;
    let closed = false;
    return {
      switch: sw,
      close: () => {
        if (closed) return;
        closed = true;
        const current = this.attached.get(name);
        if (current !== entry || --entry.users > 0) return;
        this.detachNetwork(name);
      },
    };
  }

  /**
   * A NIC joined `network`: fixed addresses given per VM NIC are resolved to
   * MACs when the server starts, so a VM that was created or changed since
   * then makes us rebuild it (leases are kept in the store).
   */
  nicJoined(network: string): void {
    const entry = this.attached.get(network);
    if (!entry?.responder) return;
    const wanted = JSON.stringify(this.fixedFor(entry.responder.settings));
    if (wanted !== JSON.stringify(entry.responder.fixed)) this.refresh(network);
  }

  /** A switch that stays while its network exists (a host-only interface's). */
  attachNetwork(network: string, sw: Switch): void {
    this.attached.get(network)?.responder?.close();
    this.attached.set(network, { switch: sw, responder: null, users: 0 });
    this.refresh(network);
  }

  detachNetwork(network: string): void {
    this.attached.get(network)?.responder?.close();
    this.attached.delete(network);
  }

  /** The responder of `network` (for stats and tests), if running. */
  responder(network: string): { server: DhcpServer; gateway: Gateway } | null {
    return this.attached.get(network)?.responder ?? null;
  }

  /**
   * What a NAT Network's DHCP server should be: `null` for none (disabled),
   * undefined for the NatLan's defaults, else the pool as host numbers of
   * `cidr` with fixed addresses and lease time.
   */
  natDhcp(name: string, cidr: { network: number; mask: number }): NatDhcpOverride | null | undefined {
    const settings = this.servers.find((s) => s.kind === 'natnet' && s.network === name);
    if (!settings) return undefined;
    if (!settings.enabled) return null;
    const host = (ip: string) => (toNumber(ip) - cidr.network) >>> 0;
    if (((toNumber(settings.serverIp) & cidr.mask) >>> 0) !== cidr.network || toNumber(settings.netmask) !== cidr.mask) {
      this.log(`DHCP server of NAT network ${name} is not on the network's addresses; using the defaults`);
      return undefined;
    }
    return {
      serverHost: host(settings.serverIp),
      first: host(settings.lowerIp),
      last: host(settings.upperIp),
      leaseTimeSec: settings.leaseTimeSec,
      fixed: this.fixedFor(settings),
    };
  }

  /** Leases of every running responder (NAT Networks list their own). */
  leases(): DhcpServerLease[] {
    const out: DhcpServerLease[] = [];
    for (const entry of this.attached.values()) {
      const responder = entry.responder;
      if (!responder) continue;
      for (const lease of responder.server.leases()) {
        out.push({
          network: leaseNetworkKey(responder.settings),
          mac: lease.mac,
          ip: formatIpv4(lease.ip),
          hostname: lease.hostname ?? null,
          state: lease.state,
          expiresAt: new Date(lease.expiresAt).toISOString(),
        });
      }
    }
    return out;
  }

  stats() {
    return [...this.attached].map(([network, entry]) => ({
      network,
      users: entry.users,
      dhcp: entry.responder?.server.stats() ?? null,
      gateway: entry.responder ? { ...entry.responder.gateway.counters, drops: { ...entry.responder.gateway.drops } } : null,
    }));
  }

  closeAll(): void {
    for (const network of [...this.attached.keys()]) this.detachNetwork(network);
  }

  /** Rebuild the responder of `network` from its settings, if the network is live. */
  private refresh(network: string): void {
    const entry = this.attached.get(network);
    if (!entry) return;
    entry.responder?.close();
    entry.responder = null;
    const settings = this.servers.find((s) => s.network === network);
    if (!settings || !settings.enabled || settings.kind === 'natnet') return;
    try {
      entry.responder = new DhcpResponder(entry.switch, settings, this.fixedFor(settings), new FileLeaseStore(this.home, `dhcp:${network}`));
      this.log(`DHCP server for ${network} up (${settings.serverIp}, pool ${settings.lowerIp}-${settings.upperIp})`);
    } catch (err) {
      this.log(`DHCP server for ${network} could not start: ${(err as Error).message}`);
    }
  }

  private fixedFor(settings: DhcpServerSettings): { mac: string; ip: number }[] {
    const out: { mac: string; ip: number }[] = [];
    for (const f of settings.fixed) {
      const mac = f.mac ?? (f.vm !== undefined ? this.hooks.macOf(f.vm, f.nic ?? 1) : undefined);
      if (mac) out.push({ mac, ip: toNumber(f.ip) });
    }
    return out;
  }

  private hostOnly(ifname: string): HostOnlyIfConfig | undefined {
    return (this.access.state().hostOnlyIfs ?? []).find((i) => i.name === ifname);
  }

  /** A NAT Network's server must use the network's own addresses, and cannot change while it runs. */
  private checkNat(next: DhcpServerSettings, current?: DhcpServerSettings): void {
    if (next.kind !== 'natnet') return;
    const nat = this.access.state().natNetworks.find((n) => n.name === next.network);
    if (nat) {
      const [address, prefix] = nat.network.split('/');
      const mask = Number(prefix) === 0 ? 0 : (0xffffffff << (32 - Number(prefix))) >>> 0;
      if (toNumber(next.netmask) !== mask || ((toNumber(next.serverIp) & mask) >>> 0) !== toNumber(address!)) {
        throw new VnetError('VNET_ERR_INVALID_VALUE', `DHCP server '${next.network}': NAT network '${nat.name}' is ${nat.network}; the server address and netmask must be on it`);
      }
    }
    if (this.hooks.natNetworkRunning(next.network) && JSON.stringify(next) !== JSON.stringify(current)) {
      throw invalidState(`NAT network '${next.network}' is running: stop its VMs and 'natnetwork stop' it to change its DHCP server`);
    }
  }
}

/** How a `dhcpserver` reshapes a NAT Network's own DHCP server (host numbers of the network). */
export interface NatDhcpOverride {
  serverHost: number;
  first: number;
  last: number;
  leaseTimeSec: number;
  fixed: { mac: string; ip: number }[];
}
