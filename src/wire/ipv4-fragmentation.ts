/**
 * IPv4 fragmentation (RFC 791 §3.2, "An Example Fragmentation Procedure"):
 * a packet longer than a link's MTU goes as fragments that fit, each with a
 * copy of the header, its data offset in 8-byte units and MF set on all but
 * the last. The receiver puts them back together by identification.
 *
 * Only whole packets without options are cut: that is every packet the
 * gateway builds, and it spares us RFC 791's per-option copy rule.
 */
import { Ipv4View, IPV4_HEADER_LENGTH, emitIpv4 } from './ipv4.js';

/**
 * Cuts `packet` (a whole IPv4 packet, no options, DF clear) into fragments
 * of at most `mtu` bytes and hands each to `emit` as a new buffer with
 * `headroom` free bytes in front of the packet. False, with nothing
 * emitted, when the packet may not or cannot be cut (DF, options, already a
 * fragment, an MTU under 28).
 */
export function fragmentIpv4(packet: Uint8Array, mtu: number, headroom: number, emit: (frame: Uint8Array) => void): boolean {
  const ip = Ipv4View.checked(packet);
  if (ip.dontFragment || ip.isFragment || ip.headerLength !== IPV4_HEADER_LENGTH) return false;
  // RFC 791: every fragment but the last carries a multiple of 8 data bytes.
  const perFragment = Math.floor((mtu - IPV4_HEADER_LENGTH) / 8) * 8;
  if (perFragment < 8) return false;
  const data = ip.payload;
  const header = {
    source: ip.source,
    destination: ip.destination,
    protocol: ip.protocol,
    ttl: ip.ttl,
    identification: ip.identification,
    dscp: ip.dscp,
    ecn: ip.ecn,
  };
  for (let offset = 0; offset < data.length; offset += perFragment) {
    const piece = data.subarray(offset, offset + perFragment);
    const frame = new Uint8Array(headroom + IPV4_HEADER_LENGTH + piece.length);
    const moreFragments = offset + piece.length < data.length;
    emitIpv4({ ...header, payloadLength: piece.length, moreFragments, fragmentOffset: offset }, frame, headroom);
    frame.set(piece, headroom + IPV4_HEADER_LENGTH);
    emit(frame);
  }
  return true;
}
