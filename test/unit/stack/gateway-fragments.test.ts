import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Gateway } from '../../../src/stack/gateway.js';
import { Ipv4Reassembler, TIMEOUT_MS } from '../../../src/stack/ipv4-reassembly.js';
import { ArpOperation, ARP_PACKET_LENGTH, emitArp } from '../../../src/wire/arp.js';
import { fold, pseudoHeaderSum } from '../../../src/wire/checksum.js';
import { emitEthernet, EtherType, ETHERNET_HEADER_LENGTH } from '../../../src/wire/ethernet.js';
import { emitIcmpv4, Icmpv4Type, Icmpv4View } from '../../../src/wire/icmpv4.js';
import { emitIpv4, IpProtocol, IPV4_HEADER_LENGTH, Ipv4View } from '../../../src/wire/ipv4.js';
import { fragmentIpv4 } from '../../../src/wire/ipv4-fragmentation.js';
import { UdpView } from '../../../src/wire/udp.js';
import { GsoType, VIRTIO_NET_HDR_F_NEEDS_CSUM } from '../../../src/wire/virtio-net.js';

const GATEWAY_MAC = Uint8Array.from([0x52, 0x54, 0x00, 0x12, 0x35, 0x02]);
const GUEST_MAC = Uint8Array.from([0x08, 0x00, 0x27, 0, 0, 1]);
const GATEWAY = 0x0a000202;
const GUEST = 0x0a00020f;
const MTU = 1500;

function gateway(clock: () => number): { gw: Gateway; out: Uint8Array[] } {
  const gw = new Gateway({ mac: GATEWAY_MAC, addresses: [GATEWAY], network: 0x0a000200, mask: 0xffffff00, mtu: MTU, clock });
  const out: Uint8Array[] = [];
  gw.output = (frame) => out.push(Uint8Array.from(frame));
  return { gw, out };
}

/** The guest's echo request of `size` data bytes to `destination`, as Ethernet frames (to the gateway's MAC) of fragments that fit MTU. */
function echoRequestFragments(size: number, identification: number, destination = GATEWAY): Uint8Array[] {
  const icmpLength = 8 + size;
  const packet = new Uint8Array(IPV4_HEADER_LENGTH + icmpLength);
  emitIpv4({ source: GUEST, destination, protocol: IpProtocol.ICMP, ttl: 64, payloadLength: icmpLength, identification }, packet, 0);
  const data = Uint8Array.from({ length: size }, (_, i) => i & 0xff);
  emitIcmpv4({ kind: 'echoRequest', identifier: 5, sequenceNumber: 1, data }, packet, IPV4_HEADER_LENGTH);
  const frames: Uint8Array[] = [];
  assert.ok(
    fragmentIpv4(packet, MTU, ETHERNET_HEADER_LENGTH, (frame) => {
      emitEthernet({ destination: GATEWAY_MAC, source: GUEST_MAC, etherType: EtherType.IPv4 }, frame, 0);
      frames.push(frame);
    }),
  );
  return frames;
}

