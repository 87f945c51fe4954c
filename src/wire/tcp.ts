/**
 * TCP segments (RFC 9293 §3.1) and their options: MSS, window scale
 * (RFC 7323), SACK-permitted and SACK blocks (RFC 2018), timestamps
 * (RFC 7323), NOP and End of Option List. Unknown options are kept as
 * `{kind, data}`.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |          Source Port          |       Destination Port        |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                        Sequence Number                        |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                    Acknowledgment Number                      |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  Data |       |C|E|U|A|P|R|S|F|                               |
 *   | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
 *   |       |       |R|E|G|K|H|T|N|N|                               |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |           Checksum            |         Urgent Pointer        |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                           [Options]                           |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * The view is over the whole segment (the IPv4 payload): the checksum covers
 * all of it. Reasons thrown: `truncated`, `bad-length` (Data Offset below 5 or
 * beyond the buffer), `bad-option`, `bad-checksum`.
 */

import { get16, get32, isAt, set16, set32 } from './bytes.js';
import { fold, pseudoHeaderSum, sum, sumRange, type PseudoHeader } from './checksum.js';
import { WireError } from './errors.js';
import { IpProtocol, type ParseOptions } from './ipv4.js';

/** Header length without options. */
export const TCP_HEADER_LENGTH = 20;
/** Longest header: Data Offset is 4 bits of 32-bit words. */
export const TCP_MAX_HEADER_LENGTH = 60;
/** Most SACK blocks that fit in 40 bytes of options (RFC 2018 §3). */
export const TCP_MAX_SACK_BLOCKS = 4;

/** Control bits (RFC 9293 §3.1; CWR/ECE from RFC 3168). */
export const TcpFlags = {
  FIN: 0x01,
  SYN: 0x02,
  RST: 0x04,
  PSH: 0x08,
  ACK: 0x10,
  URG: 0x20,
  ECE: 0x40,
  CWR: 0x80,
} as const;

/** Option kinds (IANA "TCP Option Kind Numbers"). */
export const TcpOptionKind = {
  EndOfList: 0,
  Nop: 1,
  MaximumSegmentSize: 2,
  WindowScale: 3,
  SackPermitted: 4,
  Sack: 5,
  Timestamps: 8,
} as const;

const SOURCE_PORT = 0;
const DESTINATION_PORT = 2;
const SEQUENCE = 4;
const ACKNOWLEDGMENT = 8;
const DATA_OFFSET = 12;
const FLAGS = 13;
const WINDOW = 14;
const CHECKSUM = 16;
const URGENT = 18;

/** A view over a TCP segment; getters read in place, setters write in place. */
export class TcpView {
  constructor(readonly bytes: Uint8Array) {}

  /** Wraps untrusted bytes: fixed header present, Data Offset within 5 words and the buffer. */
  static checked(bytes: Uint8Array): TcpView {
    if (bytes.length < TCP_HEADER_LENGTH) throw new WireError('tcp', 'truncated');
    const view = new TcpView(bytes);
    const headerLength = view.headerLength;
    if (headerLength < TCP_HEADER_LENGTH || headerLength > bytes.length) throw new WireError('tcp', 'bad-length');
    return view;
  }

