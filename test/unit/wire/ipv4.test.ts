import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  emitIpv4,
  IPV4_HEADER_LENGTH,
  ipv4HeaderLength,
  IpProtocol,
  Ipv4View,
  parseIpv4,
  type Ipv4Header,
} from '../../../src/wire/ipv4.js';
import { assertNoReadPastEnd, atOffset, hex, throwsWire, valueOrWireError } from './helpers.js';

const ECHO_DATAGRAM = hex(
  // IPv4: version 4, IHL 5, total 36, id 0x1c46, DF, TTL 64, ICMP, checksum 0x0683
  '45 00 00 24',
  '1c 46 40 00',
  '40 01 06 83',
  '0a 00 02 0f', // 10.0.2.15
  '0a 00 02 02', // 10.0.2.2
  // ICMP echo request id 1 seq 2
  '08 00 ab ac',
  '00 01 00 02',
  '10 11 12 13',
  '14 15 16 17',
  // Ethernet padding past Total Length
  '00 00 00 00',
);

const ECHO_HEADER: Ipv4Header = {
  source: 0x0a00020f,
  destination: 0x0a000202,
  protocol: IpProtocol.ICMP,
  ttl: 64,
  payloadLength: 16,
  identification: 0x1c46,
  dontFragment: true,
  moreFragments: false,
  fragmentOffset: 0,
  dscp: 0,
  ecn: 0,
  options: new Uint8Array(0),
};

const WITH_OPTIONS = hex(
  // IPv4: IHL 6 (one option word), total 28, fragment: MF, offset 185×8, TTL 1, UDP
  '46 b8 00 1c',
  '00 07 20 b9',
  '01 11 00 00',
  'c0 a8 38 01', // 192.168.56.1
  'e0 00 00 fb', // 224.0.0.251
  // options: Router Alert (RFC 2113)
  '94 04 00 00',
  // payload
  'de ad be ef',
);

describe('Ipv4View', () => {
  it('reads fields', () => {
    const ip = Ipv4View.checked(atOffset(ECHO_DATAGRAM));
    assert.equal(ip.version, 4);
    assert.equal(ip.headerLength, 20);
    assert.equal(ip.totalLength, 36);
    assert.equal(ip.identification, 0x1c46);
    assert.equal(ip.dontFragment, true);
    assert.equal(ip.moreFragments, false);
    assert.equal(ip.isFragment, false);
    assert.equal(ip.ttl, 64);
    assert.equal(ip.protocol, IpProtocol.ICMP);
    assert.equal(ip.checksum, 0x0683);
    assert.equal(ip.source, 0x0a00020f);
    assert.equal(ip.destination, 0x0a000202);
    assert.equal(ip.verifyChecksum(), true);
    assert.equal(ip.payload.length, 16, 'padding past Total Length is not payload');
    assert.deepEqual(ip.payload.subarray(0, 4), hex('08 00 ab ac'));
  });

  it('reads options, DSCP/ECN and fragment fields', () => {
    const ip = Ipv4View.checked(WITH_OPTIONS);
    assert.equal(ip.headerLength, 24);
    assert.equal(ip.dscp, 46);
    assert.equal(ip.ecn, 0);
    assert.equal(ip.moreFragments, true);
    assert.equal(ip.fragmentOffset, 185 * 8);
    assert.equal(ip.isFragment, true);
    assert.deepEqual(ip.options, hex('94 04 00 00'));
    assert.deepEqual(ip.payload, hex('de ad be ef'));
  });

  it('writes fields in place and refills the checksum', () => {
    const bytes = ECHO_DATAGRAM.slice();
    const ip = new Ipv4View(bytes);
    ip.ttl = 63;
    assert.equal(ip.verifyChecksum(), false);
    ip.fillChecksum();
    assert.equal(ip.verifyChecksum(), true);
    ip.source = 0xc0a83801;
    ip.destination = 0x08080808;
    ip.fillChecksum();
    assert.deepEqual(bytes.subarray(8, 20), hex('3f 01 16 da', 'c0 a8 38 01', '08 08 08 08'));
    assert.equal(ip.verifyChecksum(), true);
  });

  it('rejects truncated, bad-version and bad-length datagrams', () => {
    throwsWire(() => Ipv4View.checked(ECHO_DATAGRAM.subarray(0, 19)), 'ipv4', 'truncated');
    throwsWire(() => Ipv4View.checked(ECHO_DATAGRAM.subarray(0, 35)), 'ipv4', 'bad-length');
    const v6 = ECHO_DATAGRAM.slice();
    v6[0] = 0x65;
    throwsWire(() => Ipv4View.checked(v6), 'ipv4', 'bad-version');
    const ihl4 = ECHO_DATAGRAM.slice();
    ihl4[0] = 0x44;
    throwsWire(() => Ipv4View.checked(ihl4), 'ipv4', 'bad-length');
    const ihlPastEnd = ECHO_DATAGRAM.subarray(0, 24).slice();
    ihlPastEnd[0] = 0x4f;
    throwsWire(() => Ipv4View.checked(ihlPastEnd), 'ipv4', 'bad-length');
    const totalBelowHeader = ECHO_DATAGRAM.slice();
    totalBelowHeader[3] = 19;
    throwsWire(() => Ipv4View.checked(totalBelowHeader), 'ipv4', 'bad-length');
  });

  it('checkedHeader() accepts a datagram quoted short in an ICMP error', () => {
    const quoted = ECHO_DATAGRAM.subarray(0, 28);
    throwsWire(() => Ipv4View.checked(quoted), 'ipv4', 'bad-length');
    const ip = Ipv4View.checkedHeader(quoted);
    assert.equal(ip.payload.length, 8);
  });

  it('parses, and refuses a bad checksum unless told not to verify', () => {
    assert.deepEqual(parseIpv4(Ipv4View.checked(ECHO_DATAGRAM)), ECHO_HEADER);
    const corrupt = ECHO_DATAGRAM.slice();
    corrupt[11] ^= 1;
    throwsWire(() => parseIpv4(Ipv4View.checked(corrupt)), 'ipv4', 'bad-checksum');
    assert.equal(parseIpv4(Ipv4View.checked(corrupt), { verifyChecksum: false }).ttl, 64);
  });
});

