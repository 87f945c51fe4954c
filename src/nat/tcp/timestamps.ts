/**
 * TCP timestamps toward guests (RFC 7323 §3–5): the option's bytes, our
 * clock, and the guest's timestamp and its echo of ours read from a
 * segment.
 *
 * Why a NAT offers them: a guest that opens connections faster than its
 * TIME-WAIT frees ports (a load test, a build fetching thousands of files)
 * can reuse a port in TIME-WAIT only for a peer that speaks timestamps —
 * Linux's `tcp_tw_reuse` needs the old connection's last timestamp to tell
 * the new one's segments from the old ones' (RFC 6191). Without them its
 * `connect()` slows and then fails once the ephemeral ports are used up.
 * Timestamps also give PAWS (§5), which keeps an old duplicate out once the
 * sequence space wraps (every 2 s at 17 Gbit/s), and an RTT sample from
 * every ACK of new data (§4), retransmitted data included, where Karn's
 * rule allows one timed segment per round trip.
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
 * Our TSval at `now`, the NAT's monotonic clock in ms (§5.4: between 1 ms
 * and 1 s per tick; a wall clock could step back and make the guest's PAWS
 * drop our segments), plus the connection's random `offset` (§7.1: a
 * per-connection offset keeps the clock from being read across
 * connections). The same clock times the RTT from an echo (§4.1), so a test
 * that moves the NAT's clock moves this one too.
 */
export function timestampAt(offset: number, now: number): number {
  return (offset + Math.floor(now)) | 0;
}

/** A random per-connection offset for `timestampAt`. */
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
 * Where the timestamp option of the TCP segment `bytes` (header
 * `headerLength` long) begins, or -1 when it carries none: read its values
 * with `optionTsval` and `optionTsecr`. Looks for the aligned form at the
 * front of the options first, as Linux's fast path does, and walks the
 * options only when it is not there. A malformed option list reads as
 * none: the segment was checked on the way in only if it was a SYN.
 */
export function timestampOptionAt(bytes: Uint8Array, headerLength: number): number {
  const o = TCP_HEADER_LENGTH;
  if (headerLength < o + TIMESTAMP_OPTION_LENGTH) return -1;
  if (bytes[o] === TcpOptionKind.Nop && bytes[o + 1] === TcpOptionKind.Nop && bytes[o + 2] === TcpOptionKind.Timestamps && bytes[o + 3] === 10) {
    return o + 2;
  }
  let i = o;
  while (i < headerLength) {
    const kind = bytes[i]!;
    if (kind === TcpOptionKind.EndOfList) return -1;
    if (kind === TcpOptionKind.Nop) {
      i++;
      continue;
    }
    const length = i + 1 < headerLength ? bytes[i + 1]! : 0;
    if (length < 2 || i + length > headerLength) return -1;
    if (kind === TcpOptionKind.Timestamps) return length === 10 ? i : -1;
    i += length;
  }
  return -1;
}

/** The TSval of the option at `at` (from `timestampOptionAt`), as an int32. */
export function optionTsval(bytes: Uint8Array, at: number): number {
  return get32(bytes, at + 2) | 0;
}

/** The TSecr (the echo of one of our TSvals) of the option at `at`, as an int32. */
export function optionTsecr(bytes: Uint8Array, at: number): number {
  return get32(bytes, at + 6) | 0;
}

/** The TSval of the TCP segment `bytes` as an int32, or NaN when it carries none. */
export function segmentTimestamp(bytes: Uint8Array, headerLength: number): number {
  const at = timestampOptionAt(bytes, headerLength);
  return at < 0 ? NaN : optionTsval(bytes, at);
}
