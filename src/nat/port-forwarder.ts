/**
 * Port forwards: host listeners whose connections and datagrams are relayed
 * to a guest, as VirtualBox's NAT `--nat-pf` rules.
 *
 * - TCP: a listener per rule; each accepted socket goes to the TCP NAT, which
 *   opens the connection to the guest.
 * - UDP: a host socket per rule (src/transport/udp-socket.ts: batches both
 *   ways, buffers shared by every rule); each client (address, port) is a
 *   mapping that the guest's replies find their way back through. Mappings
 *   idle for MAPPING_IDLE_MS go; at most MAX_UDP_MAPPINGS per rule (beyond:
 *   dropped and counted).
 * - The guest sees the client's real address, except for clients on the
 *   host's loopback, which appear as the gateway (the guest cannot route
 *   127.0.0.0/8 back).
 * - Splicing (`--nat-splice<N> on`, namespace guests): a TCP client on the
 *   host's loopback is joined in the kernel to a connection made inside the
 *   guest's namespace to the guest's address — pasta's shortcut: no frames,
 *   no NAT state, no JS per byte. It does not cross the NIC (no capture, no
 *   NIC counters) and the guest sees its own address as the client. Only
 *   for a rule to the address of a guest that splices (`spliceNetns` finds
 *   its namespace); when that is not local in the namespace (not configured
 *   yet), the connection takes the NIC's path as usual.
 * - `apply(rules)` opens what is new before closing what went: if one
 *   listener cannot bind (port in use), everything it opened is closed again
 *   and the error says which port — no rule is half-applied.
 */
import { VnetError } from '../errors.js';
import { formatIpv4, parseIpv4 } from '../wire/address.js';
import type { Ipv4View } from '../wire/ipv4.js';
import type { UdpView } from '../wire/udp.js';
import { listenNetHostTcp, type AcceptedHostSocket, type ListenHostTcp } from './tcp/host-stream.js';
import {
  MAX_UDP_PAYLOAD,
  sendUdpRunToGuest,
  sendUdpToGuest,
  UDP_SOCKET_BUFFER,
  type HostUdpBatch,
  type HostUdpSocket,
  type HostUdpSockets,
  type NatLink,
  type OpenHostUdpSockets,
} from './udp-nat.js';

/** A forward rule (the model's PortForward has this shape). Empty hostIp = 127.0.0.1; empty guestIp = the default guest. */
export interface PortForward {
  name: string;
  protocol: 'tcp' | 'udp';
  hostIp: string;
  hostPort: number;
  guestIp: string;
  guestPort: number;
}

export const MAX_UDP_MAPPINGS = 1024;
/** Spliced pairs open at once at most (four fds each); beyond, connections take the NIC and its flow-table bound. */
export const MAX_SPLICED_PAIRS = 16384;
export const MAPPING_IDLE_MS = 5 * 60_000;

/** Where accepted TCP connections go (the TCP NAT). */
export interface TcpForwardTarget {
  forward(accepted: AcceptedHostSocket, guestIp: number, guestPort: number, sourceIp: number, sourcePort: number): void;
}

export interface PortForwarderOptions {
  link: NatLink;
  tcp: TcpForwardTarget;
  /** The gateway's address: what loopback clients look like to the guest. */
  gatewayIp: number;
  /** The guest address a rule with an empty guest IP forwards to. */
  defaultGuestIp: () => number;
  /** Opens the host UDP sockets (the daemon passes `openNativeUdpSockets` from src/transport/udp-socket.ts). */
  openUdpSockets: OpenHostUdpSockets;
  /** Opens TCP listeners; default `listenNetHostTcp` (a net.Server; the daemon passes the addon's). */
  listenTcp?: ListenHostTcp;
  /** The network namespace (an open fd) of the guest at `guestIp` while splicing is on for it; else undefined. */
  spliceNetns?: (guestIp: number) => number | undefined;
}

/** A client of a UDP forward, where the guest's replies go. */
interface UdpMapping {
  /** IPv4, or 0 for an IPv6 client (then `address6`). */
  address: number;
  port: number;
  address6: Uint8Array | undefined;
  lastUsed: number;
}

interface Listener {
  rule: PortForward;
  key: string;
  close(): void;
  /** UDP only: client mappings by the guest-visible address and port (`mappingKey`). */
  mappings?: Map<number, UdpMapping>;
  socket?: HostUdpSocket;
}

