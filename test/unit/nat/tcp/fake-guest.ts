/**
 * A fake guest for the TCP NAT tests (no tests here): a `GuestLink` that
 * checks every packet the NAT emits (IPv4 and TCP checksums, TTL, DF) and
 * hands it to the guest in batches, and a tiny scripted TCP peer written with
 * the wire codecs.
 */

import { createHash } from 'node:crypto';
import type { GuestLink } from '../../../../src/stack/guest-link.js';
import { LINK_HEADROOM } from '../../../../src/stack/guest-link.js';
import { fold, pseudoHeaderSum, sum } from '../../../../src/wire/checksum.js';
import { emitIpv4, IpProtocol, Ipv4View } from '../../../../src/wire/ipv4.js';
import { emitTcp, parseTcpOptions, tcpLength, TcpFlags, type TcpOptions, TcpView } from '../../../../src/wire/tcp.js';
import type { TcpNat } from '../../../../src/nat/tcp/tcp-nat.js';

/** Dotted quad → number. */
export function ip4(text: string): number {
  const [a, b, c, d] = text.split('.').map(Number) as [number, number, number, number];
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
}

export const GUEST_IP = ip4('10.0.2.15');
export const GATEWAY_IP = ip4('10.0.2.2');
export const REMOTE_IP = ip4('93.184.216.34');

/** A segment the NAT sent, decoded (payload copied). */
export interface Segment {
  srcIp: number;
  dstIp: number;
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  options: TcpOptions;
  payload: Buffer;
  ipId: number;
}

export function has(segment: Segment, flag: number): boolean {
  return (segment.flags & flag) !== 0;
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Delivers NAT output to a guest; every frame is checked and any fault is kept in `errors`. */
export class FakeLink implements GuestLink {
  /** Segments arrive finished (checksums filled, no super-segments). */
  readonly offload = false;
  readonly errors: string[] = [];
  readonly sent: Segment[] = [];
  /** Frames that were built in a buffer of `buildersOf`'s size (a read block: no copy of the payload). */
  inBlocks = 0;
  buildersOf = -1;
  /** Called for each segment, in batches on a later macrotask (like a transport). */
  deliver: (segment: Segment) => void = () => {};
  /** Return true to drop a segment before the guest sees it (it is still in `sent`). */
  drop: (segment: Segment) => boolean = () => false;
  private queue: Segment[] = [];
  private scheduled = false;

  constructor(readonly mtu = 1500) {}

  takesUdpSegmentation(): boolean {
    return false;
  }

  sendIpv4(frame: Uint8Array, dstIp: number): void {
    if (frame.buffer.byteLength === this.buildersOf) this.inBlocks++;
    const bytes = frame.subarray(LINK_HEADROOM);
    let ip: Ipv4View;
    let tcp: TcpView;
    try {
      ip = Ipv4View.checked(bytes);
      tcp = TcpView.checked(ip.payload);
    } catch (err) {
      this.errors.push(`unparsable frame: ${String(err)}`);
      return;
    }
    if (ip.totalLength !== bytes.length) this.errors.push('frame longer than Total Length');
    if (ip.totalLength > this.mtu) this.errors.push(`packet of ${ip.totalLength} over MTU ${this.mtu}`);
    if (!ip.verifyChecksum()) this.errors.push('bad IPv4 checksum');
    if (ip.ttl !== 64) this.errors.push(`TTL ${ip.ttl}`);
    if (!ip.dontFragment) this.errors.push('DF not set');
    if (ip.protocol !== IpProtocol.TCP) this.errors.push('not TCP');
    if (ip.destination !== dstIp) this.errors.push('dstIp differs from the packet');
    const seg = tcp.bytes;
    if (fold(sum(seg, pseudoHeaderSum(ip.source, ip.destination, IpProtocol.TCP, seg.length))) !== 0) {
      this.errors.push('bad TCP checksum');
    }
    const segment: Segment = {
      srcIp: ip.source,
      dstIp: ip.destination,
      srcPort: tcp.sourcePort,
      dstPort: tcp.destinationPort,
      seq: tcp.sequenceNumber,
      ack: tcp.acknowledgmentNumber,
      flags: tcp.flags,
      window: tcp.windowSize,
      options: parseTcpOptions(tcp.options),
      payload: Buffer.from(tcp.payload),
      ipId: ip.identification,
    };
    this.sent.push(segment);
    if (this.drop(segment)) return;
    this.queue.push(segment);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        const batch = this.queue;
        this.queue = [];
        for (const s of batch) this.deliver(s);
      });
    }
  }
}

