/**
 * The router that lives on a NAT network: a host on the virtual LAN with one
 * MAC and a few IPv4 addresses (VirtualBox NAT: gateway .2, DNS .3, TFTP .4).
 *
 * - ARP (RFC 826): answers requests for its addresses; learns guests' MACs.
 * - ICMP (RFC 792): answers echo requests to its addresses; emits errors
 *   (destination unreachable) on behalf of the NAT.
 * - IPv4 (RFC 791): checks every packet once, reassembles fragments
 *   (ipv4-reassembly.ts), then hands it to `local` (for its own addresses
 *   and broadcasts: DHCP, DNS, …) or `forward` (anything outside the LAN:
 *   the NAT engine).
 * - Toward guests it is the GuestLink: fragments packets longer than the
 *   guests' MTU (wire/ipv4-fragmentation.ts), fills the Ethernet header
 *   from the ARP table and passes the frame to `output` (the switch port).
 *
 * Malformed frames throw WireError inside; this is the one place that catches
 * it, counts `drops[protocol:reason]` and drops the frame.
 */
import { BROADCAST_MAC, isBroadcastMac, macEquals } from '../wire/address.js';
import { ArpOperation, ArpView, ARP_PACKET_LENGTH, emitArp } from '../wire/arp.js';
import { WireError } from '../wire/errors.js';
import { emitEthernet, EtherType, EthernetView, ETHERNET_HEADER_LENGTH } from '../wire/ethernet.js';
import { emitIcmpv4, Icmpv4Type, Icmpv4View, ICMPV4_HEADER_LENGTH, ICMPV4_MAX_ERROR_DATAGRAM } from '../wire/icmpv4.js';
import { finishOffload } from '../wire/gso.js';
import { emitIpv4, IpProtocol, Ipv4View, IPV4_HEADER_LENGTH } from '../wire/ipv4.js';
import { fragmentIpv4 } from '../wire/ipv4-fragmentation.js';
import { emitUdp, UDP_HEADER_LENGTH } from '../wire/udp.js';
import { checksumPending, GSO_ECN, GsoType, type FrameOffload } from '../wire/virtio-net.js';
import { ArpTable } from './arp-table.js';
import { LINK_HEADROOM, type Clock, type GuestLink } from './guest-link.js';
import { Ipv4Reassembler } from './ipv4-reassembly.js';

export interface GatewayOptions {
  mac: Uint8Array;
  /** Addresses the gateway owns on the LAN; the first is its main one. */
  addresses: number[];
  /** The LAN: network address and mask. */
  network: number;
  mask: number;
  /** Link MTU of the guests. */
  mtu: number;
  clock?: Clock;
}

export interface GatewayHandlers {
  /**
   * A checked IPv4 packet for one of the gateway's addresses, or a broadcast.
   * `checksumPending`: the guest left its TCP/UDP checksum to the NIC (checksum
   * offload): do not verify it.
   */
  local(ip: Ipv4View, sourceMac: Uint8Array, checksumPending: boolean): void;
  /** A checked IPv4 packet for somewhere outside the LAN (same `checksumPending`). */
  forward(ip: Ipv4View, sourceMac: Uint8Array, checksumPending: boolean): void;
  /**
   * A guest's ICMP destination unreachable (`code`) about a packet from one
   * of the gateway's addresses; `quoted` is what it quotes (RFC 792: the
   * original IPv4 header and at least 8 bytes of its data), unchecked.
   */
  unreachable?(quoted: Uint8Array, code: number): void;
}

/** ICMP time exceeded code: "fragment reassembly time exceeded" (RFC 792). */
const TIME_EXCEEDED_REASSEMBLY = 1;
/** 224.0.0.0/4 (class D) in the top four bits. */
const MULTICAST_NIBBLE = 0xe;

/** TTL of packets the gateway originates (RFC 1700's recommended default). */
export const DEFAULT_TTL = 64;

export class Gateway implements GuestLink {
  readonly mtu: number;
  /** Frames toward guests may carry offloads: the NIC runtime finishes them for guests that cannot take them. */
  readonly offload = true;
  readonly arp = new ArpTable();
  readonly drops: Record<string, number> = {};
  readonly counters = { framesIn: 0, framesOut: 0, arpReplies: 0, echoReplies: 0, icmpErrors: 0, fragmented: 0 };
  /** Fragments from guests, put back together. */
  readonly reassembly: Ipv4Reassembler;
  /** Frames toward the guests; set by whoever plugs the gateway into a switch. */
  output: (frame: Uint8Array, offload?: FrameOffload) => void = () => {};
  /** Whether frames to `mac` reach a NIC that takes UDP super-datagrams; set with `output`. */
  reachesUdpSegmentation: (mac: Uint8Array) => boolean = () => false;
  handlers: GatewayHandlers = { local: () => this.drop('ipv4:no-handler'), forward: () => this.drop('ipv4:no-route') };
  private readonly clock: Clock;
  private readonly own: Set<number>;
  private readonly broadcast: number;
  private nextIpId = 1;

