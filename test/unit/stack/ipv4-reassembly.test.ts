import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Ipv4Reassembler, MAX_BYTES, MAX_DATAGRAMS, TIMEOUT_MS } from '../../../src/stack/ipv4-reassembly.js';
import { WireError } from '../../../src/wire/errors.js';
import { emitIpv4, IpProtocol, IPV4_HEADER_LENGTH, Ipv4View } from '../../../src/wire/ipv4.js';
import { fragmentIpv4 } from '../../../src/wire/ipv4-fragmentation.js';

const GUEST = 0x0a00020f;
const REMOTE = 0xc6336402;

function whole(length: number, identification = 7): Uint8Array {
  const bytes = new Uint8Array(IPV4_HEADER_LENGTH + length);
  emitIpv4({ source: GUEST, destination: REMOTE, protocol: IpProtocol.UDP, ttl: 64, payloadLength: length, identification }, bytes, 0);
  for (let i = 0; i < length; i++) bytes[IPV4_HEADER_LENGTH + i] = (i * 13 + identification) & 0xff;
  return bytes;
}

function fragments(bytes: Uint8Array, mtu: number): Ipv4View[] {
  const out: Ipv4View[] = [];
  assert.ok(fragmentIpv4(bytes, mtu, 0, (frame) => out.push(Ipv4View.checked(frame))));
  return out;
}

/** A hand-made fragment: `length` data bytes at `offset`. */
function fragment(offset: number, length: number, more: boolean, identification = 9): Ipv4View {
  const bytes = new Uint8Array(IPV4_HEADER_LENGTH + length);
  emitIpv4({ source: GUEST, destination: REMOTE, protocol: IpProtocol.ICMP, ttl: 64, payloadLength: length, identification, moreFragments: more, fragmentOffset: offset }, bytes, 0);
  bytes.fill(offset & 0xff, IPV4_HEADER_LENGTH);
  return Ipv4View.checked(bytes);
}

function reason(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof WireError) return err.key;
    throw err;
  }
  return 'none';
}

