import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AddressSnoop } from '../../../src/daemon/address-snoop.js';
import { parseMac } from '../../../src/wire/address.js';
import { ArpOperation, ARP_PACKET_LENGTH, emitArp } from '../../../src/wire/arp.js';
import { emitEthernet, EtherType, ETHERNET_HEADER_LENGTH } from '../../../src/wire/ethernet.js';

const GUEST = parseMac('08:00:27:00:00:01');

function arpFrom(mac: Uint8Array, ip: number): Uint8Array {
  const frame = new Uint8Array(ETHERNET_HEADER_LENGTH + ARP_PACKET_LENGTH);
  emitArp({ operation: ArpOperation.Request, senderHardwareAddress: mac, senderProtocolAddress: ip, targetHardwareAddress: new Uint8Array(6), targetProtocolAddress: 0xc0000201 }, frame, ETHERNET_HEADER_LENGTH);
  emitEthernet({ destination: new Uint8Array(6).fill(0xff), source: mac, etherType: EtherType.ARP }, frame, 0);
  return frame;
}

describe('address snoop', () => {
  test('learns a guest address from its ARP, ignores probes, others and junk', () => {
    let now = 1000;
    const snoop = new AddressSnoop(() => now);
    snoop.fromGuest('bridged:br0', GUEST, arpFrom(GUEST, 0));
    snoop.fromGuest('bridged:br0', GUEST, arpFrom(parseMac('08:00:27:00:00:02'), 0xc000020a));
    snoop.fromGuest('bridged:br0', GUEST, new Uint8Array([1, 2, 3]));
    snoop.toGuest('bridged:br0', GUEST, new Uint8Array(20));
    assert.deepEqual(snoop.list(), []);
    snoop.fromGuest('bridged:br0', GUEST, arpFrom(GUEST, 0xc000020a));
    assert.deepEqual(snoop.list().map((e) => [e.mac, e.ip, e.source]), [['08:00:27:00:00:01', '192.0.2.10', 'snooped-arp']]);
    now += 11 * 60_000;
    assert.deepEqual(snoop.list(), []);
  });
});