export interface SegmentFields {
  srcPort: number;
  dstPort: number;
  dstIp?: number;
  srcIp?: number;
  seq: number;
  ack?: number;
  flags: number;
  window?: number;
  options?: TcpOptions;
  payload?: Uint8Array;
}

/** Builds the guest's IPv4 packet for a segment. */
export function buildPacket(f: SegmentFields): Uint8Array {
  const payload = f.payload ?? new Uint8Array(0);
  const source = f.srcIp ?? GUEST_IP;
  const destination = f.dstIp ?? REMOTE_IP;
  const segment = {
    sourcePort: f.srcPort,
    destinationPort: f.dstPort,
    sequenceNumber: f.seq >>> 0,
    acknowledgmentNumber: (f.ack ?? 0) >>> 0,
    flags: f.flags,
    windowSize: f.window ?? 65535,
    options: f.options ?? {},
    payload,
  };
  const length = tcpLength(segment);
  const packet = new Uint8Array(20 + length);
  emitIpv4({ source, destination, protocol: IpProtocol.TCP, ttl: 64, payloadLength: length, dontFragment: true }, packet, 0);
  emitTcp(segment, packet, 20, { source, destination });
  return packet;
}

/** Hands a guest packet to the NAT the way the gateway does. */
export function inject(nat: TcpNat, packet: Uint8Array, hostAddress = '127.0.0.1'): void {
  const ip = Ipv4View.checked(packet);
  nat.fromGuest(ip, TcpView.checked(ip.payload), hostAddress);
}