  get sourcePort(): number {
    return get16(this.bytes, SOURCE_PORT);
  }
  get destinationPort(): number {
    return get16(this.bytes, DESTINATION_PORT);
  }
  get sequenceNumber(): number {
    return get32(this.bytes, SEQUENCE);
  }
  get acknowledgmentNumber(): number {
    return get32(this.bytes, ACKNOWLEDGMENT);
  }
  /** Header length in bytes (Data Offset × 4). */
  get headerLength(): number {
    return (this.bytes[DATA_OFFSET]! >>> 4) * 4;
  }
  /** The eight control bits; test them with `TcpFlags`. */
  get flags(): number {
    return this.bytes[FLAGS]!;
  }
  get fin(): boolean {
    return (this.bytes[FLAGS]! & TcpFlags.FIN) !== 0;
  }
  get syn(): boolean {
    return (this.bytes[FLAGS]! & TcpFlags.SYN) !== 0;
  }
  get rst(): boolean {
    return (this.bytes[FLAGS]! & TcpFlags.RST) !== 0;
  }
  get psh(): boolean {
    return (this.bytes[FLAGS]! & TcpFlags.PSH) !== 0;
  }
  get ack(): boolean {
    return (this.bytes[FLAGS]! & TcpFlags.ACK) !== 0;
  }
  get urg(): boolean {
    return (this.bytes[FLAGS]! & TcpFlags.URG) !== 0;
  }
  get windowSize(): number {
    return get16(this.bytes, WINDOW);
  }
  get checksum(): number {
    return get16(this.bytes, CHECKSUM);
  }
  get urgentPointer(): number {
    return get16(this.bytes, URGENT);
  }
  /** Raw option bytes; decode with `parseTcpOptions`. */
  get options(): Uint8Array {
    return this.bytes.subarray(TCP_HEADER_LENGTH, this.headerLength);
  }
  /** Segment data after the header. */
  get payload(): Uint8Array {
    return this.bytes.subarray(this.headerLength);
  }

  set sourcePort(v: number) {
    set16(this.bytes, SOURCE_PORT, v);
  }
  set destinationPort(v: number) {
    set16(this.bytes, DESTINATION_PORT, v);
  }
  set sequenceNumber(v: number) {
    set32(this.bytes, SEQUENCE, v);
  }
  set acknowledgmentNumber(v: number) {
    set32(this.bytes, ACKNOWLEDGMENT, v);
  }
  set flags(v: number) {
    this.bytes[FLAGS] = v;
  }
  set windowSize(v: number) {
    set16(this.bytes, WINDOW, v);
  }
  set checksum(v: number) {
    set16(this.bytes, CHECKSUM, v);
  }

  /** True when the checksum over pseudo-header and the whole segment is right. */
  verifyChecksum(pseudo: PseudoHeader): boolean {
    const acc = pseudoHeaderSum(pseudo.source, pseudo.destination, IpProtocol.TCP, this.bytes.length);
    return fold(sum(this.bytes, acc)) === 0;
  }

  /** Computes and stores the checksum. Call after the last write. */
  fillChecksum(pseudo: PseudoHeader): void {
    set16(this.bytes, CHECKSUM, 0);
    const acc = pseudoHeaderSum(pseudo.source, pseudo.destination, IpProtocol.TCP, this.bytes.length);
    set16(this.bytes, CHECKSUM, fold(sum(this.bytes, acc)));
  }
}

/** One SACK block: [left, right) in sequence space (RFC 2018 §3). */
export interface SackBlock {
  left: number;
  right: number;
}

/** Decoded TCP options; a field is present only when its option was. */
export interface TcpOptions {
  mss?: number;
  /** Shift count as sent (RFC 7323 §2.3 caps use at 14; the raw value is kept). */
  windowScale?: number;
  sackPermitted?: boolean;
  sackBlocks?: SackBlock[];
  timestamp?: { value: number; echoReply: number };
  /** Options of other kinds (never 0 or 1), in order. `data` aliases the frame when parsed. */
  unknown?: Array<{ kind: number; data: Uint8Array }>;
}

function badOption(): WireError {
  return new WireError('tcp', 'bad-option');
}

/**
 * Decodes raw option bytes. Throws `bad-option` for a length byte that is
 * missing, below 2, past the end, or wrong for a known kind (RFC 9293 §3.1:
 * an implementation "MUST handle an illegal option length (e.g., zero)
 * without crashing").
 */
