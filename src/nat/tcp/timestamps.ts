/**
 * TCP timestamps toward guests (RFC 7323 §3–5): the option's bytes, our
 * clock, and the guest's timestamp read from a segment.
 *
 * Why a NAT offers them: a guest that opens connections faster than its
 * TIME-WAIT frees ports (a load test, a build fetching thousands of files)
 * can reuse a port in TIME-WAIT only for a peer that speaks timestamps —
 * Linux's `tcp_tw_reuse` needs the old connection's last timestamp to tell
 * the new one's segments from the old ones' (RFC 6191). Without them its
 * `connect()` slows and then fails once the ephemeral ports are used up.
 * Timestamps also give PAWS (§5), which keeps an old duplicate out once the
 * sequence space wraps (every 2 s at 17 Gbit/s).
 *
 * Timestamps are held as int32, as sequence numbers (see seq.ts), and
 * compared with the same modular helpers: §5.2 compares them "as 32-bit
 * unsigned integers in a modular 32-bit space".
 */

import { get32, set32 } from '../../wire/bytes.js';
import { TCP_HEADER_LENGTH, TcpOptionKind } from '../../wire/tcp.js';

/** NOP, NOP, kind 8, length 10, TSval, TSecr: the 4-byte-aligned form every stack sends (RFC 7323 Appendix A). */
export const TIMESTAMP_OPTION_LENGTH = 12;

/**
 * §5.5: a timestamp older than 24 days may have wrapped; past that, a
 * connection's TS.Recent no longer rejects segments (PAWS is "invalidated").
 */
export const PAWS_IDLE_MS = 24 * 24 * 60 * 60 * 1000;

/**
 * Our TSval: milliseconds from a monotonic clock (§5.4: between 1 ms and
 * 1 s per tick; a wall clock could step back and make the guest's PAWS
 * drop our segments), plus the connection's random `offset` (§7.1: a
 * per-connection offset keeps the clock from being read across
 * connections).
 */
export function timestampNow(offset: number): number {
  return (offset + Math.floor(performance.now())) | 0;
}

/** A random per-connection offset for `timestampNow`. */
export function timestampOffset(): number {
  return (Math.random() * 0x1_0000_0000) | 0;
}

/** Writes NOP, NOP, TS(`value`, `echo`) at `at`. */
export function writeTimestampOption(frame: Uint8Array, at: number, value: number, echo: number): void {
  frame[at] = TcpOptionKind.Nop;
  frame[at + 1] = TcpOptionKind.Nop;
  frame[at + 2] = TcpOptionKind.Timestamps;
  frame[at + 3] = 10;
  set32(frame, at + 4, value);
  set32(frame, at + 8, echo);
}

/**
 * The TSval of the TCP segment `bytes` (header `headerLength` long) as an
 * int32, or NaN when it carries none. Reads the aligned form at the front
 * of the options first, as Linux's fast path does, and walks the options
 * only when it is not there. A malformed option list reads as none: the
 * segment was checked on the way in only if it was a SYN.
 */
export function segmentTimestamp(bytes: Uint8Array, headerLength: number): number {
  const o = TCP_HEADER_LENGTH;
  if (headerLength < o + TIMESTAMP_OPTION_LENGTH) return NaN;
  if (bytes[o] === TcpOptionKind.Nop && bytes[o + 1] === TcpOptionKind.Nop && bytes[o + 2] === TcpOptionKind.Timestamps && bytes[o + 3] === 10) {
    return get32(bytes, o + 4) | 0;
  }
  let i = o;
  while (i < headerLength) {
    const kind = bytes[i]!;
    if (kind === TcpOptionKind.EndOfList) return NaN;
    if (kind === TcpOptionKind.Nop) {
      i++;
      continue;
    }
    const length = i + 1 < headerLength ? bytes[i + 1]! : 0;
    if (length < 2 || i + length > headerLength) return NaN;
    if (kind === TcpOptionKind.Timestamps) return length === 10 ? get32(bytes, i + 2) | 0 : NaN;
    i += length;
  }
  return NaN;
}
