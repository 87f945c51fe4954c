/**
 * Software offloads: what a NIC with checksum offload and TSO would do, for
 * destinations that cannot take offloaded frames (a QEMU stream socket, a UDP
 * tunnel, a TAP without IFF_VNET_HDR).
 *
 * - NEEDS_CSUM: sum from csumStart to the end (the field already holds the
 *   pseudo-header sum) and store the complement at csumStart + csumOffset.
 * - GSO TCPv4/TCPv6: cut the payload into gsoSize pieces; every segment gets
 *   the headers with its own sequence number, length, IPv4 ID (+1 each) and
 *   checksums; FIN and PSH stay on the last segment only, CWR on the first
 *   (as Linux's tcp_gso_segment).
 * - GSO UDP_L4 over IPv4 (the NAT's super-datagrams, src/nat/udp-nat.ts): cut
 *   the payload into gsoSize pieces, each a datagram with its own UDP
 *   length, whole checksum, IP length and ID (+1 each), as Linux's
 *   __udp_gso_segment.
 *
 * The frame is never modified (other ports may share it): every output is a
 * new buffer, handed to `emit`. Frames it cannot make sense of are dropped
 * (returns false) — they came from a guest's own kernel and are its problem.
 */
import { get16, get32, set16, set32 } from './bytes.js';
import { fold, sum, sumRange } from './checksum.js';
import { ETHERNET_HEADER_LENGTH } from './ethernet.js';
import { IpProtocol } from './ipv4.js';
import { UDP_HEADER_LENGTH, UdpView } from './udp.js';
import { checksumPending, GsoType, type FrameOffload } from './virtio-net.js';

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;
const IPV6_HEADER_LENGTH = 40;
const TCP_FIN = 0x01;
const TCP_PSH = 0x08;
const TCP_CWR = 0x80;
/** Most segments one GSO frame may become (64 KiB / the smallest MSS we honor, 64). */
const MAX_SEGMENTS = 1024;

/** Emit `frame` without offloads; false if it was malformed and dropped. */
export function finishOffload(frame: Uint8Array, offload: FrameOffload, emit: (frame: Uint8Array) => void): boolean {
  const gso = offload.gsoType & 0x7f;
  if (gso === GsoType.TcpV4 || gso === GsoType.TcpV6) return segmentTcp(frame, offload, emit);
  if (gso === GsoType.UdpL4) return segmentUdp(frame, offload, emit);
  if (gso !== GsoType.None) return false; // UDP fragmentation offload: never enabled on our TAPs
  if (!checksumPending(offload)) {
    emit(frame);
    return true;
  }
  const at = offload.csumStart + offload.csumOffset;
  if (offload.csumStart >= frame.length || at + 2 > frame.length) return false;
  const copy = Uint8Array.from(frame);
  set16(copy, at, fold(sum(copy.subarray(offload.csumStart))));
  emit(copy);
  return true;
}

function segmentUdp(frame: Uint8Array, offload: FrameOffload, emit: (frame: Uint8Array) => void): boolean {
  const ipAt = ETHERNET_HEADER_LENGTH;
  if (frame.length < ipAt + 20 || get16(frame, 12) !== ETHERTYPE_IPV4 || frame[ipAt + 9] !== IpProtocol.UDP) return false;
  const udpAt = ipAt + (frame[ipAt]! & 0x0f) * 4;
  const payloadAt = udpAt + UDP_HEADER_LENGTH;
  const size = offload.gsoSize;
  const payloadLength = frame.length - payloadAt;
  if (payloadLength < 0 || size === 0 || Math.ceil(payloadLength / size) > MAX_SEGMENTS) return false;
  const id0 = get16(frame, ipAt + 4);
  const pseudo = { source: get32(frame, ipAt + 12), destination: get32(frame, ipAt + 16) };
  for (let offset = 0, i = 0; offset < payloadLength || i === 0; offset += size, i++) {
    const length = Math.min(size, payloadLength - offset);
    const datagram = cutPiece(frame, payloadAt, offset, length);
    cutIpv4Header(datagram, ipAt, udpAt, id0 + i);
    const udp = new UdpView(datagram.subarray(udpAt));
    udp.length = UDP_HEADER_LENGTH + length;
    udp.fillChecksum(pseudo);
    emit(datagram);
    if (offset + length >= payloadLength) break;
  }
  return true;
}