export function parseTcpOptions(bytes: Uint8Array): TcpOptions {
  const options: TcpOptions = {};
  let i = 0;
  while (i < bytes.length) {
    const kind = bytes[i]!;
    if (kind === TcpOptionKind.EndOfList) break;
    if (kind === TcpOptionKind.Nop) {
      i++;
      continue;
    }
    if (i + 1 >= bytes.length) throw badOption();
    const length = bytes[i + 1]!;
    if (length < 2 || i + length > bytes.length) throw badOption();
    const at = i + 2;
    switch (kind) {
      case TcpOptionKind.MaximumSegmentSize:
        if (length !== 4) throw badOption();
        options.mss = get16(bytes, at);
        break;
      case TcpOptionKind.WindowScale:
        if (length !== 3) throw badOption();
        options.windowScale = bytes[at]!;
        break;
      case TcpOptionKind.SackPermitted:
        if (length !== 2) throw badOption();
        options.sackPermitted = true;
        break;
      case TcpOptionKind.Sack: {
        const n = (length - 2) / 8;
        if (!Number.isInteger(n) || n < 1 || n > TCP_MAX_SACK_BLOCKS) throw badOption();
        const blocks: SackBlock[] = [];
        for (let b = 0; b < n; b++) blocks.push({ left: get32(bytes, at + b * 8), right: get32(bytes, at + b * 8 + 4) });
        options.sackBlocks = blocks;
        break;
      }
      case TcpOptionKind.Timestamps:
        if (length !== 10) throw badOption();
        options.timestamp = { value: get32(bytes, at), echoReply: get32(bytes, at + 4) };
        break;
      default:
        (options.unknown ??= []).push({ kind, data: bytes.subarray(at, i + length) });
    }
    i += length;
  }
  return options;
}

// Emitted layout, each part 4-byte aligned with leading NOPs as Linux sends them:
// MSS(4) | [SACK_PERM,]TS or NOP,NOP,TS(12) | NOP,NOP,SACK_PERM(4) | NOP,WS(4)
// | NOP,NOP,SACK(2+8n) | unknown options padded in front to 4.

function unknownSize(dataLength: number): number {
  return Math.ceil((2 + dataLength) / 4) * 4;
}

/** Bytes `emitTcpOptions` writes: a multiple of 4. */
export function tcpOptionsLength(options: TcpOptions): number {
  let n = 0;
  if (options.mss !== undefined) n += 4;
  if (options.timestamp !== undefined) n += 12;
  else if (options.sackPermitted === true) n += 4;
  if (options.windowScale !== undefined) n += 4;
  if (options.sackBlocks !== undefined && options.sackBlocks.length > 0) n += 4 + 8 * options.sackBlocks.length;
  for (const u of options.unknown ?? []) n += unknownSize(u.data.length);
  return n;
}

/** Writes options at `offset`; returns the offset just past them. */
export function emitTcpOptions(options: TcpOptions, into: Uint8Array, offset: number): number {
  let o = offset;
  const nop = (): void => {
    into[o++] = TcpOptionKind.Nop;
  };
  if (options.mss !== undefined) {
    into[o] = TcpOptionKind.MaximumSegmentSize;
    into[o + 1] = 4;
    set16(into, o + 2, options.mss);
    o += 4;
  }
  if (options.timestamp !== undefined) {
    if (options.sackPermitted === true) {
      into[o++] = TcpOptionKind.SackPermitted;
      into[o++] = 2;
    } else {
      nop();
      nop();
    }
    into[o] = TcpOptionKind.Timestamps;
    into[o + 1] = 10;
    set32(into, o + 2, options.timestamp.value);
    set32(into, o + 6, options.timestamp.echoReply);
    o += 10;
  } else if (options.sackPermitted === true) {
    nop();
    nop();
    into[o++] = TcpOptionKind.SackPermitted;
    into[o++] = 2;
  }
  if (options.windowScale !== undefined) {
    nop();
    into[o] = TcpOptionKind.WindowScale;
    into[o + 1] = 3;
    into[o + 2] = options.windowScale;
    o += 3;
  }
  const blocks = options.sackBlocks;
  if (blocks !== undefined && blocks.length > 0) {
    nop();
    nop();
    into[o] = TcpOptionKind.Sack;
    into[o + 1] = 2 + 8 * blocks.length;
    o += 2;
    for (const b of blocks) {
      set32(into, o, b.left);
      set32(into, o + 4, b.right);
      o += 8;
    }
  }
  for (const u of options.unknown ?? []) {
    const pad = unknownSize(u.data.length) - 2 - u.data.length;
    for (let p = 0; p < pad; p++) nop();
    into[o] = u.kind;
    into[o + 1] = 2 + u.data.length;
    into.set(u.data, o + 2);
    o += 2 + u.data.length;
  }
  return o;
}

