/**
 * Segments toward a guest, built straight into the frame the link takes
 * over: LINK_HEADROOM | IPv4 header (20) | TCP header (20 + options) | payload.
 * Header fields are written in place and both checksums computed without
 * intermediate buffers or objects.
 *
 * Every packet we emit: IPv4 without options, TTL 64, DF set, ID from the
 * NAT's counter.
 */

import { LINK_HEADROOM } from '../../stack/guest-link.js';
import { set16, set32 } from '../../wire/bytes.js';
import { fold, sumRange } from '../../wire/checksum.js';
import { IPV4_HEADER_LENGTH, IpProtocol } from '../../wire/ipv4.js';
import { TCP_HEADER_LENGTH } from '../../wire/tcp.js';
import { GsoType, VIRTIO_NET_HDR_F_NEEDS_CSUM, type FrameOffload } from '../../wire/virtio-net.js';
import { TIMESTAMP_OPTION_LENGTH } from './timestamps.js';

/** Offset of the TCP header in an emitted frame. */
export const TCP_AT = LINK_HEADROOM + IPV4_HEADER_LENGTH;
/** IPv4 + TCP headers without options. */
export const HEADERS_LENGTH = IPV4_HEADER_LENGTH + TCP_HEADER_LENGTH;
const TTL = 64;
const DF = 0x4000;

/**
 * The buffer segments are built in (all but large data segments, which are
 * built around their payload in its read block). The link does not keep a frame
 * past `sendIpv4` (GuestLink's contract: whatever keeps it copies it), and JS
 * builds and sends one segment at a time, so no segment needs its own
 * allocation — at 64 KiB a segment, that is most of the garbage collector's
 * work gone. A plain Uint8Array, as the frames the transports read: the
 * switch and gateway see one class of frame either way, and a view of it
 * costs less to make than a Buffer's.
 */
const SCRATCH = new Uint8Array(LINK_HEADROOM + 0xffff);

/**
 * Bytes kept in front of a data segment's payload: link headroom, IPv4 and
 * TCP headers with the timestamp option. Without timestamps the frame
 * starts TIMESTAMP_OPTION_LENGTH bytes further in.
 */
export const SEGMENT_HEADROOM = TCP_AT + TCP_HEADER_LENGTH + TIMESTAMP_OPTION_LENGTH;

/**
 * The shared segment buffer, sized for `tcpLength` bytes of TCP (header,
 * options and payload) after the link headroom and IPv4 header. Fill it with
 * `writeSegmentHeaders`, options and payload, then `fillTcpChecksum`, and
 * send it before building the next one.
 */
export function sharedSegmentFrame(tcpLength: number): Uint8Array {
  return SCRATCH.subarray(0, TCP_AT + tcpLength);
}

/**
 * Writes the IPv4 header (with checksum) and the TCP header (checksum left
 * zero) at the front of `frame`, after LINK_HEADROOM: for a segment whose
 * options and payload are the rest of `frame` (the shared buffer, or a
 * payload with SEGMENT_HEADROOM in front of it: Connection.sendData).
 * Returns `frame`.
 */
export function writeSegmentHeaders(
  frame: Uint8Array,
  ipId: number,
  source: number,
  destination: number,
  sourcePort: number,
  destinationPort: number,
  seq: number,
  ack: number,
  flags: number,
  window: number,
  tcpHeaderLength: number,
): Uint8Array {
  const totalLength = frame.length - LINK_HEADROOM;
  const i = LINK_HEADROOM;
  frame[i] = 0x45;
  frame[i + 1] = 0;
  set16(frame, i + 2, totalLength);
  set16(frame, i + 4, ipId);
  set16(frame, i + 6, DF);
  frame[i + 8] = TTL;
  frame[i + 9] = IpProtocol.TCP;
  set32(frame, i + 12, source);
  set32(frame, i + 16, destination);
  // RFC 791 §3.1: the header checksum, summed from the fields we just wrote.
  const acc =
    0x4500 + totalLength + (ipId & 0xffff) + DF + ((TTL << 8) | IpProtocol.TCP) +
    (source >>> 16) + (source & 0xffff) + (destination >>> 16) + (destination & 0xffff);
  set16(frame, i + 10, fold(acc));
  const t = TCP_AT;
  set16(frame, t, sourcePort);
  set16(frame, t + 2, destinationPort);
  set32(frame, t + 4, seq);
  set32(frame, t + 8, ack);
  frame[t + 12] = (tcpHeaderLength >>> 2) << 4;
  frame[t + 13] = flags;
  set16(frame, t + 14, window);
  set16(frame, t + 16, 0);
  set16(frame, t + 18, 0);
  return frame;
}

/**
 * Largest payload of one offloaded segment toward a guest without TCP
 * options: what fits an IPv4 packet (65535 − 20 − 20). The caller takes the
 * options it adds off, and cuts to whole MSS-sized pieces.
 */
export const MAX_OFFLOAD_PAYLOAD = 65535 - HEADERS_LENGTH;

/**
 * Describes a data segment whose checksum the receiving NIC fills
 * (virtio-net NEEDS_CSUM) and which, when longer than `mss`, it cuts into
 * `mss`-sized segments (GSO TCPv4). Writes the partial checksum: the
 * pseudo-header sum, not complemented (as Linux's CHECKSUM_PARTIAL).
 */
export function offloadSegment(frame: Uint8Array, pseudoBase: number, mss: number): FrameOffload {
  const tcpLength = frame.length - TCP_AT;
  const headerLength = (frame[TCP_AT + 12]! >>> 4) << 2;
  set16(frame, TCP_AT + 16, ~fold(pseudoBase + tcpLength) & 0xffff);
  return {
    flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
    gsoType: tcpLength - headerLength > mss ? GsoType.TcpV4 : GsoType.None,
    hdrLen: TCP_AT + headerLength,
    gsoSize: mss,
    csumStart: TCP_AT,
    csumOffset: 16,
  };
}

/**
 * Fills the TCP checksum of a frame from `writeSegmentHeaders` once options and
 * payload are in. `pseudoBase` is `pseudoHeaderSum(source, destination, 6, 0)`.
 */
export function fillTcpChecksum(frame: Uint8Array, pseudoBase: number): void {
  set16(frame, TCP_AT + 16, fold(sumRange(frame, TCP_AT, frame.length, pseudoBase + frame.length - TCP_AT)));
}
