/**
 * ICMP echo through the NAT: guests can ping outside hosts (VirtualBox's NAT
 * cannot without root). One host ICMP socket serves every guest of the NAT.
 *
 * Theory of operation
 * - Socket: a ping socket (SOCK_DGRAM/IPPROTO_ICMP, needs
 *   net.ipv4.ping_group_range to hold our gid) or else a raw socket (needs
 *   CAP_NET_RAW), opened on the first request (native/src/icmp.c). A ping
 *   socket's kernel writes its own identifier into every request and hands
 *   us only the replies that carry it; on a raw socket we write
 *   `hostIdentifier` (random per socket) and skip replies without it.
 * - Flows: (guest address, guest identifier, destination), idle for
 *   IDLE_TIMEOUT_MS then forgotten, at most `maxFlows` (beyond: dropped and
 *   counted). A flow has no socket of its own; it exists to bound the state
 *   and to say where replies go.
 * - fromGuest: each request leaves the host toward `hostAddress` with the
 *   guest's payload and the next host sequence number. The sequence number is
 *   what tells flows apart, since every request of a ping socket has the same
 *   identifier: `pending[hostSeq]` (a ring of 65536 slots, so its own bound)
 *   remembers the flow, the guest's sequence number and the request length.
 * - toGuest: a reply whose sequence number is pending, from the address its
 *   request went to, within the idle timeout, goes to the guest from the
 *   address the guest pinged, with the guest's identifier and sequence
 *   number, the same payload, fresh checksums and TTL 64. Duplicates pass.
 * - Errors: "destination unreachable" and "time exceeded" about one of our
 *   requests (raw: quoted in the message; ping: the socket's error queue) go
 *   to the guest as the same error about its own request, from the gateway.
 *   A send the host refuses at once (no route: ENETUNREACH, EHOSTUNREACH)
 *   becomes "net/host unreachable" from the gateway (RFC 1812 §5.2.7.1), and a
 *   flow opened for it is forgotten.
 * - Nothing here throws on what guests or hosts send: odd input is counted in
 *   `drops` and dropped.
 *
 * Limits: no IPv4 options or TTL of the guest's request are carried over
 * (the host picks its own). Replies longer than the guest MTU go in
 * fragments (the gateway cuts them), as requests that came in fragments
 * were reassembled before they reached us.
 */
import { LINK_HEADROOM, type Clock } from '../stack/guest-link.js';
import { parseIpv4 } from '../wire/address.js';
import { get16, set16 } from '../wire/bytes.js';
import {
  emitIcmpv4,
  ICMPV4_HEADER_LENGTH,
  Icmpv4Type,
  Icmpv4UnreachableCode,
  Icmpv4View,
} from '../wire/icmpv4.js';
import { emitIpv4, IpProtocol, IPV4_HEADER_LENGTH, Ipv4View } from '../wire/ipv4.js';
import type { NatLink } from './udp-nat.js';

export const DEFAULT_MAX_ICMP_FLOWS = 1024;
/** Echo flows are short-lived: forgotten after a minute without a request or reply. */
export const IDLE_TIMEOUT_MS = 60_000;
const SWEEP_INTERVAL_MS = 10_000;
/** After the host refused us a socket, wait this long before asking again. */
const REOPEN_DELAY_MS = 10_000;
const TTL = 64;
/** Host sequence numbers, one pending slot each. */
const SEQUENCE_SPACE = 0x10000;
const IDENTIFIER = 4;
const SEQUENCE = 6;
const CHECKSUM = 2;

/** The host's ICMP socket, as the NAT uses it; src/transport/icmp-socket.ts has the real one. */
export interface IcmpEchoSocket {
  readonly kind: 'ping' | 'raw';
  /** Sends an ICMP message to `address`; returns undefined, or the errno name of a failure (ENETUNREACH). */
  send(message: Uint8Array, address: number): string | undefined;
  /** Closes the socket; no handler runs after it. */
  close(): void;
}