const listenerKey = (r: PortForward): string => `${r.protocol}:${r.hostIp || '127.0.0.1'}:${r.hostPort}:${r.guestIp}:${r.guestPort}`;
/** A UDP mapping's key: the address and port the guest sees the client as (48 bits: exact in a number). */
const mappingKey = (address: number, port: number): number => (address >>> 0) * 0x10000 + port;
const MAPPING_SWEEP_MS = 30_000;

export class PortForwarder {
  /** `spliced`: TCP connections joined in the kernel, `splicedOpen` of them still open, `spliceErrors` that ended broken. */
  readonly counters = { accepted: 0, spliced: 0, splicedOpen: 0, spliceErrors: 0, udpToGuest: 0, udpSuperDatagramsToGuest: 0, udpToHost: 0 };
  readonly drops: Record<string, number> = {};
  private listeners = new Map<string, Listener>();
  /** UDP rules among `listeners` (the guest-side fast path checks it). */
  private udpListeners = 0;
  /** Opened with the first UDP rule. */
  private udpSockets: HostUdpSockets | undefined;

  constructor(private readonly options: PortForwarderOptions) {}

  /** Make the open listeners match `rules` (all or nothing). */
  async apply(rules: PortForward[]): Promise<void> {
    const wanted = new Map(rules.map((r) => [listenerKey(r), r]));
    const opened: Listener[] = [];
    try {
      for (const [key, rule] of wanted) {
        if (!this.listeners.has(key)) opened.push(await this.open(rule, key));
      }
    } catch (err) {
      for (const l of opened) l.close();
      throw err;
    }
    for (const [key, listener] of this.listeners) {
      if (!wanted.has(key)) {
        listener.close();
        this.listeners.delete(key);
      }
    }
    for (const l of opened) this.listeners.set(l.key, l);
    this.udpListeners = [...this.listeners.values()].filter((l) => l.rule.protocol === 'udp').length;
  }

  get rules(): PortForward[] {
    return [...this.listeners.values()].map((l) => l.rule);
  }

  /** A UDP datagram from a guest: if it answers a forwarded client, send it there and return true. */
  fromGuestUdp(ip: Ipv4View, udp: UdpView): boolean {
    // Every UDP datagram of every guest passes here: nothing to build without UDP forwards.
    if (this.udpListeners === 0) return false;
    const visible = mappingKey(ip.destination, udp.destinationPort);
    for (const listener of this.listeners.values()) {
      const mapping = listener.mappings?.get(visible);
      if (!mapping || udp.sourcePort !== listener.rule.guestPort || ip.source !== this.guestIp(listener.rule)) continue;
      mapping.lastUsed = Date.now();
      listener.socket!.send(udp.payload, mapping.address, mapping.port, mapping.address6);
      this.counters.udpToHost++;
      return true;
    }
    return false;
  }

  stats() {
    return { rules: this.rules.map((r) => r.name), ...this.counters, drops: { ...this.drops } };
  }

  close(): void {
    for (const l of this.listeners.values()) l.close();
    this.listeners.clear();
    this.udpListeners = 0;
  }

  private guestIp(rule: PortForward): number {
    return rule.guestIp ? parseIpv4(rule.guestIp) : this.options.defaultGuestIp();
  }

  private open(rule: PortForward, key: string): Promise<Listener> {
    return rule.protocol === 'tcp' ? this.openTcp(rule, key) : this.openUdp(rule, key);
  }

  private async openTcp(rule: PortForward, key: string): Promise<Listener> {
    const listen = this.options.listenTcp ?? listenNetHostTcp;
    try {
      const listener = await listen(rule.hostIp || '127.0.0.1', rule.hostPort, (accepted) => {
        this.counters.accepted++;
        const guestIp = this.guestIp(rule);
        if (this.spliced(accepted, guestIp, rule.guestPort)) return;
        const source = this.visibleSourceOf(accepted.peerIp);
        this.options.tcp.forward(accepted, guestIp, rule.guestPort, source, accepted.peerPort);
      });
      return { rule, key, close: () => listener.close() };
    } catch (err) {
      throw bindError(rule, err as Error);
    }
  }

  /** A loopback client joined in the kernel to the guest inside its namespace, when splicing is on and that works. */
  private spliced(accepted: AcceptedHostSocket, guestIp: number, guestPort: number): boolean {
    if (accepted.peerIp >>> 24 !== 127 || !accepted.splice) return false;
    // Only into the namespace of the guest that has the address: another would be dialled from inside it, out of its NIC.
    const netns = this.options.spliceNetns?.(guestIp);
    if (netns === undefined || this.counters.splicedOpen >= MAX_SPLICED_PAIRS) return false;
    this.counters.splicedOpen++;
    const taken = accepted.splice(formatIpv4(guestIp), guestPort, netns, (error) => {
      this.counters.splicedOpen--;
      if (error !== undefined) this.counters.spliceErrors++;
    });
    if (taken) this.counters.spliced++;
    else this.counters.splicedOpen--;
    return taken;
  }

