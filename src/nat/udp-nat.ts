/**
 * UDP through the NAT: one host socket per guest flow.
 *
 * Theory of operation
 * - A datagram from the guest to (dst, dport) opens a flow: a host UDP socket
 *   connected to the host-side address (dst, or 127.0.0.1 for the gateway when
 *   the host's loopback is reachable). Connected, so that an ICMP port
 *   unreachable from the host shows up as ECONNREFUSED and is mapped back to
 *   the guest as ICMP port unreachable (RFC 792) — at the price of
 *   endpoint-dependent mapping (RFC 4787 REQ-1 prefers independent; noted in
 *   docs/conformance.md). The socket opens and connects at once (the host
 *   sockets are the native addon's, src/transport/udp-socket.ts); one that
 *   cannot (no route, no fds) is counted as `udp:host-<errno>`.
 * - toHost: the payload is copied into the sockets' shared send buffer; what
 *   one JS turn collected for a flow leaves in one sendmmsg. What the kernel
 *   does not take is dropped and counted, never queued.
 * - toGuest: a flow's socket delivers a batch of datagrams in one call; each
 *   becomes a frame built in place in front of its payload (HOST_UDP_HEADROOM),
 *   with the UDP checksum left to the guest's NIC when the link takes
 *   offloads, and goes to the link, which copies it. Replies come from the
 *   address the guest sent to.
 * - Flows idle for IDLE_TIMEOUT_MS close (RFC 4787 REQ-5: at least 2 min);
 *   the table is bounded by `maxFlows`: beyond it, new flows are refused and
 *   counted.
 */
import { formatIpv4 } from '../wire/address.js';
import { fold, pseudoHeaderSum } from '../wire/checksum.js';
import { Icmpv4Type, Icmpv4UnreachableCode } from '../wire/icmpv4.js';
import { emitIpv4, IpProtocol, IPV4_HEADER_LENGTH, IPV4_MAX_HEADER_LENGTH, type Ipv4View } from '../wire/ipv4.js';
import { emitUdp, UDP_HEADER_LENGTH, UdpView } from '../wire/udp.js';
import { GsoType, VIRTIO_NET_HDR_F_NEEDS_CSUM, type FrameOffload } from '../wire/virtio-net.js';
import { LINK_HEADROOM, type Clock, type GuestLink } from '../stack/guest-link.js';

export const DEFAULT_MAX_UDP_FLOWS = 4096;
/** RFC 4787 REQ-5: "MUST NOT expire in less than two minutes"; 5 min is its recommendation. */
export const IDLE_TIMEOUT_MS = 5 * 60_000;
/**
 * Kernel buffer of each flow's socket, both ways (a ceiling, not an
 * allocation). The default ~200 KiB overflows within 2 ms of a 1 Gbit/s
 * stream while JS is busy elsewhere.
 */
export const UDP_SOCKET_BUFFER = 1 << 20;
/** Largest UDP payload in an IPv4 packet (65535 − 20 − 8). */
export const MAX_UDP_PAYLOAD = 65507;
/** Bytes in front of every payload a host socket delivers, free for the frame's headers (Ethernet, IPv4, UDP). */
export const HOST_UDP_HEADROOM = LINK_HEADROOM + IPV4_HEADER_LENGTH + UDP_HEADER_LENGTH;
const SWEEP_INTERVAL_MS = 10_000;
/** TTL of the datagrams we send to guests (the gateway's). */
const TTL = 64;
const UDP_AT = LINK_HEADROOM + IPV4_HEADER_LENGTH;
/** Where the checksum sits in a UDP header (RFC 768). */
const UDP_CHECKSUM_OFFSET = 6;

/** What the NAT needs of the gateway besides the link. */
export interface NatLink extends GuestLink {
  sendIcmpError(original: Uint8Array, type: number, code: number, source?: number): void;
  nextIdentification(): number;
}

/** Where a host UDP socket is bound and connected; addresses are IP literals. */
export interface HostUdpSocketOptions {
  /** Absent: any address, an ephemeral port. */
  bindAddress?: string;
  bindPort?: number;
  /** Absent: unconnected (every send names its destination). */
  connectAddress?: string;
  connectPort?: number;
  /** Kernel buffer both ways. */
  bufferBytes?: number;
}

