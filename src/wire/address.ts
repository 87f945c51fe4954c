/**
 * MAC and IPv4 address helpers. Parsers here take user input (CLI, model
 * files), so they throw a plain `Error` whose message names the bad value;
 * they are never used on frames.
 *
 * IPv4 addresses are unsigned 32-bit numbers throughout the engine: cheap to
 * compare, mask and use as Map keys.
 */

import { get32, set32 } from './bytes.js';

/** Length of a MAC address in bytes. */
export const MAC_LENGTH = 6;

/** ff:ff:ff:ff:ff:ff. Shared — never write into it. */
export const BROADCAST_MAC: Uint8Array = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

const MAC_SEPARATED = /^([0-9a-f]{1,2})([:-])([0-9a-f]{1,2})\2([0-9a-f]{1,2})\2([0-9a-f]{1,2})\2([0-9a-f]{1,2})\2([0-9a-f]{1,2})$/i;
const MAC_BARE = /^[0-9a-f]{12}$/i;

/**
 * Parses `08:00:27:aa:bb:cc`, `08-00-27-aa-bb-cc` or VirtualBox's bare
 * `080027AABBCC`. Throws `Error` for anything else.
 */
export function parseMac(s: string): Uint8Array {
  const text = s.trim();
  const mac = new Uint8Array(MAC_LENGTH);
  if (MAC_BARE.test(text)) {
    for (let i = 0; i < MAC_LENGTH; i++) mac[i] = parseInt(text.slice(i * 2, i * 2 + 2), 16);
    return mac;
  }
  const m = MAC_SEPARATED.exec(text);
  if (m === null) {
    throw new Error(`invalid MAC address "${s}": expected 08:00:27:aa:bb:cc, 08-00-27-aa-bb-cc or 080027AABBCC`);
  }
  const groups = [m[1], m[3], m[4], m[5], m[6], m[7]];
  for (let i = 0; i < MAC_LENGTH; i++) mac[i] = parseInt(groups[i]!, 16);
  return mac;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Formats six bytes at `offset` as lowercase `08:00:27:aa:bb:cc`. */
export function formatMac(bytes: Uint8Array, offset = 0): string {
  return (
    HEX[bytes[offset]!]! + ':' + HEX[bytes[offset + 1]!]! + ':' + HEX[bytes[offset + 2]!]! + ':' +
    HEX[bytes[offset + 3]!]! + ':' + HEX[bytes[offset + 4]!]! + ':' + HEX[bytes[offset + 5]!]!
  );
}

/** The 48-bit MAC at `offset` as a number (exact: < 2^53), for Map keys without allocating strings. */
export function macKey(bytes: Uint8Array, offset = 0): number {
  return (((bytes[offset]! << 8) | bytes[offset + 1]!) * 0x100000000) + get32(bytes, offset + 2);
}

/** True for group addresses, broadcast included (IEEE 802.3 §3.2.3: I/G bit, the LSB of the first octet). */
export function isMulticastMac(bytes: Uint8Array, offset = 0): boolean {
  return (bytes[offset]! & 0x01) !== 0;
}

/** True for ff:ff:ff:ff:ff:ff. */
export function isBroadcastMac(bytes: Uint8Array, offset = 0): boolean {
  return (
    (bytes[offset]! & bytes[offset + 1]! & bytes[offset + 2]! & bytes[offset + 3]! & bytes[offset + 4]! & bytes[offset + 5]!) === 0xff
  );
}

/** True when the six bytes at the two offsets are equal. */
export function macEquals(a: Uint8Array, b: Uint8Array, aOffset = 0, bOffset = 0): boolean {
  for (let i = 0; i < MAC_LENGTH; i++) if (a[aOffset + i] !== b[bOffset + i]) return false;
  return true;
}

const IPV4_DOTTED = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Parses dotted-quad `10.0.2.15` to an unsigned number. Throws `Error` for anything else (no octal, no short forms). */
export function parseIpv4(s: string): number {
  const m = IPV4_DOTTED.exec(s.trim());
  if (m !== null) {
    let n = 0;
    let ok = true;
    for (let i = 1; i <= 4; i++) {
      const part = m[i]!;
      const octet = Number(part);
      // Leading zeros are refused: inet_aton reads them as octal.
      if (octet > 255 || (part.length > 1 && part[0] === '0')) ok = false;
      n = n * 256 + octet;
    }
    if (ok) return n;
  }
  throw new Error(`invalid IPv4 address "${s}": expected four decimal numbers 0-255 like 10.0.2.15`);
}

/** An address as text (IPv4 or IPv6) in the host's loopback: 127.0.0.0/8 or ::1. */
export function isLoopbackText(address: string): boolean {
  return address.startsWith('127.') || address === '::1';
}

/** Formats an IPv4 number as dotted-quad. */
export function formatIpv4(n: number): string {
  return `${(n >>> 24) & 0xff}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;
}

/** The four network-order bytes of an IPv4 number (a new array). */
export function ipv4Bytes(n: number): Uint8Array {
  const b = new Uint8Array(4);
  set32(b, 0, n);
  return b;
}

/** Reads the IPv4 address at `offset` as an unsigned number. */
export function readIpv4(bytes: Uint8Array, offset: number): number {
  return get32(bytes, offset);
}

/** Writes an IPv4 number at `offset`. */
export function writeIpv4(bytes: Uint8Array, offset: number, n: number): void {
  set32(bytes, offset, n);
}

/** A parsed `a.b.c.d/len`: the network (host bits cleared), prefix length and mask, all unsigned. */
export interface Cidr {
  network: number;
  prefix: number;
  mask: number;
}

/** The netmask for a prefix length 0–32, unsigned. */
export function prefixToMask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/**
 * Parses `10.0.2.0/24`; host bits in the address are cleared (VBoxManage
 * accepts `10.0.2.15/24` too). Throws `Error` for anything else.
 */
export function parseCidr(s: string): Cidr {
  const text = s.trim();
  const slash = text.indexOf('/');
  const prefixText = slash < 0 ? '' : text.slice(slash + 1);
  if (slash < 0 || !/^\d{1,2}$/.test(prefixText) || Number(prefixText) > 32) {
    throw new Error(`invalid network "${s}": expected address/prefix like 10.0.2.0/24`);
  }
  const prefix = Number(prefixText);
  const mask = prefixToMask(prefix);
  let address: number;
  try {
    address = parseIpv4(text.slice(0, slash));
  } catch {
    throw new Error(`invalid network "${s}": expected address/prefix like 10.0.2.0/24`);
  }
  return { network: (address & mask) >>> 0, prefix, mask };
}
