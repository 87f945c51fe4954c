import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { BROADCAST_MAC } from '../../../src/wire/address.js';
import {
  emitEthernet,
  ETHERNET_HEADER_LENGTH,
  EtherType,
  EthernetView,
  parseEthernet,
} from '../../../src/wire/ethernet.js';
import { assertNoReadPastEnd, atOffset, hex, throwsWire, valueOrWireError } from './helpers.js';

const UNTAGGED = hex(
  // Ethernet: 08:00:27:aa:bb:cc > ff:ff:ff:ff:ff:ff, ARP
  'ff ff ff ff',
  'ff ff 08 00',
  '27 aa bb cc',
  '08 06',
  // payload
  '00 01',
  '08 00 06 04',
);

const TAGGED = hex(
  // Ethernet: 52:54:00:12:34:56 > 08:00:27:aa:bb:cc
  '08 00 27 aa',
  'bb cc 52 54',
  '00 12 34 56',
  // 802.1Q: TPID 0x8100, PCP 5, VLAN 100; inner IPv4
  '81 00 a0 64',
  '08 00',
  // payload
  '45 00',
);

const QINQ = hex(
  // Ethernet
  '08 00 27 aa',
  'bb cc 52 54',
  '00 12 34 56',
  // 802.1ad outer tag VLAN 7, 802.1Q inner tag VLAN 100, then ARP
  '88 a8 00 07',
  '81 00 00 64',
  '08 06',
  // payload
  'aa bb',
);

describe('EthernetView', () => {
  it('reads an untagged frame', () => {
    const eth = EthernetView.checked(atOffset(UNTAGGED));
    assert.deepEqual(eth.destination, BROADCAST_MAC);
    assert.deepEqual(eth.source, hex('08 00 27 aa', 'bb cc'));
    assert.equal(eth.etherType, EtherType.ARP);
    assert.equal(eth.tagCount, 0);
    assert.equal(eth.vlanId, undefined);
    assert.equal(eth.headerLength, ETHERNET_HEADER_LENGTH);
    assert.deepEqual(eth.payload, hex('00 01 08 00', '06 04'));
  });

  it('looks through an 802.1Q tag', () => {
    const eth = EthernetView.checked(TAGGED);
    assert.equal(eth.outerEtherType, EtherType.VLAN);
    assert.equal(eth.vlanId, 100);
    assert.equal(eth.etherType, EtherType.IPv4);
    assert.equal(eth.headerLength, 18);
    assert.deepEqual(eth.payload, hex('45 00'));
  });

  it('looks through 802.1ad + 802.1Q, reporting the outer VLAN', () => {
    const eth = EthernetView.checked(QINQ);
    assert.equal(eth.tagCount, 2);
    assert.equal(eth.vlanId, 7);
    assert.equal(eth.etherType, EtherType.ARP);
    assert.deepEqual(eth.payload, hex('aa bb'));
  });

  it('payload and addresses are subarrays, not copies', () => {
    const frame = UNTAGGED.slice();
    const eth = new EthernetView(frame);
    eth.payload[0] = 0x42;
    assert.equal(frame[14], 0x42);
    assert.equal(eth.source.buffer, frame.buffer);
  });

  it('writes addresses in place', () => {
    const frame = UNTAGGED.slice();
    const eth = new EthernetView(frame);
    eth.destination = hex('52 54 00 12', '34 56');
    eth.source = BROADCAST_MAC;
    assert.deepEqual(frame.subarray(0, 12), hex('52 54 00 12', '34 56 ff ff', 'ff ff ff ff'));
  });

  it('rejects truncated headers and tags', () => {
    throwsWire(() => EthernetView.checked(UNTAGGED.subarray(0, 13)), 'ethernet', 'truncated');
    throwsWire(() => EthernetView.checked(TAGGED.subarray(0, 17)), 'ethernet', 'truncated');
    throwsWire(() => EthernetView.checked(QINQ.subarray(0, 21)), 'ethernet', 'truncated');
    assert.equal(EthernetView.checked(TAGGED.subarray(0, 18)).payload.length, 0);
  });
});

describe('emitEthernet', () => {
  it('writes at a non-zero offset and returns the end', () => {
    const into = new Uint8Array(20).fill(0xee);
    const end = emitEthernet(
      { destination: BROADCAST_MAC, source: hex('08 00 27 aa', 'bb cc'), etherType: EtherType.ARP },
      into,
      4,
    );
    assert.equal(end, 18);
    assert.deepEqual(into.subarray(4, 18), UNTAGGED.subarray(0, 14));
    assert.equal(into[3], 0xee);
    assert.equal(into[18], 0xee);
  });

  it('parses what it emits (property)', () => {
    const mac = fc.uint8Array({ minLength: 6, maxLength: 6 });
    // Tag TPIDs are excluded: the value describes untagged headers only.
    const etherType = fc.integer({ min: 0, max: 0xffff }).filter((t) => t !== EtherType.VLAN && t !== EtherType.QINQ);
    fc.assert(
      fc.property(fc.record({ destination: mac, source: mac, etherType }, { noNullPrototype: true }), (header) => {
        const into = new Uint8Array(ETHERNET_HEADER_LENGTH);
        emitEthernet(header, into, 0);
        assert.deepEqual(parseEthernet(EthernetView.checked(into)), header);
      }),
    );
  });

  it('checked() on arbitrary bytes yields a view or a WireError, never reading past the end (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
        const r = valueOrWireError(() => EthernetView.checked(bytes));
        if (r instanceof EthernetView) {
          assertNoReadPastEnd((b) => new EthernetView(b), bytes);
          parseEthernet(r);
        }
      }),
    );
  });
});