describe('Gateway and IPv4 fragments', () => {
  it('answers an echo request that came in fragments with a reply in fragments that fit the MTU', () => {
    const { gw, out } = gateway(() => 0);
    for (const frame of echoRequestFragments(4000, 77)) gw.fromNetwork(frame);
    assert.deepEqual(gw.drops, {});
    assert.equal(out.length, 3);
    const pieces = out.map((f) => Ipv4View.checked(f.subarray(ETHERNET_HEADER_LENGTH)));
    assert.ok(pieces.every((p) => p.totalLength <= MTU && p.destination === GUEST && p.verifyChecksum()));
    const reply = gw.reassembly.add(pieces[0]!) ?? gw.reassembly.add(pieces[1]!) ?? gw.reassembly.add(pieces[2]!);
    assert.ok(reply, 'the reply reassembles');
    const icmp = Icmpv4View.checked(reply.payload);
    assert.ok(icmp.verifyChecksum());
    assert.equal(icmp.type, Icmpv4Type.EchoReply);
    assert.deepEqual(icmp.data, Uint8Array.from({ length: 4000 }, (_, i) => i & 0xff));
    assert.equal(gw.counters.fragmented, 1);
    gw.close();
  });

  it('drops an incomplete datagram after the timeout and tells the guest: ICMP time exceeded, code 1, quoting fragment zero', () => {
    let now = 0;
    const { gw, out } = gateway(() => now);
    const [first] = echoRequestFragments(4000, 78);
    gw.fromNetwork(first!);
    assert.equal(out.length, 0);
    now = TIMEOUT_MS;
    gw.reassembly.expire();
    assert.equal(out.length, 1);
    const ip = Ipv4View.checked(out[0]!.subarray(ETHERNET_HEADER_LENGTH));
    assert.equal(ip.destination, GUEST);
    const icmp = Icmpv4View.checked(ip.payload);
    assert.equal(icmp.type, Icmpv4Type.TimeExceeded);
    assert.equal(icmp.code, 1);
    const quoted = Ipv4View.checkedHeader(icmp.data);
    assert.equal(quoted.identification, 78);
    assert.equal(icmp.data.length, IPV4_HEADER_LENGTH + 8);
    assert.equal(gw.reassembly.pending, 0);
    gw.close();
  });

  it('finishes a checksum left to the NIC before it cuts a UDP datagram, and parks it whole while ARP resolves', () => {
    const { gw, out } = gateway(() => 0);
    const payload = Uint8Array.from({ length: 3000 }, (_, i) => (i * 3) & 0xff);
    const udpLength = 8 + payload.length;
    const frame = new Uint8Array(ETHERNET_HEADER_LENGTH + IPV4_HEADER_LENGTH + udpLength);
    emitIpv4({ source: GATEWAY, destination: GUEST, protocol: IpProtocol.UDP, ttl: 64, payloadLength: udpLength, identification: 9 }, frame, ETHERNET_HEADER_LENGTH);
    const udp = new UdpView(frame.subarray(ETHERNET_HEADER_LENGTH + IPV4_HEADER_LENGTH));
    udp.sourcePort = 53;
    udp.destinationPort = 40000;
    udp.length = udpLength;
    frame.set(payload, ETHERNET_HEADER_LENGTH + IPV4_HEADER_LENGTH + 8);
    udp.checksum = ~fold(pseudoHeaderSum(GATEWAY, GUEST, IpProtocol.UDP, udpLength)) & 0xffff; // partial, as with NEEDS_CSUM
    const offload = { flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType: GsoType.None, hdrLen: 0, gsoSize: 0, csumStart: ETHERNET_HEADER_LENGTH + IPV4_HEADER_LENGTH, csumOffset: 6 };
    gw.sendIpv4(frame, GUEST, offload);
    assert.equal(out.length, 1, 'only the ARP request, the datagram is parked');
    // The guest answers the ARP request: the parked datagram leaves, cut to fit.
    const reply = new Uint8Array(ETHERNET_HEADER_LENGTH + ARP_PACKET_LENGTH);
    emitEthernet({ destination: GATEWAY_MAC, source: GUEST_MAC, etherType: EtherType.ARP }, reply, 0);
    emitArp({ operation: ArpOperation.Reply, senderHardwareAddress: GUEST_MAC, senderProtocolAddress: GUEST, targetHardwareAddress: GATEWAY_MAC, targetProtocolAddress: GATEWAY }, reply, ETHERNET_HEADER_LENGTH);
    gw.fromNetwork(reply);
    const pieces = out.slice(1).map((f) => Ipv4View.checked(f.subarray(ETHERNET_HEADER_LENGTH)));
    assert.equal(pieces.length, 3);
    const r = new Ipv4Reassembler({ clock: () => 0 });
    const whole = pieces.map((p) => r.add(p)).find((p) => p !== null);
    assert.ok(whole);
    const got = UdpView.checked(whole.payload);
    assert.ok(got.verifyChecksum({ source: GATEWAY, destination: GUEST }), 'the UDP checksum is whole');
    assert.deepEqual(got.payload, payload);
    gw.close();
  });

  it('leaves fragments between guests to the switch', () => {
    const { gw } = gateway(() => 0);
    for (const frame of echoRequestFragments(4000, 79, 0x0a000210).slice(0, 2)) gw.fromNetwork(frame);
    assert.equal(gw.reassembly.pending, 0);
    assert.deepEqual(gw.drops, {});
    gw.close();
  });
});
