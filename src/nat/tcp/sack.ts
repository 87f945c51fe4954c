/**
 * Selective acknowledgments toward the guest (RFC 2018): which blocks of the
 * guest's data we hold beyond a hole, so that its TCP resends only the holes
 * (a Linux guest's SACK recovery) instead of one segment per round trip.
 *
 * - The option is used only when the guest's SYN (or SYN-ACK) carried
 *   SACK-permitted; ours always offers it. We send blocks and do not act on
 *   the guest's: RFC 2018 leaves a data sender free to ignore them (it must
 *   not free data on a SACK anyway), and our own loss recovery toward the
 *   guest stays NewReno (RFC 6582), whose losses on a virtual link are rare.
 * - Blocks go on every pure ACK while we hold out-of-order data (§4: "SHOULD
 *   be included in all ACKs which do not ACK the highest sequence number"),
 *   not on data segments toward the guest (those keep a fixed header).
 * - The first block is the one holding the segment that arrived last (§4);
 *   the rest follow from the highest down, as many as fit: 3 beside
 *   timestamps, 4 without. No D-SACK (RFC 2883).
 */
import { set32 } from '../../wire/bytes.js';
import { TcpOptionKind } from '../../wire/tcp.js';
import { seqAdd, seqGt, seqLeq } from './seq.js';

/** What a held out-of-order segment covers: `length` bytes from `seq`, plus its FIN's sequence number. */
export interface HeldSegment {
  seq: number;
  data: Uint8Array;
  fin: boolean;
}

/** Bytes of the SACK option with `count` blocks, after two NOPs that align it. */
export const sackOptionLength = (count: number): number => (count === 0 ? 0 : 4 + 8 * count);

/** Most blocks that fit in 40 bytes of options next to a timestamp option (12 bytes) or alone. */
export const maxSackBlocks = (withTimestamps: boolean): number => (withTimestamps ? 3 : 4);

/**
 * The blocks to report, as [left, right) pairs in one flat array: `held`
 * sorted by sequence number (as Connection keeps it), merged where they
 * touch or overlap; the block holding `latest` first.
 */
export function sackBlocks(held: readonly HeldSegment[], latest: number, max: number): number[] {
  const ranges: number[] = [];
  for (const segment of held) {
    const left = segment.seq;
    const right = seqAdd(segment.seq, segment.data.length + (segment.fin ? 1 : 0));
    const last = ranges.length - 2;
    if (last >= 0 && seqLeq(left, ranges[last + 1]!)) {
      if (seqGt(right, ranges[last + 1]!)) ranges[last + 1] = right;
    } else {
      ranges.push(left, right);
    }
  }
  let first = ranges.length - 2;
  for (let i = 0; i < ranges.length; i += 2) {
    if (seqLeq(ranges[i]!, latest) && seqGt(ranges[i + 1]!, latest)) first = i;
  }
  const blocks = [ranges[first]!, ranges[first + 1]!];
  for (let i = ranges.length - 2; i >= 0 && blocks.length < 2 * max; i -= 2) {
    if (i !== first) blocks.push(ranges[i]!, ranges[i + 1]!);
  }
  return blocks;
}

/** Writes NOP, NOP, SACK with `blocks` at `at` (sackOptionLength bytes). */
export function writeSackOption(frame: Uint8Array, at: number, blocks: readonly number[]): void {
  frame[at] = TcpOptionKind.Nop;
  frame[at + 1] = TcpOptionKind.Nop;
  frame[at + 2] = TcpOptionKind.Sack;
  frame[at + 3] = 2 + 4 * blocks.length;
  for (let i = 0; i < blocks.length; i++) set32(frame, at + 4 + 4 * i, blocks[i]!);
}

/**
 * Turns the two NOPs in front of a timestamp option at `at` into
 * SACK-permitted (kind 4, length 2): Linux's own SYN layout, no longer.
 */
export function sackPermittedBeforeTimestamps(frame: Uint8Array, at: number): void {
  frame[at] = TcpOptionKind.SackPermitted;
  frame[at + 1] = 2;
}

/** Writes NOP, NOP, SACK-permitted at `at` (4 bytes), for a SYN without timestamps. */
export function writeSackPermitted(frame: Uint8Array, at: number): void {
  frame[at] = TcpOptionKind.Nop;
  frame[at + 1] = TcpOptionKind.Nop;
  sackPermittedBeforeTimestamps(frame, at + 2);
}
