import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  BROADCAST_MAC,
  formatIpv4,
  formatMac,
  ipv4Bytes,
  isBroadcastMac,
  isMulticastMac,
  macEquals,
  macKey,
  parseCidr,
  parseIpv4,
  parseMac,
  prefixToMask,
  readIpv4,
  writeIpv4,
} from '../../../src/wire/address.js';
import { hex } from './helpers.js';

describe('MAC addresses', () => {
  it('parses colon, dash and VirtualBox bare forms', () => {
    const expected = hex('08 00 27 aa', 'bb cc');
    assert.deepEqual(parseMac('08:00:27:aa:bb:cc'), expected);
    assert.deepEqual(parseMac('08-00-27-AA-BB-CC'), expected);
    assert.deepEqual(parseMac('080027AABBCC'), expected);
    assert.deepEqual(parseMac(' 8:0:27:aa:bb:cc '), expected);
  });

  it('rejects anything else with a plain Error naming the input', () => {
    for (const bad of ['', '08:00:27:aa:bb', '08:00-27:aa:bb:cc', '080027AABBC', 'zz:00:27:aa:bb:cc', '08:00:27:aa:bb:cc:dd']) {
      assert.throws(() => parseMac(bad), (err: unknown) => err instanceof Error && err.message.includes(`"${bad}"`));
    }
  });

  it('formats lowercase with colons at an offset', () => {
    assert.equal(formatMac(hex('ff ff 08 00', '27 aa bb cc'), 2), '08:00:27:aa:bb:cc');
  });

  it('gives a 48-bit number key', () => {
    assert.equal(macKey(hex('08 00 27 aa', 'bb cc')), 0x080027aabbcc);
    assert.equal(macKey(BROADCAST_MAC), 0xffffffffffff);
  });

  it('classifies group and broadcast addresses', () => {
    assert.equal(isMulticastMac(hex('01 00 5e 00', '00 01')), true);
    assert.equal(isMulticastMac(hex('08 00 27 aa', 'bb cc')), false);
    assert.equal(isMulticastMac(BROADCAST_MAC), true);
    assert.equal(isBroadcastMac(BROADCAST_MAC), true);
    assert.equal(isBroadcastMac(hex('ff ff ff ff', 'ff fe')), false);
    assert.equal(macEquals(hex('00 08 00 27', 'aa bb cc'), parseMac('080027aabbcc'), 1), true);
  });

  it('round-trips format and parse (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 6, maxLength: 6 }), (mac) => {
        assert.deepEqual(parseMac(formatMac(mac)), mac);
      }),
    );
  });
});

describe('IPv4 addresses', () => {
  it('parses and formats dotted quads as unsigned numbers', () => {
    assert.equal(parseIpv4('10.0.2.15'), 0x0a00020f);
    assert.equal(parseIpv4('255.255.255.255'), 0xffffffff);
    assert.equal(formatIpv4(0xc0a83801), '192.168.56.1');
  });

  it('rejects short, out-of-range and octal-looking forms', () => {
    for (const bad of ['10.0.2', '10.0.2.256', '010.0.2.15', '10.0.2.15.1', 'a.b.c.d', '']) {
      assert.throws(() => parseIpv4(bad), /invalid IPv4 address/);
    }
  });

  it('reads and writes network-order bytes', () => {
    const b = hex('00 0a 00 02', '0f 00');
    assert.equal(readIpv4(b, 1), 0x0a00020f);
    writeIpv4(b, 1, 0xc0a83801);
    assert.deepEqual(b, hex('00 c0 a8 38', '01 00'));
    assert.deepEqual(ipv4Bytes(0x0a000202), hex('0a 00 02 02'));
  });

  it('parses CIDR, clearing host bits', () => {
    assert.deepEqual(parseCidr('10.0.2.0/24'), { network: 0x0a000200, prefix: 24, mask: 0xffffff00 });
    assert.deepEqual(parseCidr('10.0.2.15/24'), { network: 0x0a000200, prefix: 24, mask: 0xffffff00 });
    assert.deepEqual(parseCidr('0.0.0.0/0'), { network: 0, prefix: 0, mask: 0 });
    assert.equal(prefixToMask(32), 0xffffffff);
    for (const bad of ['10.0.2.0', '10.0.2.0/33', '10.0.2/24', '10.0.2.0/']) {
      assert.throws(() => parseCidr(bad), /invalid network/);
    }
  });

  it('round-trips format and parse (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (n) => {
        assert.equal(parseIpv4(formatIpv4(n)), n);
        assert.equal(readIpv4(ipv4Bytes(n), 0), n);
      }),
    );
  });
});