/** Datagrams a host socket received, valid only during the `received` call. */
export interface HostUdpBatch {
  /** Datagrams in the batch; drops to 0 if the socket is closed during the call. */
  readonly count: number;
  /** Datagram i's bytes, with HOST_UDP_HEADROOM bytes in front of them that the handler may overwrite. */
  payload(i: number): Uint8Array;
  /** Its source: IPv4 (an IPv4-mapped IPv6 peer included), or 0 for an IPv6 peer. */
  address(i: number): number;
  port(i: number): number;
  /** The 16 bytes of an IPv6 peer's address (IPv6 sockets only). */
  address6(i: number): Uint8Array;
}

/** What a host UDP socket reports. */
export interface HostUdpHandlers {
  received(batch: HostUdpBatch): void;
  /**
   * The host refused what the socket sent (ECONNREFUSED: an ICMP port
   * unreachable; other ICMP errors as their errno name) or, when `fatal`, the
   * socket broke and is closed.
   */
  error(code: string, fatal: boolean): void;
  /** `count` datagrams were lost for `reason` (`udp:too-long`, `udp:send-would-block`, …). */
  dropped(reason: string, count: number): void;
}

/** A host UDP socket, as the NAT and the forwards use it. */
export interface HostUdpSocket {
  /** The local port. */
  readonly port: number;
  /**
   * Sends a copy of `payload` to the connected peer (no address) or to
   * `address`:`port` (`address6`: an IPv6 peer). Datagrams of one JS turn
   * leave together, after the turn.
   */
  send(payload: Uint8Array, address?: number, port?: number, address6?: Uint8Array): void;
  /** Idempotent; no handler runs after it. */
  close(): void;
}

/** Host UDP sockets that share buffers for datagrams of up to `maxPayload` bytes. */
export interface HostUdpSockets {
  /** Opens, binds and connects a socket; throws an Error whose `code` is the errno name (EADDRINUSE). */
  open(options: HostUdpSocketOptions, handlers: HostUdpHandlers): HostUdpSocket;
  /** Datagrams that left in a run the kernel cut (UDP_SEGMENT), all sockets so far. */
  readonly segmentedSends: number;
}

/** The daemon passes `openNativeUdpSockets` from src/transport/udp-socket.ts. */
export type OpenHostUdpSockets = (maxPayload: number) => HostUdpSockets;

/**
 * Sends `payload`, which has HOST_UDP_HEADROOM writable bytes in front of it
 * (a host socket's batch), to a guest as a UDP datagram from
 * `source`:`sourcePort`: the frame is built in place. With an offloading link
 * only the pseudo-header part of the checksum is written (NEEDS_CSUM); the
 * guest's NIC, or the software fallback for guests without offloads, finishes
 * it. A datagram longer than the link's MTU gets its whole checksum here:
 * the link sends it in fragments (RFC 791), and only the first carries the
 * UDP header.
 */
export function sendUdpToGuest(
  link: NatLink,
  payload: Uint8Array,
  source: number,
  sourcePort: number,
  destination: number,
  destinationPort: number,
): void {
  const udpLength = UDP_HEADER_LENGTH + payload.length;
  const frame = new Uint8Array(payload.buffer, payload.byteOffset - HOST_UDP_HEADROOM, HOST_UDP_HEADROOM + payload.length);
  emitIpv4(
    { source, destination, protocol: IpProtocol.UDP, ttl: TTL, payloadLength: udpLength, identification: link.nextIdentification() },
    frame,
    LINK_HEADROOM,
  );
  if (!link.offload || IPV4_HEADER_LENGTH + udpLength > link.mtu) {
    emitUdp({ sourcePort, destinationPort, payload }, frame, UDP_AT, { source, destination });
    link.sendIpv4(frame, destination);
    return;
  }
  const udp = new UdpView(frame.subarray(UDP_AT));
  udp.sourcePort = sourcePort;
  udp.destinationPort = destinationPort;
  udp.length = udpLength;
  // The partial checksum: the pseudo-header sum, not complemented (as Linux's CHECKSUM_PARTIAL).
  udp.checksum = ~fold(pseudoHeaderSum(source, destination, IpProtocol.UDP, udpLength)) & 0xffff;
  link.sendIpv4(frame, destination, UDP_OFFLOAD);
}