  constructor(private readonly options: GatewayOptions) {
    this.mtu = options.mtu;
    this.clock = options.clock ?? Date.now;
    this.reassembly = new Ipv4Reassembler({
      ...(options.clock ? { clock: options.clock } : {}),
      timedOut: (head) => {
        // From the reassembly timer: nothing may escape it.
        try {
          this.sendIcmpError(head, Icmpv4Type.TimeExceeded, TIME_EXCEEDED_REASSEMBLY);
        } catch {
          this.drop('internal');
        }
      },
    });
    this.own = new Set(options.addresses.map((a) => a >>> 0));
    this.broadcast = (options.network | ~options.mask) >>> 0;
  }

  get mac(): Uint8Array {
    return this.options.mac;
  }

  get address(): number {
    return this.options.addresses[0]!;
  }

  owns(ip: number): boolean {
    return this.own.has(ip >>> 0);
  }

  inLan(ip: number): boolean {
    return ((ip & this.options.mask) >>> 0) === (this.options.network >>> 0);
  }

  /** A frame from the LAN (the switch delivers it). Never throws. */
  fromNetwork(frame: Uint8Array, offload?: FrameOffload): void {
    this.counters.framesIn++;
    try {
      this.input(frame, checksumPending(offload));
    } catch (err) {
      if (err instanceof WireError) this.drop(err.key);
      else this.drop('internal');
    }
  }

  /**
   * GuestLink: fill the Ethernet header for `dstIp` and send, or park the
   * frame while ARP resolves it. A packet longer than the MTU (not a TCP
   * super-segment) goes as fragments.
   */
  sendIpv4(frame: Uint8Array, dstIp: number, offload?: FrameOffload): void {
    const mac = this.arp.lookup(dstIp, this.clock());
    if (mac) return this.sendIpv4To(frame, mac, offload);
    if (!this.inLan(dstIp)) return this.drop('link:not-on-lan');
    // Parked whole: one ARP entry's queue holds a few packets, not a datagram's dozens of fragments.
    if (!this.arp.park(dstIp, frame, offload)) return this.drop('link:arp-queue-full');
    this.sendArpRequest(dstIp);
  }

  /** GuestLink: only for a resolved address whose NIC takes them. */
  takesUdpSegmentation(dstIp: number): boolean {
    const mac = this.arp.lookup(dstIp, this.clock());
    return mac !== undefined && this.reachesUdpSegmentation(mac);
  }

  /**
   * Send an IPv4 packet to a MAC directly (DHCP replies before the guest has
   * an address; what ARP resolved). One longer than the guests' MTU (not a
   * TCP super-segment: the guest's NIC or gso.ts cuts those) goes in
   * fragments that fit (RFC 791 §3.2).
   */
  sendIpv4To(frame: Uint8Array, mac: Uint8Array, offload?: FrameOffload): void {
    if (frame.length - LINK_HEADROOM <= this.mtu || (offload !== undefined && (offload.gsoType & ~GSO_ECN) !== GsoType.None)) {
      return this.emitFrame(frame, mac, EtherType.IPv4, offload);
    }
    let whole = frame;
    // A checksum left to the NIC is finished first: only the first fragment carries the transport header.
    if (offload !== undefined && !finishOffload(frame, offload, (finished) => (whole = finished))) return this.drop('ipv4:bad-offload');
    if (!fragmentIpv4(whole.subarray(LINK_HEADROOM), this.mtu, LINK_HEADROOM, (fragment) => this.emitFrame(fragment, mac, EtherType.IPv4))) {
      return this.drop('ipv4:cannot-fragment');
    }
    this.counters.fragmented++;
  }

