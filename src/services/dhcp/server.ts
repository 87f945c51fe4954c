/**
 * DHCP server (RFC 2131, options RFC 2132) for one virtual LAN. Pure logic:
 * the gateway hands it parsed requests from UDP 68→67 and sends the replies
 * it returns from 67→68.
 *
 * Theory of operation
 * - DISCOVER → OFFER of an address held for the client for `OFFER_HOLD_MS`:
 *   its fixed address, else the one it had (same client → same address, also
 *   across restarts through the store), else the one it asks for, else the
 *   first never-used address of the pool, else the address free the longest.
 * - REQUEST → ACK or NAK, in the four client states of RFC 2131 §4.3.2:
 *   SELECTING (server identifier), INIT-REBOOT (requested address, no server
 *   identifier), RENEWING and REBINDING (ciaddr). A REQUEST that selects
 *   another server's offer frees ours.
 * - RELEASE ends the lease but keeps the record, so the client gets the same
 *   address back; DECLINE keeps the address out of use for `DECLINE_HOLD_MS`;
 *   INFORM gets an ACK with configuration and no lease (§3.4).
 * - Expiry is lazy: each call first ends the leases whose time has passed.
 *
 * Deviations, named: giaddr is ignored (no relays on a virtual LAN); the
 * server is authoritative, so an INIT-REBOOT, RENEWING or REBINDING client
 * with no record is ACKed when its address is free for it (RFC 2131 §4.3.2
 * says to stay silent), which keeps guests on their address across a restart
 * without a store; BOOTP requests (no option 53) are dropped; option 12 is
 * stored, never echoed.
 *
 * Limits: `maxLeases` records (DEFAULT_MAX_LEASES); an exhausted pool means
 * no offer (`poolExhausted`), never an error.
 */

import { formatIpv4, formatMac, MAC_LENGTH } from '../../wire/address.js';
import {
  addressesOption,
  DHCP_BROADCAST_FLAG,
  DHCP_HTYPE_ETHERNET,
  DhcpMessageType,
  DhcpOp,
  DhcpOption,
  domainSearchOption,
  getClientIdentifier,
  getHostName,
  getMessageType,
  getParameterRequestList,
  getRequestedIp,
  getServerId,
  stringOption,
  u16Option,
  u32Option,
  u8Option,
  type DhcpMessage,
  type DhcpOptions,
} from '../../wire/dhcpv4.js';
import { WireError } from '../../wire/errors.js';
import type { Clock } from '../../stack/guest-link.js';
import { leaseKey, LeaseTable, type Lease, type LeaseEvent, type LeaseStore } from './leases.js';

export type { Lease, LeaseEvent, LeaseStore } from './leases.js';

/** VirtualBox NAT's lease time: one day. */
export const DEFAULT_LEASE_TIME_SEC = 86400;
/** Records kept when the caller sets no `maxLeases`. */
export const DEFAULT_MAX_LEASES = 4096;
/** How long an offered address stays reserved for the client (RFC 2131 §4.3.1: the server "SHOULD reserve" it). */
export const OFFER_HOLD_MS = 60_000;
/** How long a declined address stays out of use. */
export const DECLINE_HOLD_MS = 10 * 60_000;

const LIMITED_BROADCAST = 0xffffffff;
const BROADCAST_MAC_TEXT = 'ff:ff:ff:ff:ff:ff';
/** RFC 1035 §2.3.1 label, as a host name must be to be resolved by our DNS. */
const HOST_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

export interface DhcpServerConfig {
  /** Our address on the LAN: the server identifier (54). */
  serverIp: number;
  netmask: number;
  network: number;
  /** First and last address handed out from the pool (inclusive). */
  poolStart: number;
  poolEnd: number;
  router?: number;
  dns?: number[];
  domainName?: string;
  searchDomains?: string[];
  mtu?: number;
  leaseTimeSec: number;
  /** Addresses tied to a MAC; they may lie outside the pool but not outside the network. */
  fixed?: { mac: string; ip: number }[];
  /**
   * Network boot (PXE): the TFTP server goes in siaddr and the boot file in
   * the file field of every OFFER and ACK (RFC 2131 Table 3), and in options
   * 66 and 67 for clients that ask for them.
   */
  boot?: { nextServer: number; file: string };
}

export interface DhcpServerOptions {
  clock?: Clock;
  store?: LeaseStore;
  /** Told after the table changed: an ACK of a lease (also each renewal), a RELEASE, an expiry noticed. */
  onLease?: (lease: Lease, event: LeaseEvent) => void;
  maxLeases?: number;
}

