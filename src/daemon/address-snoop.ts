/**
 * Where are the bridged guests? Their leases come from someone else's DHCP
 * server, so vnet learns their addresses by watching their traffic on the
 * bridged NIC's uplink (passive, read-only; frames are never changed):
 *
 * - toGuest: a DHCPACK (UDP 67→68, BOOTREPLY, option 53 = 5) whose chaddr is
 *   the guest's MAC: `yiaddr` until now + option 51 (lease time). A DHCPNAK
 *   forgets the guest's DHCP address.
 * - fromGuest: an ARP packet sent by the guest (request, reply or gratuitous):
 *   its sender protocol address, valid for `ARP_VALIDITY_MS` after it was last
 *   seen. A DHCP address outranks an ARP one until it expires.
 *
 * Malformed frames are ignored (this is not the stack that must count them).
 * Limits: MAX_SNOOPED entries; the least recently seen goes first.
 */
import { formatIpv4, formatMac, macEquals } from '../wire/address.js';
import { ArpView } from '../wire/arp.js';
import { DhcpMessageType, DhcpOp, DhcpView, DHCP_CLIENT_PORT, DHCP_SERVER_PORT, getLeaseTime, getMessageType, parseDhcp } from '../wire/dhcpv4.js';
import { EtherType, EthernetView } from '../wire/ethernet.js';
import { IpProtocol, Ipv4View } from '../wire/ipv4.js';
import { UdpView } from '../wire/udp.js';

export const MAX_SNOOPED = 4096;
/** How long an address learned from ARP alone is believed (Linux's gc_stale_time is 60 s; guests ARP more often than this). */
export const ARP_VALIDITY_MS = 10 * 60_000;

export type SnoopSource = 'snooped-dhcp' | 'snooped-arp';

export interface SnoopedAddress {
  /** `bridged:IF`. */
  network: string;
  mac: string;
  ip: string;
  source: SnoopSource;
  seenAt: number;
  expiresAt: number;
}

export class AddressSnoop {
  private readonly entries = new Map<string, SnoopedAddress>();

  constructor(private readonly clock: () => number = Date.now) {}

  /** A frame from the LAN toward the guest with MAC `guest`. Never throws. */
  toGuest(network: string, guest: Uint8Array, frame: Uint8Array): void {
    try {
      const eth = EthernetView.checked(frame);
      if (eth.etherType !== EtherType.IPv4) return;
      const ip = Ipv4View.checked(eth.payload);
      if (ip.protocol !== IpProtocol.UDP || ip.isFragment) return;
      const udp = UdpView.checked(ip.payload);
      if (udp.sourcePort !== DHCP_SERVER_PORT || udp.destinationPort !== DHCP_CLIENT_PORT) return;
      const dhcp = parseDhcp(DhcpView.checked(udp.payload));
      if (dhcp.op !== DhcpOp.BootReply || !macEquals(dhcp.chaddr.subarray(0, 6), guest)) return;
      const type = getMessageType(dhcp.options);
      const mac = formatMac(guest);
      if (type === DhcpMessageType.Nak) {
        const known = this.entries.get(key(network, mac));
        if (known?.source === 'snooped-dhcp') this.entries.delete(key(network, mac));
        return;
      }
      if (type !== DhcpMessageType.Ack || !dhcp.yiaddr) return;
      const now = this.clock();
      const seconds = getLeaseTime(dhcp.options) ?? 3600;
      this.put({ network, mac, ip: formatIpv4(dhcp.yiaddr), source: 'snooped-dhcp', seenAt: now, expiresAt: now + seconds * 1000 });
    } catch {
      // Not a DHCP reply we can read: nothing to learn.
    }
  }

  /** A frame from the guest with MAC `guest` toward the LAN. Never throws. */
  fromGuest(network: string, guest: Uint8Array, frame: Uint8Array): void {
    try {
      const eth = EthernetView.checked(frame);
      if (eth.etherType !== EtherType.ARP || !macEquals(eth.source, guest)) return;
      const arp = ArpView.checked(eth.payload);
      const sender = arp.senderProtocolAddress;
      if (sender === 0 || !macEquals(arp.senderHardwareAddress, guest)) return; // an ARP probe (RFC 5227) claims nothing yet
      const now = this.clock();
      const mac = formatMac(guest);
      const known = this.entries.get(key(network, mac));
      const ip = formatIpv4(sender);
      if (known?.source === 'snooped-dhcp' && known.expiresAt > now) {
        if (known.ip === ip) known.seenAt = now;
        return;
      }
      this.put({ network, mac, ip, source: 'snooped-arp', seenAt: now, expiresAt: now + ARP_VALIDITY_MS });
    } catch {
      // Not an ARP packet we can read.
    }
  }

  /** The guest left the network (NIC unplugged): forget what we learned. */
  forget(network: string, mac: string): void {
    this.entries.delete(key(network, mac));
  }

  /** Addresses still believed, oldest first. */
  list(): SnoopedAddress[] {
    const now = this.clock();
    for (const [k, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(k);
    return [...this.entries.values()].map((e) => ({ ...e }));
  }

  private put(entry: SnoopedAddress): void {
    const k = key(entry.network, entry.mac);
    this.entries.delete(k);
    if (this.entries.size >= MAX_SNOOPED) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(k, entry);
  }
}

const key = (network: string, mac: string): string => `${network}|${mac}`;
