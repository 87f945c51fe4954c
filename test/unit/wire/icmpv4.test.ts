import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  emitIcmpv4,
  icmpv4Length,
  Icmpv4Type,
  Icmpv4UnreachableCode,
  Icmpv4View,
  parseIcmpv4,
  type Icmpv4Message,
} from '../../../src/wire/icmpv4.js';
import { Ipv4View } from '../../../src/wire/ipv4.js';
import { UdpView } from '../../../src/wire/udp.js';
import { assertNoReadPastEnd, atOffset, hex, throwsWire, valueOrWireError } from './helpers.js';

const ECHO_REQUEST = hex(
  // ICMP: echo request, checksum 0xabac, id 1, seq 2
  '08 00 ab ac',
  '00 01 00 02',
  // data
  '10 11 12 13',
  '14 15 16 17',
);

const PORT_UNREACHABLE = hex(
  // ICMP: destination unreachable, port (3), checksum 0x2869, unused
  '03 03 28 69',
  '00 00 00 00',
  // quoted IPv4: 10.0.2.15 > 10.0.2.3 UDP, total 40
  '45 00 00 28',
  'be ef 00 00',
  '40 11 a3 c4',
  '0a 00 02 0f',
  '0a 00 02 03',
  // quoted UDP header: 53000 > 53, length 20
  'cf 08 00 35',
  '00 14 05 42',
);

const FRAGMENTATION_NEEDED_HEADER = hex(
  // ICMP: destination unreachable, fragmentation needed (4), next-hop MTU 1500 (RFC 1191);
  // the checksum covers a quote not included here
  '03 04 22 8c',
  '00 00 05 dc',
);

describe('Icmpv4View', () => {
  it('reads echo fields', () => {
    const icmp = Icmpv4View.checked(atOffset(ECHO_REQUEST));
    assert.equal(icmp.type, Icmpv4Type.EchoRequest);
    assert.equal(icmp.code, 0);
    assert.equal(icmp.checksum, 0xabac);
    assert.equal(icmp.identifier, 1);
    assert.equal(icmp.sequenceNumber, 2);
    assert.deepEqual(icmp.data, hex('10 11 12 13', '14 15 16 17'));
    assert.equal(icmp.verifyChecksum(), true);
  });

  it('exposes the quoted datagram of an error for flow lookup', () => {
    const icmp = Icmpv4View.checked(PORT_UNREACHABLE);
    assert.equal(icmp.verifyChecksum(), true);
    const original = Ipv4View.checkedHeader(icmp.data);
    assert.equal(original.destination, 0x0a000203);
    const udp = new UdpView(original.payload);
    assert.equal(udp.sourcePort, 53000);
    assert.equal(udp.destinationPort, 53);
  });

  it('rewrites the echo identifier in place (as NAT does) and refills the checksum', () => {
    const bytes = ECHO_REQUEST.slice();
    const icmp = new Icmpv4View(bytes);
    icmp.identifier = 0x1234;
    icmp.type = Icmpv4Type.EchoReply;
    assert.equal(icmp.verifyChecksum(), false);
    icmp.fillChecksum();
    assert.equal(icmp.verifyChecksum(), true);
  });

  it('rejects truncated messages and bad checksums', () => {
    throwsWire(() => Icmpv4View.checked(ECHO_REQUEST.subarray(0, 7)), 'icmpv4', 'truncated');
    const corrupt = ECHO_REQUEST.slice();
    corrupt[15] ^= 0x80;
    throwsWire(() => parseIcmpv4(Icmpv4View.checked(corrupt)), 'icmpv4', 'bad-checksum');
    assert.equal(parseIcmpv4(Icmpv4View.checked(corrupt), { verifyChecksum: false }).kind, 'echoRequest');
  });

  it('parses each kind', () => {
    assert.deepEqual(parseIcmpv4(Icmpv4View.checked(ECHO_REQUEST)), {
      kind: 'echoRequest',
      identifier: 1,
      sequenceNumber: 2,
      data: hex('10 11 12 13', '14 15 16 17'),
    });
    assert.deepEqual(parseIcmpv4(Icmpv4View.checked(PORT_UNREACHABLE)), {
      kind: 'destinationUnreachable',
      code: Icmpv4UnreachableCode.PortUnreachable,
      nextHopMtu: 0,
      original: PORT_UNREACHABLE.subarray(8),
    });
    const parsed = parseIcmpv4(Icmpv4View.checked(FRAGMENTATION_NEEDED_HEADER), { verifyChecksum: false });
    assert.equal(parsed.kind === 'destinationUnreachable' && parsed.nextHopMtu, 1500);
    const timestamp = hex('0d 00 f2 ff', '00 00 00 00');
    assert.deepEqual(parseIcmpv4(Icmpv4View.checked(timestamp)), {
      kind: 'other',
      type: 13,
      code: 0,
      restOfHeader: 0,
      data: new Uint8Array(0),
    });
  });
});