/** A reply and where it goes: IP and Ethernet destination of the UDP 67→68 datagram. */
export interface DhcpReply {
  reply: DhcpMessage;
  dstIp: number;
  /** `08:00:27:aa:bb:cc`, or `ff:ff:ff:ff:ff:ff` when `broadcast`. */
  dstMac: string;
  broadcast: boolean;
}

export interface DhcpStats {
  offers: number;
  acks: number;
  naks: number;
  releases: number;
  declines: number;
  informs: number;
  poolExhausted: number;
  /** Requests answered with nothing, by reason (`dhcpv4:bad-option`, `other-server`, …). */
  drops: Record<string, number>;
}

/** Who sent a request, from its chaddr and options. */
interface Client {
  key: string;
  mac: string;
  clientId?: string;
  hostname?: string;
}

function hex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

/** Accepts a MAC in the usual notations and returns it as `formatMac` does; undefined when it is none. */
function normalizeMac(text: string): string | undefined {
  const digits = text.replace(/[:-]/g, '').toLowerCase();
  if (!/^[0-9a-f]{12}$/.test(digits)) return undefined;
  return digits.match(/../g)!.join(':');
}

export class DhcpServer {
  private readonly config: DhcpServerConfig;
  private readonly clock: Clock;
  private readonly store: LeaseStore | undefined;
  private readonly onLease: (lease: Lease, event: LeaseEvent) => void;
  private readonly table: LeaseTable;
  private readonly broadcastIp: number;
  private readonly fixedByMac = new Map<string, number>();
  private readonly fixedIps = new Set<number>();
  /** Addresses of the network that are never handed out from the pool. */
  private readonly reserved = new Set<number>();
  /** Options every reply with configuration carries, in code order. */
  private readonly configOptions: DhcpOptions;
  /** Options sent only to clients that ask for them (option 55). */
  private readonly askedOnlyOptions: DhcpOptions = new Map();
  private readonly counters: Omit<DhcpStats, 'drops'> = {
    offers: 0,
    acks: 0,
    naks: 0,
    releases: 0,
    declines: 0,
    informs: 0,
    poolExhausted: 0,
  };
  private readonly drops: Record<string, number> = {};

  /** Throws `RangeError` for a configuration the model should have refused (pool outside the network, …). */
  constructor(config: DhcpServerConfig, options: DhcpServerOptions = {}) {
    this.config = config;
    this.clock = options.clock ?? Date.now;
    this.store = options.store;
    this.onLease = options.onLease ?? (() => {});
    this.table = new LeaseTable(options.maxLeases ?? DEFAULT_MAX_LEASES);
    this.broadcastIp = (config.network | ~config.netmask) >>> 0;
    this.validate();
    for (const { mac, ip } of config.fixed ?? []) {
      this.fixedByMac.set(normalizeMac(mac)!, ip);
      this.fixedIps.add(ip);
    }
    for (const ip of [config.network, this.broadcastIp, config.serverIp, config.router, ...(config.dns ?? [])]) {
      if (ip !== undefined) this.reserved.add(ip);
    }
    this.configOptions = this.buildConfigOptions();
    if (config.boot !== undefined) {
      this.askedOnlyOptions.set(DhcpOption.TftpServerName, stringOption(formatIpv4(config.boot.nextServer)));
      this.askedOnlyOptions.set(DhcpOption.BootfileName, stringOption(config.boot.file));
    }
    this.restore();
  }

  /**
   * One request from a guest: the reply and where it goes, or null (counted
   * in `stats().drops` by reason). `source` is the frame's Ethernet source and
   * IP source (0 when the client has none yet). A request whose options are
   * malformed is counted `dhcpv4:bad-option` here rather than thrown, as the
   * message was already accepted by the codec.
   */
  handle(request: DhcpMessage, source: { mac: string; ip: number }): DhcpReply | null {
    const now = this.clock();
    this.expire(now);
    try {
      return this.dispatch(request, source, now);
    } catch (err) {
      if (err instanceof WireError) return this.drop(err.key);
      throw err;
    }
  }

  /** Copies of the live leases (offered and bound). */
  leases(): Lease[] {
    this.expire(this.clock());
    return this.table.live();
  }

