/**
 * Big-endian field access on plain byte arrays, shared by every view.
 *
 * Views read bytes directly instead of through a `DataView`: it costs no
 * allocation per frame, and a `Uint8Array` index past the end yields
 * `undefined` (→ 0 after `|`) rather than throwing, so even an unchecked view
 * cannot raise a non-`WireError` exception.
 */

/** Reads an unsigned 16-bit big-endian value. */
export function get16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

/** Reads an unsigned 32-bit big-endian value. */
export function get32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/** Writes a 16-bit big-endian value (upper bits ignored). */
export function set16(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 8;
  b[o + 1] = v;
}

/** Writes a 32-bit big-endian value (upper bits ignored). */
export function set32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}

/** True when `part` is exactly the bytes of `whole` starting at `offset` (so copying it there can be skipped). */
export function isAt(part: Uint8Array, whole: Uint8Array, offset: number): boolean {
  return part.buffer === whole.buffer && part.byteOffset === whole.byteOffset + offset;
}

/** Copies the 6-byte MAC at the start of `mac` to `into[offset]` (a loop: cheaper than `set` + `subarray` for 6 bytes). */
export function setMac(into: Uint8Array, offset: number, mac: Uint8Array): void {
  for (let i = 0; i < 6; i++) into[offset + i] = mac[i]!;
}
