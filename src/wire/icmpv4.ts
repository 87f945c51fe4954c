/**
 * ICMP for IPv4 (RFC 792): echo request/reply, and the error messages that
 * quote the original datagram (destination unreachable, time exceeded).
 * Other types stay numbers with their raw bytes.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |     Type      |     Code      |          Checksum             |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  echo: Identifier             |  echo: Sequence Number        |
 *   |  unreachable: unused          |  code 4: Next-Hop MTU (1191)  |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  echo: data ...  /  errors: original IP header + leading data |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * The view is over the whole ICMP message (the IPv4 payload): the checksum
 * covers all of it. Reasons thrown: `truncated`, `bad-checksum`.
 */

import { get16, get32, set16, set32 } from './bytes.js';
import { fold, sum, sumRange } from './checksum.js';
import { WireError } from './errors.js';
import type { ParseOptions } from './ipv4.js';

/** Length of the ICMP header (type, code, checksum, rest of header). */
export const ICMPV4_HEADER_LENGTH = 8;
/**
 * Longest ICMP error we send (RFC 1812 §4.3.2.3: "as much of the original
 * datagram as possible without the length of the ICMP datagram exceeding 576
 * bytes"), counting the IP header.
 */
export const ICMPV4_MAX_ERROR_DATAGRAM = 576;

/** ICMP types we know by name; others stay numbers. */
export const Icmpv4Type = {
  EchoReply: 0,
  DestinationUnreachable: 3,
  Redirect: 5,
  EchoRequest: 8,
  TimeExceeded: 11,
  ParameterProblem: 12,
} as const;

/** Codes for Destination Unreachable (RFC 792, RFC 1191, RFC 1812 §5.2.7.1). */
export const Icmpv4UnreachableCode = {
  NetUnreachable: 0,
  HostUnreachable: 1,
  ProtocolUnreachable: 2,
  PortUnreachable: 3,
  FragmentationNeeded: 4,
  SourceRouteFailed: 5,
  CommunicationProhibited: 13,
} as const;

/** Codes for Time Exceeded (RFC 792). */
export const Icmpv4TimeExceededCode = {
  TtlExceeded: 0,
  FragmentReassembly: 1,
} as const;

const TYPE = 0;
const CODE = 1;
const CHECKSUM = 2;
const REST = 4;
const IDENTIFIER = 4;
const SEQUENCE = 6;
const NEXT_HOP_MTU = 6;
const DATA = 8;

/** A view over an ICMPv4 message. */
export class Icmpv4View {
  constructor(readonly bytes: Uint8Array) {}

  /** Wraps untrusted bytes: the 8-byte header must be present. */
  static checked(bytes: Uint8Array): Icmpv4View {
    if (bytes.length < ICMPV4_HEADER_LENGTH) throw new WireError('icmpv4', 'truncated');
    return new Icmpv4View(bytes);
  }

  get type(): number {
    return this.bytes[TYPE]!;
  }
  get code(): number {
    return this.bytes[CODE]!;
  }
  get checksum(): number {
    return get16(this.bytes, CHECKSUM);
  }
  /** The 4 type-specific header bytes as one number. */
  get restOfHeader(): number {
    return get32(this.bytes, REST);
  }
  /** Echo identifier. */
  get identifier(): number {
    return get16(this.bytes, IDENTIFIER);
  }
  /** Echo sequence number. */
  get sequenceNumber(): number {
    return get16(this.bytes, SEQUENCE);
  }
  /** Next-hop MTU of "fragmentation needed" (RFC 1191 §4). */
  get nextHopMtu(): number {
    return get16(this.bytes, NEXT_HOP_MTU);
  }
  /** Echo data, or the quoted original datagram of an error. */
  get data(): Uint8Array {
    return this.bytes.subarray(DATA);
  }

  set type(v: number) {
    this.bytes[TYPE] = v;
  }
  set code(v: number) {
    this.bytes[CODE] = v;
  }
  set checksum(v: number) {
    set16(this.bytes, CHECKSUM, v);
  }
  set identifier(v: number) {
    set16(this.bytes, IDENTIFIER, v);
  }
  set sequenceNumber(v: number) {
    set16(this.bytes, SEQUENCE, v);
  }