describe('emitIpv4', () => {
  it('writes the fixture header at a non-zero offset with its checksum', () => {
    const into = new Uint8Array(30).fill(0xee);
    assert.equal(emitIpv4(ECHO_HEADER, into, 5), 25);
    assert.deepEqual(into.subarray(5, 25), ECHO_DATAGRAM.subarray(0, 20));
    assert.equal(into[4], 0xee);
    assert.equal(into[25], 0xee);
  });

  it('defaults optional fields', () => {
    const into = new Uint8Array(20);
    emitIpv4({ source: 1, destination: 2, protocol: IpProtocol.UDP, ttl: 64, payloadLength: 8 }, into, 0);
    const ip = Ipv4View.checkedHeader(into);
    assert.equal(ip.totalLength, 28);
    assert.equal(ip.dontFragment, false);
    assert.equal(ip.verifyChecksum(), true);
    assert.equal(ipv4HeaderLength({ source: 1, destination: 2, protocol: 17, ttl: 64, payloadLength: 8 }), IPV4_HEADER_LENGTH);
  });

  it('refuses options that are not whole words', () => {
    const header = { ...ECHO_HEADER, options: hex('01 01 01') };
    assert.throws(() => emitIpv4(header, new Uint8Array(40), 0), RangeError);
  });

  const header = fc.record(
    {
      source: fc.integer({ min: 0, max: 0xffffffff }),
      destination: fc.integer({ min: 0, max: 0xffffffff }),
      protocol: fc.integer({ min: 0, max: 255 }),
      ttl: fc.integer({ min: 0, max: 255 }),
      payloadLength: fc.integer({ min: 0, max: 0xffff - 60 }),
      identification: fc.integer({ min: 0, max: 0xffff }),
      dontFragment: fc.boolean(),
      moreFragments: fc.boolean(),
      fragmentOffset: fc.integer({ min: 0, max: 0x1fff }).map((n) => n * 8),
      dscp: fc.integer({ min: 0, max: 63 }),
      ecn: fc.integer({ min: 0, max: 3 }),
      options: fc.integer({ min: 0, max: 10 }).chain((words) => fc.uint8Array({ minLength: words * 4, maxLength: words * 4 })),
    },
    { noNullPrototype: true },
  );

  it('parses what it emits (property)', () => {
    fc.assert(
      fc.property(header, (h) => {
        const length = ipv4HeaderLength(h);
        const into = new Uint8Array(length + h.payloadLength);
        assert.equal(emitIpv4(h, into, 0), length);
        assert.deepEqual(parseIpv4(Ipv4View.checked(into)), h);
      }),
    );
  });

  it('checked() on arbitrary bytes yields a view or a WireError (property)', () => {
    // Bias toward plausible headers so the deeper checks are reached.
    const first = fc.oneof(fc.integer({ min: 0x45, max: 0x4f }), fc.integer({ min: 0, max: 255 }));
    fc.assert(
      fc.property(first, fc.uint8Array({ maxLength: 80 }), (b0, rest) => {
        const bytes = new Uint8Array([b0, ...rest]);
        for (const check of [Ipv4View.checked, Ipv4View.checkedHeader]) {
          const r = valueOrWireError(() => check(bytes));
          if (r instanceof Ipv4View) {
            assertNoReadPastEnd((b) => new Ipv4View(b), bytes);
            valueOrWireError(() => parseIpv4(r));
          }
        }
      }),
    );
  });
});
