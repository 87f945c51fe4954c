import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { fold, pseudoHeaderSum, sum } from '../../../src/wire/checksum.js';
import { emitEthernet, EtherType } from '../../../src/wire/ethernet.js';
import { finishOffload } from '../../../src/wire/gso.js';
import { emitIpv4, IpProtocol, Ipv4View } from '../../../src/wire/ipv4.js';
import { TcpFlags, TcpView } from '../../../src/wire/tcp.js';
import { GsoType, VIRTIO_NET_HDR_F_NEEDS_CSUM, type FrameOffload } from '../../../src/wire/virtio-net.js';

const SRC = 0x0a000201;
const DST = 0xc6336402;

/** A TCP/IPv4 frame with `payload`, checksum partial (pseudo-header sum only) as a TSO sender leaves it. */
function superFrame(payload: Uint8Array, flags: number): Uint8Array {
  const tcpLength = 20 + payload.length;
  const frame = new Uint8Array(14 + 20 + tcpLength);
  emitEthernet({ destination: new Uint8Array(6).fill(2), source: new Uint8Array(6).fill(4), etherType: EtherType.IPv4 }, frame, 0);
  emitIpv4({ source: SRC, destination: DST, protocol: IpProtocol.TCP, ttl: 64, payloadLength: tcpLength, identification: 100, dontFragment: true }, frame, 14);
  const t = 34;
  new DataView(frame.buffer).setUint16(t, 40000);
  new DataView(frame.buffer).setUint16(t + 2, 80);
  new DataView(frame.buffer).setUint32(t + 4, 0xfffff000); // wraps past 2^32 on purpose
  new DataView(frame.buffer).setUint32(t + 8, 7);
  frame[t + 12] = 5 << 4;
  frame[t + 13] = flags;
  new DataView(frame.buffer).setUint16(t + 14, 512);
  frame.set(payload, t + 20);
  new DataView(frame.buffer).setUint16(t + 16, ~fold(pseudoHeaderSum(SRC, DST, IpProtocol.TCP, tcpLength)) & 0xffff);
  return frame;
}

const tso = (mss: number): FrameOffload => ({ flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType: GsoType.TcpV4, hdrLen: 54, gsoSize: mss, csumStart: 34, csumOffset: 16 });

function tcpChecksumOk(segment: Uint8Array): boolean {
  const ip = Ipv4View.checked(segment.subarray(14));
  const tcp = TcpView.checked(ip.payload);
  return fold(sum(ip.payload, pseudoHeaderSum(ip.source, ip.destination, IpProtocol.TCP, ip.payload.length))) === 0 && tcp.headerLength === 20;
}

test('a TCPv4 super-segment becomes MSS-sized segments with their own headers and checksums', () => {
  const payload = Uint8Array.from({ length: 3500 }, (_, i) => i & 0xff);
  const frame = superFrame(payload, TcpFlags.ACK | TcpFlags.PSH | TcpFlags.FIN);
  const before = Uint8Array.from(frame);
  const out: Uint8Array[] = [];
  assert.ok(finishOffload(frame, tso(1000), (s) => out.push(s)));
  assert.deepEqual(frame, before, 'the shared input frame is never modified');
  assert.deepEqual(out.map((s) => s.length - 54), [1000, 1000, 1000, 500]);
  out.forEach((segment, i) => {
    const ip = Ipv4View.checked(segment.subarray(14));
    assert.ok(ip.verifyChecksum());
    assert.equal(ip.identification, 100 + i);
    assert.equal(ip.totalLength, segment.length - 14);
    const tcp = new TcpView(ip.payload);
    assert.equal(tcp.sequenceNumber, (0xfffff000 + 1000 * i) >>> 0);
    const last = i === out.length - 1;
    assert.equal(tcp.flags, last ? TcpFlags.ACK | TcpFlags.PSH | TcpFlags.FIN : TcpFlags.ACK);
    assert.ok(tcpChecksumOk(segment), `segment ${i} checksum`);
  });
  assert.deepEqual(Buffer.concat(out.map((s) => s.subarray(54))), Buffer.from(payload));
});

test('a partial checksum alone is completed on a copy', () => {
  const frame = superFrame(Uint8Array.from([1, 2, 3]), TcpFlags.ACK);
  const out: Uint8Array[] = [];
  assert.ok(finishOffload(frame, { ...tso(1000), gsoType: GsoType.None }, (s) => out.push(s)));
  assert.equal(out.length, 1);
  assert.notEqual(out[0], frame);
  assert.ok(tcpChecksumOk(out[0]!));
});

test('malformed offloaded frames are refused, never thrown', () => {
  const out: Uint8Array[] = [];
  assert.equal(finishOffload(new Uint8Array(20), tso(1000), (s) => out.push(s)), false);
  assert.equal(finishOffload(superFrame(new Uint8Array(10), 0x10), { ...tso(0) }, (s) => out.push(s)), false);
  assert.equal(finishOffload(new Uint8Array(60), { ...tso(1000), gsoType: GsoType.Udp }, (s) => out.push(s)), false);
  assert.equal(out.length, 0);
});

test('property: any bytes with any offload give segments or false, never an exception', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 3000 }),
      fc.record({ flags: fc.nat(3), gsoType: fc.constantFrom(0, 1, 3, 4, 0x81), hdrLen: fc.nat(200), gsoSize: fc.nat(2000), csumStart: fc.nat(3000), csumOffset: fc.nat(40) }),
      (bytes, offload) => {
        let emitted = 0;
        const result = finishOffload(bytes, offload, () => emitted++);
        assert.equal(typeof result, 'boolean');
        if (!result) assert.equal(emitted, 0);
      },
    ),
  );
});