  /** The address of the first live bound lease (a port forward's guest when its rule names none). */
  firstBoundIp(): number | undefined {
    this.expire(this.clock());
    return this.table.firstBoundIp();
  }

  /** The live lease of a MAC (any notation), bound ones first. */
  findLease(mac: string): Lease | undefined {
    const wanted = normalizeMac(mac);
    let found: Lease | undefined;
    for (const lease of this.leases()) {
      if (lease.mac !== wanted) continue;
      if (lease.state === 'bound') return lease;
      found ??= lease;
    }
    return found;
  }

  /**
   * Addresses of the bound leases whose host name is `name` (case-insensitive,
   * trailing dot and our `domainName` suffix allowed); for DNS's `localNames`.
   */
  resolveName(name: string): number[] | undefined {
    const wanted = this.localName(name);
    const ips = this.leases()
      .filter((l) => l.state === 'bound' && l.hostname?.toLowerCase() === wanted)
      .map((l) => l.ip);
    return ips.length > 0 ? ips : undefined;
  }

  /** `name` as a name on this network: lower case, without a trailing dot or our `domainName` suffix. */
  localName(name: string): string {
    const wanted = name.toLowerCase().replace(/\.$/, '');
    const domain = this.config.domainName?.toLowerCase().replace(/\.$/, '');
    return domain !== undefined && domain !== '' && wanted.endsWith(`.${domain}`) ? wanted.slice(0, -domain.length - 1) : wanted;
  }

  stats(): DhcpStats {
    return { ...this.counters, drops: { ...this.drops } };
  }

  // ---- Requests

  private dispatch(request: DhcpMessage, source: { mac: string; ip: number }, now: number): DhcpReply | null {
    if (request.op !== DhcpOp.BootRequest) return this.drop('not-request');
    if ((request.htype ?? DHCP_HTYPE_ETHERNET) !== DHCP_HTYPE_ETHERNET || request.chaddr.length !== MAC_LENGTH) {
      return this.drop('not-ethernet');
    }
    const type = getMessageType(request.options);
    if (type === undefined) return this.drop('bootp');
    const client = this.identify(request);
    switch (type) {
      case DhcpMessageType.Discover:
        return this.discover(request, client, now);
      case DhcpMessageType.Request:
        return this.request(request, client, now);
      case DhcpMessageType.Decline:
        return this.decline(request, client, now);
      case DhcpMessageType.Release:
        return this.release(request, client, now);
      case DhcpMessageType.Inform:
        return this.inform(request, source);
      default:
        return this.drop('not-client-message');
    }
  }

  private identify(request: DhcpMessage): Client {
    const mac = formatMac(request.chaddr);
    const id = getClientIdentifier(request.options);
    const clientId = id === undefined ? undefined : hex(id);
    const name = getHostName(request.options)?.split('.')[0];
    const hostname = name !== undefined && HOST_LABEL.test(name) ? name.toLowerCase() : undefined;
    return { key: leaseKey(mac, clientId), mac, clientId, hostname };
  }

  private discover(request: DhcpMessage, client: Client, now: number): DhcpReply | null {
    const ip = this.choose(client, getRequestedIp(request.options));
    if (ip === undefined) {
      this.counters.poolExhausted++;
      return null;
    }
    const held = this.table.get(client.key);
    const bound = held !== undefined && held.live && held.lease.state === 'bound' && held.lease.ip === ip;
    // A bound client that lost its state keeps its binding; anyone else gets an offer held a short while.
    const lease = bound
      ? { ...held.lease, hostname: client.hostname ?? held.lease.hostname }
      : this.leaseFor(client, ip, 'offered', now + OFFER_HOLD_MS);
    if (!this.table.put(client.key, lease)) return this.drop('lease-table-full');
    this.counters.offers++;
    return this.reply(request, DhcpMessageType.Offer, ip, this.leaseOptions(request));
  }

