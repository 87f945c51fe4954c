// UdpNat and the UDP port forwards over the native host sockets, against
// Node dgram peers on 127.0.0.1 only; the guest side is a fake link that
// records the frames it is given.
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { after, describe, it } from 'node:test';

import { VnetError } from '../../../src/errors.js';
import { PortForwarder, type PortForward } from '../../../src/nat/port-forwarder.js';
import { IDLE_TIMEOUT_MS, UdpNat, type NatLink } from '../../../src/nat/udp-nat.js';
import { LINK_HEADROOM } from '../../../src/stack/guest-link.js';
import { openNativeUdpSockets } from '../../../src/transport/udp-socket.js';
import { parseIpv4 } from '../../../src/wire/address.js';
import { fold, sum } from '../../../src/wire/checksum.js';
import { finishOffload } from '../../../src/wire/gso.js';
import { Icmpv4Type, Icmpv4UnreachableCode } from '../../../src/wire/icmpv4.js';
import { emitIpv4, IpProtocol, IPV4_HEADER_LENGTH, Ipv4View } from '../../../src/wire/ipv4.js';
import { emitUdp, UDP_HEADER_LENGTH, UdpView } from '../../../src/wire/udp.js';
import { GsoType, VIRTIO_NET_HDR_F_NEEDS_CSUM, type FrameOffload } from '../../../src/wire/virtio-net.js';

const ip = parseIpv4;
const GUEST = ip('10.0.2.15');
const GATEWAY = ip('10.0.2.2');
const LOOPBACK = '127.0.0.1';
const GUEST_PORT = 40000;
const WAIT_LIMIT_MS = 5_000;

interface SentFrame {
  frame: Uint8Array;
  offload: FrameOffload | undefined;
}

class FakeLink implements NatLink {
  readonly frames: SentFrame[] = [];
  readonly icmpErrors: { original: Uint8Array; type: number; code: number; source?: number }[] = [];
  private id = 0;
  constructor(
    readonly offload: boolean,
    readonly mtu = 1500,
    /** The guest's NIC takes UDP super-datagrams. */
    private readonly segmenting = false,
  ) {}
  takesUdpSegmentation(): boolean {
    return this.segmenting;
  }
  sendIpv4(frame: Uint8Array, _dstIp: number, offload?: FrameOffload): void {
    this.frames.push({ frame: Uint8Array.from(frame), offload: offload && { ...offload } });
  }
  sendIcmpError(original: Uint8Array, type: number, code: number, source?: number): void {
    this.icmpErrors.push({ original: Uint8Array.from(original), type, code, source });
  }
  nextIdentification(): number {
    return ++this.id;
  }
}

/** A frame toward the guest, finished as a NIC without offloads would get it, parsed. */
function parseToGuest({ frame, offload }: SentFrame) {
  let finished = frame;
  if (offload) assert.ok(finishOffload(frame, offload, (f) => (finished = f)));
  const ipv4 = Ipv4View.checked(finished.subarray(LINK_HEADROOM));
  assert.ok(ipv4.verifyChecksum());
  assert.equal(ipv4.protocol, IpProtocol.UDP);
  const udp = UdpView.checked(ipv4.payload);
  assert.ok(udp.checksum !== 0, 'a checksum is present');
  assert.ok(udp.verifyChecksum({ source: ipv4.source, destination: ipv4.destination }));
  return { source: ipv4.source, destination: ipv4.destination, sourcePort: udp.sourcePort, destinationPort: udp.destinationPort, payload: Buffer.from(udp.payload) };
}

/** The frames as a NIC without UDP segmentation gets them: super-datagrams cut in software (gso.ts). */
function cutSuperDatagrams(frames: SentFrame[]): SentFrame[] {
  const cut: SentFrame[] = [];
  for (const f of frames) {
    if (f.offload?.gsoType !== GsoType.UdpL4) {
      cut.push(f);
      continue;
    }
    f.frame.set([0x08, 0x00], 12); // the EtherType the gateway writes before a NIC sees the frame
    assert.ok(finishOffload(f.frame, f.offload, (d) => cut.push({ frame: d, offload: undefined })));
  }
  return cut;
}

/**
 * The partial checksum of a super-datagram as a guest's kernel uses it: for
 * each datagram, Linux's __udp_gso_segment swaps the super-datagram's UDP
 * length for the datagram's in the partial sum (ones' complement arithmetic,
 * RFC 1624), and the NIC or the stack then sums the datagram from the UDP
 * header on with that partial value in place. The result must be the
 * datagram's checksum.
 */