describe('emitIcmpv4', () => {
  it('writes the fixtures at a non-zero offset', () => {
    const into = new Uint8Array(60).fill(0xee);
    const echo: Icmpv4Message = { kind: 'echoRequest', identifier: 1, sequenceNumber: 2, data: ECHO_REQUEST.subarray(8) };
    assert.equal(emitIcmpv4(echo, into, 3), 3 + icmpv4Length(echo));
    assert.deepEqual(into.subarray(3, 19), ECHO_REQUEST);
    assert.equal(into[19], 0xee);
    const unreachable: Icmpv4Message = {
      kind: 'destinationUnreachable',
      code: Icmpv4UnreachableCode.PortUnreachable,
      nextHopMtu: 0,
      original: PORT_UNREACHABLE.subarray(8),
    };
    assert.equal(emitIcmpv4(unreachable, into, 1), 1 + PORT_UNREACHABLE.length);
    assert.deepEqual(into.subarray(1, 1 + PORT_UNREACHABLE.length), PORT_UNREACHABLE);
  });

  const data = fc.uint8Array({ maxLength: 64 });
  const u16 = fc.integer({ min: 0, max: 0xffff });
  const opts = { noNullPrototype: true } as const;
  const message: fc.Arbitrary<Icmpv4Message> = fc.oneof(
    fc.record({ kind: fc.constantFrom('echoRequest' as const, 'echoReply' as const), identifier: u16, sequenceNumber: u16, data }, opts),
    fc.record({ kind: fc.constant('destinationUnreachable' as const), code: fc.integer({ min: 0, max: 255 }), nextHopMtu: u16, original: data }, opts),
    fc.record({ kind: fc.constant('timeExceeded' as const), code: fc.integer({ min: 0, max: 255 }), original: data }, opts),
    fc.record(
      {
        kind: fc.constant('other' as const),
        type: fc.integer({ min: 0, max: 255 }).filter((t) => ![0, 3, 8, 11].includes(t)),
        code: fc.integer({ min: 0, max: 255 }),
        restOfHeader: fc.integer({ min: 0, max: 0xffffffff }),
        data,
      },
      opts,
    ),
  );

  it('parses what it emits (property)', () => {
    fc.assert(
      fc.property(message, (m) => {
        const into = new Uint8Array(icmpv4Length(m));
        emitIcmpv4(m, into, 0);
        assert.deepEqual(parseIcmpv4(Icmpv4View.checked(into)), m);
      }),
    );
  });

  it('checked() on arbitrary bytes yields a view or a WireError (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
        const r = valueOrWireError(() => Icmpv4View.checked(bytes));
        if (r instanceof Icmpv4View) {
          assertNoReadPastEnd((b) => new Icmpv4View(b), bytes);
          valueOrWireError(() => parseIcmpv4(r, { verifyChecksum: false }));
        }
      }),
    );
  });
});
