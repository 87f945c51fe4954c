/**
 * Reading MAC addresses straight out of an Ethernet header by offset, as
 * 48-bit numbers, so the switch's hot path allocates nothing.
 *
 * A 48-bit value fits exactly in a double (2^53 > 2^48), so a MAC can be a
 * `Map` key without building a string.
 */

/** Offset of the destination MAC in an Ethernet II / 802.3 header. */
export const DST_OFFSET = 0;
/** Offset of the source MAC. */
export const SRC_OFFSET = 6;
/** Bytes in an Ethernet header before any 802.1Q tag (dst, src, type). */
export const ETHERNET_HEADER_LENGTH = 14;

/** The six bytes at `offset` as one number in 0 … 2^48 − 1. Caller checks bounds. */
export function macKeyAt(bytes: Uint8Array, offset: number): number {
  // Split high 16 / low 32 bits: `<<` would overflow into the sign bit.
  const high = (bytes[offset]! << 8) | bytes[offset + 1]!;
  const low =
    ((bytes[offset + 2]! << 24) >>> 0) +
    ((bytes[offset + 3]! << 16) | (bytes[offset + 4]! << 8) | bytes[offset + 5]!);
  return high * 0x1_0000_0000 + low;
}

/** The key of a six-byte MAC address. */
export function macKey(mac: Uint8Array): number {
  if (mac.length !== 6) throw new RangeError(`a MAC address has 6 bytes, got ${mac.length}`);
  return macKeyAt(mac, 0);
}

/**
 * True if the MAC at `offset` is multicast or broadcast. IEEE 802-2014 §8.2:
 * the Individual/Group bit is the least significant bit of the first octet.
 */
export function isGroupAt(bytes: Uint8Array, offset: number): boolean {
  return (bytes[offset]! & 0x01) !== 0;
}

/** The all-zeros address: never a valid source (IEEE 802-2014 §8.4, Linux `is_valid_ether_addr`). */
export const ZERO_KEY = 0;

/** `aa:bb:cc:dd:ee:ff` for logs and stats (not the hot path). */
export function formatMac(mac: Uint8Array): string {
  let text = '';
  for (let i = 0; i < 6; i++) {
    if (i > 0) text += ':';
    text += (mac[i] ?? 0).toString(16).padStart(2, '0');
  }
  return text;
}

/** `formatMac` of a key made by `macKeyAt`. */
export function formatMacKey(key: number): string {
  const bytes = new Uint8Array(6);
  let rest = key;
  for (let i = 5; i >= 0; i--) {
    bytes[i] = rest % 256;
    rest = Math.floor(rest / 256);
  }
  return formatMac(bytes);
}
