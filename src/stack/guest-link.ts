/**
 * How the NAT engine and the services (DHCP, DNS) send IPv4 packets to the
 * guests of one virtual LAN. The gateway (src/stack/gateway.ts) implements it:
 * it fills in the Ethernet header from its ARP table and hands the frame to
 * the switch.
 */
import { ETHERNET_HEADER_LENGTH } from '../wire/ethernet.js';
import type { FrameOffload } from '../wire/virtio-net.js';

/** IPv4 packets given to `sendIpv4` start at this offset; the bytes before it are the link's. */
export const LINK_HEADROOM = ETHERNET_HEADER_LENGTH;

export interface GuestLink {
  /**
   * Send the IPv4 packet in `frame` (starting at LINK_HEADROOM, checksums
   * already filled) to `dstIp` on the guest LAN. The link writes the Ethernet
   * header into the headroom and does not keep `frame` past its return (what
   * must wait — for ARP — is copied), so the caller may reuse the buffer.
   * Dropped and counted when the destination's MAC is unknown and its ARP
   * queue is full. A packet longer than `mtu` (other than a TCP
   * super-segment, see `offload`) goes in IPv4 fragments.
   */
  sendIpv4(frame: Uint8Array, dstIp: number, offload?: FrameOffload): void;
  /** Largest IPv4 packet the guests take (their link MTU). */
  readonly mtu: number;
  /**
   * The link takes offloaded frames (`offload` given to sendIpv4: a partial
   * checksum, a TCP super-segment) and finishes them where the receiving NIC
   * cannot. Like the frame, it is not kept past the call.
   */
  readonly offload: boolean;
  /**
   * Whether `dstIp`'s NIC takes UDP super-datagrams (GsoType.UdpL4) as they
   * are, so a sender may batch a flow's datagrams into one. Others get them
   * cut in software, which costs more than sending them one by one.
   */
  takesUdpSegmentation(dstIp: number): boolean;
}

/** Milliseconds; injected so tests can drive time. */
export type Clock = () => number;