  private request(request: DhcpMessage, client: Client, now: number): DhcpReply | null {
    const serverId = getServerId(request.options);
    const requested = getRequestedIp(request.options);
    const ciaddr = request.ciaddr ?? 0;
    let ip: number;
    if (serverId !== undefined) {
      // SELECTING. RFC 2131 §3.1: servers not selected "use the DHCPREQUEST message as notification that the client has declined".
      if (serverId !== this.config.serverIp) {
        const held = this.table.get(client.key);
        if (held?.live && held.lease.state === 'offered') this.table.end(client.key, now);
        return this.drop('other-server');
      }
      // RFC 2131 §4.3.2: "'requested IP address' MUST be filled in with the yiaddr value from the chosen DHCPOFFER."
      if (requested === undefined) return this.drop('no-requested-ip');
      ip = requested;
    } else if (requested !== undefined) {
      ip = requested; // INIT-REBOOT
    } else if (ciaddr !== 0) {
      ip = ciaddr; // RENEWING (unicast) or REBINDING (broadcast): answered alike
    } else {
      return this.drop('no-address');
    }
    // RFC 2131 §4.3.2 (INIT-REBOOT): "Server SHOULD send a DHCPNAK message to the client if the 'requested IP address' is incorrect, or is on the wrong network."
    if (!this.inNetwork(ip)) return this.nak(request, 'requested address is not on this network');
    const held = this.table.get(client.key);
    if (held?.live && held.lease.ip !== ip) return this.nak(request, 'requested address is not the one leased to this client');
    if (!this.assignable(ip, client)) return this.nak(request, 'requested address is not available');
    const lease = this.leaseFor(client, ip, 'bound', now + this.config.leaseTimeSec * 1000);
    if (!this.table.put(client.key, lease)) return this.drop('lease-table-full');
    this.counters.acks++;
    this.changed({ ...lease }, 'granted');
    return this.reply(request, DhcpMessageType.Ack, ip, this.leaseOptions(request));
  }

  private decline(request: DhcpMessage, client: Client, now: number): DhcpReply | null {
    const serverId = getServerId(request.options);
    if (serverId !== undefined && serverId !== this.config.serverIp) return this.drop('other-server');
    const ip = getRequestedIp(request.options);
    const held = this.table.get(client.key);
    // Only the holder may decline an address, so a guest cannot take others' addresses out of use.
    if (ip === undefined || held === undefined || held.lease.ip !== ip) return this.drop('decline-not-leased');
    // RFC 2131 §4.3.3: "The server MUST mark the network address as not available".
    if (!this.table.decline(ip, now + DECLINE_HOLD_MS)) return this.drop('decline-table-full');
    this.table.forget(client.key);
    this.counters.declines++;
    this.save();
    return null;
  }

  private release(request: DhcpMessage, client: Client, now: number): DhcpReply | null {
    const serverId = getServerId(request.options);
    if (serverId !== undefined && serverId !== this.config.serverIp) return this.drop('other-server');
    const held = this.table.get(client.key);
    // RFC 2131 §4.3.4: the lease is identified by "the 'client identifier' or 'chaddr' and network address" (ciaddr).
    if (held === undefined || !held.live || held.lease.ip !== (request.ciaddr ?? 0)) return this.drop('release-not-leased');
    const ended = this.table.end(client.key, now)!;
    this.counters.releases++;
    this.changed(ended, 'released');
    return null;
  }

  private inform(request: DhcpMessage, source: { ip: number }): DhcpReply | null {
    // RFC 2131 §4.3.5: the ACK goes "directly to the address given in the 'ciaddr' field".
    const address = (request.ciaddr ?? 0) !== 0 ? request.ciaddr! : source.ip;
    if (address === 0) return this.drop('inform-no-address');
    this.counters.informs++;
    // RFC 2131 §4.3.5: "The server MUST NOT send a lease expiration time to the client and SHOULD NOT fill in 'yiaddr'."
    const reply = this.reply(request, DhcpMessageType.Ack, 0, this.configFor(request));
    return { ...reply, dstIp: address, dstMac: formatMac(request.chaddr), broadcast: false };
  }

  // ---- Addresses

  /** The address to offer a client, or undefined when the pool is exhausted. */
  private choose(client: Client, requested: number | undefined): number | undefined {
    const fixed = this.fixedByMac.get(client.mac);
    if (fixed !== undefined) return fixed;
    for (const ip of this.candidates(client, requested)) {
      if (ip !== undefined && this.assignable(ip, client)) return ip;
    }
    return undefined;
  }

  /** Addresses worth trying, best first; `choose` keeps the first assignable one. */
  private *candidates(client: Client, requested: number | undefined): Iterable<number | undefined> {
    yield this.table.get(client.key)?.lease.ip;
    yield requested;
    yield this.table.formerAddressOf(client.mac, client.key);
    for (let ip = this.config.poolStart; ip <= this.config.poolEnd; ip++) if (this.table.unrecorded(ip)) yield ip;
    yield* this.table.reusable();
  }

