/**
 * Byte-level helpers for DNS messages (RFC 1035 §4.1) that the proxy passes
 * through without decoding: the header, the question's extent, truncation,
 * and error responses built from a query's header alone.
 *
 *    0  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15
 *   +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
 *   |                      ID                       |
 *   |QR|   Opcode  |AA|TC|RD|RA| Z|AD|CD|   RCODE   |
 *   |                    QDCOUNT                    |
 *   |                    ANCOUNT                    |
 *   |                    NSCOUNT                    |
 *   |                    ARCOUNT                    |
 *   +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
 *
 * Full decoding and encoding go through `dns-packet`.
 */

/** Header length (RFC 1035 §4.1.1). */
export const DNS_HEADER_LENGTH = 12;
/** RFC 1035 §4.2.1: "Messages carried by UDP are restricted to 512 bytes". */
export const DNS_UDP_DEFAULT_SIZE = 512;
/** Largest message over TCP: the 2-byte length prefix (RFC 1035 §4.2.2). */
export const DNS_TCP_MAX_SIZE = 0xffff;

export const Rcode = {
  NoError: 0,
  FormErr: 1,
  ServFail: 2,
  NxDomain: 3,
  NotImp: 4,
  Refused: 5,
} as const;

const ID = 0;
const FLAGS = 2;
const QDCOUNT = 4;
const ARCOUNT = 10;

const FLAG_QR = 0x8000;
const FLAG_TC = 0x0200;
const FLAG_RD = 0x0100;
const FLAG_RA = 0x0080;
const OPCODE_MASK = 0x7800;
const OPCODE_SHIFT = 11;
const RCODE_MASK = 0x000f;

/** A copy in a new plain array (`Buffer#slice` would alias). */
export function copyOf(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

export function getId(m: Uint8Array): number {
  return (m[ID]! << 8) | m[ID + 1]!;
}
export function setId(m: Uint8Array, id: number): void {
  m[ID] = id >>> 8;
  m[ID + 1] = id;
}
function getFlags(m: Uint8Array): number {
  return (m[FLAGS]! << 8) | m[FLAGS + 1]!;
}
function setFlags(m: Uint8Array, flags: number): void {
  m[FLAGS] = flags >>> 8;
  m[FLAGS + 1] = flags;
}
export function isResponse(m: Uint8Array): boolean {
  return (getFlags(m) & FLAG_QR) !== 0;
}
export function isTruncated(m: Uint8Array): boolean {
  return (getFlags(m) & FLAG_TC) !== 0;
}
export function getOpcode(m: Uint8Array): number {
  return (getFlags(m) & OPCODE_MASK) >>> OPCODE_SHIFT;
}
export function getRcode(m: Uint8Array): number {
  return getFlags(m) & RCODE_MASK;
}
export function getQuestionCount(m: Uint8Array): number {
  return (m[QDCOUNT]! << 8) | m[QDCOUNT + 1]!;
}

/**
 * Offset just past the first question (name, type, class), or -1 when the
 * message has none or it runs past the end. Names in a question are not
 * compressed in practice; a pointer ends the name here.
 */
export function questionEnd(m: Uint8Array): number {
  if (m.length < DNS_HEADER_LENGTH || getQuestionCount(m) === 0) return -1;
  let p = DNS_HEADER_LENGTH;
  for (;;) {
    if (p >= m.length) return -1;
    const length = m[p]!;
    if (length === 0) {
      p += 1;
      break;
    }
    if ((length & 0xc0) === 0xc0) {
      p += 2;
      break;
    }
    if ((length & 0xc0) !== 0) return -1;
    p += 1 + length;
  }
  p += 4;
  return p <= m.length ? p : -1;
}

/** True when both messages carry the same first question; names compare case-insensitively (RFC 4343). */
export function sameQuestion(a: Uint8Array, b: Uint8Array): boolean {
  const end = questionEnd(a);
  if (end < 0 || questionEnd(b) !== end) return false;
  const nameEnd = end - 4;
  for (let i = DNS_HEADER_LENGTH; i < end; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x === y) continue;
    const letter = (x | 0x20) >= 0x61 && (x | 0x20) <= 0x7a;
    if (i >= nameEnd || !letter || (x | 0x20) !== (y | 0x20)) return false;
  }
  return true;
}

/**
 * A response with only the header and question of `response`, TC set and
 * the other counts zero: what a guest gets over UDP when the full answer
 * does not fit, so that it retries over TCP (RFC 2181 §9). A new array.
 */
export function truncated(response: Uint8Array): Uint8Array {
  const end = questionEnd(response);
  const out = copyOf(response.subarray(0, end < 0 ? DNS_HEADER_LENGTH : end));
  setFlags(out, getFlags(out) | FLAG_TC);
  out.fill(0, QDCOUNT, ARCOUNT + 2);
  if (end >= 0) out[QDCOUNT + 1] = 1;
  return out;
}

/**
 * An error response to `query` built from its header (and first question
 * when readable): same ID, opcode and RD, QR and RA set, `rcode`. For
 * queries `dns-packet` could not decode. A new array.
 */
export function errorResponse(query: Uint8Array, rcode: number): Uint8Array {
  const end = questionEnd(query);
  const out = copyOf(query.subarray(0, end < 0 ? DNS_HEADER_LENGTH : end));
  const flags = getFlags(query);
  setFlags(out, FLAG_QR | (flags & (OPCODE_MASK | FLAG_RD)) | FLAG_RA | (rcode & RCODE_MASK));
  out.fill(0, QDCOUNT, ARCOUNT + 2);
  if (end >= 0) out[QDCOUNT + 1] = 1;
  return out;
}
