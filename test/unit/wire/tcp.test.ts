import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  emitTcp,
  parseTcp,
  parseTcpOptions,
  TCP_HEADER_LENGTH,
  TcpFlags,
  tcpHeaderLength,
  tcpLength,
  tcpOptionsLength,
  TcpView,
  type TcpOptions,
  type TcpSegment,
} from '../../../src/wire/tcp.js';
import { assertNoReadPastEnd, atOffset, hex, throwsWire, valueOrWireError } from './helpers.js';

// Addresses of the IPv4 header: 10.0.2.15 > 10.0.2.2.
const PSEUDO = { source: 0x0a00020f, destination: 0x0a000202 };

const SYN = hex(
  // TCP: 40000 > 80, seq 0x01020304, ack 0
  '9c 40 00 50',
  '01 02 03 04',
  '00 00 00 00',
  // data offset 10 (40 bytes), flags SYN, window 64240
  'a0 02 fa f0',
  // checksum 0x7e50, urgent 0
  '7e 50 00 00',
  // options as Linux sends them: MSS 1460
  '02 04 05 b4',
  // SACK permitted, timestamps value 0x0a0b0c0d echo 0
  '04 02 08 0a',
  '0a 0b 0c 0d',
  '00 00 00 00',
  // NOP, window scale 7
  '01 03 03 07',
);

const SYN_VALUE: TcpSegment = {
  sourcePort: 40000,
  destinationPort: 80,
  sequenceNumber: 0x01020304,
  acknowledgmentNumber: 0,
  flags: TcpFlags.SYN,
  windowSize: 64240,
  urgentPointer: 0,
  options: { mss: 1460, sackPermitted: true, timestamp: { value: 0x0a0b0c0d, echoReply: 0 }, windowScale: 7 },
  payload: new Uint8Array(0),
};

const DATA = hex(
  // TCP: 40000 > 80, seq 0x01020305, ack 0x99887766
  '9c 40 00 50',
  '01 02 03 05',
  '99 88 77 66',
  // data offset 11 (44 bytes), flags PSH|ACK, window 502
  'b0 18 01 f6',
  // checksum 0x3d32, urgent 0
  '3d 32 00 00',
  // NOP, NOP, timestamps value 0x0a0b0c10 echo 0x11223344
  '01 01 08 0a',
  '0a 0b 0c 10',
  '11 22 33 44',
  // NOP, NOP, SACK one block [1000, 2000)
  '01 01 05 0a',
  '00 00 03 e8',
  '00 00 07 d0',
  // payload "GET / HTTP/1.0\r\n"
  '47 45 54 20',
  '2f 20 48 54',
  '54 50 2f 31',
  '2e 30 0d 0a',
);

const DATA_VALUE: TcpSegment = {
  sourcePort: 40000,
  destinationPort: 80,
  sequenceNumber: 0x01020305,
  acknowledgmentNumber: 0x99887766,
  flags: TcpFlags.PSH | TcpFlags.ACK,
  windowSize: 502,
  urgentPointer: 0,
  options: { timestamp: { value: 0x0a0b0c10, echoReply: 0x11223344 }, sackBlocks: [{ left: 1000, right: 2000 }] },
  payload: new TextEncoder().encode('GET / HTTP/1.0\r\n'),
};

describe('TcpView', () => {
  it('reads fields', () => {
    const tcp = TcpView.checked(atOffset(DATA));
    assert.equal(tcp.sourcePort, 40000);
    assert.equal(tcp.destinationPort, 80);
    assert.equal(tcp.sequenceNumber, 0x01020305);
    assert.equal(tcp.acknowledgmentNumber, 0x99887766);
    assert.equal(tcp.headerLength, 44);
    assert.equal(tcp.flags, 0x18);
    assert.deepEqual([tcp.fin, tcp.syn, tcp.rst, tcp.psh, tcp.ack, tcp.urg], [false, false, false, true, true, false]);
    assert.equal(tcp.windowSize, 502);
    assert.equal(tcp.checksum, 0x3d32);
    assert.equal(tcp.urgentPointer, 0);
    assert.equal(tcp.options.length, 24);
    assert.equal(new TextDecoder().decode(tcp.payload), 'GET / HTTP/1.0\r\n');
    assert.equal(tcp.verifyChecksum(PSEUDO), true);
  });

  it('rewrites ports and sequence numbers in place (as NAT does)', () => {
    const bytes = SYN.slice();
    const tcp = new TcpView(bytes);
    tcp.sourcePort = 1;
    tcp.destinationPort = 2;
    tcp.sequenceNumber = 0xfffffffe;
    tcp.acknowledgmentNumber = 7;
    tcp.flags = TcpFlags.SYN | TcpFlags.ACK;
    tcp.windowSize = 1024;
    assert.deepEqual(bytes.subarray(0, 16), hex('00 01 00 02', 'ff ff ff fe', '00 00 00 07', 'a0 12 04 00'));
    assert.equal(tcp.verifyChecksum(PSEUDO), false);
    tcp.fillChecksum(PSEUDO);
    assert.equal(tcp.verifyChecksum(PSEUDO), true);
  });

  it('rejects truncated and bad-length headers and bad checksums', () => {
    throwsWire(() => TcpView.checked(SYN.subarray(0, 19)), 'tcp', 'truncated');
    throwsWire(() => TcpView.checked(SYN.subarray(0, 39)), 'tcp', 'bad-length');
    const offset4 = SYN.slice();
    offset4[12] = 0x40;
    throwsWire(() => TcpView.checked(offset4), 'tcp', 'bad-length');
    const corrupt = DATA.slice();
    corrupt[50] ^= 0x20;
    throwsWire(() => parseTcp(TcpView.checked(corrupt), PSEUDO), 'tcp', 'bad-checksum');
    assert.equal(parseTcp(TcpView.checked(corrupt), PSEUDO, { verifyChecksum: false }).windowSize, 502);
  });

  it('parses segments with options', () => {
    assert.deepEqual(parseTcp(TcpView.checked(SYN), PSEUDO), SYN_VALUE);
    assert.deepEqual(parseTcp(TcpView.checked(DATA), PSEUDO), DATA_VALUE);
  });
});