function assertPartialChecksumCutsLikeLinux({ frame, offload }: SentFrame): void {
  const udpAt = offload!.csumStart;
  const size = offload!.gsoSize;
  const partial = (frame[udpAt + 6]! << 8) | frame[udpAt + 7]!;
  const superLength = (frame[udpAt + 4]! << 8) | frame[udpAt + 5]!;
  const payloadAt = udpAt + UDP_HEADER_LENGTH;
  const add16 = (a: number, b: number) => {
    const s = a + b;
    return (s & 0xffff) + (s >>> 16);
  };
  for (let offset = payloadAt; offset < frame.length; offset += size) {
    const length = Math.min(size, frame.length - offset);
    const udpLength = UDP_HEADER_LENGTH + length;
    const datagram = new Uint8Array(udpLength);
    datagram.set(frame.subarray(udpAt, payloadAt), 0);
    datagram.set(frame.subarray(offset, offset + length), UDP_HEADER_LENGTH);
    datagram[4] = udpLength >>> 8;
    datagram[5] = udpLength & 0xff;
    const check = add16(add16(partial, ~superLength & 0xffff), udpLength);
    datagram[6] = check >>> 8;
    datagram[7] = check & 0xff;
    const completed = fold(sum(datagram)) || 0xffff;
    datagram[6] = completed >>> 8;
    datagram[7] = completed & 0xff;
    const ip = Ipv4View.checked(frame.subarray(LINK_HEADROOM));
    assert.ok(new UdpView(datagram).verifyChecksum({ source: ip.source, destination: ip.destination }), `datagram at ${offset - payloadAt}`);
  }
}

/** A guest's datagram as the gateway hands it over: checked views. */
function fromGuest(source: number, sourcePort: number, destination: number, destinationPort: number, payload: Uint8Array) {
  const bytes = new Uint8Array(IPV4_HEADER_LENGTH + UDP_HEADER_LENGTH + payload.length);
  emitIpv4({ source, destination, protocol: IpProtocol.UDP, ttl: 64, payloadLength: UDP_HEADER_LENGTH + payload.length, identification: 7 }, bytes, 0);
  emitUdp({ sourcePort, destinationPort, payload }, bytes, IPV4_HEADER_LENGTH, { source, destination });
  const ipv4 = Ipv4View.checked(bytes);
  return { ip: ipv4, udp: UdpView.checked(ipv4.payload) };
}