/** What an IcmpEchoSocket reports. Bytes are valid only during the call. */
export interface IcmpEchoSocketHandlers {
  /** An ICMP message from `address` (without its IP header). */
  message(message: Uint8Array, address: number): void;
  /** Ping sockets: ICMP error `type`/`code` about our request `quoted` (its ICMP bytes), sent to `destination`. */
  error(quoted: Uint8Array, destination: number, type: number, code: number): void;
  /** The socket broke and is closed. */
  failed(reason: string): void;
}

export type OpenIcmpEchoSocket = (handlers: IcmpEchoSocketHandlers) => IcmpEchoSocket;

export interface IcmpEchoNatOptions {
  link: NatLink;
  clock?: Clock;
  maxFlows?: number;
  /** Opens the host socket (the daemon passes `openNativeIcmpSocket` from src/transport/icmp-socket.ts). */
  openSocket: OpenIcmpEchoSocket;
}

interface Flow {
  key: string;
  guestIp: number;
  guestIdentifier: number;
  /** Where the guest sent, and where its replies seem to come from. */
  remoteIp: number;
  /** Where the requests really go (the gateway's is 127.0.0.1). */
  hostIp: number;
  lastUsed: number;
}

export class IcmpEchoNat {
  readonly counters = { opened: 0, closed: 0, requestsToHost: 0, repliesToGuest: 0, errorsToGuest: 0 };
  readonly drops: Record<string, number> = {};
  private readonly flows = new Map<string, Flow>();
  private readonly clock: Clock;
  private readonly maxFlows: number;
  private readonly openSocket: OpenIcmpEchoSocket;
  private readonly sweeper: NodeJS.Timeout;
  private socket: IcmpEchoSocket | undefined;
  private socketError: string | undefined;
  private reopenAt = 0;
  /** Identifier of our requests on a raw socket (a ping socket's kernel picks its own). */
  private hostIdentifier = 0;
  private nextSequence = 0;
  private readonly pendingFlow: (Flow | undefined)[] = new Array<Flow | undefined>(SEQUENCE_SPACE);
  private readonly pendingSequence = new Uint16Array(SEQUENCE_SPACE);
  private readonly pendingLength = new Uint16Array(SEQUENCE_SPACE);
  private readonly pendingTime = new Float64Array(SEQUENCE_SPACE);
  private isShutdown = false;