  /** True when the checksum over the whole message is right. */
  verifyChecksum(): boolean {
    return fold(sum(this.bytes)) === 0;
  }

  /** Computes and stores the checksum. Call after the last write. */
  fillChecksum(): void {
    set16(this.bytes, CHECKSUM, 0);
    set16(this.bytes, CHECKSUM, fold(sum(this.bytes)));
  }
}

/** An ICMPv4 message as a plain value. */
export type Icmpv4Message =
  | { kind: 'echoRequest' | 'echoReply'; identifier: number; sequenceNumber: number; data: Uint8Array }
  | {
      kind: 'destinationUnreachable';
      code: number;
      /** Meaningful for code 4 (fragmentation needed); 0 otherwise. */
      nextHopMtu: number;
      /** The quoted original datagram: IP header and leading payload bytes. */
      original: Uint8Array;
    }
  | { kind: 'timeExceeded'; code: number; original: Uint8Array }
  | { kind: 'other'; type: number; code: number; restOfHeader: number; data: Uint8Array };

/**
 * The message of a checked view; `data`/`original` alias the frame. Throws
 * `bad-checksum`. Parse `original` with `Ipv4View.checkedHeader`.
 */
export function parseIcmpv4(view: Icmpv4View, options?: ParseOptions): Icmpv4Message {
  if (options?.verifyChecksum !== false && !view.verifyChecksum()) throw new WireError('icmpv4', 'bad-checksum');
  const type = view.type;
  switch (type) {
    case Icmpv4Type.EchoRequest:
    case Icmpv4Type.EchoReply:
      // Echo messages use code 0 only (RFC 792); others are kept raw so nothing is lost.
      if (view.code !== 0) break;
      return {
        kind: type === Icmpv4Type.EchoRequest ? 'echoRequest' : 'echoReply',
        identifier: view.identifier,
        sequenceNumber: view.sequenceNumber,
        data: view.data,
      };
    case Icmpv4Type.DestinationUnreachable:
      return { kind: 'destinationUnreachable', code: view.code, nextHopMtu: view.nextHopMtu, original: view.data };
    case Icmpv4Type.TimeExceeded:
      return { kind: 'timeExceeded', code: view.code, original: view.data };
  }
  return { kind: 'other', type, code: view.code, restOfHeader: view.restOfHeader, data: view.data };
}

/** Length `emitIcmpv4` writes. */
export function icmpv4Length(message: Icmpv4Message): number {
  const body = 'original' in message ? message.original : message.data;
  return ICMPV4_HEADER_LENGTH + body.length;
}

/**
 * Writes the message at `offset` with its checksum, copying its data; returns
 * the offset just past it. For errors, the caller chooses how much of the
 * original to quote (see `ICMPV4_MAX_ERROR_DATAGRAM`).
 */
export function emitIcmpv4(message: Icmpv4Message, into: Uint8Array, offset: number): number {
  let type: number;
  let code: number;
  let rest: number;
  let body: Uint8Array;
  switch (message.kind) {
    case 'echoRequest':
    case 'echoReply':
      type = message.kind === 'echoRequest' ? Icmpv4Type.EchoRequest : Icmpv4Type.EchoReply;
      code = 0;
      rest = ((message.identifier & 0xffff) * 0x10000) + (message.sequenceNumber & 0xffff);
      body = message.data;
      break;
    case 'destinationUnreachable':
      type = Icmpv4Type.DestinationUnreachable;
      code = message.code;
      rest = message.nextHopMtu & 0xffff;
      body = message.original;
      break;
    case 'timeExceeded':
      type = Icmpv4Type.TimeExceeded;
      code = message.code;
      rest = 0;
      body = message.original;
      break;
    case 'other':
      type = message.type;
      code = message.code;
      rest = message.restOfHeader;
      body = message.data;
      break;
  }
  const end = offset + ICMPV4_HEADER_LENGTH + body.length;
  into[offset + TYPE] = type;
  into[offset + CODE] = code;
  set16(into, offset + CHECKSUM, 0);
  set32(into, offset + REST, rest);
  into.set(body, offset + DATA);
  set16(into, offset + CHECKSUM, fold(sumRange(into, offset, end)));
  return end;
}