  /**
   * Send a UDP datagram to a guest, from any address the guest should see
   * (the gateway's, a NAT peer's). `toMac` skips ARP (DHCP replies to a
   * guest with no address yet; broadcast).
   */
  sendUdp(source: number, sourcePort: number, destination: number, destinationPort: number, payload: Uint8Array, toMac?: Uint8Array): void {
    const udpLength = UDP_HEADER_LENGTH + payload.length;
    const frame = new Uint8Array(LINK_HEADROOM + IPV4_HEADER_LENGTH + udpLength);
    emitIpv4(
      { source, destination, protocol: IpProtocol.UDP, ttl: DEFAULT_TTL, payloadLength: udpLength, identification: this.nextIdentification() },
      frame,
      LINK_HEADROOM,
    );
    emitUdp({ sourcePort, destinationPort, payload }, frame, LINK_HEADROOM + IPV4_HEADER_LENGTH, { source, destination });
    if (toMac) this.sendIpv4To(frame, toMac);
    else this.sendIpv4(frame, destination);
  }

  /** Next IP identification for packets we originate. */
  nextIdentification(): number {
    this.nextIpId = (this.nextIpId + 1) & 0xffff;
    return this.nextIpId;
  }

  /**
   * ICMP error about a guest's packet (RFC 792; RFC 1812 §4.3.2.3: include
   * as much of the original as fits in 576 bytes). `original` is the guest's
   * whole IPv4 packet; errors about ICMP errors are never sent (RFC 1122 §3.2.2).
   */
  sendIcmpError(original: Uint8Array, type: number, code: number, source = this.address): void {
    const ip = Ipv4View.checkedHeader(original);
    if (!this.mayReportAbout(ip)) return this.drop('icmpv4:error-not-sent');
    if (ip.protocol === IpProtocol.ICMP && original.length > ip.headerLength) {
      const t = original[ip.headerLength]!;
      if (t !== Icmpv4Type.EchoRequest && t !== Icmpv4Type.EchoReply) return;
    }
    const quoted = original.subarray(0, Math.min(original.length, ip.totalLength, ICMPV4_MAX_ERROR_DATAGRAM - IPV4_HEADER_LENGTH - ICMPV4_HEADER_LENGTH));
    const icmpLength = ICMPV4_HEADER_LENGTH + quoted.length;
    const frame = new Uint8Array(LINK_HEADROOM + IPV4_HEADER_LENGTH + icmpLength);
    emitIpv4(
      { source, destination: ip.source, protocol: IpProtocol.ICMP, ttl: DEFAULT_TTL, payloadLength: icmpLength, identification: this.nextIdentification() },
      frame,
      LINK_HEADROOM,
    );
    emitIcmpv4({ kind: 'other', type, code, restOfHeader: 0, data: quoted }, frame, LINK_HEADROOM + IPV4_HEADER_LENGTH);
    this.counters.icmpErrors++;
    this.sendIpv4(frame, ip.source);
  }

  /** Stops the reassembly timer; the gateway is done. */
  close(): void {
    this.reassembly.close();
  }

  drop(reason: string): void {
    this.drops[reason] = (this.drops[reason] ?? 0) + 1;
  }

  private input(frame: Uint8Array, checksumPending: boolean): void {
    const eth = EthernetView.checked(frame);
    if (eth.tagCount > 0) return this.drop('ethernet:vlan-tagged');
    const toUs = macEquals(eth.destination, this.options.mac);
    if (!toUs && !isBroadcastMac(eth.destination)) return; // someone else's frame, flooded to us
    switch (eth.etherType) {
      case EtherType.ARP:
        return this.inputArp(ArpView.checked(eth.payload));
      case EtherType.IPv4:
        return this.inputIpv4(eth.payload, eth.source, checksumPending);
      case EtherType.IPv6:
        return this.drop('ipv6:not-implemented');
      default:
        return this.drop('ethernet:unknown-ethertype');
    }
  }

  /**
   * RFC 1122 §3.2.2: no ICMP error about a datagram to a broadcast or
   * multicast address, or whose source "does not define a single host"; and
   * ours go to hosts on the LAN that are not us.
   */
  private mayReportAbout(ip: Ipv4View): boolean {
    const source = ip.source;
    const destination = ip.destination;
    const single = (address: number): boolean => address !== 0xffffffff && address !== this.broadcast && address >>> 28 !== MULTICAST_NIBBLE;
    return single(destination) && single(source) && this.inLan(source) && source !== this.options.network && !this.owns(source);
  }