/**
 * Most datagrams one super-datagram carries: Linux 6.2's UDP_MAX_SEGMENTS
 * (include/linux/udp.h); a kernel refuses a frame that would make more.
 */
const MAX_SEGMENTS = 64;
/** Largest IPv4 packet: Total Length is 16 bits (RFC 791). */
const IPV4_MAX_TOTAL_LENGTH = 0xffff;
/** Where super-datagrams are built: the link copies or writes a frame before `sendIpv4` returns. */
let superFrame: Uint8Array | undefined;
/** The offload of every super-datagram; only gsoSize changes, and the link does not keep it. */
const SUPER_OFFLOAD: FrameOffload = {
  flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
  gsoType: GsoType.UdpL4,
  hdrLen: UDP_AT + UDP_HEADER_LENGTH,
  gsoSize: 0,
  csumStart: UDP_AT,
  csumOffset: UDP_CHECKSUM_OFFSET,
};

/**
 * Sends datagrams `first`, `first + 1`, … (before `end`) of `batch` to the guest as one UDP
 * super-datagram (virtio-net GSO_UDP_L4), the way Linux's UDP_SEGMENT sends
 * them: payloads of one size, but for the last, which may be shorter, each
 * datagram within the guest's MTU, at most MAX_SEGMENTS and 64 KiB in all.
 * The guest's kernel cuts it into the datagrams (with IP IDs id, id + 1, …
 * and a checksum each), so a run costs one frame, one write and one pass of
 * the guest's IP layer instead of one per datagram. Only for a link whose
 * NIC takes them (`takesUdpSegmentation`): software would cut them at a
 * copy more than `sendUdpToGuest`. Returns how many datagrams it sent: 0
 * when fewer than two qualify, which then go one by one.
 */
export function sendUdpRunToGuest(
  link: NatLink,
  batch: HostUdpBatch,
  first: number,
  end: number,
  source: number,
  sourcePort: number,
  destination: number,
  destinationPort: number,
): number {
  const frame = (superFrame ??= new Uint8Array(LINK_HEADROOM + IPV4_MAX_TOTAL_LENGTH));
  const payloadAt = UDP_AT + UDP_HEADER_LENGTH;
  const headers = IPV4_HEADER_LENGTH + UDP_HEADER_LENGTH;
  const firstPayload = batch.payload(first);
  const size = firstPayload.length;
  const last = Math.min(end, batch.count);
  if (size === 0 || headers + size > link.mtu || first + 1 >= last) return 0;
  frame.set(firstPayload, payloadAt);
  let filled = payloadAt + size;
  let count = 1;
  while (count < MAX_SEGMENTS && first + count < last) {
    const payload = batch.payload(first + count);
    const length = payload.length;
    if (length === 0 || length > size || filled - LINK_HEADROOM + length > IPV4_MAX_TOTAL_LENGTH) break;
    frame.set(payload, filled);
    filled += length;
    count++;
    if (length < size) break; // only the last may be short
  }
  if (count < 2) return 0;
  const udpLength = filled - UDP_AT;
  emitIpv4(
    { source, destination, protocol: IpProtocol.UDP, ttl: TTL, payloadLength: udpLength, identification: link.nextIdentification() },
    frame,
    LINK_HEADROOM,
  );
  for (let i = 1; i < count; i++) link.nextIdentification(); // the guest numbers the datagrams id, id + 1, …
  const udp = new UdpView(frame.subarray(UDP_AT, filled));
  udp.sourcePort = sourcePort;
  udp.destinationPort = destinationPort;
  udp.length = udpLength;
  // Partial, as for one datagram: the kernel swaps this length for each datagram's (Linux's __udp_gso_segment).
  udp.checksum = ~fold(pseudoHeaderSum(source, destination, IpProtocol.UDP, udpLength)) & 0xffff;
  SUPER_OFFLOAD.gsoSize = size;
  link.sendIpv4(frame.subarray(0, filled), destination, SUPER_OFFLOAD);
  return count;
}

