/**
 * IPv4 reassembly (RFC 791 §3.2, "An Example Reassembly Procedure") for the
 * fragments guests send to the gateway and through the NAT: a guest's
 * `ping -s 4000`, or a UDP datagram larger than its link's MTU.
 *
 * Theory of operation
 * - A datagram is known by source, destination, protocol and identification
 *   (RFC 791 §3.2: "the same identifier, source, destination, and
 *   protocol"). Its fragments' data are copied (a frame is the engine's only
 *   during the call that delivers it) into a list kept sorted by offset.
 * - It is complete when the last fragment (MF clear) has fixed its length
 *   and the bytes held add up to it: fragments never overlap (below), so no
 *   hole is left then. The result is a new packet: the first fragment's
 *   header ("the header of the first fragment is used"), MF and offset
 *   cleared, Total Length set, checksum recomputed, then the data.
 * - Overlaps: an exact repeat of a fragment is ignored; any other overlap
 *   discards the whole datagram. That is RFC 5722's rule for IPv6, which
 *   Linux applies to IPv4 too: honest stacks do not send overlapping
 *   fragments, evasion and teardrop-style attacks do.
 * - Limits: MAX_DATAGRAMS in progress and MAX_BYTES held in all; past either
 *   the oldest datagram is evicted, so a flood of lone fragments cannot
 *   stall reassembly for long. A datagram of more than MAX_FRAGMENTS
 *   fragments, or longer than 65,535 bytes (the "ping of death"), is dropped.
 * - Time: TIMEOUT_MS after its first fragment an incomplete datagram is
 *   dropped, and if fragment zero had arrived its sender is told with ICMP
 *   time exceeded, code 1 (RFC 1122 §3.3.2: "the partially-reassembled
 *   datagram MUST be discarded and an ICMP Time Exceeded message sent to the
 *   source host (if fragment zero has been received)"). 30 s is Linux's
 *   ipfrag_time, shorter than RFC 1122's recommended 60–120 s: on a virtual
 *   link a fragment late by seconds is lost, not delayed. Datagrams are held
 *   in arrival order, so expiry looks at the front only; one unref'd timer
 *   runs while any is held. The clock is monotonic (performance.now), so a
 *   change of the wall clock neither holds nor drops them early.
 */
import { WireError } from '../wire/errors.js';
import { IPV4_MAX_LENGTH, Ipv4View } from '../wire/ipv4.js';
import type { Clock } from './guest-link.js';

/** Datagrams being reassembled at once, per gateway. */
export const MAX_DATAGRAMS = 256;
/** Bytes held for them in all (data plus FRAGMENT_OVERHEAD per fragment). */
export const MAX_BYTES = 2 * 1024 * 1024;
/** Fragments of one datagram: 65,535 bytes in fragments of 256 (a link MTU of 276 or more). */
export const MAX_FRAGMENTS = 256;
/** How long an incomplete datagram is kept (Linux's ipfrag_time). */
export const TIMEOUT_MS = 30_000;
/** What a fragment is charged beyond its data (about what its JS objects cost), so tiny fragments cannot hide in MAX_BYTES. */
const FRAGMENT_OVERHEAD = 256;
/** Fragment zero's header plus this much data is kept for the ICMP error (RFC 792: "64 bits of Data Datagram"). */
const QUOTED_DATA = 8;

interface Fragment {
  offset: number;
  data: Uint8Array;
}

interface Datagram {
  key: string;
  expiresAt: number;
  /** Sorted by offset, never overlapping. */
  fragments: Fragment[];
  /** Data bytes held. */
  received: number;
  /** Data length, known once the last fragment came; -1 before. */
  length: number;
  /** Fragment zero's header and first data bytes, once it came. */
  head: Uint8Array | null;
  /** What the datagram counts against MAX_BYTES. */
  charged: number;
}

export interface ReassemblyCounters {
  /** Fragments accepted (repeats and dropped ones excluded). */
  fragments: number;
  reassembled: number;
  timedOut: number;
  evicted: number;
}

export interface ReassemblyOptions {
  /** Milliseconds, monotonic (default performance.now). */
  clock?: Clock;
  /**
   * Hears of each datagram dropped by the timeout whose fragment zero had
   * come: `head` is that fragment's header and first 8 data bytes, for the
   * ICMP error.
   */
  timedOut?: (head: Uint8Array) => void;
  /** Default TIMEOUT_MS. */
  timeoutMs?: number;
}

export class Ipv4Reassembler {
  readonly counters: ReassemblyCounters = { fragments: 0, reassembled: 0, timedOut: 0, evicted: 0 };
  /** In arrival order of their first fragment: the oldest first. */
  private readonly datagrams = new Map<string, Datagram>();
  private bytes = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly clock: Clock;
  private readonly timedOut: (head: Uint8Array) => void;
  private readonly timeoutMs: number;

  constructor(options: ReassemblyOptions = {}) {
    this.clock = options.clock ?? (() => performance.now());
    this.timedOut = options.timedOut ?? (() => {});
    this.timeoutMs = options.timeoutMs ?? TIMEOUT_MS;
  }

  /** Datagrams being reassembled. */
  get pending(): number {
    return this.datagrams.size;
  }

  /** Bytes held for them. */
  get heldBytes(): number {
    return this.bytes;
  }