  private inputArp(arp: ArpView): void {
    const now = this.clock();
    const sender = arp.senderProtocolAddress;
    // RFC 826 "merge": refresh a known sender, learn one that asks us.
    if (sender !== 0 && this.inLan(sender) && (this.arp.lookup(sender, now) || this.owns(arp.targetProtocolAddress))) {
      this.arp.learn(sender, arp.senderHardwareAddress, now);
      for (const parked of this.arp.takeParked(sender)) this.sendIpv4To(parked.frame, arp.senderHardwareAddress, parked.offload);
    }
    if (arp.operation !== ArpOperation.Request || !this.owns(arp.targetProtocolAddress)) return;
    const frame = new Uint8Array(ETHERNET_HEADER_LENGTH + ARP_PACKET_LENGTH);
    emitArp(
      {
        operation: ArpOperation.Reply,
        senderHardwareAddress: this.options.mac,
        senderProtocolAddress: arp.targetProtocolAddress,
        targetHardwareAddress: arp.senderHardwareAddress,
        targetProtocolAddress: sender,
      },
      frame,
      ETHERNET_HEADER_LENGTH,
    );
    this.counters.arpReplies++;
    this.emitFrame(frame, arp.senderHardwareAddress, EtherType.ARP);
  }

  private inputIpv4(packet: Uint8Array, sourceMac: Uint8Array, checksumPending: boolean): void {
    let ip = Ipv4View.checked(packet);
    if (!ip.verifyChecksum()) throw new WireError('ipv4', 'bad-checksum');
    const src = ip.source;
    if (src !== 0 && this.inLan(src) && !this.owns(src)) this.arp.learn(src, sourceMac, this.clock());
    const dst = ip.destination;
    const toUs = this.owns(dst) || dst === 0xffffffff || dst === this.broadcast;
    if (!toUs && this.inLan(dst)) return; // guest to guest: the switch carries it, not us
    if (ip.isFragment) {
      const whole = this.reassembly.add(ip);
      if (whole === null) return;
      ip = whole;
      checksumPending = false; // a guest's stack finishes checksums before it fragments
    }
    if (toUs) {
      if (ip.protocol === IpProtocol.ICMP && this.owns(dst)) return this.inputIcmp(ip);
      return this.handlers.local(ip, sourceMac, checksumPending);
    }
    if (ip.ttl <= 1) return this.sendIcmpError(ip.bytes, Icmpv4Type.TimeExceeded, 0);
    this.handlers.forward(ip, sourceMac, checksumPending);
  }

  /** ICMP to one of our addresses: echo is answered, destination unreachable goes to the handler, the rest is dropped. */
  private inputIcmp(ip: Ipv4View): void {
    const icmp = Icmpv4View.checked(ip.payload);
    if (!icmp.verifyChecksum()) throw new WireError('icmpv4', 'bad-checksum');
    if (icmp.type === Icmpv4Type.DestinationUnreachable && this.handlers.unreachable) return this.handlers.unreachable(icmp.data, icmp.code);
    if (icmp.type !== Icmpv4Type.EchoRequest) return this.drop('icmpv4:not-echo-request');
    const data = icmp.data;
    const length = ICMPV4_HEADER_LENGTH + data.length;
    const frame = new Uint8Array(LINK_HEADROOM + IPV4_HEADER_LENGTH + length);
    emitIpv4(
      { source: ip.destination, destination: ip.source, protocol: IpProtocol.ICMP, ttl: DEFAULT_TTL, payloadLength: length, identification: this.nextIdentification() },
      frame,
      LINK_HEADROOM,
    );
    emitIcmpv4(
      { kind: 'echoReply', identifier: icmp.identifier, sequenceNumber: icmp.sequenceNumber, data },
      frame,
      LINK_HEADROOM + IPV4_HEADER_LENGTH,
    );
    this.counters.echoReplies++;
    this.sendIpv4(frame, ip.source);
  }

  private sendArpRequest(target: number): void {
    const frame = new Uint8Array(ETHERNET_HEADER_LENGTH + ARP_PACKET_LENGTH);
    emitArp(
      {
        operation: ArpOperation.Request,
        senderHardwareAddress: this.options.mac,
        senderProtocolAddress: this.address,
        targetHardwareAddress: new Uint8Array(6),
        targetProtocolAddress: target,
      },
      frame,
      ETHERNET_HEADER_LENGTH,
    );
    this.emitFrame(frame, BROADCAST_MAC, EtherType.ARP);
  }

  private emitFrame(frame: Uint8Array, destination: Uint8Array, etherType: number, offload?: FrameOffload): void {
    emitEthernet({ destination, source: this.options.mac, etherType }, frame, 0);
    this.counters.framesOut++;
    this.output(frame, offload);
  }
}
