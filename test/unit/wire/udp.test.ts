import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { emitUdp, parseUdp, UDP_HEADER_LENGTH, udpLength, UdpView, type UdpDatagram } from '../../../src/wire/udp.js';
import { assertNoReadPastEnd, atOffset, hex, throwsWire, valueOrWireError } from './helpers.js';

// Addresses of the IPv4 header that carried the datagram: 10.0.2.15 > 10.0.2.3.
const PSEUDO = { source: 0x0a00020f, destination: 0x0a000203 };

const DNS_QUERY = hex(
  // UDP: 53000 > 53, length 20, checksum 0x0542
  'cf 08 00 35',
  '00 14 05 42',
  // payload: DNS header, id 0x1234, RD, one question (question itself elided)
  '12 34 01 00',
  '00 01 00 00',
  '00 00 00 00',
  // Ethernet padding past the UDP length
  '00 00',
);

const DNS_VALUE: UdpDatagram = {
  sourcePort: 53000,
  destinationPort: 53,
  payload: hex('12 34 01 00', '00 01 00 00', '00 00 00 00'),
};

describe('UdpView', () => {
  it('reads fields', () => {
    const udp = UdpView.checked(atOffset(DNS_QUERY));
    assert.equal(udp.sourcePort, 53000);
    assert.equal(udp.destinationPort, 53);
    assert.equal(udp.length, 20);
    assert.equal(udp.checksum, 0x0542);
    assert.deepEqual(udp.payload, DNS_VALUE.payload);
    assert.equal(udp.verifyChecksum(PSEUDO), true);
    assert.equal(udp.verifyChecksum({ ...PSEUDO, destination: 0x0a000204 }), false);
  });

  it('treats a zero checksum as none (RFC 768)', () => {
    const bytes = DNS_QUERY.slice();
    new UdpView(bytes).checksum = 0;
    assert.equal(new UdpView(bytes).verifyChecksum({ source: 1, destination: 2 }), true);
  });

  it('writes ports in place and refills the checksum', () => {
    const bytes = DNS_QUERY.subarray(0, 20).slice();
    const udp = new UdpView(bytes);
    udp.sourcePort = 1024;
    udp.destinationPort = 5353;
    udp.fillChecksum(PSEUDO);
    assert.equal(udp.verifyChecksum(PSEUDO), true);
    assert.deepEqual(bytes.subarray(0, 4), hex('04 00 14 e9'));
  });

  it('rejects truncated, bad-length and bad-checksum datagrams', () => {
    throwsWire(() => UdpView.checked(DNS_QUERY.subarray(0, 7)), 'udp', 'truncated');
    throwsWire(() => UdpView.checked(DNS_QUERY.subarray(0, 19)), 'udp', 'bad-length');
    const tooShort = DNS_QUERY.slice();
    tooShort[5] = 7;
    throwsWire(() => UdpView.checked(tooShort), 'udp', 'bad-length');
    const corrupt = DNS_QUERY.slice();
    corrupt[9] ^= 0x01;
    throwsWire(() => parseUdp(UdpView.checked(corrupt), PSEUDO), 'udp', 'bad-checksum');
  });

  it('parses to a value', () => {
    assert.deepEqual(parseUdp(UdpView.checked(DNS_QUERY), PSEUDO), DNS_VALUE);
  });
});

describe('emitUdp', () => {
  it('writes the fixture at a non-zero offset', () => {
    const into = new Uint8Array(30).fill(0xee);
    assert.equal(emitUdp(DNS_VALUE, into, 2, PSEUDO), 2 + udpLength(DNS_VALUE));
    assert.deepEqual(into.subarray(2, 22), DNS_QUERY.subarray(0, 20));
    assert.equal(into[1], 0xee);
    assert.equal(into[22], 0xee);
  });

  it('sends an all-ones checksum when the sum is zero (RFC 768)', () => {
    // Payload chosen so the computed checksum is 0: it must go out as 0xffff.
    const into = new Uint8Array(UDP_HEADER_LENGTH + 2);
    const base = { sourcePort: 0, destinationPort: 0, payload: new Uint8Array(2) };
    emitUdp(base, into, 0, { source: 0, destination: 0 });
    const c = new UdpView(into).checksum;
    // Adding the checksum value to the payload word makes the next sum zero.
    const payload = Uint8Array.of(c >>> 8, c & 0xff);
    emitUdp({ ...base, payload }, into, 0, { source: 0, destination: 0 });
    assert.equal(new UdpView(into).checksum, 0xffff);
    assert.equal(new UdpView(into).verifyChecksum({ source: 0, destination: 0 }), true);
  });

  it('skips the copy when the payload is already in place', () => {
    const into = new Uint8Array(20);
    const payload = into.subarray(8, 20);
    payload.set(DNS_VALUE.payload);
    emitUdp({ sourcePort: 53000, destinationPort: 53, payload }, into, 0, PSEUDO);
    assert.deepEqual(into, DNS_QUERY.subarray(0, 20));
  });

  it('parses what it emits (property)', () => {
    const u16 = fc.integer({ min: 0, max: 0xffff });
    const u32 = fc.integer({ min: 0, max: 0xffffffff });
    const datagram = fc.record({ sourcePort: u16, destinationPort: u16, payload: fc.uint8Array({ maxLength: 100 }) }, { noNullPrototype: true });
    fc.assert(
      fc.property(datagram, u32, u32, (d, source, destination) => {
        const into = new Uint8Array(udpLength(d));
        emitUdp(d, into, 0, { source, destination });
        assert.deepEqual(parseUdp(UdpView.checked(into), { source, destination }), d);
      }),
    );
  });

  it('checked() on arbitrary bytes yields a view or a WireError (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
        const r = valueOrWireError(() => UdpView.checked(bytes));
        if (r instanceof UdpView) {
          assertNoReadPastEnd((b) => new UdpView(b), bytes);
          valueOrWireError(() => parseUdp(r, PSEUDO));
        }
      }),
    );
  });
});
