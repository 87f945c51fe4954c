import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { emitIpv4, IpProtocol, IPV4_HEADER_LENGTH, Ipv4View } from '../../../src/wire/ipv4.js';
import { fragmentIpv4 } from '../../../src/wire/ipv4-fragmentation.js';

const SRC = 0xc6336402; // 198.51.100.2
const DST = 0x0a00020f; // 10.0.2.15
const HEADROOM = 14;

function packet(payload: Uint8Array, extra: { dontFragment?: boolean; options?: Uint8Array; moreFragments?: boolean } = {}): Uint8Array {
  const headerLength = IPV4_HEADER_LENGTH + (extra.options?.length ?? 0);
  const bytes = new Uint8Array(headerLength + payload.length);
  emitIpv4({ source: SRC, destination: DST, protocol: IpProtocol.UDP, ttl: 64, payloadLength: payload.length, identification: 0x1234, dscp: 10, ...extra }, bytes, 0);
  bytes.set(payload, headerLength);
  return bytes;
}

function cut(bytes: Uint8Array, mtu: number): Uint8Array[] | false {
  const frames: Uint8Array[] = [];
  return fragmentIpv4(bytes, mtu, HEADROOM, (frame) => frames.push(frame)) ? frames : false;
}

describe('fragmentIpv4', () => {
  it('cuts 4000 bytes for a 1500 MTU as Linux does: 1480 + 1480 + 1040, offsets in 8-byte units', () => {
    const payload = Uint8Array.from({ length: 4000 }, (_, i) => i & 0xff);
    const frames = cut(packet(payload), 1500);
    assert.ok(frames);
    const views = frames.map((f) => Ipv4View.checked(f.subarray(HEADROOM)));
    assert.deepEqual(views.map((v) => v.payload.length), [1480, 1480, 1040]);
    assert.deepEqual(views.map((v) => v.fragmentOffset), [0, 1480, 2960]);
    assert.deepEqual(views.map((v) => v.moreFragments), [true, true, false]);
    assert.deepEqual(views.map((v) => v.identification), [0x1234, 0x1234, 0x1234]);
    assert.ok(views.every((v) => v.verifyChecksum() && v.dscp === 10 && v.ttl === 64 && !v.dontFragment));
    // The headroom is left free for the link's header.
    assert.ok(frames.every((f) => f.subarray(0, HEADROOM).every((b) => b === 0)));
  });

  it('every fragment fits, all but the last carry multiples of 8, and together they are the payload', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 65_515 }), fc.integer({ min: 28, max: 9000 }), (length, mtu) => {
        const payload = Uint8Array.from({ length }, (_, i) => (i * 7) & 0xff);
        const frames = cut(packet(payload), mtu);
        assert.ok(frames);
        const joined = new Uint8Array(length);
        let expected = 0;
        for (const [i, frame] of frames.entries()) {
          const ip = Ipv4View.checked(frame.subarray(HEADROOM));
          assert.ok(ip.totalLength <= mtu);
          assert.equal(ip.fragmentOffset, expected);
          assert.equal(ip.moreFragments, i < frames.length - 1);
          if (ip.moreFragments) assert.equal(ip.payload.length % 8, 0);
          joined.set(ip.payload, ip.fragmentOffset);
          expected += ip.payload.length;
        }
        assert.equal(expected, length);
        assert.deepEqual(joined, payload);
      }),
      { numRuns: 200 },
    );
  });

  it('refuses DF, options, a fragment and an MTU with no room for 8 data bytes', () => {
    const payload = new Uint8Array(3000);
    assert.equal(cut(packet(payload, { dontFragment: true }), 1500), false);
    assert.equal(cut(packet(payload, { options: new Uint8Array([1, 1, 1, 0]) }), 1500), false);
    assert.equal(cut(packet(payload, { moreFragments: true }), 1500), false);
    assert.equal(cut(packet(payload), 27), false);
  });
});
