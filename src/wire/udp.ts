/**
 * UDP datagrams (RFC 768).
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |          Source Port          |       Destination Port        |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |            Length             |           Checksum            |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                          data ...                             |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * The view is over the IPv4 payload. Reasons thrown: `truncated`,
 * `bad-length` (Length below 8 or beyond the buffer), `bad-checksum`.
 */

import { get16, isAt, set16 } from './bytes.js';
import { fold, pseudoHeaderSum, sumRange, type PseudoHeader } from './checksum.js';
import { WireError } from './errors.js';
import { IpProtocol, type ParseOptions } from './ipv4.js';

/** Length of the UDP header. */
export const UDP_HEADER_LENGTH = 8;

const SOURCE_PORT = 0;
const DESTINATION_PORT = 2;
const LENGTH = 4;
const CHECKSUM = 6;

/** A view over a UDP datagram. */
export class UdpView {
  constructor(readonly bytes: Uint8Array) {}

  /** Wraps untrusted bytes: header present, Length between 8 and the buffer size. */
  static checked(bytes: Uint8Array): UdpView {
    if (bytes.length < UDP_HEADER_LENGTH) throw new WireError('udp', 'truncated');
    const view = new UdpView(bytes);
    const length = view.length;
    if (length < UDP_HEADER_LENGTH || length > bytes.length) throw new WireError('udp', 'bad-length');
    return view;
  }

  get sourcePort(): number {
    return get16(this.bytes, SOURCE_PORT);
  }
  get destinationPort(): number {
    return get16(this.bytes, DESTINATION_PORT);
  }
  /** The Length field: header plus data. */
  get length(): number {
    return get16(this.bytes, LENGTH);
  }
  get checksum(): number {
    return get16(this.bytes, CHECKSUM);
  }
  /** Data up to the Length field. */
  get payload(): Uint8Array {
    return this.bytes.subarray(UDP_HEADER_LENGTH, this.length);
  }

  set sourcePort(v: number) {
    set16(this.bytes, SOURCE_PORT, v);
  }
  set destinationPort(v: number) {
    set16(this.bytes, DESTINATION_PORT, v);
  }
  set length(v: number) {
    set16(this.bytes, LENGTH, v);
  }
  set checksum(v: number) {
    set16(this.bytes, CHECKSUM, v);
  }

  /** True when the checksum is right or absent (RFC 768: "An all zero transmitted checksum value means that the transmitter generated no checksum"). */
  verifyChecksum(pseudo: PseudoHeader): boolean {
    if (this.checksum === 0) return true;
    const length = this.length;
    const acc = pseudoHeaderSum(pseudo.source, pseudo.destination, IpProtocol.UDP, length);
    return fold(sumRange(this.bytes, 0, length, acc)) === 0;
  }

  /** Computes and stores the checksum over header and data up to Length. */
  fillChecksum(pseudo: PseudoHeader): void {
    set16(this.bytes, CHECKSUM, 0);
    const length = this.length;
    const acc = pseudoHeaderSum(pseudo.source, pseudo.destination, IpProtocol.UDP, length);
    set16(this.bytes, CHECKSUM, udpChecksumValue(fold(sumRange(this.bytes, 0, length, acc))));
  }
}

// RFC 768: "If the computed checksum is zero, it is transmitted as all ones".
function udpChecksumValue(c: number): number {
  return c === 0 ? 0xffff : c;
}

/** A UDP datagram as a plain value. */
export interface UdpDatagram {
  sourcePort: number;
  destinationPort: number;
  payload: Uint8Array;
}

/** The datagram of a checked view; `payload` aliases the frame. Throws `bad-checksum`. */
export function parseUdp(view: UdpView, pseudo: PseudoHeader, options?: ParseOptions): UdpDatagram {
  if (options?.verifyChecksum !== false && !view.verifyChecksum(pseudo)) throw new WireError('udp', 'bad-checksum');
  return { sourcePort: view.sourcePort, destinationPort: view.destinationPort, payload: view.payload };
}

/** Length `emitUdp` writes: header plus payload. */
export function udpLength(datagram: UdpDatagram): number {
  return UDP_HEADER_LENGTH + datagram.payload.length;
}

/**
 * Writes header and payload at `offset` and fills the checksum; returns the
 * offset just past the data. The payload is copied unless it already sits at
 * `offset + 8` in `into` (build it in place to skip the copy).
 */
export function emitUdp(datagram: UdpDatagram, into: Uint8Array, offset: number, pseudo: PseudoHeader): number {
  const payload = datagram.payload;
  const length = UDP_HEADER_LENGTH + payload.length;
  set16(into, offset + SOURCE_PORT, datagram.sourcePort);
  set16(into, offset + DESTINATION_PORT, datagram.destinationPort);
  set16(into, offset + LENGTH, length);
  set16(into, offset + CHECKSUM, 0);
  if (!isAt(payload, into, offset + UDP_HEADER_LENGTH)) into.set(payload, offset + UDP_HEADER_LENGTH);
  const acc = pseudoHeaderSum(pseudo.source, pseudo.destination, IpProtocol.UDP, length);
  set16(into, offset + CHECKSUM, udpChecksumValue(fold(sumRange(into, offset, offset + length, acc))));
  return offset + length;
}