/** Resolves when `check` holds, polling every few ms; rejects after `ms`. */
export async function until(check: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** The guest's network stack: routes delivered segments to its connections; others wait in `inbox`. */
export class FakeGuest {
  readonly inbox: Segment[] = [];
  private readonly connections = new Map<string, GuestTcp>();

  constructor(
    readonly nat: TcpNat,
    readonly link: FakeLink,
    readonly hostAddress = '127.0.0.1',
  ) {
    link.deliver = (s) => {
      const c = this.connections.get(`${s.dstPort}:${s.srcIp}:${s.srcPort}`);
      if (c !== undefined) c.onSegment(s);
      else this.inbox.push(s);
    };
  }

  /** Builds the packet and hands it to the NAT; `built` sees it first. */
  send(fields: SegmentFields, built?: (packet: Uint8Array) => void): void {
    const packet = buildPacket(fields);
    built?.(packet);
    inject(this.nat, packet, this.hostAddress);
  }

  /** Next inbox segment matching `match` (removed from the inbox). */
  async next(match: (s: Segment) => boolean = () => true, ms = 3000): Promise<Segment> {
    let found: Segment | undefined;
    await until(
      () => {
        const i = this.inbox.findIndex(match);
        if (i < 0) return false;
        found = this.inbox.splice(i, 1)[0];
        return true;
      },
      ms,
      'a segment from the NAT',
    );
    return found!;
  }

  register(c: GuestTcp): void {
    this.connections.set(`${c.localPort}:${c.remoteIp}:${c.remotePort}`, c);
  }
}

export interface GuestTcpOptions {
  localPort: number;
  remotePort: number;
  remoteIp?: number;
  /** Receive buffer we advertise, in bytes (scaled by `shift`). */
  window?: number;
  /** Window-scale shift we offer; undefined = no option. */
  shift?: number;
  mss?: number;
  /** Offer (or, for a forward, answer) RFC 7323 timestamps. */
  timestamps?: boolean;
  /** Offer (or answer) RFC 2018 SACK-permitted. */
  sack?: boolean;
}

/**
 * One TCP endpoint in the guest, automatic enough for bulk transfers: ACKs
 * every segment, keeps out-of-order data, answers with duplicate ACKs, sends
 * within the NAT's window. It does not retransmit (the in-memory path toward
 * the NAT loses nothing).
 */
export class GuestTcp {
  readonly localPort: number;
  readonly remotePort: number;
  readonly remoteIp: number;
  readonly window: number;
  readonly shift: number | undefined;
  readonly mss: number;
  readonly timestamps: boolean;
  readonly sack: boolean;
  /** Timestamps are on: both SYNs carried them. */
  tsOn = false;
  /** Our next TSval; a test may move it (back, for PAWS). */
  tsVal = 5_000;
  /** The NAT's latest TSval (what we echo). */
  tsRecent = 0;
  iss = 1_000_000 + Math.floor(Math.random() * 1e6);
  sndNxt = 0;
  sndUna = 0;
  rcvNxt = 0;
  peerWindow = 0;
  peerShift = 0;
  peerMss = 536;
  established = false;
  /** Both SYNs carried window scale. */
  scaling = false;
  finReceived = false;
  rstReceived = false;
  received: Buffer[] = [];
  receivedBytes = 0;
  /** Windows (bytes) the NAT advertised, in order. */
  windowsSeen: number[] = [];
  /** When set, the application does not read: the advertised window shrinks by what is held. */
  holding = false;
  held = 0;
  private outgoing: Buffer[] = [];
  private outgoingBytes = 0;
  private finPending = false;
  private finSent = false;
  private ooo = new Map<number, Segment>();
  onData: (data: Buffer) => void = () => {};

  constructor(
    readonly guest: FakeGuest,
    options: GuestTcpOptions,
  ) {
    this.localPort = options.localPort;
    this.remotePort = options.remotePort;
    this.remoteIp = options.remoteIp ?? REMOTE_IP;
    this.window = options.window ?? 65535;
    this.shift = options.shift;
    this.mss = options.mss ?? 1460;
    this.timestamps = options.timestamps ?? false;
    this.sack = options.sack ?? false;
    this.sndNxt = this.sndUna = this.iss;
    guest.register(this);
  }

  get receivedData(): Buffer {
    return Buffer.concat(this.received);
  }

  private synOptions(): TcpOptions {
    const o: TcpOptions = { mss: this.mss };
    if (this.shift !== undefined) o.windowScale = this.shift;
    if (this.timestamps) o.timestamp = { value: this.tsVal++, echoReply: this.tsRecent };
    if (this.sack) o.sackPermitted = true;
    return o;
  }

  private advertised(): number {
    const free = Math.max(0, this.window - this.held);
    return Math.min(0xffff, free >>> (this.scaling ? this.shift! : 0));
  }

  /** Active open through the NAT: SYN, wait for the SYN-ACK, ACK. */
  async connect(ms = 3000): Promise<void> {
    this.sendSegment(TcpFlags.SYN, this.iss, 0, undefined, this.synOptions(), Math.min(0xffff, this.window));
    this.sndNxt = (this.iss + 1) >>> 0;
    const start = Date.now();
    await until(() => this.established || this.rstReceived || Date.now() - start > ms, ms + 100, 'SYN-ACK');
    if (!this.established) throw new Error('connection refused');
  }

  /** Passive open for a port forward: answer the NAT's SYN. */
  accept(syn: Segment): void {
    this.rcvNxt = (syn.seq + 1) >>> 0;
    this.peerMss = syn.options.mss ?? 536;
    this.scaling = syn.options.windowScale !== undefined && this.shift !== undefined;
    this.peerShift = this.scaling ? syn.options.windowScale! : 0;
    this.peerWindow = syn.window;
    this.takeTimestamp(syn);
    this.sendSegment(TcpFlags.SYN | TcpFlags.ACK, this.iss, this.rcvNxt, undefined, this.synOptions(), Math.min(0xffff, this.window));
    this.sndNxt = this.sndUna = (this.iss + 1) >>> 0;
  }

  write(data: Uint8Array): void {
    this.outgoing.push(Buffer.from(data));
    this.outgoingBytes += data.length;
    this.pump();
  }

  end(): void {
    this.finPending = true;
    this.pump();
  }

  reset(): void {
    this.sendSegment(TcpFlags.RST | TcpFlags.ACK, this.sndNxt, this.rcvNxt);
  }

  /** The application reads what was held: window update. */
  release(): void {
    this.held = 0;
    this.holding = false;
    this.sendAck();
  }

  sendAck(): void {
    this.sendSegment(TcpFlags.ACK, this.sndNxt, this.rcvNxt);
  }

  onSegment(s: Segment): void {
    if (has(s, TcpFlags.RST)) {
      this.rstReceived = true;
      return;
    }
    if (has(s, TcpFlags.SYN)) {
      if (!has(s, TcpFlags.ACK)) return;
      // SYN-ACK to our connect().
      this.rcvNxt = (s.seq + 1) >>> 0;
      this.sndUna = s.ack;
      this.peerMss = s.options.mss ?? 536;
      this.scaling = s.options.windowScale !== undefined && this.shift !== undefined;
      this.peerShift = this.scaling ? s.options.windowScale! : 0;
      this.peerWindow = s.window;
      this.takeTimestamp(s);
      this.established = true;
      this.sendAck();
      this.pump();
      return;
    }
    if (!this.established && has(s, TcpFlags.ACK) && s.ack === this.sndNxt) this.established = true;
    if (this.tsOn && s.options.timestamp !== undefined) this.tsRecent = s.options.timestamp.value;
    if (has(s, TcpFlags.ACK)) {
      if (((s.ack - this.sndUna) | 0) > 0) this.sndUna = s.ack;
      this.peerWindow = s.window << this.peerShift;
      this.windowsSeen.push(this.peerWindow);
    }
    let advanced = false;
    if (s.payload.length > 0 || has(s, TcpFlags.FIN)) {
      const full = this.holding && this.held + s.payload.length > this.window;
      if (s.seq === this.rcvNxt && !full) {
        this.take(s);
        advanced = true;
        this.takeOutOfOrder();
      } else if (((s.seq - this.rcvNxt) | 0) > 0) {
        this.ooo.set(s.seq, s);
      }
      this.sendAck(); // every data segment, dup ACK for out-of-order or old ones
    } else if (((s.seq - this.rcvNxt) | 0) < 0) {
      this.sendAck(); // RFC 9293 §3.10.7.4: an unacceptable (old) segment gets an ACK: how zero-window probes are answered
    }
    if (advanced || has(s, TcpFlags.ACK)) this.pump();
  }

  /** From the NAT's SYN or SYN-ACK: timestamps are on when both sides offered them. */
  private takeTimestamp(s: Segment): void {
    this.tsOn = this.timestamps && s.options.timestamp !== undefined;
    if (this.tsOn) this.tsRecent = s.options.timestamp!.value;
  }

  /** Delivers kept segments that now overlap rcvNxt (they may start before it). */
  private takeOutOfOrder(): void {
    for (let progress = true; progress; ) {
      progress = false;
      for (const [seq, kept] of this.ooo) {
        const skip = (this.rcvNxt - seq) | 0;
        if (skip < 0) continue;
        this.ooo.delete(seq);
        const end = kept.payload.length + (has(kept, TcpFlags.FIN) ? 1 : 0);
        if (skip < end) {
          this.take({ ...kept, seq: this.rcvNxt, payload: kept.payload.subarray(Math.min(skip, kept.payload.length)) });
          progress = true;
        }
      }
    }
  }

  private take(s: Segment): void {
    if (s.payload.length > 0) {
      this.received.push(s.payload);
      this.receivedBytes += s.payload.length;
      this.rcvNxt = (this.rcvNxt + s.payload.length) >>> 0;
      if (this.holding) this.held += s.payload.length;
      this.onData(s.payload);
    }
    if (has(s, TcpFlags.FIN)) {
      this.finReceived = true;
      this.rcvNxt = (this.rcvNxt + 1) >>> 0;
    }
  }

  /** Sends queued data within the NAT's window, then a FIN when asked. */
  private pump(): void {
    if (!this.established) return;
    for (;;) {
      const inFlight = (this.sndNxt - this.sndUna) | 0;
      const room = this.peerWindow - inFlight;
      if (this.outgoingBytes === 0 || room <= 0) break;
      const n = Math.min(this.outgoingBytes, room, this.peerMss - (this.tsOn ? 12 : 0));
      const data = this.take_outgoing(n);
      this.sendSegment(TcpFlags.ACK | TcpFlags.PSH, this.sndNxt, this.rcvNxt, data);
      this.sndNxt = (this.sndNxt + n) >>> 0;
    }
    if (this.finPending && !this.finSent && this.outgoingBytes === 0) {
      this.finSent = true;
      this.sendSegment(TcpFlags.FIN | TcpFlags.ACK, this.sndNxt, this.rcvNxt);
      this.sndNxt = (this.sndNxt + 1) >>> 0;
    }
  }

  private take_outgoing(n: number): Buffer {
    const parts: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const head = this.outgoing[0]!;
      if (head.length <= left) {
        parts.push(head);
        this.outgoing.shift();
        left -= head.length;
      } else {
        parts.push(head.subarray(0, left));
        this.outgoing[0] = head.subarray(left);
        left = 0;
      }
    }
    this.outgoingBytes -= n;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  sendSegment(flags: number, seq: number, ack: number, payload?: Uint8Array, options?: TcpOptions, window?: number): void {
    if (options === undefined && this.tsOn && (flags & TcpFlags.RST) === 0) options = { timestamp: { value: this.tsVal++, echoReply: this.tsRecent } };
    this.guest.send({
      srcPort: this.localPort,
      dstPort: this.remotePort,
      dstIp: this.remoteIp,
      seq,
      ack,
      flags,
      window: window ?? this.advertised(),
      options,
      payload,
    });
  }
}

/** Every segment `c` receives from now on, in order (it still handles them). */
export function recordSegments(c: GuestTcp): Segment[] {
  const seen: Segment[] = [];
  const original = c.onSegment.bind(c);
  c.onSegment = (s) => {
    seen.push(s);
    original(s);
  };
  return seen;
}