function segmentTcp(frame: Uint8Array, offload: FrameOffload, emit: (frame: Uint8Array) => void): boolean {
  if (frame.length < ETHERNET_HEADER_LENGTH + 20) return false;
  const etherType = get16(frame, 12);
  const ipAt = ETHERNET_HEADER_LENGTH;
  const v4 = etherType === ETHERTYPE_IPV4;
  if (!v4 && etherType !== ETHERTYPE_IPV6) return false;
  const ipHeaderLength = v4 ? (frame[ipAt]! & 0x0f) * 4 : IPV6_HEADER_LENGTH;
  if (v4 ? frame[ipAt + 9] !== IpProtocol.TCP : frame[ipAt + 6] !== IpProtocol.TCP) return false; // no IPv6 extension headers
  const tcpAt = ipAt + ipHeaderLength;
  if (tcpAt + 20 > frame.length) return false;
  const tcpHeaderLength = (frame[tcpAt + 12]! >>> 4) * 4;
  const payloadAt = tcpAt + tcpHeaderLength;
  const mss = offload.gsoSize;
  if (tcpHeaderLength < 20 || payloadAt > frame.length || mss === 0) return false;
  const payloadLength = frame.length - payloadAt;
  if (Math.ceil(payloadLength / mss) > MAX_SEGMENTS) return false;
  const seq0 = get32(frame, tcpAt + 4);
  const flags = frame[tcpAt + 13]!;
  const id0 = v4 ? get16(frame, ipAt + 4) : 0;
  const source = frame.subarray(ipAt + (v4 ? 12 : 8), ipAt + (v4 ? 16 : 24));
  const destination = frame.subarray(ipAt + (v4 ? 16 : 24), ipAt + (v4 ? 20 : 40));
  const addressSum = sum(destination, sum(source));
  for (let offset = 0, i = 0; offset < payloadLength || i === 0; offset += mss, i++) {
    const length = Math.min(mss, payloadLength - offset);
    const last = offset + length >= payloadLength;
    const segment = cutPiece(frame, payloadAt, offset, length);
    if (v4) {
      cutIpv4Header(segment, ipAt, tcpAt, id0 + i);
    } else {
      set16(segment, ipAt + 4, tcpHeaderLength + length);
    }
    set32(segment, tcpAt + 4, (seq0 + offset) >>> 0);
    let f = flags;
    if (!last) f &= ~(TCP_FIN | TCP_PSH);
    if (i > 0) f &= ~TCP_CWR;
    segment[tcpAt + 13] = f;
    set16(segment, tcpAt + 16, 0);
    const tcpLength = tcpHeaderLength + length;
    // Pseudo-header: addresses, protocol, TCP length (RFC 9293 §3.1; RFC 8200 §8.1 for IPv6).
    const pseudo = addressSum + IpProtocol.TCP + (tcpLength >>> 16) + (tcpLength & 0xffff);
    set16(segment, tcpAt + 16, fold(sumRange(segment, tcpAt, segment.length, pseudo)));
    emit(segment);
    if (last) break;
  }
  return true;
}

/** A new buffer: the headers before `payloadAt`, then `length` payload bytes from `offset`. */
function cutPiece(frame: Uint8Array, payloadAt: number, offset: number, length: number): Uint8Array {
  const piece = new Uint8Array(payloadAt + length);
  piece.set(frame.subarray(0, payloadAt), 0);
  piece.set(frame.subarray(payloadAt + offset, payloadAt + offset + length), payloadAt);
  return piece;
}

/** The IPv4 header of one piece (transport header at `transportAt`): its Total Length, its ID, its checksum. */
function cutIpv4Header(piece: Uint8Array, ipAt: number, transportAt: number, id: number): void {
  set16(piece, ipAt + 2, piece.length - ipAt);
  set16(piece, ipAt + 4, id & 0xffff);
  set16(piece, ipAt + 10, 0);
  set16(piece, ipAt + 10, fold(sumRange(piece, ipAt, transportAt)));
}