  constructor(private readonly options: IcmpEchoNatOptions) {
    this.clock = options.clock ?? Date.now;
    this.maxFlows = options.maxFlows ?? DEFAULT_MAX_ICMP_FLOWS;
    this.openSocket = options.openSocket;
    this.sweeper = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS).unref();
  }

  get flowCount(): number {
    return this.flows.size;
  }

  /**
   * A checked ICMP echo request from the guest to outside; `hostAddress` is
   * where it really goes. The views are valid only during the call.
   */
  fromGuest(ip: Ipv4View, icmp: Icmpv4View, hostAddress: string): void {
    try {
      this.forward(ip, icmp, hostAddress);
    } catch {
      this.drop('icmp:bad-request');
    }
  }

  private forward(ip: Ipv4View, icmp: Icmpv4View, hostAddress: string): void {
    if (this.isShutdown) return this.drop('icmp:shut-down');
    if (icmp.type !== Icmpv4Type.EchoRequest || icmp.code !== 0) return this.drop('icmp:not-echo-request');
    let hostIp: number;
    try {
      hostIp = parseIpv4(hostAddress);
    } catch {
      return this.drop('icmp:bad-host-address');
    }
    const socket = this.ensureSocket();
    if (socket === undefined) return this.drop('icmp:no-socket');
    const now = this.clock();
    const key = `${ip.source}:${icmp.identifier}>${ip.destination}`;
    let flow = this.flows.get(key);
    const isNew = flow === undefined;
    if (flow === undefined) {
      if (this.flows.size >= this.maxFlows) return this.drop('icmp:flow-table-full');
      flow = { key, guestIp: ip.source, guestIdentifier: icmp.identifier, remoteIp: ip.destination, hostIp, lastUsed: now };
      this.flows.set(key, flow);
      this.counters.opened++;
    }
    flow.hostIp = hostIp;
    flow.lastUsed = now;

    const data = icmp.data;
    const length = ICMPV4_HEADER_LENGTH + data.length;
    const sequence = this.nextSequence;
    this.nextSequence = (sequence + 1) % SEQUENCE_SPACE;
    const message = new Uint8Array(length);
    emitIcmpv4({ kind: 'echoRequest', identifier: this.hostIdentifier, sequenceNumber: sequence, data }, message, 0);
    this.pendingFlow[sequence] = flow;
    this.pendingSequence[sequence] = icmp.sequenceNumber;
    this.pendingLength[sequence] = length;
    this.pendingTime[sequence] = now;

    const failure = socket.send(message, hostIp);
    if (failure === undefined) {
      this.counters.requestsToHost++;
      return;
    }
    this.pendingFlow[sequence] = undefined;
    this.drop(`icmp:send-${failure}`);
    if (isNew) this.forget(flow);
    if (failure === 'ENETUNREACH' || failure === 'EHOSTUNREACH') {
      const code = failure === 'ENETUNREACH' ? Icmpv4UnreachableCode.NetUnreachable : Icmpv4UnreachableCode.HostUnreachable;
      this.counters.errorsToGuest++;
      this.options.link.sendIcmpError(ip.bytes, Icmpv4Type.DestinationUnreachable, code);
    }
  }

  private ensureSocket(): IcmpEchoSocket | undefined {
    if (this.socket !== undefined) return this.socket;
    const now = this.clock();
    if (now < this.reopenAt) return undefined;
    try {
      const socket = this.openSocket({
        message: (message, address) => this.fromHost(message, address),
        error: (quoted, destination, type, code) => this.hostError(quoted, destination, type, code),
        failed: (reason) => {
          if (this.socket !== socket) return;
          this.socket = undefined;
          this.socketError = reason;
          this.drop('icmp:socket-failed');
        },
      });
      this.socket = socket;
      this.socketError = undefined;
      this.hostIdentifier = socket.kind === 'raw' ? Math.floor(Math.random() * 0x10000) : 0;
      return socket;
    } catch (err) {
      this.socketError = err instanceof Error ? err.message : String(err);
      this.reopenAt = now + REOPEN_DELAY_MS;
      return undefined;
    }
  }

  /** An ICMP message the host socket received from `address`; valid only during the call. */
  private fromHost(message: Uint8Array, address: number): void {
    try {
      if (message.length < ICMPV4_HEADER_LENGTH) return this.drop('icmp:host-truncated');
      const icmp = new Icmpv4View(message);
      const raw = this.socket?.kind === 'raw';
      switch (icmp.type) {
        case Icmpv4Type.EchoReply:
          // Raw sockets see every reply of the host: not carrying our identifier means not ours.
          if (raw && icmp.identifier !== this.hostIdentifier) return;
          if (!icmp.verifyChecksum()) return this.drop('icmp:host-bad-checksum');
          return this.toGuest(icmp, address);
        case Icmpv4Type.DestinationUnreachable:
        case Icmpv4Type.TimeExceeded: {
          // Only raw sockets get these as messages; ping sockets use the error queue.
          if (!raw) return;
          const quoted = Ipv4View.checkedHeader(icmp.data);
          const request = quoted.bytes.subarray(quoted.headerLength);
          if (quoted.protocol !== IpProtocol.ICMP || request.length < ICMPV4_HEADER_LENGTH) return;
          if (request[0] !== Icmpv4Type.EchoRequest || get16(request, IDENTIFIER) !== this.hostIdentifier) return;
          return this.hostError(request, quoted.destination, icmp.type, icmp.code);
        }
      }
    } catch {
      this.drop('icmp:host-malformed');
    }
  }

  /** The pending flow of host sequence number `sequence` if its request went to `address`. */
  private pending(sequence: number, address: number): Flow | undefined {
    const flow = this.pendingFlow[sequence];
    if (flow === undefined || this.flows.get(flow.key) !== flow || flow.hostIp !== address) return undefined;
    if (this.clock() - this.pendingTime[sequence]! > IDLE_TIMEOUT_MS) return undefined;
    return flow;
  }

  private toGuest(reply: Icmpv4View, address: number): void {
    const sequence = reply.sequenceNumber;
    const flow = this.pending(sequence, address);
    if (flow === undefined) return this.drop('icmp:reply-unmatched');
    const link = this.options.link;
    const data = reply.data;
    const length = ICMPV4_HEADER_LENGTH + data.length;
    flow.lastUsed = this.clock();
    const frame = new Uint8Array(LINK_HEADROOM + IPV4_HEADER_LENGTH + length);
    emitIpv4(
      { source: flow.remoteIp, destination: flow.guestIp, protocol: IpProtocol.ICMP, ttl: TTL, payloadLength: length, identification: link.nextIdentification() },
      frame,
      LINK_HEADROOM,
    );
    emitIcmpv4(
      { kind: 'echoReply', identifier: flow.guestIdentifier, sequenceNumber: this.pendingSequence[sequence]!, data },
      frame,
      LINK_HEADROOM + IPV4_HEADER_LENGTH,
    );
    this.counters.repliesToGuest++;
    link.sendIpv4(frame, flow.guestIp);
  }

  /**
   * An ICMP error about our request (`request`: its ICMP bytes as quoted,
   * maybe cut short) that went to `destination`: the guest gets the same
   * error about its own request.
   */
  private hostError(request: Uint8Array, destination: number, type: number, code: number): void {
    try {
      if (type !== Icmpv4Type.DestinationUnreachable && type !== Icmpv4Type.TimeExceeded) return;
      if (request.length < ICMPV4_HEADER_LENGTH) return this.drop('icmp:host-truncated');
      const sequence = get16(request, SEQUENCE);
      const flow = this.pending(sequence, destination);
      if (flow === undefined) return this.drop('icmp:error-unmatched');
      // The guest's request as it sent it, as far as the host quoted ours.
      const requestLength = this.pendingLength[sequence]!;
      const quoted = request.subarray(0, Math.min(request.length, requestLength));
      const original = new Uint8Array(IPV4_HEADER_LENGTH + quoted.length);
      emitIpv4(
        { source: flow.guestIp, destination: flow.remoteIp, protocol: IpProtocol.ICMP, ttl: TTL, payloadLength: requestLength },
        original,
        0,
      );
      const echo = original.subarray(IPV4_HEADER_LENGTH);
      echo.set(quoted);
      replaceWord(echo, IDENTIFIER, flow.guestIdentifier);
      replaceWord(echo, SEQUENCE, this.pendingSequence[sequence]!);
      this.counters.errorsToGuest++;
      this.options.link.sendIcmpError(original, type, code);
    } catch {
      this.drop('icmp:host-malformed');
    }
  }

  /** Forget flows idle for longer than IDLE_TIMEOUT_MS. */
  sweep(now = this.clock()): void {
    for (const flow of this.flows.values()) if (now - flow.lastUsed > IDLE_TIMEOUT_MS) this.forget(flow);
  }

  private forget(flow: Flow): void {
    if (this.flows.get(flow.key) !== flow) return;
    this.flows.delete(flow.key);
    this.counters.closed++;
  }

  private drop(reason: string): void {
    this.drops[reason] = (this.drops[reason] ?? 0) + 1;
  }

  stats() {
    return {
      flows: this.flows.size,
      socket: this.socket?.kind ?? null,
      socketError: this.socketError ?? null,
      ...this.counters,
      drops: { ...this.drops },
    };
  }

  /** Close the socket and the sweep timer; later requests are dropped. */
  shutdown(): void {
    this.isShutdown = true;
    clearInterval(this.sweeper);
    for (const flow of [...this.flows.values()]) this.forget(flow);
    this.pendingFlow.fill(undefined);
    const socket = this.socket;
    this.socket = undefined;
    socket?.close();
  }
}

/** Writes a 16-bit word of an ICMP message and updates its checksum to match (RFC 1624 eqn. 3). */
function replaceWord(message: Uint8Array, offset: number, value: number): void {
  const old = get16(message, offset);
  let sum = (~get16(message, CHECKSUM) & 0xffff) + (~old & 0xffff) + (value & 0xffff);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  set16(message, offset, value);
  set16(message, CHECKSUM, ~sum & 0xffff);
}
