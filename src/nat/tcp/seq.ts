/**
 * TCP sequence-number arithmetic modulo 2^32 (RFC 9293 §3.4). Every
 * comparison of sequence numbers goes through these helpers, never a bare `<`:
 * `a` is "less than" `b` when `b` lies less than 2^31 ahead of it.
 *
 * Sequence numbers are held as signed 32-bit integers: the wire's 32 bits
 * read as int32 (`seqFromWire`), written back unchanged by `set32`. Why not
 * the unsigned value: V8 keeps an int32 in an object field as a small
 * integer, while an unsigned value at or above 2^31 is a heap number. A
 * Connection field that first held a small integer and later a heap number
 * (a random ISN above 2^31, one connection in two) changes the hidden class
 * of every Connection made after, and all optimized code built for the old
 * one is thrown away ("wrong map" in `--trace-deopt`): a long-lived
 * connection's data path ran unoptimized again whenever a new connection
 * drew such a number (docs/performance.md, "Sequence numbers as int32").
 */

/** A sequence number: 32 bits as a signed integer. */
export type Seq = number;

/** A sequence or acknowledgment number as the wire has it (unsigned) as a `Seq`. */
export function seqFromWire(unsigned: number): Seq {
  return unsigned | 0;
}

/** `a + n` modulo 2^32. */
export function seqAdd(a: Seq, n: number): Seq {
  return (a + n) | 0;
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
