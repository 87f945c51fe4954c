/**
 * The virtio-net header (virtio 1.2 §5.1.6 "struct virtio_net_hdr"), which a
 * TAP opened with IFF_VNET_HDR puts before each frame. It carries the
 * offloads of that frame: a checksum left for the receiver to fill
 * (NEEDS_CSUM) and a TCP super-segment to be cut into MSS-sized segments
 * (GSO). Little-endian on Linux/x86 (the TAP uses the host's order unless told
 * otherwise).
 *
 *   0      1          2          4           6            8             10
 *   +------+----------+----------+-----------+------------+-------------+
 *   |flags | gso_type | hdr_len  | gso_size  | csum_start | csum_offset |
 *   +------+----------+----------+-----------+------------+-------------+
 */

export const VIRTIO_NET_HDR_LENGTH = 10;

/** `flags`: the checksum is partial (see FrameOffload.csumStart). */
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
/** `flags`: the checksum was verified by the sender. */
export const VIRTIO_NET_HDR_F_DATA_VALID = 2;

/** `gso_type` values (low 7 bits; bit 7 is ECN). */
export const GsoType = {
  None: 0,
  TcpV4: 1,
  Udp: 3,
  TcpV6: 4,
  UdpL4: 5,
} as const;
export const GSO_ECN = 0x80;

/**
 * Offloads of one frame, as the header states them. Offsets count from the
 * first byte of the Ethernet header. Like the frame it describes, it is valid
 * only during the call that hands it over.
 */
export interface FrameOffload {
  flags: number;
  /** GsoType, ECN bit included. */
  gsoType: number;
  /** Length of the headers (Ethernet + IP + TCP) of a GSO frame: a hint. */
  hdrLen: number;
  /** Payload bytes per segment of a GSO frame. */
  gsoSize: number;
  /** NEEDS_CSUM: sum from here to the end... */
  csumStart: number;
  /** ...and store it at csumStart + csumOffset (16 for TCP, 6 for UDP). */
  csumOffset: number;
}

/** Read a header; `undefined` when it states nothing (all zero: no offloads). */
export function readVirtioNetHeader(bytes: Uint8Array, offset: number, into: FrameOffload): FrameOffload | undefined {
  const flags = bytes[offset]!;
  const gsoType = bytes[offset + 1]!;
  if (flags === 0 && gsoType === 0) return undefined;
  into.flags = flags;
  into.gsoType = gsoType;
  into.hdrLen = bytes[offset + 2]! | (bytes[offset + 3]! << 8);
  into.gsoSize = bytes[offset + 4]! | (bytes[offset + 5]! << 8);
  into.csumStart = bytes[offset + 6]! | (bytes[offset + 7]! << 8);
  into.csumOffset = bytes[offset + 8]! | (bytes[offset + 9]! << 8);
  return into;
}

/** Write a header for `offload` (all zero when undefined). */
export function writeVirtioNetHeader(offload: FrameOffload | undefined, into: Uint8Array, offset: number): void {
  if (offload === undefined) {
    // Ten stores, not fill(): V8 runs TypedArray fill with a range in C++, a runtime call per frame.
    for (let i = offset; i < offset + VIRTIO_NET_HDR_LENGTH; i++) into[i] = 0;
    return;
  }
  into[offset] = offload.flags;
  into[offset + 1] = offload.gsoType;
  put16le(into, offset + 2, offload.hdrLen);
  put16le(into, offset + 4, offload.gsoSize);
  put16le(into, offset + 6, offload.csumStart);
  put16le(into, offset + 8, offload.csumOffset);
}

/** True for a UDP super-datagram (GSO_UDP_L4), which only some receivers take as it is. */
export function isUdpSegmentation(offload: FrameOffload): boolean {
  return (offload.gsoType & ~GSO_ECN) === GsoType.UdpL4;
}

export const newFrameOffload = (): FrameOffload => ({ flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 });

/** True when the frame's L4 checksum is not filled in (the receiver must not verify it). */
export const checksumPending = (offload: FrameOffload | undefined): boolean =>
  offload !== undefined && (offload.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0;

function put16le(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value & 0xff;
  bytes[offset + 1] = (value >>> 8) & 0xff;
}
