/**
 * UDP through the NAT: one host socket per guest flow.
 *
 * - A datagram from the guest to (dst, dport) opens a flow: a host UDP socket
 *   connected to the host-side address (dst, or 127.0.0.1 for the gateway when
 *   the host's loopback is reachable). Connected, so that an ICMP port
 *   unreachable from the host shows up as ECONNREFUSED and is mapped back to
 *   the guest as ICMP port unreachable (RFC 792) — at the price of
 *   endpoint-dependent mapping (RFC 4787 REQ-1 prefers independent; noted in
 *   docs/conformance.md).
 * - Replies come back with the guest-visible address as source.
 * - Flows idle for IDLE_TIMEOUT_MS close (RFC 4787 REQ-5: at least 2 min);
 *   the table is bounded by `maxFlows`: beyond it, new flows are refused and
 *   counted.
 */
import { createSocket, type Socket } from 'node:dgram';
import { formatIpv4 } from '../wire/address.js';
import { Icmpv4Type, Icmpv4UnreachableCode } from '../wire/icmpv4.js';
import type { Ipv4View } from '../wire/ipv4.js';
import { UDP_HEADER_LENGTH, type UdpView } from '../wire/udp.js';
import type { Clock, GuestLink } from '../stack/guest-link.js';

export const DEFAULT_MAX_UDP_FLOWS = 4096;
/** RFC 4787 REQ-5: "MUST NOT expire in less than two minutes"; 5 min is its recommendation. */
export const IDLE_TIMEOUT_MS = 5 * 60_000;
/**
 * Kernel buffer of each flow's socket, both ways (a ceiling, not an
 * allocation; capped by net.core.rmem_max/wmem_max). The default ~200 KiB
 * overflows within 2 ms of a 1 Gbit/s stream while JS is busy elsewhere.
 */
export const UDP_SOCKET_BUFFER = 1 << 20;
/** Datagrams held while a flow's socket connects. */
const MAX_QUEUED_PER_FLOW = 32;
const SWEEP_INTERVAL_MS = 10_000;

/** What the NAT needs of the gateway besides the link. */
export interface NatLink extends GuestLink {
  sendIcmpError(original: Uint8Array, type: number, code: number, source?: number): void;
  /** Emit a UDP datagram to a guest; false if it was dropped (too big). */
  sendUdp(source: number, sourcePort: number, destination: number, destinationPort: number, payload: Uint8Array): boolean;
  nextIdentification(): number;
}

interface Flow {
  key: string;
  guestIp: number;
  guestPort: number;
  /** Address and port the guest sent to, and sees replies from. */
  remoteIp: number;
  remotePort: number;
  socket: Socket;
  connected: boolean;
  queue: Buffer[];
  lastUsed: number;
  /** The start of the guest's latest datagram, quoted in ICMP errors. */
  lastHeader: Uint8Array;
}

export interface UdpNatOptions {
  link: NatLink;
  clock?: Clock;
  maxFlows?: number;
}

export class UdpNat {
  readonly counters = { opened: 0, closed: 0, datagramsToHost: 0, datagramsToGuest: 0, refused: 0 };
  readonly drops: Record<string, number> = {};
  private readonly flows = new Map<string, Flow>();
  private readonly clock: Clock;
  private readonly maxFlows: number;
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly options: UdpNatOptions) {
    this.clock = options.clock ?? Date.now;
    this.maxFlows = options.maxFlows ?? DEFAULT_MAX_UDP_FLOWS;
    this.sweeper = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS).unref();
  }

  get flowCount(): number {
    return this.flows.size;
  }

  /**
   * A checked UDP datagram from the guest to outside; `hostAddress` is where
   * it really goes (absent: its own destination, formatted only for a new flow).
   */
  fromGuest(ip: Ipv4View, udp: UdpView, hostAddress?: string): void {
    const key = `${ip.source}:${udp.sourcePort}>${ip.destination}:${udp.destinationPort}`;
    let flow = this.flows.get(key);
    if (!flow) {
      if (this.flows.size >= this.maxFlows) return this.drop('udp:flow-table-full');
      flow = this.open(key, ip, udp, hostAddress ?? formatIpv4(ip.destination));
    }
    flow.lastUsed = this.clock();
    flow.lastHeader = ip.bytes.slice(0, ip.headerLength + UDP_HEADER_LENGTH);
    // The payload lives in the transport's buffer, reused after this call: copy it once.
    const payload = Buffer.from(udp.payload);
    if (!flow.connected) {
      if (flow.queue.length >= MAX_QUEUED_PER_FLOW) return this.drop('udp:connect-queue-full');
      flow.queue.push(payload);
      return;
    }
    this.sendToHost(flow, payload);
  }

  private open(key: string, ip: Ipv4View, udp: UdpView, hostAddress: string): Flow {
    const socket = createSocket({ type: 'udp4', recvBufferSize: UDP_SOCKET_BUFFER, sendBufferSize: UDP_SOCKET_BUFFER });
    const flow: Flow = {
      key,
      guestIp: ip.source,
      guestPort: udp.sourcePort,
      remoteIp: ip.destination,
      remotePort: udp.destinationPort,
      socket,
      connected: false,
      queue: [],
      lastUsed: this.clock(),
      lastHeader: new Uint8Array(0),
    };
    this.flows.set(key, flow);
    this.counters.opened++;
    socket.on('message', (message) => this.toGuest(flow, message));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') {
        this.counters.refused++;
        if (flow.lastHeader.length) this.options.link.sendIcmpError(flow.lastHeader, Icmpv4Type.DestinationUnreachable, Icmpv4UnreachableCode.PortUnreachable, flow.remoteIp);
        return;
      }
      this.drop(`udp:host-${err.code ?? 'error'}`);
      this.close(flow);
    });
    socket.connect(flow.remotePort, hostAddress, () => {
      flow.connected = true;
      for (const payload of flow.queue.splice(0)) this.sendToHost(flow, payload);
    });
    return flow;
  }

  private sendToHost(flow: Flow, payload: Buffer): void {
    this.counters.datagramsToHost++;
    flow.socket.send(payload, (err) => {
      if (err && (err as NodeJS.ErrnoException).code !== 'ECONNREFUSED') this.drop('udp:send-failed');
    });
  }

  private toGuest(flow: Flow, message: Buffer): void {
    flow.lastUsed = this.clock();
    if (this.options.link.sendUdp(flow.remoteIp, flow.remotePort, flow.guestIp, flow.guestPort, message)) this.counters.datagramsToGuest++;
  }

  /** Close every flow of the guest at `guestIp` (it left the network). */
  closeGuest(guestIp: number): void {
    for (const flow of [...this.flows.values()]) if (flow.guestIp === guestIp >>> 0) this.close(flow);
  }

  /** Close flows idle for longer than IDLE_TIMEOUT_MS. */
  sweep(now = this.clock()): void {
    for (const flow of this.flows.values()) if (now - flow.lastUsed > IDLE_TIMEOUT_MS) this.close(flow);
  }

  private close(flow: Flow): void {
    if (this.flows.get(flow.key) !== flow) return;
    this.flows.delete(flow.key);
    this.counters.closed++;
    flow.socket.close();
  }

  private drop(reason: string): void {
    this.drops[reason] = (this.drops[reason] ?? 0) + 1;
  }

  stats() {
    return { flows: this.flows.size, ...this.counters, drops: { ...this.drops } };
  }

  /** Release every socket and the sweep timer. */
  shutdown(): void {
    clearInterval(this.sweeper);
    for (const flow of [...this.flows.values()]) this.close(flow);
  }
}
