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
 *   timestamps, 4 without.
 * - D-SACK (RFC 2883): a segment that brings bytes we already have (below
 *   RCV.NXT, or a repeat of held out-of-order data) is acknowledged at once
 *   with those bytes as the first block, once (§4). A Linux guest counts it
 *   (TCPDSACKRecv) and uses it to undo a needless cwnd reduction after a
 *   spurious retransmission and to learn the link's reordering.
 * - The option bytes (SACK-permitted, blocks) are the wire module's
 *   (`emitTcpOptions`); this module chooses what they say.
 */
import type { SackBlock } from '../../wire/tcp.js';
import { seqAdd, seqGt, seqLeq } from './seq.js';

/** What a held out-of-order segment covers: `length` bytes from `seq`, plus its FIN's sequence number. */
export interface HeldSegment {
  seq: number;
  data: Uint8Array;
  fin: boolean;
}

/** Most blocks that fit in 40 bytes of options next to a timestamp option (12 bytes) or alone. */
export const maxSackBlocks = (withTimestamps: boolean): number => (withTimestamps ? 3 : 4);

/**
 * The blocks to report: `held` sorted by sequence number (as Connection
 * keeps it), merged where they touch or overlap; the block holding
 * `latest` first.
 */
export function sackBlocks(held: readonly HeldSegment[], latest: number, max: number): SackBlock[] {
  const ranges: SackBlock[] = [];
  for (const segment of held) {
    const left = segment.seq;
    const right = seqAdd(segment.seq, segment.data.length + (segment.fin ? 1 : 0));
    const last = ranges.at(-1);
    if (last !== undefined && seqLeq(left, last.right)) {
      if (seqGt(right, last.right)) last.right = right;
    } else {
      ranges.push({ left, right });
    }
  }
  // Merged ranges are disjoint: at most one holds `latest` (none once it was delivered: then the highest).
  const first = ranges.find((r) => seqLeq(r.left, latest) && seqGt(r.right, latest)) ?? ranges.at(-1)!;
  const blocks = [first];
  for (let i = ranges.length - 1; i >= 0 && blocks.length < max; i--) {
    if (ranges[i] !== first) blocks.push(ranges[i]!);
  }
  return blocks;
}

/**
 * The blocks of one ACK: the duplicate's block first when there is one
 * (RFC 2883 §4), then `sackBlocks` of what is held. RFC 2883 §4.2: a
 * duplicate inside a held block is followed by that block, which the
 * latest-first order gives, as `latest` is the duplicate's sequence number.
 */
export function ackBlocks(duplicate: SackBlock | null, held: readonly HeldSegment[], latest: number, max: number): SackBlock[] {
  if (duplicate === null) return sackBlocks(held, latest, max);
  return held.length === 0 ? [duplicate] : [duplicate, ...sackBlocks(held, latest, max - 1)];
}
