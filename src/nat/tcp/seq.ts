/**
 * TCP sequence-number arithmetic modulo 2^32 (RFC 9293 §3.4). Every
 * comparison of sequence numbers goes through these helpers, never a bare `<`:
 * `a` is "less than" `b` when `b` lies less than 2^31 ahead of it.
 *
 * Sequence numbers are plain unsigned 32-bit numbers (0 … 2^32 − 1).
 */

/** A sequence number, unsigned 32-bit. */
export type Seq = number;

/** `a + n` modulo 2^32. */
export function seqAdd(a: Seq, n: number): Seq {
  return (a + n) >>> 0;
}

/** Signed distance `a − b` in (−2^31, 2^31]: how far `a` lies ahead of `b`. */
export function seqSub(a: Seq, b: Seq): number {
  return (a - b) | 0;
}

/** `a` before `b`. */
export function seqLt(a: Seq, b: Seq): boolean {
  return ((a - b) | 0) < 0;
}

/** `a` before or at `b`. */
export function seqLeq(a: Seq, b: Seq): boolean {
  return ((a - b) | 0) <= 0;
}

/** `a` after `b`. */
export function seqGt(a: Seq, b: Seq): boolean {
  return ((a - b) | 0) > 0;
}

/** `a` at or after `b`. */
export function seqGeq(a: Seq, b: Seq): boolean {
  return ((a - b) | 0) >= 0;
}

/** The later of two sequence numbers. */
export function seqMax(a: Seq, b: Seq): Seq {
  return ((a - b) | 0) >= 0 ? a : b;
}

/** The earlier of two sequence numbers. */
export function seqMin(a: Seq, b: Seq): Seq {
  return ((a - b) | 0) <= 0 ? a : b;
}

/** `start ≤ x < start + length` in sequence space (false for length 0). */
export function seqInWindow(x: Seq, start: Seq, length: number): boolean {
  const d = (x - start) | 0;
  return d >= 0 && d < length;
}
