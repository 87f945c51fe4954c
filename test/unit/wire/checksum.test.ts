import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { fold, pseudoHeaderSum, sum, sumRange } from '../../../src/wire/checksum.js';
import { atOffset, hex } from './helpers.js';

/** Byte-at-a-time reference from RFC 1071 §4.1. */
function reference(bytes: Uint8Array, acc = 0): number {
  for (let i = 0; i < bytes.length; i += 2) acc += (bytes[i]! << 8) + (bytes[i + 1] ?? 0);
  while (acc > 0xffff) acc = (acc & 0xffff) + (acc >>> 16);
  return ~acc & 0xffff;
}

describe('checksum', () => {
  it('matches the RFC 1071 §3 worked example', () => {
    // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2, so the checksum is 220d.
    const bytes = hex('00 01 f2 03', 'f4 f5 f6 f7');
    assert.equal(fold(sum(bytes)), 0x220d);
  });

  it('checksums a real IPv4 header to zero', () => {
    const header = hex(
      // IPv4: 10.0.2.15 > 10.0.2.2 ICMP, checksum 0x0683
      '45 00 00 24',
      '1c 46 40 00',
      '40 01 06 83',
      '0a 00 02 0f',
      '0a 00 02 02',
    );
    assert.equal(fold(sum(header)), 0);
  });

  it('pads an odd final byte with zero', () => {
    assert.equal(sum(hex('01 02 03')), 0x0102 + 0x0300);
  });

  it('reads at a non-zero byteOffset on the fast path', () => {
    const bytes = new Uint8Array(200).map((_, i) => (i * 37) & 0xff);
    assert.equal(fold(sum(atOffset(bytes, 5))), reference(bytes));
  });

  it('builds the pseudo-header from numbers or byte arrays alike', () => {
    const fromNumbers = pseudoHeaderSum(0x0a00020f, 0x0a000202, 6, 40);
    const fromBytes = pseudoHeaderSum(hex('0a 00 02 0f'), hex('0a 00 02 02'), 6, 40);
    assert.equal(fromNumbers, fromBytes);
    assert.equal(fold(fromNumbers), reference(hex('0a 00 02 0f', '0a 00 02 02', '00 06 00 28')));
  });

  it('folds sums larger than 32 bits', () => {
    // 2^32 ≡ 1 in one's-complement 16-bit arithmetic, so 3·2^32 + 5 folds to 8.
    assert.equal(fold(0x1_0000_0000 * 3 + 5), ~8 & 0xffff);
  });

  it('equals the byte-at-a-time reference for any bytes and offset (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.integer({ min: 0, max: 7 }), (bytes, offset) => {
        assert.equal(fold(sum(atOffset(bytes, offset))), reference(bytes));
      }),
    );
  });

  it('sums a range without a subarray, equal to sum of the subarray (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.nat(), fc.nat(), (bytes, a, b) => {
        const start = Math.min(a % (bytes.length + 1), b % (bytes.length + 1));
        const end = Math.max(a % (bytes.length + 1), b % (bytes.length + 1));
        assert.equal(fold(sumRange(atOffset(bytes, 1), start, end, 7)), reference(bytes.subarray(start, end), 7));
      }),
    );
  });

  it('composes over any even split (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.nat(), (bytes, at) => {
        const split = Math.min(bytes.length, at) & ~1;
        const composed = sum(bytes.subarray(split), sum(bytes.subarray(0, split)));
        assert.equal(fold(composed), reference(bytes));
      }),
    );
  });
});