describe('Ipv4Reassembler', () => {
  it('puts fragments back together in any order, repeats ignored, and holds nothing after', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 65_515 }), fc.integer({ min: 276, max: 9000 }), fc.integer(), (length, mtu, seed) => {
        const original = whole(length);
        const pieces = fragments(original, mtu);
        // A seeded shuffle; the first piece to go is repeated at once (a repeat after completion would start a new datagram).
        const order = pieces.map((p, i) => ({ p, k: Math.imul(i + 1, seed | 1) >>> 0 })).sort((a, b) => a.k - b.k).map((x) => x.p);
        order.splice(1, 0, order[0]!);
        const r = new Ipv4Reassembler({ clock: () => 0 });
        const done: Ipv4View[] = [];
        for (const piece of order) {
          const key = reason(() => {
            const out = r.add(piece);
            if (out) done.push(out);
          });
          assert.ok(key === 'none' || key === 'ipv4:fragment-repeated', key);
        }
        if (pieces.length === 1) return; // not a fragment at all: never given to the reassembler in real use
        assert.equal(done.length, 1);
        const got = done[0]!;
        assert.ok(got.verifyChecksum());
        assert.equal(got.isFragment, false);
        assert.equal(got.totalLength, original.length);
        assert.deepEqual(got.payload, original.subarray(IPV4_HEADER_LENGTH));
        assert.equal(r.pending, 0);
        assert.equal(r.heldBytes, 0);
        r.close();
      }),
      { numRuns: 150 },
    );
  });

  it('keeps datagrams apart by identification', () => {
    const r = new Ipv4Reassembler({ clock: () => 0 });
    const a = fragments(whole(3000, 1), 1500);
    const b = fragments(whole(2000, 2), 1500);
    assert.equal(r.add(a[0]!), null);
    assert.equal(r.add(b[0]!), null);
    assert.equal(r.add(a[1]!), null);
    assert.equal(r.add(b[1]!)?.totalLength, 2020);
    assert.equal(r.add(a[2]!)?.totalLength, 3020);
    assert.deepEqual(r.counters, { fragments: 5, reassembled: 2, timedOut: 0, evicted: 0 });
    r.close();
  });

  it('drops the whole datagram on an overlap, and on a last fragment that contradicts the rest', () => {
    const r = new Ipv4Reassembler({ clock: () => 0 });
    assert.equal(r.add(fragment(0, 16, true)), null);
    assert.equal(reason(() => r.add(fragment(8, 16, true))), 'ipv4:fragment-overlap');
    assert.equal(r.pending, 0);
    assert.equal(r.add(fragment(0, 16, true, 10)), null);
    assert.equal(r.add(fragment(32, 8, false, 10)), null);
    assert.equal(reason(() => r.add(fragment(40, 8, true, 10))), 'ipv4:fragment-inconsistent');
    assert.equal(r.pending, 0);
    assert.equal(r.add(fragment(24, 16, true, 11)), null);
    assert.equal(reason(() => r.add(fragment(0, 8, false, 11))), 'ipv4:fragment-inconsistent');
    assert.equal(r.heldBytes, 0);
    r.close();
  });

  for (const [name, first, second] of [
    ['the same offset with another length', [0, 16], [0, 24]],
    ['one that holds an earlier one', [8, 8], [0, 24]],
    ['one that starts inside the one before', [0, 16], [8, 16]],
    ['one that runs into the one after', [16, 16], [8, 16]],
  ] as const) {
    it(`an overlap drops the datagram: ${name}`, () => {
      const r = new Ipv4Reassembler({ clock: () => 0 });
      assert.equal(r.add(fragment(first[0], first[1], true)), null);
      assert.equal(reason(() => r.add(fragment(second[0], second[1], true))), 'ipv4:fragment-overlap');
      assert.equal(r.pending, 0);
      assert.equal(r.heldBytes, 0);
      r.close();
    });
  }

  it('takes fragments that touch, and an empty last fragment', () => {
    const r = new Ipv4Reassembler({ clock: () => 0 });
    assert.equal(r.add(fragment(8, 8, true)), null);
    assert.equal(r.add(fragment(0, 8, true)), null);
    assert.equal(r.add(fragment(16, 0, false))?.totalLength, IPV4_HEADER_LENGTH + 16);
    r.close();
  });

  it('refuses odd-sized middle fragments and the ping of death, to the byte', () => {
    const r = new Ipv4Reassembler({ clock: () => 0 });
    assert.equal(reason(() => r.add(fragment(0, 12, true))), 'ipv4:fragment-bad-length');
    assert.equal(reason(() => r.add(fragment(65_512, 4, false))), 'ipv4:fragment-too-long', 'ends at 65,516: a 65,536-byte datagram');
    assert.equal(r.pending, 0);
    assert.equal(reason(() => r.add(fragment(65_512, 3, false))), 'none', 'ends at 65,515: 65,535 with its header');
    assert.equal(r.pending, 1);
    r.close();
  });

  it('times out incomplete datagrams, with an ICMP quote only when fragment zero came', () => {
    let now = 1_000;
    const quotes: Uint8Array[] = [];
    const r = new Ipv4Reassembler({ clock: () => now, timedOut: (head) => quotes.push(head) });
    r.add(fragment(0, 16, true, 1));
    r.add(fragment(16, 16, true, 2));
    now += TIMEOUT_MS - 1;
    r.expire();
    assert.equal(r.pending, 2);
    now += 1;
    r.expire();
    assert.equal(r.pending, 0);
    assert.equal(r.counters.timedOut, 2);
    assert.equal(quotes.length, 1);
    const quoted = Ipv4View.checkedHeader(quotes[0]!);
    assert.equal(quoted.identification, 1);
    assert.equal(quotes[0]!.length, IPV4_HEADER_LENGTH + 8, 'the header and 64 bits of data (RFC 792)');
    r.close();
  });

  it('evicts the oldest datagrams past its limits, so a flood of lone fragments does not block new ones', () => {
    const r = new Ipv4Reassembler({ clock: () => 0 });
    for (let id = 0; id < MAX_DATAGRAMS + 100; id++) r.add(fragment(0, 1024, true, id));
    assert.equal(r.pending, MAX_DATAGRAMS);
    assert.ok(r.heldBytes <= MAX_BYTES);
    assert.equal(r.counters.evicted, MAX_DATAGRAMS + 100 - r.pending);
    // The newest survive: a datagram begun now still completes.
    const pieces = fragments(whole(3000, 60_000), 1500);
    assert.equal(r.add(pieces[0]!), null);
    assert.equal(r.add(pieces[1]!), null);
    assert.equal(r.add(pieces[2]!)?.totalLength, 3020);
    r.close();
    assert.equal(r.pending, 0);
  });

  it('evicts the oldest datagrams once MAX_BYTES are held', () => {
    const r = new Ipv4Reassembler({ clock: () => 0 });
    // 60 KB datagrams, each missing its last fragment: 40 of them are more than MAX_BYTES.
    for (let id = 1; id <= 40; id++) for (const piece of fragments(whole(60_000, id), 1500).slice(0, -1)) r.add(piece);
    assert.ok(r.heldBytes <= MAX_BYTES, `${r.heldBytes}`);
    assert.ok(r.counters.evicted > 0 && r.pending < 40 && r.pending + r.counters.evicted === 40, JSON.stringify(r.counters));
    r.close();
  });

  it('its own timer drops what is left incomplete, and re-arms for the next', async () => {
    const quotes: Uint8Array[] = [];
    const r = new Ipv4Reassembler({ timeoutMs: 100, timedOut: (head) => quotes.push(head) });
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    const until = async (check: () => boolean) => {
      for (const started = Date.now(); !check(); await sleep(5)) assert.ok(Date.now() - started < 2000, 'the timer never fired');
    };
    r.add(fragment(0, 16, true, 1));
    await sleep(50);
    r.add(fragment(0, 16, true, 2));
    await until(() => r.pending < 2);
    assert.equal(r.pending, 1, 'the first is gone, the second not yet');
    await until(() => r.pending === 0);
    assert.deepEqual(quotes.map((q) => Ipv4View.checkedHeader(q).identification), [1, 2]);
    r.close();
  });

  it('hostile fragments (random offsets, lengths, flags and IDs) only ever raise WireError, and the books balance', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ id: fc.integer({ min: 0, max: 3 }), unit: fc.integer({ min: 0, max: 8191 }), length: fc.integer({ min: 0, max: 1480 }), more: fc.boolean() }), { maxLength: 300 }),
        (specs) => {
          const r = new Ipv4Reassembler({ clock: () => 0 });
          for (const { id, unit, length, more } of specs) {
            if (unit === 0 && !more) continue; // not a fragment: the gateway never hands those over
            try {
              const whole = r.add(fragment(unit * 8, length, more, id));
              if (whole) assert.ok(whole.verifyChecksum() && whole.totalLength <= 65_535 && !whole.isFragment);
            } catch (err) {
              if (!(err instanceof WireError)) throw err;
            }
            assert.ok(r.pending <= MAX_DATAGRAMS && r.heldBytes <= MAX_BYTES && r.heldBytes >= 0);
            if (r.pending === 0) assert.equal(r.heldBytes, 0);
          }
          r.close();
        },
      ),
      { numRuns: 300 },
    );
  });

  it('drops a datagram of more fragments than it holds', () => {
    const r = new Ipv4Reassembler({ clock: () => 0 });
    let key = 'none';
    for (let i = 0; i < 300 && key === 'none'; i++) key = reason(() => r.add(fragment(i * 8, 8, true)));
    assert.equal(key, 'ipv4:fragment-too-many');
    assert.equal(r.pending, 0);
    r.close();
  });
});
