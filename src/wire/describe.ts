/**
 * One-line, tcpdump-like summaries of frames for logs and traces:
 *
 *   08:00:27:aa:bb:cc > ff:ff:ff:ff:ff:ff ARP who-has 10.0.2.2 tell 10.0.2.15
 *   52:54:00:12:34:56 > 08:00:27:aa:bb:cc IPv4 10.0.2.15 > 10.0.2.2 ICMP echo request id 1 seq 2 len 56
 *   … TCP 10.0.2.15:40000 > 10.0.2.2:80 [S] seq 100 win 64240 len 0
 *   … UDP 0.0.0.0:68 > 255.255.255.255:67 DHCP DISCOVER xid 0x3903f326 chaddr 08:00:27:aa:bb:cc
 *
 * Never throws: malformed layers end the line with `malformed (ipv4: bad-length)`.
 * Checksums are not verified.
 */

import { formatIpv4, formatMac } from './address.js';
import { ArpOperation, ArpView } from './arp.js';
import { DHCP_CLIENT_PORT, DHCP_SERVER_PORT, DhcpView, getMessageType, parseDhcpOptions } from './dhcpv4.js';
import { WireError } from './errors.js';
import { EtherType, EthernetView } from './ethernet.js';
import { Icmpv4Type, Icmpv4View } from './icmpv4.js';
import { IpProtocol, Ipv4View } from './ipv4.js';
import { TcpView } from './tcp.js';
import { UdpView } from './udp.js';

const DHCP_TYPE_NAMES = [undefined, 'DISCOVER', 'OFFER', 'REQUEST', 'DECLINE', 'ACK', 'NAK', 'RELEASE', 'INFORM'];
// tcpdump's letters, in bit order FIN SYN RST PSH ACK URG ECE CWR.
const TCP_FLAG_LETTERS = ['F', 'S', 'R', 'P', '.', 'U', 'E', 'W'];
const UNREACHABLE_NAMES = ['net', 'host', 'protocol', 'port', 'need-frag', 'source-route'];

/** A one-line summary of an Ethernet frame. Never throws. */
export function describe(frame: Uint8Array): string {
  const parts: string[] = [];
  try {
    describeEthernet(frame, parts);
  } catch (err) {
    parts.push(err instanceof WireError ? `malformed (${err.protocol}: ${err.reason})` : `malformed (bug: ${String(err)})`);
  }
  return parts.join(' ');
}

function describeEthernet(frame: Uint8Array, parts: string[]): void {
  const eth = EthernetView.checked(frame);
  parts.push(`${formatMac(frame, 6)} > ${formatMac(frame, 0)}`);
  const vlanId = eth.vlanId;
  if (vlanId !== undefined) parts.push(`vlan ${vlanId}`);
  const payload = eth.payload;
  switch (eth.etherType) {
    case EtherType.ARP:
      return describeArp(payload, parts);
    case EtherType.IPv4:
      return describeIpv4(payload, parts);
    case EtherType.IPv6:
      parts.push(`IPv6 len ${payload.length}`);
      return;
    default:
      parts.push(`ethertype 0x${eth.etherType.toString(16).padStart(4, '0')} len ${payload.length}`);
  }
}

function describeArp(bytes: Uint8Array, parts: string[]): void {
  const arp = ArpView.checked(bytes);
  switch (arp.operation) {
    case ArpOperation.Request:
      parts.push(`ARP who-has ${formatIpv4(arp.targetProtocolAddress)} tell ${formatIpv4(arp.senderProtocolAddress)}`);
      return;
    case ArpOperation.Reply:
      parts.push(`ARP reply ${formatIpv4(arp.senderProtocolAddress)} is-at ${formatMac(arp.senderHardwareAddress)}`);
      return;
    default:
      parts.push(`ARP op ${arp.operation}`);
  }
}