  /** True when `ip` may be leased to `client` now. */
  private assignable(ip: number, client: Client): boolean {
    const fixed = this.fixedByMac.get(client.mac);
    if (fixed !== undefined) return ip === fixed;
    return (
      ip >= this.config.poolStart &&
      ip <= this.config.poolEnd &&
      !this.reserved.has(ip) &&
      !this.fixedIps.has(ip) &&
      !this.table.isDeclined(ip) &&
      !this.table.heldByOther(ip, client.key)
    );
  }

  private inNetwork(ip: number): boolean {
    return ((ip & this.config.netmask) >>> 0) === this.config.network && ip !== this.config.network && ip !== this.broadcastIp;
  }

  private leaseFor(client: Client, ip: number, state: Lease['state'], expiresAt: number): Lease {
    const lease: Lease = { mac: client.mac, ip, expiresAt, state };
    const hostname = client.hostname ?? this.table.get(client.key)?.lease.hostname;
    if (hostname !== undefined) lease.hostname = hostname;
    if (client.clientId !== undefined) lease.clientId = client.clientId;
    return lease;
  }

  // ---- Replies

  /** The reply's fields (RFC 2131 Table 3) and its destination (§4.1). */
  private reply(request: DhcpMessage, type: number, yiaddr: number, options: DhcpOptions): DhcpReply {
    const flags = request.flags ?? 0;
    const ciaddr = request.ciaddr ?? 0;
    const isAck = type === DhcpMessageType.Ack;
    const reply: DhcpMessage = {
      op: DhcpOp.BootReply,
      htype: DHCP_HTYPE_ETHERNET,
      xid: request.xid,
      flags,
      ciaddr: isAck ? ciaddr : 0,
      yiaddr,
      giaddr: request.giaddr ?? 0,
      chaddr: new Uint8Array(request.chaddr),
      options: new Map([[DhcpOption.MessageType, u8Option(type)], ...options]),
    };
    const boot = this.config.boot;
    if (boot !== undefined && type !== DhcpMessageType.Nak) {
      reply.siaddr = boot.nextServer;
      reply.file = boot.file;
    }
    // RFC 2131 §4.1: "If the 'giaddr' field is zero and the 'ciaddr' field is nonzero, then the server unicasts
    // DHCPOFFER and DHCPACK messages to the address in 'ciaddr'. If 'giaddr' is zero and 'ciaddr' is zero, and the
    // broadcast bit is set, then the server broadcasts ... Otherwise, the server unicasts ... to the client's
    // hardware address and 'yiaddr' address." A NAK is always broadcast.
    if (type === DhcpMessageType.Nak || (ciaddr === 0 && (flags & DHCP_BROADCAST_FLAG) !== 0)) {
      return { reply, dstIp: LIMITED_BROADCAST, dstMac: BROADCAST_MAC_TEXT, broadcast: true };
    }
    return { reply, dstIp: ciaddr !== 0 ? ciaddr : yiaddr, dstMac: formatMac(request.chaddr), broadcast: false };
  }

  private nak(request: DhcpMessage, why: string): DhcpReply {
    this.counters.naks++;
    // RFC 2131 Table 3: a DHCPNAK carries the server identifier (MUST) and a message (SHOULD), nothing else.
    const options: DhcpOptions = new Map([
      [DhcpOption.ServerIdentifier, u32Option(this.config.serverIp)],
      [DhcpOption.Message, stringOption(why)],
    ]);
    return this.reply(request, DhcpMessageType.Nak, 0, options);
  }

  /** Options of an OFFER or ACK of a lease: server id and times first, then the configuration. */
  private leaseOptions(request: DhcpMessage): DhcpOptions {
    const seconds = this.config.leaseTimeSec;
    return new Map([
      [DhcpOption.ServerIdentifier, u32Option(this.config.serverIp)],
      [DhcpOption.LeaseTime, u32Option(seconds)],
      // RFC 2131 §4.4.5: "T1 defaults to (0.5 * duration_of_lease). T2 defaults to (0.875 * duration_of_lease)."
      [DhcpOption.RenewalTime, u32Option(Math.floor(seconds * 0.5))],
      [DhcpOption.RebindingTime, u32Option(Math.floor(seconds * 0.875))],
      ...this.configFor(request),
    ]);
  }

