/**
 * IPv4 headers (RFC 791 §3.1). Options are kept as raw bytes, not parsed.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |Version|  IHL  |   DSCP    |ECN|          Total Length         |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |         Identification        |Flags|      Fragment Offset    |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  Time to Live |    Protocol   |         Header Checksum       |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                       Source Address                          |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                    Destination Address                        |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                    Options                    |    Padding    |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Reasons thrown: `truncated` (shorter than 20 bytes), `bad-version`,
 * `bad-length` (IHL < 5, header or total length beyond the buffer, total
 * length below the header), `bad-checksum` (from `parseIpv4`).
 */

import { get16, get32, set16, set32 } from './bytes.js';
import { fold, sumRange } from './checksum.js';
import { WireError } from './errors.js';

/** Header length without options. */
export const IPV4_HEADER_LENGTH = 20;
/** Longest header: IHL is 4 bits of 32-bit words. */
export const IPV4_MAX_HEADER_LENGTH = 60;
/** Largest datagram the Total Length field can describe. */
export const IPV4_MAX_LENGTH = 0xffff;

/** IP protocol numbers we know by name (IANA); others stay numbers. */
export const IpProtocol = {
  ICMP: 1,
  TCP: 6,
  UDP: 17,
} as const;

const VERSION_IHL = 0;
const DSCP_ECN = 1;
const TOTAL_LENGTH = 2;
const IDENTIFICATION = 4;
const FLAGS_FRAGMENT = 6;
const TTL = 8;
const PROTOCOL = 9;
const CHECKSUM = 10;
const SOURCE = 12;
const DESTINATION = 16;

const FLAG_DF = 0x4000;
const FLAG_MF = 0x2000;
const FRAGMENT_MASK = 0x1fff;

/** A view over an IPv4 datagram; getters read in place, setters write in place. */
export class Ipv4View {
  constructor(readonly bytes: Uint8Array) {}

  /**
   * Wraps untrusted bytes: version 4, header and total length within the
   * buffer. Bytes past Total Length (Ethernet padding) are ignored.
   */
  static checked(bytes: Uint8Array): Ipv4View {
    const view = Ipv4View.checkedHeader(bytes);
    if (view.totalLength > bytes.length) throw new WireError('ipv4', 'bad-length');
    return view;
  }

  /**
   * Wraps a datagram whose payload may be cut short, as quoted in ICMP errors
   * (RFC 792: "Internet Header + 64 bits of Original Data Datagram"): only
   * the header must be complete; `payload` is clipped to the bytes present.
   */
  static checkedHeader(bytes: Uint8Array): Ipv4View {
    if (bytes.length < IPV4_HEADER_LENGTH) throw new WireError('ipv4', 'truncated');
    const view = new Ipv4View(bytes);
    if (view.version !== 4) throw new WireError('ipv4', 'bad-version');
    const headerLength = view.headerLength;
    if (headerLength < IPV4_HEADER_LENGTH || headerLength > bytes.length) throw new WireError('ipv4', 'bad-length');
    if (view.totalLength < headerLength) throw new WireError('ipv4', 'bad-length');
    return view;
  }

  get version(): number {
    return this.bytes[VERSION_IHL]! >>> 4;
  }
  /** Header length in bytes (IHL × 4). */
  get headerLength(): number {
    return (this.bytes[VERSION_IHL]! & 0x0f) * 4;
  }
  get dscp(): number {
    return this.bytes[DSCP_ECN]! >>> 2;
  }
  get ecn(): number {
    return this.bytes[DSCP_ECN]! & 0x03;
  }
  get totalLength(): number {
    return get16(this.bytes, TOTAL_LENGTH);
  }
  get identification(): number {
    return get16(this.bytes, IDENTIFICATION);
  }
  get dontFragment(): boolean {
    return (get16(this.bytes, FLAGS_FRAGMENT) & FLAG_DF) !== 0;
  }
  get moreFragments(): boolean {
    return (get16(this.bytes, FLAGS_FRAGMENT) & FLAG_MF) !== 0;
  }
  /** Fragment offset in bytes (the field counts 8-byte units). */
  get fragmentOffset(): number {
    return (get16(this.bytes, FLAGS_FRAGMENT) & FRAGMENT_MASK) * 8;
  }
  /** True for any fragment, first or later. */
  get isFragment(): boolean {
    return (get16(this.bytes, FLAGS_FRAGMENT) & (FLAG_MF | FRAGMENT_MASK)) !== 0;
  }
  get ttl(): number {
    return this.bytes[TTL]!;
  }
  get protocol(): number {
    return this.bytes[PROTOCOL]!;
  }
  get checksum(): number {
    return get16(this.bytes, CHECKSUM);
  }
  get source(): number {
    return get32(this.bytes, SOURCE);
  }
  get destination(): number {
    return get32(this.bytes, DESTINATION);
  }
  /** Raw option bytes (often empty). */
  get options(): Uint8Array {
    return this.bytes.subarray(IPV4_HEADER_LENGTH, this.headerLength);
  }
  /** The header bytes. */
  get header(): Uint8Array {
    return this.bytes.subarray(0, this.headerLength);
  }
  /** Bytes from the end of the header to Total Length (clipped to the buffer). */
  get payload(): Uint8Array {
    return this.bytes.subarray(this.headerLength, this.totalLength);
  }