  /**
   * Takes a checked fragment (`ip.isFragment`); returns the whole datagram
   * when this fragment completes it, else null. The fragment's bytes are
   * copied. Throws WireError (`ipv4:fragment-…`) for a fragment that is
   * dropped, and for one that makes its datagram be dropped.
   */
  add(ip: Ipv4View): Ipv4View | null {
    const offset = ip.fragmentOffset;
    const data = ip.payload;
    const last = !ip.moreFragments;
    // RFC 791 §3.2: every fragment but the last carries a multiple of 8 data bytes.
    if (!last && (data.length === 0 || data.length % 8 !== 0)) throw new WireError('ipv4', 'fragment-bad-length');
    if (offset + data.length > IPV4_MAX_LENGTH - ip.headerLength) throw new WireError('ipv4', 'fragment-too-long');
    this.expire();
    const key = `${ip.source}/${ip.destination}/${ip.protocol}/${ip.identification}`;
    let datagram = this.datagrams.get(key);
    if (datagram === undefined) {
      datagram = { key, expiresAt: this.clock() + this.timeoutMs, fragments: [], received: 0, length: -1, head: null, charged: 0 };
      this.datagrams.set(key, datagram);
      this.arm();
    }
    const end = offset + data.length;
    const inconsistent = last
      ? (datagram.length !== -1 && datagram.length !== end) || this.endOfData(datagram) > end
      : datagram.length !== -1 && end > datagram.length;
    if (inconsistent) {
      this.discard(datagram);
      throw new WireError('ipv4', 'fragment-inconsistent');
    }
    const at = this.insertionPoint(datagram, offset);
    const before = datagram.fragments[at - 1];
    const after = datagram.fragments[at];
    if (after !== undefined && after.offset === offset && after.data.length === data.length) throw new WireError('ipv4', 'fragment-repeated');
    if ((before !== undefined && before.offset + before.data.length > offset) || (after !== undefined && end > after.offset)) {
      this.discard(datagram);
      throw new WireError('ipv4', 'fragment-overlap');
    }
    if (datagram.fragments.length === MAX_FRAGMENTS) {
      this.discard(datagram);
      throw new WireError('ipv4', 'fragment-too-many');
    }
    datagram.fragments.splice(at, 0, { offset, data: data.slice() });
    datagram.received += data.length;
    if (last) datagram.length = end;
    if (offset === 0) datagram.head = ip.bytes.slice(0, ip.headerLength + Math.min(QUOTED_DATA, data.length));
    const charge = data.length + FRAGMENT_OVERHEAD;
    datagram.charged += charge;
    this.bytes += charge;
    this.counters.fragments++;
    // Nothing overlaps, so as many bytes as the length means no hole (fragment zero included).
    if (datagram.received === datagram.length) return this.assemble(datagram);
    this.evictOverLimits(datagram);
    return null;
  }

  /** Drops the datagrams whose time is up (the timer calls it; tests may too). */
  expire(now = this.clock()): void {
    for (const datagram of this.datagrams.values()) {
      if (datagram.expiresAt > now) break;
      this.discard(datagram);
      this.counters.timedOut++;
      if (datagram.head !== null) this.timedOut(datagram.head);
    }
  }

  /** Drops everything and stops the timer. */
  close(): void {
    this.datagrams.clear();
    this.bytes = 0;
    this.disarm();
  }

  private assemble(datagram: Datagram): Ipv4View | null {
    this.discard(datagram);
    const head = new Ipv4View(datagram.head!);
    const headerLength = head.headerLength;
    if (headerLength + datagram.length > IPV4_MAX_LENGTH) throw new WireError('ipv4', 'fragment-too-long');
    const packet = new Uint8Array(headerLength + datagram.length);
    packet.set(head.header, 0);
    for (const fragment of datagram.fragments) packet.set(fragment.data, headerLength + fragment.offset);
    const whole = new Ipv4View(packet);
    whole.totalLength = packet.length;
    whole.clearFragmentation();
    whole.fillChecksum();
    this.counters.reassembled++;
    return whole;
  }

  /** Index of the first fragment at or after `offset`. */
  private insertionPoint(datagram: Datagram, offset: number): number {
    const fragments = datagram.fragments;
    let i = fragments.length;
    while (i > 0 && fragments[i - 1]!.offset >= offset) i--;
    return i;
  }

  /** Where the data held so far ends. */
  private endOfData(datagram: Datagram): number {
    const tail = datagram.fragments[datagram.fragments.length - 1];
    return tail === undefined ? 0 : tail.offset + tail.data.length;
  }

  /** Evicts the oldest datagrams (never `keep`) while over MAX_DATAGRAMS or MAX_BYTES. */
  private evictOverLimits(keep: Datagram): void {
    for (const datagram of this.datagrams.values()) {
      if (this.datagrams.size <= MAX_DATAGRAMS && this.bytes <= MAX_BYTES) return;
      if (datagram === keep) continue;
      this.discard(datagram);
      this.counters.evicted++;
    }
  }

  private discard(datagram: Datagram): void {
    if (!this.datagrams.delete(datagram.key)) return;
    this.bytes -= datagram.charged;
    if (this.datagrams.size === 0) this.disarm();
  }

  private arm(): void {
    if (this.timer !== null) return;
    const oldest = this.datagrams.values().next().value as Datagram | undefined;
    if (oldest === undefined) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.expire();
      this.arm();
    }, Math.max(0, oldest.expiresAt - this.clock()));
    this.timer.unref();
  }

  private disarm(): void {
    if (this.timer === null) return;
    clearTimeout(this.timer);
    this.timer = null;
  }
}