  /**
   * The configured options, those the client asked for (option 55) first in
   * its order, then the rest; for an INFORM also the server identifier.
   */
  private configFor(request: DhcpMessage): DhcpOptions {
    const out: DhcpOptions = new Map();
    if (getMessageType(request.options) === DhcpMessageType.Inform) {
      out.set(DhcpOption.ServerIdentifier, u32Option(this.config.serverIp));
    }
    for (const code of getParameterRequestList(request.options) ?? []) {
      const value = this.configOptions.get(code) ?? this.askedOnlyOptions.get(code);
      if (value !== undefined) out.set(code, value);
    }
    for (const [code, value] of this.configOptions) if (!out.has(code)) out.set(code, value);
    return out;
  }

  private buildConfigOptions(): DhcpOptions {
    const c = this.config;
    const out: DhcpOptions = new Map();
    out.set(DhcpOption.SubnetMask, u32Option(c.netmask));
    if (c.router !== undefined) out.set(DhcpOption.Router, addressesOption([c.router]));
    if (c.dns !== undefined && c.dns.length > 0) out.set(DhcpOption.DomainNameServer, addressesOption(c.dns));
    if (c.domainName !== undefined && c.domainName !== '') out.set(DhcpOption.DomainName, stringOption(c.domainName));
    if (c.mtu !== undefined) out.set(DhcpOption.InterfaceMtu, u16Option(c.mtu));
    out.set(DhcpOption.BroadcastAddress, u32Option(this.broadcastIp));
    if (c.searchDomains !== undefined && c.searchDomains.length > 0) {
      out.set(DhcpOption.DomainSearch, domainSearchOption(c.searchDomains));
    }
    return out;
  }

  // ---- Bookkeeping

  private drop(reason: string): null {
    this.drops[reason] = (this.drops[reason] ?? 0) + 1;
    return null;
  }

  private expire(now: number): void {
    const expired = this.table.sweep(now);
    if (expired.length === 0) return;
    this.save();
    for (const lease of expired) this.onLease(lease, 'expired');
  }

  private changed(lease: Lease, event: LeaseEvent): void {
    this.save();
    this.onLease(lease, event);
  }

  private save(): void {
    this.store?.save(this.table.persistent());
  }

  private restore(): void {
    if (this.store === undefined) return;
    const now = this.clock();
    for (const lease of this.store.load()) {
      // A store is a file a person may have edited: keep only leases that still fit this configuration.
      const mac = typeof lease.mac === 'string' ? normalizeMac(lease.mac) : undefined;
      if (mac === undefined || !Number.isFinite(lease.expiresAt) || lease.state !== 'bound') continue;
      const clientId = typeof lease.clientId === 'string' && /^[0-9a-f]{4,}$/.test(lease.clientId) ? lease.clientId : undefined;
      const client: Client = { key: leaseKey(mac, clientId), mac, clientId };
      if (!Number.isInteger(lease.ip) || !this.assignable(lease.ip, client)) continue;
      const kept: Lease = { mac, ip: lease.ip, expiresAt: lease.expiresAt, state: 'bound' };
      if (typeof lease.hostname === 'string' && HOST_LABEL.test(lease.hostname)) kept.hostname = lease.hostname;
      if (clientId !== undefined) kept.clientId = clientId;
      this.table.restore(client.key, kept, now);
    }
  }

  private validate(): void {
    const c = this.config;
    const fail = (what: string): never => {
      throw new RangeError(`DHCP server configuration: ${what}`);
    };
    if (!Number.isInteger(c.leaseTimeSec) || c.leaseTimeSec < 1) fail(`lease time ${c.leaseTimeSec} is not a positive number of seconds`);
    // RFC 2132 §5.1: "The minimum legal value for the MTU is 68."
    if (c.mtu !== undefined && (!Number.isInteger(c.mtu) || c.mtu < 68 || c.mtu > 0xffff)) fail(`MTU ${c.mtu} is not 68-65535`);
    if (((c.network & c.netmask) >>> 0) !== c.network) fail('network address has host bits set');
    if (!this.inNetwork(c.serverIp)) fail('server address is not on the network');
    if (c.poolStart > c.poolEnd || !this.inNetwork(c.poolStart) || !this.inNetwork(c.poolEnd)) {
      fail('pool is empty or not on the network');
    }
    for (const { mac, ip } of c.fixed ?? []) {
      if (normalizeMac(mac) === undefined) fail(`fixed address MAC "${mac}" is not a MAC address`);
      if (!this.inNetwork(ip)) fail(`fixed address for ${mac} is not on the network`);
    }
  }
}
