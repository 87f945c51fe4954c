/**
 * The Internet checksum (RFC 1071), composable: add up any number of byte
 * ranges and a pseudo-header with `sum`, then `fold` once. Never concatenate
 * buffers to checksum them.
 *
 *   const c = fold(sum(payload, sum(header, pseudoHeaderSum(src, dst, 6, len))));
 *
 * Composing is exact only when every range but the last has even length,
 * which holds for every header we chain.
 */

import { get32 } from './bytes.js';

/** Below this length a byte loop beats allocating a DataView. */
const DATAVIEW_THRESHOLD = 64;

/**
 * Adds `bytes` as big-endian 16-bit words to `acc` (unfolded, so sums compose);
 * an odd final byte is padded with zero (RFC 1071 §4.1).
 */
export function sum(bytes: Uint8Array, acc = 0): number {
  return sumRange(bytes, 0, bytes.length, acc);
}

/** `sum` over `bytes[start, end)` without creating a subarray; `start` must be even for composition. */
export function sumRange(bytes: Uint8Array, start: number, end: number, acc = 0): number {
  let i = start;
  if (end - start >= DATAVIEW_THRESHOLD) {
    // RFC 1071 §2(B): the sum is byte-order independent, so add little-endian
    // 32-bit reads (native on x86/arm, two accumulators to pipeline) and swap
    // the folded result once.
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    const last = end - 7;
    let a = 0;
    let b = 0;
    for (; i < last; i += 8) {
      const w = view.getUint32(i, true);
      const x = view.getUint32(i + 4, true);
      a += (w >>> 16) + (w & 0xffff);
      b += (x >>> 16) + (x & 0xffff);
    }
    const folded = carry16(a + b);
    acc += ((folded & 0xff) << 8) | (folded >>> 8);
  }
  for (; i + 1 < end; i += 2) acc += (bytes[i]! << 8) | bytes[i + 1]!;
  if (i < end) acc += bytes[i]! << 8;
  return acc;
}

/** End-around carry down to 16 bits (not complemented); safe above 2^32. */
function carry16(acc: number): number {
  // Composed sums can exceed 32 bits; bring them into range without `>>>`.
  while (acc > 0xffffffff) acc = (acc % 0x10000) + Math.floor(acc / 0x10000);
  while (acc > 0xffff) acc = (acc & 0xffff) + (acc >>> 16);
  return acc;
}

/** Folds an accumulated sum to 16 bits with end-around carry and returns its one's complement: the value to store. */
export function fold(acc: number): number {
  return ~carry16(acc) & 0xffff;
}

/** Source and destination IPv4 addresses for the TCP/UDP pseudo-header. */
export interface PseudoHeader {
  source: number;
  destination: number;
}

/**
 * Sum of the IPv4 pseudo-header used by TCP and UDP (RFC 9293 §3.1, RFC 768):
 * source, destination, zero, protocol, and the TCP/UDP length.
 * Addresses are numbers or 4-byte arrays.
 */
export function pseudoHeaderSum(
  source: Uint8Array | number,
  destination: Uint8Array | number,
  protocol: number,
  length: number,
): number {
  const s = typeof source === 'number' ? source >>> 0 : get32(source, 0);
  const d = typeof destination === 'number' ? destination >>> 0 : get32(destination, 0);
  return (s >>> 16) + (s & 0xffff) + (d >>> 16) + (d & 0xffff) + (protocol & 0xff) + (length & 0xffff);
}