/** The offload of every datagram `sendUdpToGuest` builds: never changed, so shared. */
const UDP_OFFLOAD: Readonly<FrameOffload> = {
  flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
  gsoType: GsoType.None,
  hdrLen: UDP_AT + UDP_HEADER_LENGTH,
  gsoSize: 0,
  csumStart: UDP_AT,
  csumOffset: UDP_CHECKSUM_OFFSET,
};

interface Flow {
  /** Guest ip·65536 + guest port: the table key. */
  key: number;
  /** Next flow from the same guest address and port (to another destination). */
  next: Flow | undefined;
  guestIp: number;
  guestPort: number;
  /** Address and port the guest sent to, and sees replies from. */
  remoteIp: number;
  remotePort: number;
  socket: HostUdpSocket;
  lastUsed: number;
  /** The start (IPv4 and UDP headers) of the guest's latest datagram, quoted in ICMP errors. */
  lastHeader: Uint8Array;
  lastHeaderLength: number;
}

export interface UdpNatOptions {
  link: NatLink;
  /** Opens the host sockets (the daemon passes `openNativeUdpSockets` from src/transport/udp-socket.ts). */
  openSockets: OpenHostUdpSockets;
  /** The host address a flow to `hostAddress` leaves from (`--nat-bind-ip<N>`); absent or undefined: the kernel's choice. */
  sourceAddress?: (hostAddress: string) => string | undefined;
  clock?: Clock;
  maxFlows?: number;
}

export class UdpNat {
  /** superDatagramsToGuest: frames that carried several datagrams (sendUdpRunToGuest). */
  readonly counters = { opened: 0, closed: 0, datagramsToHost: 0, datagramsToGuest: 0, superDatagramsToGuest: 0, refused: 0 };
  readonly drops: Record<string, number> = {};
  /** Flows by guest endpoint (a number: no string built per datagram), chained by destination. */
  private readonly flows = new Map<number, Flow>();
  private count = 0;
  private readonly clock: Clock;
  private readonly maxFlows: number;
  private readonly sweeper: NodeJS.Timeout;
  /** Opened with the first flow. */
  private sockets: HostUdpSockets | undefined;