  set ttl(v: number) {
    this.bytes[TTL] = v;
  }
  set protocol(v: number) {
    this.bytes[PROTOCOL] = v;
  }
  set totalLength(v: number) {
    set16(this.bytes, TOTAL_LENGTH, v);
  }
  set identification(v: number) {
    set16(this.bytes, IDENTIFICATION, v);
  }
  set checksum(v: number) {
    set16(this.bytes, CHECKSUM, v);
  }
  set source(v: number) {
    set32(this.bytes, SOURCE, v);
  }
  set destination(v: number) {
    set32(this.bytes, DESTINATION, v);
  }

  /** Clears MF and the fragment offset (a reassembled datagram); DF stays. */
  clearFragmentation(): void {
    set16(this.bytes, FLAGS_FRAGMENT, get16(this.bytes, FLAGS_FRAGMENT) & FLAG_DF);
  }

  /** True when the header checksum is right (RFC 791 §3.1: the header sums to all ones). */
  verifyChecksum(): boolean {
    return fold(sumRange(this.bytes, 0, this.headerLength)) === 0;
  }

  /** Computes and stores the header checksum. Call after the last header write. */
  fillChecksum(): void {
    set16(this.bytes, CHECKSUM, 0);
    set16(this.bytes, CHECKSUM, fold(sumRange(this.bytes, 0, this.headerLength)));
  }
}

/** An IPv4 header as a plain value. `parseIpv4` fills every field; `emitIpv4` defaults the optional ones to zero/false/empty. */
export interface Ipv4Header {
  source: number;
  destination: number;
  protocol: number;
  ttl: number;
  /** Length of what follows the header (Total Length − header length). */
  payloadLength: number;
  identification?: number;
  dontFragment?: boolean;
  moreFragments?: boolean;
  /** In bytes; a multiple of 8. */
  fragmentOffset?: number;
  dscp?: number;
  ecn?: number;
  /** Raw option bytes, a multiple of 4 long, at most 40. */
  options?: Uint8Array;
}

/** Options for the `parse…` functions. */
export interface ParseOptions {
  /** Check the checksum and throw `bad-checksum` (default true). Off when an offloading transport vouches for it. */
  verifyChecksum?: boolean;
}

/** The header of a checked view; `options` aliases the frame. Throws `bad-checksum`. */
export function parseIpv4(view: Ipv4View, options?: ParseOptions): Ipv4Header {
  if (options?.verifyChecksum !== false && !view.verifyChecksum()) throw new WireError('ipv4', 'bad-checksum');
  return {
    source: view.source,
    destination: view.destination,
    protocol: view.protocol,
    ttl: view.ttl,
    payloadLength: view.totalLength - view.headerLength,
    identification: view.identification,
    dontFragment: view.dontFragment,
    moreFragments: view.moreFragments,
    fragmentOffset: view.fragmentOffset,
    dscp: view.dscp,
    ecn: view.ecn,
    options: view.options,
  };
}

/** Header length `emitIpv4` writes. */
export function ipv4HeaderLength(header: Ipv4Header): number {
  return IPV4_HEADER_LENGTH + (header.options?.length ?? 0);
}

/**
 * Writes the header at `offset` with its checksum; the payload is the
 * caller's to write after it. Returns the offset just past the header.
 * Throws `RangeError` for options not a multiple of 4 or over 40 bytes (a bug in the caller).
 */
export function emitIpv4(header: Ipv4Header, into: Uint8Array, offset: number): number {
  const options = header.options;
  const optionsLength = options?.length ?? 0;
  if (optionsLength % 4 !== 0 || optionsLength > IPV4_MAX_HEADER_LENGTH - IPV4_HEADER_LENGTH) {
    throw new RangeError(`IPv4 options must be a multiple of 4 bytes up to 40, got ${optionsLength}`);
  }
  const headerLength = IPV4_HEADER_LENGTH + optionsLength;
  into[offset + VERSION_IHL] = 0x40 | (headerLength / 4);
  into[offset + DSCP_ECN] = ((header.dscp ?? 0) << 2) | ((header.ecn ?? 0) & 0x03);
  set16(into, offset + TOTAL_LENGTH, headerLength + header.payloadLength);
  set16(into, offset + IDENTIFICATION, header.identification ?? 0);
  set16(
    into,
    offset + FLAGS_FRAGMENT,
    (header.dontFragment === true ? FLAG_DF : 0) |
      (header.moreFragments === true ? FLAG_MF : 0) |
      (((header.fragmentOffset ?? 0) / 8) & FRAGMENT_MASK),
  );
  into[offset + TTL] = header.ttl;
  into[offset + PROTOCOL] = header.protocol;
  set16(into, offset + CHECKSUM, 0);
  set32(into, offset + SOURCE, header.source);
  set32(into, offset + DESTINATION, header.destination);
  if (options !== undefined && optionsLength > 0) into.set(options, offset + IPV4_HEADER_LENGTH);
  set16(into, offset + CHECKSUM, fold(sumRange(into, offset, offset + headerLength)));
  return offset + headerLength;
}
