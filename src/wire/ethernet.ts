/**
 * Ethernet II frames (IEEE 802.3 with EtherType), with up to two VLAN tags
 * (802.1Q, and 802.1ad outer tag) recognised so the payload offset is right.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                    Destination MAC (6)                        |
 *   +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                               |                               |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
 *   |                       Source MAC (6)                          |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |   EtherType or TPID (0x8100)  |  [PCP|DEI|  VLAN ID (tag)]    |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  [inner EtherType]            |  payload ...
 *
 * No FCS: transports (TAP, QEMU sockets) carry frames without it.
 * Reasons thrown: `truncated`.
 */

import { get16, set16, setMac } from './bytes.js';
import { WireError } from './errors.js';

/** Ethernet header length without VLAN tags. */
export const ETHERNET_HEADER_LENGTH = 14;
/** Length of one 802.1Q / 802.1ad tag. */
export const VLAN_TAG_LENGTH = 4;
/** Most tags we look through (802.1ad outer + 802.1Q inner); a third is left as an unknown EtherType. */
export const MAX_VLAN_TAGS = 2;

/** EtherType values we know by name; any other stays a number. */
export const EtherType = {
  IPv4: 0x0800,
  ARP: 0x0806,
  VLAN: 0x8100,
  IPv6: 0x86dd,
  QINQ: 0x88a8,
} as const;

const DESTINATION = 0;
const SOURCE = 6;
const ETHERTYPE = 12;
const TAG_CONTROL = 14;

function isTag(t: number): boolean {
  return t === EtherType.VLAN || t === EtherType.QINQ;
}

/** A view over an Ethernet frame. Getters read `bytes` in place; payload and addresses are subarrays. */
export class EthernetView {
  constructor(readonly bytes: Uint8Array) {}

  /** Wraps untrusted bytes, checking that the header (with its tags) is present. */
  static checked(bytes: Uint8Array): EthernetView {
    if (bytes.length < ETHERNET_HEADER_LENGTH) throw new WireError('ethernet', 'truncated');
    const view = new EthernetView(bytes);
    if (bytes.length < view.headerLength) throw new WireError('ethernet', 'truncated');
    return view;
  }

  get destination(): Uint8Array {
    return this.bytes.subarray(DESTINATION, DESTINATION + 6);
  }

  get source(): Uint8Array {
    return this.bytes.subarray(SOURCE, SOURCE + 6);
  }

  /** The EtherType at offset 12: the TPID when tagged. */
  get outerEtherType(): number {
    return get16(this.bytes, ETHERTYPE);
  }

  /** Number of VLAN tags looked through (0, 1 or 2). */
  get tagCount(): number {
    if (!isTag(get16(this.bytes, ETHERTYPE))) return 0;
    return isTag(get16(this.bytes, ETHERTYPE + VLAN_TAG_LENGTH)) ? 2 : 1;
  }

  /** VLAN ID of the outermost tag, or `undefined` for an untagged frame. */
  get vlanId(): number | undefined {
    return this.tagCount === 0 ? undefined : get16(this.bytes, TAG_CONTROL) & 0x0fff;
  }

  /** The EtherType of the payload, after any VLAN tags. */
  get etherType(): number {
    return get16(this.bytes, ETHERTYPE + this.tagCount * VLAN_TAG_LENGTH);
  }

  /** Header length including tags. */
  get headerLength(): number {
    return ETHERNET_HEADER_LENGTH + this.tagCount * VLAN_TAG_LENGTH;
  }

  /** Bytes after the header (and tags), padding included. */
  get payload(): Uint8Array {
    return this.bytes.subarray(this.headerLength);
  }

  set destination(mac: Uint8Array) {
    setMac(this.bytes, DESTINATION, mac);
  }

  set source(mac: Uint8Array) {
    setMac(this.bytes, SOURCE, mac);
  }
}

/** An untagged Ethernet header as a plain value. */
export interface EthernetHeader {
  destination: Uint8Array;
  source: Uint8Array;
  etherType: number;
}

/** The header of a checked view; addresses alias the frame. VLAN tags are not part of the value. */
export function parseEthernet(view: EthernetView): EthernetHeader {
  return { destination: view.destination, source: view.source, etherType: view.etherType };
}

/** Writes an untagged header at `offset`; returns the offset just past it. */
export function emitEthernet(header: EthernetHeader, into: Uint8Array, offset: number): number {
  setMac(into, offset + DESTINATION, header.destination);
  setMac(into, offset + SOURCE, header.source);
  set16(into, offset + ETHERTYPE, header.etherType);
  return offset + ETHERNET_HEADER_LENGTH;
}
