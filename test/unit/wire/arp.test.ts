import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ARP_PACKET_LENGTH, ArpOperation, ArpView, emitArp, parseArp, type ArpPacket } from '../../../src/wire/arp.js';
import { assertNoReadPastEnd, atOffset, hex, throwsWire, valueOrWireError } from './helpers.js';

const REQUEST = hex(
  // ARP: Ethernet/IPv4, who-has 10.0.2.2 tell 10.0.2.15
  '00 01 08 00',
  '06 04 00 01',
  '08 00 27 aa', // sender MAC 08:00:27:aa:bb:cc
  'bb cc 0a 00', // sender IP 10.0.2.15
  '02 0f 00 00', // target MAC unknown
  '00 00 00 00',
  '0a 00 02 02', // target IP 10.0.2.2
  // Ethernet padding to 60 bytes (not ARP's)
  '00 00 00 00',
);

const REQUEST_VALUE: ArpPacket = {
  operation: ArpOperation.Request,
  senderHardwareAddress: hex('08 00 27 aa', 'bb cc'),
  senderProtocolAddress: 0x0a00020f,
  targetHardwareAddress: hex('00 00 00 00', '00 00'),
  targetProtocolAddress: 0x0a000202,
};

describe('ArpView', () => {
  it('reads fields', () => {
    const arp = ArpView.checked(atOffset(REQUEST));
    assert.equal(arp.hardwareType, 1);
    assert.equal(arp.protocolType, 0x0800);
    assert.equal(arp.hardwareLength, 6);
    assert.equal(arp.protocolLength, 4);
    assert.equal(arp.operation, ArpOperation.Request);
    assert.deepEqual(arp.senderHardwareAddress, hex('08 00 27 aa', 'bb cc'));
    assert.equal(arp.senderProtocolAddress, 0x0a00020f);
    assert.equal(arp.targetProtocolAddress, 0x0a000202);
  });

  it('parses to a value', () => {
    assert.deepEqual(parseArp(ArpView.checked(REQUEST)), REQUEST_VALUE);
  });

  it('rejects truncated packets and non-Ethernet/IPv4 ARP', () => {
    throwsWire(() => ArpView.checked(REQUEST.subarray(0, 7)), 'arp', 'truncated');
    throwsWire(() => ArpView.checked(REQUEST.subarray(0, 27)), 'arp', 'truncated');
    const ipv6 = REQUEST.slice();
    ipv6[2] = 0x86;
    ipv6[3] = 0xdd;
    throwsWire(() => ArpView.checked(ipv6), 'arp', 'unsupported');
    const wrongLength = REQUEST.slice();
    wrongLength[4] = 8;
    throwsWire(() => ArpView.checked(wrongLength), 'arp', 'unsupported');
  });

  it('keeps unknown operations as numbers', () => {
    const rarp = REQUEST.slice();
    rarp[7] = 3;
    assert.equal(parseArp(ArpView.checked(rarp)).operation, 3);
  });
});

describe('emitArp', () => {
  it('writes the fixture at a non-zero offset', () => {
    const into = new Uint8Array(40).fill(0xee);
    assert.equal(emitArp(REQUEST_VALUE, into, 6), 6 + ARP_PACKET_LENGTH);
    assert.deepEqual(into.subarray(6, 34), REQUEST.subarray(0, 28));
    assert.equal(into[5], 0xee);
    assert.equal(into[34], 0xee);
  });

  it('parses what it emits (property)', () => {
    const mac = fc.uint8Array({ minLength: 6, maxLength: 6 });
    const ip = fc.integer({ min: 0, max: 0xffffffff });
    const packet = fc.record({
      operation: fc.integer({ min: 0, max: 0xffff }),
      senderHardwareAddress: mac,
      senderProtocolAddress: ip,
      targetHardwareAddress: mac,
      targetProtocolAddress: ip,
    }, { noNullPrototype: true });
    fc.assert(
      fc.property(packet, (p) => {
        const into = new Uint8Array(ARP_PACKET_LENGTH);
        emitArp(p, into, 0);
        assert.deepEqual(parseArp(ArpView.checked(into)), p);
      }),
    );
  });

  it('checked() on arbitrary bytes yields a view or a WireError (property)', () => {
    const header = fc.constantFrom(hex('00 01 08 00 06 04'), new Uint8Array(0));
    fc.assert(
      fc.property(header, fc.uint8Array({ maxLength: 40 }), (prefix, rest) => {
        const bytes = new Uint8Array([...prefix, ...rest]);
        const r = valueOrWireError(() => ArpView.checked(bytes));
        if (r instanceof ArpView) {
          assertNoReadPastEnd((b) => new ArpView(b), bytes);
          parseArp(r);
        }
      }),
    );
  });
});