describe('parseTcpOptions', () => {
  it('stops at End of Option List and skips NOPs', () => {
    assert.deepEqual(parseTcpOptions(hex('01 01 02 04', '05 b4 00 ff')), { mss: 1460 });
  });

  it('keeps unknown options as kind and data', () => {
    // TCP Fast Open cookie (kind 34, RFC 7413) then an experimental kind 254.
    const options = parseTcpOptions(hex('22 06 aa bb', 'cc dd fe 02'));
    assert.deepEqual(options, {
      unknown: [
        { kind: 34, data: hex('aa bb cc dd') },
        { kind: 254, data: new Uint8Array(0) },
      ],
    });
  });

  it('rejects illegal lengths (RFC 9293 §3.1)', () => {
    for (const bad of [
      hex('02'), // length byte missing
      hex('22 00'), // length zero
      hex('22 01'), // length below 2
      hex('22 05 aa bb'), // past the end
      hex('02 03 05 01'), // MSS with length 3
      hex('03 04 07 00'), // window scale with length 4
      hex('04 03 00 00'), // SACK-permitted with length 3
      hex('05 06 00 00', '00 00'), // SACK with a partial block
      hex('08 08 00 00', '00 00 00 00'), // timestamps with length 8
    ]) {
      throwsWire(() => parseTcpOptions(bad), 'tcp', 'bad-option');
    }
  });
});

describe('emitTcp', () => {
  it('writes the fixtures at a non-zero offset', () => {
    const into = new Uint8Array(80).fill(0xee);
    assert.equal(tcpHeaderLength(SYN_VALUE), 40);
    assert.equal(emitTcp(SYN_VALUE, into, 7, PSEUDO), 47);
    assert.deepEqual(into.subarray(7, 47), SYN);
    assert.equal(into[6], 0xee);
    assert.equal(into[47], 0xee);
    assert.equal(emitTcp(DATA_VALUE, into, 1, PSEUDO), 1 + tcpLength(DATA_VALUE));
    assert.deepEqual(into.subarray(1, 1 + DATA.length), DATA);
  });

  it('emits a bare ACK with a 20-byte header', () => {
    const ack: TcpSegment = { ...DATA_VALUE, options: {}, payload: new Uint8Array(0), flags: TcpFlags.ACK };
    assert.equal(tcpHeaderLength(ack), TCP_HEADER_LENGTH);
  });

  it('refuses options over 40 bytes', () => {
    const blocks = Array.from({ length: 4 }, () => ({ left: 1, right: 2 }));
    const tooMany: TcpSegment = { ...SYN_VALUE, options: { timestamp: { value: 1, echoReply: 2 }, sackBlocks: blocks } };
    assert.throws(() => emitTcp(tooMany, new Uint8Array(100), 0, PSEUDO), RangeError);
  });

  const u16 = fc.integer({ min: 0, max: 0xffff });
  const u32 = fc.integer({ min: 0, max: 0xffffffff });
  const opts = { noNullPrototype: true } as const;
  const optionsArb: fc.Arbitrary<TcpOptions> = fc
    .record(
      {
        mss: u16,
        windowScale: fc.integer({ min: 0, max: 255 }),
        sackPermitted: fc.constant(true),
        sackBlocks: fc.array(fc.record({ left: u32, right: u32 }, opts), { minLength: 1, maxLength: 4 }),
        timestamp: fc.record({ value: u32, echoReply: u32 }, opts),
        unknown: fc.array(
          fc.record({ kind: fc.integer({ min: 6, max: 255 }).filter((k) => k !== 8), data: fc.uint8Array({ maxLength: 10 }) }, opts),
          { minLength: 1, maxLength: 3 },
        ),
      },
      { requiredKeys: [], noNullPrototype: true },
    )
    .filter((o) => tcpOptionsLength(o) <= 40);
  const segment = fc.record(
    {
      sourcePort: u16,
      destinationPort: u16,
      sequenceNumber: u32,
      acknowledgmentNumber: u32,
      flags: fc.integer({ min: 0, max: 255 }),
      windowSize: u16,
      urgentPointer: u16,
      options: optionsArb,
      payload: fc.uint8Array({ maxLength: 64 }),
    },
    opts,
  );

  it('parses what it emits (property)', () => {
    fc.assert(
      fc.property(segment, u32, u32, (s, source, destination) => {
        const into = new Uint8Array(tcpLength(s));
        emitTcp(s, into, 0, { source, destination });
        assert.deepEqual(parseTcp(TcpView.checked(into), { source, destination }), s);
      }),
    );
  });

  it('checked() and option parsing on arbitrary bytes yield a value or a WireError (property)', () => {
    const dataOffset = fc.integer({ min: 0, max: 15 }).map((n) => n << 4);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 12, maxLength: 12 }), dataOffset, fc.uint8Array({ maxLength: 60 }), (head, off, rest) => {
        const bytes = new Uint8Array([...head, off, ...rest]);
        const r = valueOrWireError(() => TcpView.checked(bytes));
        if (r instanceof TcpView) {
          assertNoReadPastEnd((b) => new TcpView(b), bytes);
          valueOrWireError(() => parseTcp(r, PSEUDO, { verifyChecksum: false }));
        }
      }),
    );
  });
});