  private openUdp(rule: PortForward, key: string): Promise<Listener> {
    const host = rule.hostIp || '127.0.0.1';
    const mappings = new Map<number, UdpMapping>();
    let socket: HostUdpSocket;
    try {
      this.udpSockets ??= this.options.openUdpSockets(MAX_UDP_PAYLOAD);
      socket = this.udpSockets.open(
        { bindAddress: host, bindPort: rule.hostPort, bufferBytes: UDP_SOCKET_BUFFER },
        {
          received: (batch) => this.fromHost(rule, mappings, batch),
          // An unconnected socket hears of no ICMP errors; a broken one has nothing more to say.
          error: () => {},
          dropped: (reason, count) => this.drop(reason, count),
        },
      );
    } catch (err) {
      return Promise.reject(bindError(rule, err as Error));
    }
    const sweeper = setInterval(() => {
      const now = Date.now();
      for (const [k, m] of mappings) if (now - m.lastUsed > MAPPING_IDLE_MS) mappings.delete(k);
    }, MAPPING_SWEEP_MS).unref();
    const close = (): void => {
      clearInterval(sweeper);
      socket.close();
    };
    return Promise.resolve({ rule, key, mappings, socket, close });
  }

  /**
   * Datagrams from clients of a UDP rule: each (re)sets its client's mapping
   * and goes to the guest; a run from one IPv4 client goes as one
   * super-datagram where the guest's NIC takes them (sendUdpRunToGuest).
   */
  private fromHost(rule: PortForward, mappings: Map<number, UdpMapping>, batch: HostUdpBatch): void {
    const guestIp = this.guestIp(rule);
    const link = this.options.link;
    const batching = batch.count > 1 && link.takesUdpSegmentation(guestIp);
    const now = Date.now();
    for (let i = 0; i < batch.count; ) {
      const address = batch.address(i);
      const port = batch.port(i);
      const source = this.visibleSourceOf(address);
      const visible = mappingKey(source, port);
      let mapping = mappings.get(visible);
      if (!mapping) {
        if (mappings.size >= MAX_UDP_MAPPINGS) {
          this.drop('udp:forward-mappings-full');
          i++;
          continue;
        }
        mapping = { address, port, address6: undefined, lastUsed: now };
        mappings.set(visible, mapping);
      }
      // Clients that look alike to the guest (two on loopback with one port) share a mapping: the latest wins.
      mapping.address = address;
      mapping.port = port;
      mapping.address6 = address === 0 ? Uint8Array.from(batch.address6(i)) : undefined;
      mapping.lastUsed = now;
      let run = i + 1;
      while (batching && address !== 0 && run < batch.count && batch.address(run) === address && batch.port(run) === port) run++;
      const sent = run > i + 1 ? sendUdpRunToGuest(link, batch, i, run, source, port, guestIp, rule.guestPort) : 0;
      if (sent === 0) sendUdpToGuest(link, batch.payload(i), source, port, guestIp, rule.guestPort);
      else this.counters.udpSuperDatagramsToGuest++;
      this.counters.udpToGuest += Math.max(1, sent);
      i += Math.max(1, sent);
    }
  }

  /** What a client at `address` (IPv4; 0 for IPv6) looks like to the guest: loopback and IPv6 clients as the gateway. */
  private visibleSourceOf(address: number): number {
    const loopback = address >>> 24 === 127;
    return address === 0 || loopback ? this.options.gatewayIp : address; // IPv6: the guest network is IPv4
  }

  private drop(reason: string, count = 1): void {
    this.drops[reason] = (this.drops[reason] ?? 0) + count;
  }
}

function bindError(rule: PortForward, err: Error): VnetError {
  const code = (err as NodeJS.ErrnoException).code;
  const where = `${rule.protocol} ${rule.hostIp || '127.0.0.1'}:${rule.hostPort} (rule '${rule.name}')`;
  if (code === 'EADDRINUSE') return new VnetError('VNET_ERR_PORT_IN_USE', `host port ${where} is already in use`, { cause: err });
  if (code === 'EACCES') return new VnetError('VNET_ERR_PERMISSION', `not allowed to bind host port ${where}`, { cause: err });
  return new VnetError('VNET_ERR_HOST', `cannot bind host port ${where}: ${err.message}`, { cause: err });
}

