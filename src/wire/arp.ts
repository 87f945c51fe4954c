/**
 * ARP for Ethernet and IPv4 (RFC 826). Other hardware or protocol types are
 * refused with `unsupported`: nothing on our LANs speaks them.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |     Hardware type (1)         |     Protocol type (0x0800)    |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  HW len (6)   | Proto len (4) |          Operation            |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |              Sender hardware address (6)                      |
 *   +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                               |  Sender protocol address (4)  |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                               |                               |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
 *   |              Target hardware address (6)                      |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |              Target protocol address (4)                      |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Reasons thrown: `truncated`, `unsupported`.
 */

import { get16, get32, set16, set32, setMac } from './bytes.js';
import { WireError } from './errors.js';

/** Length of an Ethernet/IPv4 ARP packet. */
export const ARP_PACKET_LENGTH = 28;

/** ARP operation codes (RFC 826); others stay numbers. */
export const ArpOperation = {
  Request: 1,
  Reply: 2,
} as const;

const HARDWARE_ETHERNET = 1;
const PROTOCOL_IPV4 = 0x0800;

const HTYPE = 0;
const PTYPE = 2;
const HLEN = 4;
const PLEN = 5;
const OPER = 6;
const SHA = 8;
const SPA = 14;
const THA = 18;
const TPA = 24;

/** A view over an Ethernet/IPv4 ARP packet. */
export class ArpView {
  constructor(readonly bytes: Uint8Array) {}

  /** Wraps untrusted bytes: Ethernet/IPv4 only, all 28 bytes present. */
  static checked(bytes: Uint8Array): ArpView {
    if (bytes.length < 8) throw new WireError('arp', 'truncated');
    const view = new ArpView(bytes);
    if (
      view.hardwareType !== HARDWARE_ETHERNET ||
      view.protocolType !== PROTOCOL_IPV4 ||
      view.hardwareLength !== 6 ||
      view.protocolLength !== 4
    ) {
      throw new WireError('arp', 'unsupported');
    }
    if (bytes.length < ARP_PACKET_LENGTH) throw new WireError('arp', 'truncated');
    return view;
  }

  get hardwareType(): number {
    return get16(this.bytes, HTYPE);
  }
  get protocolType(): number {
    return get16(this.bytes, PTYPE);
  }
  get hardwareLength(): number {
    return this.bytes[HLEN]!;
  }
  get protocolLength(): number {
    return this.bytes[PLEN]!;
  }
  get operation(): number {
    return get16(this.bytes, OPER);
  }
  get senderHardwareAddress(): Uint8Array {
    return this.bytes.subarray(SHA, SHA + 6);
  }
  get senderProtocolAddress(): number {
    return get32(this.bytes, SPA);
  }
  get targetHardwareAddress(): Uint8Array {
    return this.bytes.subarray(THA, THA + 6);
  }
  get targetProtocolAddress(): number {
    return get32(this.bytes, TPA);
  }
}

/** An Ethernet/IPv4 ARP packet as a plain value; addresses are numbers, MACs 6-byte arrays. */
export interface ArpPacket {
  operation: number;
  senderHardwareAddress: Uint8Array;
  senderProtocolAddress: number;
  targetHardwareAddress: Uint8Array;
  targetProtocolAddress: number;
}

/** The packet of a checked view; MACs alias the frame (copy them to keep them). */
export function parseArp(view: ArpView): ArpPacket {
  return {
    operation: view.operation,
    senderHardwareAddress: view.senderHardwareAddress,
    senderProtocolAddress: view.senderProtocolAddress,
    targetHardwareAddress: view.targetHardwareAddress,
    targetProtocolAddress: view.targetProtocolAddress,
  };
}

/** Length `emitArp` writes. */
export function arpPacketLength(_packet: ArpPacket): number {
  return ARP_PACKET_LENGTH;
}

/** Writes the packet at `offset`; returns the offset just past it. */
export function emitArp(packet: ArpPacket, into: Uint8Array, offset: number): number {
  set16(into, offset + HTYPE, HARDWARE_ETHERNET);
  set16(into, offset + PTYPE, PROTOCOL_IPV4);
  into[offset + HLEN] = 6;
  into[offset + PLEN] = 4;
  set16(into, offset + OPER, packet.operation);
  setMac(into, offset + SHA, packet.senderHardwareAddress);
  set32(into, offset + SPA, packet.senderProtocolAddress);
  setMac(into, offset + THA, packet.targetHardwareAddress);
  set32(into, offset + TPA, packet.targetProtocolAddress);
  return offset + ARP_PACKET_LENGTH;
}