/** A TCP segment as a plain value. */
export interface TcpSegment {
  sourcePort: number;
  destinationPort: number;
  sequenceNumber: number;
  acknowledgmentNumber: number;
  /** Control bits, from `TcpFlags`. */
  flags: number;
  windowSize: number;
  urgentPointer?: number;
  options: TcpOptions;
  payload: Uint8Array;
}

/** The segment of a checked view; `payload` aliases the frame. Throws `bad-checksum`, `bad-option`. */
export function parseTcp(view: TcpView, pseudo: PseudoHeader, options?: ParseOptions): TcpSegment {
  if (options?.verifyChecksum !== false && !view.verifyChecksum(pseudo)) throw new WireError('tcp', 'bad-checksum');
  return {
    sourcePort: view.sourcePort,
    destinationPort: view.destinationPort,
    sequenceNumber: view.sequenceNumber,
    acknowledgmentNumber: view.acknowledgmentNumber,
    flags: view.flags,
    windowSize: view.windowSize,
    urgentPointer: view.urgentPointer,
    options: parseTcpOptions(view.options),
    payload: view.payload,
  };
}

/** Header length `emitTcp` writes (options included). */
export function tcpHeaderLength(segment: TcpSegment): number {
  return TCP_HEADER_LENGTH + tcpOptionsLength(segment.options);
}

/** Length `emitTcp` writes: header, options and payload. */
export function tcpLength(segment: TcpSegment): number {
  return tcpHeaderLength(segment) + segment.payload.length;
}

/**
 * Writes the segment at `offset` and fills the checksum; returns the offset
 * just past the payload. The payload is copied unless it already sits right
 * after the header in `into`. Throws `RangeError` when options exceed 40 bytes
 * (a bug in the caller).
 */
export function emitTcp(segment: TcpSegment, into: Uint8Array, offset: number, pseudo: PseudoHeader): number {
  const headerLength = tcpHeaderLength(segment);
  if (headerLength > TCP_MAX_HEADER_LENGTH) {
    throw new RangeError(`TCP options take ${headerLength - TCP_HEADER_LENGTH} bytes, more than 40`);
  }
  const end = offset + headerLength + segment.payload.length;
  set16(into, offset + SOURCE_PORT, segment.sourcePort);
  set16(into, offset + DESTINATION_PORT, segment.destinationPort);
  set32(into, offset + SEQUENCE, segment.sequenceNumber);
  set32(into, offset + ACKNOWLEDGMENT, segment.acknowledgmentNumber);
  into[offset + DATA_OFFSET] = (headerLength / 4) << 4;
  into[offset + FLAGS] = segment.flags;
  set16(into, offset + WINDOW, segment.windowSize);
  set16(into, offset + CHECKSUM, 0);
  set16(into, offset + URGENT, segment.urgentPointer ?? 0);
  emitTcpOptions(segment.options, into, offset + TCP_HEADER_LENGTH);
  if (!isAt(segment.payload, into, offset + headerLength)) into.set(segment.payload, offset + headerLength);
  const acc = pseudoHeaderSum(pseudo.source, pseudo.destination, IpProtocol.TCP, end - offset);
  set16(into, offset + CHECKSUM, fold(sumRange(into, offset, end, acc)));
  return end;
}