  constructor(private readonly options: UdpNatOptions) {
    this.clock = options.clock ?? Date.now;
    this.maxFlows = options.maxFlows ?? DEFAULT_MAX_UDP_FLOWS;
    this.sweeper = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS).unref();
  }

  get flowCount(): number {
    return this.count;
  }

  /**
   * A checked UDP datagram from the guest to outside; `hostAddress` is where
   * it really goes (absent: its own destination, formatted only for a new flow).
   */
  fromGuest(ip: Ipv4View, udp: UdpView, hostAddress?: string): void {
    const key = ip.source * 65536 + udp.sourcePort;
    const remoteIp = ip.destination;
    const remotePort = udp.destinationPort;
    let flow = this.flows.get(key);
    while (flow !== undefined && (flow.remoteIp !== remoteIp || flow.remotePort !== remotePort)) flow = flow.next;
    if (!flow) {
      if (this.count >= this.maxFlows) return this.drop('udp:flow-table-full');
      flow = this.open(key, ip, udp, hostAddress ?? formatIpv4(remoteIp));
      if (!flow) return;
    }
    flow.lastUsed = this.clock();
    const headerLength = ip.headerLength + UDP_HEADER_LENGTH;
    flow.lastHeader.set(ip.bytes.subarray(0, headerLength));
    flow.lastHeaderLength = headerLength;
    this.counters.datagramsToHost++;
    flow.socket.send(udp.payload);
  }

  private open(key: number, ip: Ipv4View, udp: UdpView, hostAddress: string): Flow | undefined {
    let socket: HostUdpSocket;
    try {
      this.sockets ??= this.options.openSockets(MAX_UDP_PAYLOAD);
      socket = this.sockets.open(
        {
          connectAddress: hostAddress,
          connectPort: udp.destinationPort,
          bufferBytes: UDP_SOCKET_BUFFER,
          bindAddress: this.options.sourceAddress?.(hostAddress),
        },
        {
          received: (batch) => this.toGuest(flow, batch),
          error: (code, fatal) => this.hostError(flow, code, fatal),
          dropped: (reason, count) => this.drop(reason, count),
        },
      );
    } catch (err) {
      this.drop(`udp:host-${(err as NodeJS.ErrnoException).code ?? 'error'}`);
      return undefined;
    }
    const flow: Flow = {
      key,
      next: this.flows.get(key),
      guestIp: ip.source,
      guestPort: udp.sourcePort,
      remoteIp: ip.destination,
      remotePort: udp.destinationPort,
      socket,
      lastUsed: this.clock(),
      lastHeader: new Uint8Array(IPV4_MAX_HEADER_LENGTH + UDP_HEADER_LENGTH),
      lastHeaderLength: 0,
    };
    this.flows.set(key, flow);
    this.count++;
    this.counters.opened++;
    return flow;
  }

  private toGuest(flow: Flow, batch: HostUdpBatch): void {
    flow.lastUsed = this.clock();
    const link = this.options.link;
    const count = batch.count;
    const batching = count > 1 && link.takesUdpSegmentation(flow.guestIp);
    for (let i = 0; i < batch.count; ) {
      const sent = batching ? sendUdpRunToGuest(link, batch, i, count, flow.remoteIp, flow.remotePort, flow.guestIp, flow.guestPort) : 0;
      if (sent > 0) {
        i += sent;
        this.counters.superDatagramsToGuest++;
        continue;
      }
      sendUdpToGuest(link, batch.payload(i), flow.remoteIp, flow.remotePort, flow.guestIp, flow.guestPort);
      i++;
    }
    this.counters.datagramsToGuest += count;
  }

  private hostError(flow: Flow, code: string, fatal: boolean): void {
    if (code === 'ECONNREFUSED' && !fatal) {
      this.counters.refused++;
      if (flow.lastHeaderLength > 0) {
        const quoted = flow.lastHeader.subarray(0, flow.lastHeaderLength);
        this.options.link.sendIcmpError(quoted, Icmpv4Type.DestinationUnreachable, Icmpv4UnreachableCode.PortUnreachable, flow.remoteIp);
      }
      return;
    }
    this.drop(`udp:host-${code}`);
    this.close(flow);
  }

  /** Close every flow of the guest at `guestIp` (it left the network). */
  closeGuest(guestIp: number): void {
    for (const flow of this.allFlows()) if (flow.guestIp === guestIp >>> 0) this.close(flow);
  }

  /** Close flows idle for longer than IDLE_TIMEOUT_MS. */
  sweep(now = this.clock()): void {
    for (const flow of this.allFlows()) if (now - flow.lastUsed > IDLE_TIMEOUT_MS) this.close(flow);
  }

  private close(flow: Flow): void {
    const head = this.flows.get(flow.key);
    if (head === flow) {
      if (flow.next === undefined) this.flows.delete(flow.key);
      else this.flows.set(flow.key, flow.next);
    } else {
      let before = head;
      while (before !== undefined && before.next !== flow) before = before.next;
      if (before === undefined) return; // closed already
      before.next = flow.next;
    }
    flow.next = undefined;
    this.count--;
    this.counters.closed++;
    flow.socket.close();
  }

  /** Every open flow (a copy: closing while iterating is fine). */
  private allFlows(): Flow[] {
    const all: Flow[] = [];
    for (const head of this.flows.values()) for (let f: Flow | undefined = head; f !== undefined; f = f.next) all.push(f);
    return all;
  }

  private drop(reason: string, count = 1): void {
    this.drops[reason] = (this.drops[reason] ?? 0) + count;
  }

  stats() {
    return { flows: this.count, ...this.counters, datagramsSegmentedToHost: this.sockets?.segmentedSends ?? 0, drops: { ...this.drops } };
  }

  /** Release every socket and the sweep timer. */
  shutdown(): void {
    clearInterval(this.sweeper);
    for (const flow of this.allFlows()) this.close(flow);
  }
}