function describeIpv4(bytes: Uint8Array, parts: string[]): void {
  const ip = Ipv4View.checked(bytes);
  const source = formatIpv4(ip.source);
  const destination = formatIpv4(ip.destination);
  const payload = ip.payload;
  // Later fragments carry no transport header, and the first one's is cut short.
  if (ip.isFragment) {
    parts.push(
      `IPv4 ${source} > ${destination} frag id ${ip.identification} off ${ip.fragmentOffset}${ip.moreFragments ? '+' : ''} proto ${ip.protocol} len ${payload.length}`,
    );
    return;
  }
  switch (ip.protocol) {
    case IpProtocol.TCP: {
      const tcp = TcpView.checked(payload);
      const ack = tcp.ack ? ` ack ${tcp.acknowledgmentNumber}` : '';
      parts.push(
        `TCP ${source}:${tcp.sourcePort} > ${destination}:${tcp.destinationPort} [${tcpFlags(tcp.flags)}]` +
          ` seq ${tcp.sequenceNumber}${ack} win ${tcp.windowSize} len ${tcp.payload.length}`,
      );
      return;
    }
    case IpProtocol.UDP: {
      const udp = UdpView.checked(payload);
      parts.push(`UDP ${source}:${udp.sourcePort} > ${destination}:${udp.destinationPort}`);
      const ports = [udp.sourcePort, udp.destinationPort];
      if (ports.includes(DHCP_SERVER_PORT) && ports.includes(DHCP_CLIENT_PORT)) return describeDhcp(udp.payload, parts);
      parts.push(`len ${udp.payload.length}`);
      return;
    }
    case IpProtocol.ICMP:
      parts.push(`IPv4 ${source} > ${destination}`);
      return describeIcmpv4(payload, parts);
    default:
      parts.push(`IPv4 ${source} > ${destination} proto ${ip.protocol} len ${payload.length}`);
  }
}

function tcpFlags(flags: number): string {
  let s = '';
  for (let bit = 0; bit < TCP_FLAG_LETTERS.length; bit++) if ((flags & (1 << bit)) !== 0) s += TCP_FLAG_LETTERS[bit];
  return s === '' ? 'none' : s;
}

function describeIcmpv4(bytes: Uint8Array, parts: string[]): void {
  const icmp = Icmpv4View.checked(bytes);
  switch (icmp.type) {
    case Icmpv4Type.EchoRequest:
    case Icmpv4Type.EchoReply: {
      const what = icmp.type === Icmpv4Type.EchoRequest ? 'request' : 'reply';
      parts.push(`ICMP echo ${what} id ${icmp.identifier} seq ${icmp.sequenceNumber} len ${icmp.data.length}`);
      return;
    }
    case Icmpv4Type.DestinationUnreachable: {
      const name = UNREACHABLE_NAMES[icmp.code] ?? `code ${icmp.code}`;
      const mtu = icmp.code === 4 ? ` mtu ${icmp.nextHopMtu}` : '';
      parts.push(`ICMP unreachable ${name}${mtu}`);
      return;
    }
    case Icmpv4Type.TimeExceeded:
      parts.push(`ICMP time exceeded code ${icmp.code}`);
      return;
    default:
      parts.push(`ICMP type ${icmp.type} code ${icmp.code} len ${icmp.data.length}`);
  }
}

function describeDhcp(bytes: Uint8Array, parts: string[]): void {
  const dhcp = DhcpView.checked(bytes);
  const type = getMessageType(parseDhcpOptions(dhcp));
  const name = type === undefined ? 'BOOTP' : (DHCP_TYPE_NAMES[type] ?? `type ${type}`);
  let line = `DHCP ${name} xid 0x${dhcp.xid.toString(16).padStart(8, '0')}`;
  if (dhcp.hlen === 6) line += ` chaddr ${formatMac(dhcp.chaddr)}`;
  if (dhcp.yiaddr !== 0) line += ` yiaddr ${formatIpv4(dhcp.yiaddr)}`;
  parts.push(line);
}