async function until(what: string, done: () => boolean): Promise<void> {
  const deadline = Date.now() + WAIT_LIMIT_MS;
  while (!done()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const peers: Socket[] = [];
/** A loopback UDP server that echoes what it gets, or answers with `reply`. */
async function echoServer(reply?: (message: Buffer) => Buffer): Promise<{ socket: Socket; port: number; got: Buffer[] }> {
  const socket = createSocket('udp4');
  peers.push(socket);
  const got: Buffer[] = [];
  socket.on('message', (message, from) => {
    got.push(message);
    socket.send(reply ? reply(message) : message, from.port, from.address);
  });
  socket.bind(0, LOOPBACK);
  await once(socket, 'listening');
  return { socket, port: socket.address().port, got };
}

async function closedPort(): Promise<number> {
  const socket = createSocket('udp4');
  socket.bind(0, LOOPBACK);
  await once(socket, 'listening');
  const { port } = socket.address();
  socket.close();
  return port;
}

const nats: UdpNat[] = [];
function newNat(link: NatLink, maxFlows?: number, clock?: () => number): UdpNat {
  const nat = new UdpNat({ link, openSockets: openNativeUdpSockets, maxFlows, clock });
  nats.push(nat);
  return nat;
}

after(() => {
  for (const p of peers) p.close();
});

describe('UdpNat', () => {
  after(() => {
    for (const nat of nats) nat.shutdown();
  });

  for (const offload of [false, true]) {
    it(`relays both ways; replies come from the address the guest sent to (link offload ${offload})`, async () => {
      const link = new FakeLink(offload);
      const nat = newNat(link);
      const server = await echoServer();
      for (let i = 0; i < 50; i++) {
        const { ip: ipv4, udp } = fromGuest(GUEST, GUEST_PORT, GATEWAY, server.port, Buffer.from(`ping ${i}`));
        nat.fromGuest(ipv4, udp, LOOPBACK);
      }
      await until('50 replies', () => link.frames.length === 50);
      assert.deepEqual(server.got.map(String), Array.from({ length: 50 }, (_, i) => `ping ${i}`));
      const replies = link.frames.map(parseToGuest);
      for (const [i, r] of replies.entries()) {
        assert.deepEqual(
          { ...r, payload: r.payload.toString() },
          { source: GATEWAY, destination: GUEST, sourcePort: server.port, destinationPort: GUEST_PORT, payload: `ping ${i}` },
        );
      }
      if (offload) {
        for (const f of link.frames) {
          assert.equal(f.offload?.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
          assert.equal(f.offload?.csumStart, LINK_HEADROOM + IPV4_HEADER_LENGTH);
          assert.equal(f.offload?.csumOffset, 6);
        }
      } else {
        assert.ok(link.frames.every((f) => f.offload === undefined));
      }
      assert.deepEqual(nat.stats(), { flows: 1, opened: 1, closed: 0, datagramsToHost: 50, datagramsToGuest: 50, superDatagramsToGuest: 0, refused: 0, datagramsSegmentedToHost: 50, drops: {} });
    });
  }

  it('a burst toward a NIC that takes UDP segmentation leaves as super-datagrams that cut into the host’s datagrams, in order', async () => {
    const link = new FakeLink(true, 1500, true);
    const nat = newNat(link);
    // 150 datagrams of 1,000 bytes, one of 300, 49 of 1,000: runs end at 64 datagrams and after the short one.
    const sizes = Array.from({ length: 200 }, (_, i) => (i === 150 ? 300 : 1000));
    const datagram = (i: number) => Buffer.alloc(sizes[i]!, i & 0xff).fill(`#${i}.`, 0, 6);
    const server = await echoServer();
    server.socket.removeAllListeners('message');
    server.socket.on('message', (_message, from) => {
      for (let i = 0; i < sizes.length; i++) server.socket.send(datagram(i), from.port, from.address);
    });
    const { ip: ipv4, udp } = fromGuest(GUEST, GUEST_PORT, GATEWAY, server.port, Buffer.from('burst'));
    nat.fromGuest(ipv4, udp, LOOPBACK);
    await until('200 datagrams', () => nat.stats().datagramsToGuest === sizes.length);
    for (const f of link.frames) if (f.offload?.gsoType === GsoType.UdpL4) assert.equal(f.offload.gsoSize, 1000);
    const cut = cutSuperDatagrams(link.frames);
    for (const f of link.frames) if (f.offload?.gsoType === GsoType.UdpL4) assertPartialChecksumCutsLikeLinux(f);
    const ids: number[] = [];
    for (const { frame } of cut) ids.push(Ipv4View.checked(frame.subarray(LINK_HEADROOM)).identification);
    const got = cut.map(parseToGuest);
    assert.equal(got.length, sizes.length);
    for (const [i, d] of got.entries()) {
      assert.deepEqual(d.payload, datagram(i), `datagram ${i}`);
      assert.deepEqual([d.source, d.sourcePort, d.destination, d.destinationPort], [GATEWAY, server.port, GUEST, GUEST_PORT]);
    }
    assert.ok(ids.every((id, i) => i === 0 || id === ids[i - 1]! + 1), 'IP IDs count up datagram by datagram');
    const supers = nat.stats().superDatagramsToGuest;
    assert.ok(supers >= Math.ceil(sizes.length / 64), `${supers} super-datagrams for ${link.frames.length} frames`);
    assert.equal(link.frames.filter((f) => f.offload?.gsoType === GsoType.UdpL4).length, supers);
  });

  it('a closed host port becomes ICMP port unreachable about the guest’s datagram, from where it sent', async () => {
    const link = new FakeLink(true);
    const nat = newNat(link);
    const port = await closedPort();
    const sent = fromGuest(GUEST, GUEST_PORT, GATEWAY, port, Buffer.from('hello?'));
    nat.fromGuest(sent.ip, sent.udp, LOOPBACK);
    await until('an ICMP error', () => link.icmpErrors.length > 0);
    const error = link.icmpErrors[0]!;
    assert.equal(error.type, Icmpv4Type.DestinationUnreachable);
    assert.equal(error.code, Icmpv4UnreachableCode.PortUnreachable);
    assert.equal(error.source, GATEWAY);
    assert.deepEqual(error.original, sent.ip.bytes.subarray(0, IPV4_HEADER_LENGTH + UDP_HEADER_LENGTH));
    assert.equal(nat.stats().refused, 1);
    assert.equal(nat.flowCount, 1, 'the flow stays');
  });

  it('a reply longer than the guest MTU goes to the link whole, its checksum finished (the link fragments it)', async () => {
    const link = new FakeLink(true, 576);
    const nat = newNat(link);
    const server = await echoServer((m) => (m.toString() === 'big' ? Buffer.alloc(30_000, 7) : Buffer.alloc(576 - 28, 8)));
    for (const text of ['big', 'fits']) {
      const { ip: ipv4, udp } = fromGuest(GUEST, GUEST_PORT, GATEWAY, server.port, Buffer.from(text));
      nat.fromGuest(ipv4, udp, LOOPBACK);
    }
    await until('both replies', () => link.frames.length === 2);
    const [big, fits] = [...link.frames].sort((a, b) => b.frame.length - a.frame.length);
    assert.equal(big!.offload, undefined, 'no checksum left to a NIC: only the first fragment will carry the UDP header');
    assert.deepEqual(parseToGuest(big!).payload, Buffer.alloc(30_000, 7));
    assert.ok(fits!.offload, 'one that fits keeps the offload');
    assert.equal(parseToGuest(fits!).payload.length, 576 - 28);
    assert.deepEqual(nat.drops, {});
  });

  it('one guest port talking to three destinations is three flows, each answered from its own', async () => {
    let now = 1_000_000;
    const link = new FakeLink(false);
    const nat = newNat(link, undefined, () => now);
    const servers = [await echoServer(), await echoServer(), await echoServer()];
    for (const server of servers) {
      const { ip: ipv4, udp } = fromGuest(GUEST, GUEST_PORT, GATEWAY, server.port, Buffer.from(`to ${server.port}`));
      nat.fromGuest(ipv4, udp, LOOPBACK);
    }
    await until('three replies', () => link.frames.length === 3);
    const replies = link.frames.map(parseToGuest).map((r) => `${r.sourcePort} ${r.payload.toString()}`).sort();
    assert.deepEqual(replies, servers.map((s) => `${s.port} to ${s.port}`).sort());
    assert.equal(nat.flowCount, 3);
    // The middle flow of the chain goes idle first; the other two stay.
    now += IDLE_TIMEOUT_MS / 2;
    for (const server of [servers[0]!, servers[2]!]) {
      const { ip: ipv4, udp } = fromGuest(GUEST, GUEST_PORT, GATEWAY, server.port, Buffer.from('again'));
      nat.fromGuest(ipv4, udp, LOOPBACK);
    }
    now += IDLE_TIMEOUT_MS / 2 + 1;
    nat.sweep();
    assert.equal(nat.flowCount, 2);
    nat.closeGuest(GUEST);
    assert.equal(nat.flowCount, 0);
    assert.deepEqual({ opened: nat.counters.opened, closed: nat.counters.closed }, { opened: 3, closed: 3 });
  });

  it('flows beyond maxFlows are refused and counted; idle ones and a leaving guest’s close', async () => {
    let now = 1_000_000;
    const link = new FakeLink(false);
    const nat = newNat(link, 2, () => now);
    const server = await echoServer();
    const send = (guest: number, port: number) => {
      const { ip: ipv4, udp } = fromGuest(guest, port, GATEWAY, server.port, Buffer.from('x'));
      nat.fromGuest(ipv4, udp, LOOPBACK);
    };
    send(GUEST, 1);
    send(ip('10.0.2.16'), 2);
    send(GUEST, 3);
    assert.equal(nat.flowCount, 2);
    assert.deepEqual(nat.drops, { 'udp:flow-table-full': 1 });
    nat.closeGuest(ip('10.0.2.16'));
    assert.equal(nat.flowCount, 1);
    now += IDLE_TIMEOUT_MS + 1;
    nat.sweep();
    assert.equal(nat.flowCount, 0);
    assert.deepEqual({ opened: nat.counters.opened, closed: nat.counters.closed }, { opened: 2, closed: 2 });
  });
});

describe('PortForwarder (UDP)', () => {
  const forwarders: PortForwarder[] = [];
  after(() => {
    for (const f of forwarders) f.close();
  });
  const newForwarder = (link: NatLink) => {
    const forwarder = new PortForwarder({
      link,
      tcp: { forward: () => assert.fail('no TCP here') },
      gatewayIp: GATEWAY,
      defaultGuestIp: () => GUEST,
      openUdpSockets: openNativeUdpSockets,
    });
    forwarders.push(forwarder);
    return forwarder;
  };
  const rule = (name: string, hostPort: number): PortForward => ({ name, protocol: 'udp', hostIp: LOOPBACK, hostPort, guestIp: '', guestPort: 7001 });

  it('a loopback client reaches the guest as the gateway, and the guest’s replies reach the client', async () => {
    const link = new FakeLink(true);
    const forwarder = newForwarder(link);
    const hostPort = await closedPort();
    await forwarder.apply([rule('echo', hostPort)]);
    const client = createSocket('udp4');
    peers.push(client);
    client.bind(0, LOOPBACK);
    await once(client, 'listening');
    const answers: string[] = [];
    client.on('message', (m) => answers.push(m.toString()));
    for (let i = 0; i < 20; i++) client.send(Buffer.from(`q${i}`), hostPort, LOOPBACK);
    await until('20 datagrams to the guest', () => link.frames.length === 20);
    const clientPort = client.address().port;
    for (const [i, f] of link.frames.entries()) {
      const d = parseToGuest(f);
      assert.deepEqual(
        { ...d, payload: d.payload.toString() },
        { source: GATEWAY, sourcePort: clientPort, destination: GUEST, destinationPort: 7001, payload: `q${i}` },
      );
    }
    for (let i = 0; i < 20; i++) {
      const reply = fromGuest(GUEST, 7001, GATEWAY, clientPort, Buffer.from(`a${i}`));
      assert.equal(forwarder.fromGuestUdp(reply.ip, reply.udp), true);
    }
    const stranger = fromGuest(GUEST, 7001, GATEWAY, clientPort + 1, Buffer.from('nobody'));
    assert.equal(forwarder.fromGuestUdp(stranger.ip, stranger.udp), false);
    await until('20 answers', () => answers.length === 20);
    assert.deepEqual(answers, Array.from({ length: 20 }, (_, i) => `a${i}`));
    assert.deepEqual(forwarder.stats(), { rules: ['echo'], accepted: 0, spliced: 0, splicedOpen: 0, spliceErrors: 0, udpToGuest: 20, udpSuperDatagramsToGuest: 0, udpToHost: 20, drops: {} });
  });

  it('runs from one client go to a NIC that takes UDP segmentation as super-datagrams; another client’s datagrams end a run', async () => {
    const link = new FakeLink(true, 1500, true);
    const forwarder = newForwarder(link);
    const hostPort = await closedPort();
    await forwarder.apply([rule('burst', hostPort)]);
    const clients: Socket[] = [];
    for (let c = 0; c < 2; c++) {
      const client = createSocket('udp4');
      peers.push(client);
      client.bind(0, LOOPBACK);
      await once(client, 'listening');
      clients.push(client);
    }
    const sent: { port: number; payload: Buffer }[] = [];
    for (let i = 0; i < 150; i++) {
      const client = clients[i % 50 === 49 ? 1 : 0]!;
      const payload = Buffer.alloc(600, i & 0xff);
      sent.push({ port: client.address().port, payload });
      client.send(payload, hostPort, LOOPBACK);
    }
    await until('150 datagrams to the guest', () => forwarder.stats().udpToGuest === 150);
    const got = cutSuperDatagrams(link.frames).map(parseToGuest);
    assert.deepEqual(
      got.map((d) => ({ port: d.sourcePort, payload: d.payload })),
      sent,
    );
    assert.ok(forwarder.stats().udpSuperDatagramsToGuest > 0);
  });

  it('a host port in use fails the whole apply with VNET_ERR_PORT_IN_USE and leaves nothing open', async () => {
    const forwarder = newForwarder(new FakeLink(false));
    const busy = await echoServer();
    const free = await closedPort();
    await assert.rejects(forwarder.apply([rule('free', free), rule('busy', busy.port)]), (err: unknown) => {
      assert.ok(err instanceof VnetError);
      assert.equal(err.code, 'VNET_ERR_PORT_IN_USE');
      assert.match(err.message, new RegExp(`udp 127\\.0\\.0\\.1:${busy.port} .*in use`));
      return true;
    });
    assert.deepEqual(forwarder.rules, []);
    // The rule that did open was closed again: its port is free.
    const again = createSocket('udp4');
    again.bind(free, LOOPBACK);
    await once(again, 'listening');
    again.close();
  });
});
