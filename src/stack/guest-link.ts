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
   * already filled) to `dstIp` on the guest LAN. The link takes `frame` over:
   * the caller must not write to it afterwards. Dropped and counted when the
   * destination's MAC is unknown (an ARP request goes out instead).
   */
  sendIpv4(frame: Uint8Array, dstIp: number, offload?: FrameOffload): void;
  /** Largest IPv4 packet the guests take (their link MTU). */
  readonly mtu: number;
  /**
   * The link takes offloaded frames (`offload` given to sendIpv4: a partial
   * checksum, a TCP super-segment) and finishes them where the receiving NIC
   * cannot. The offload object is the link's from then on.
   */
  readonly offload: boolean;
}

/** Milliseconds; injected so tests can drive time. */
export type Clock = () => number;
