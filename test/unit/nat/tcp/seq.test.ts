import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { seqAdd, seqFromWire, seqGeq, seqGt, seqInWindow, seqLeq, seqLt, seqMax, seqMin, seqSub } from '../../../../src/nat/tcp/seq.js';

describe('seq', () => {
  it('adds modulo 2^32', () => {
    assert.equal(seqAdd(seqFromWire(0xffffffff), 1), 0);
    assert.equal(seqAdd(seqFromWire(0xfffffff0), 0x20), 0x10);
    assert.equal(seqAdd(5, -6), seqFromWire(0xffffffff));
  });

  it('holds every sequence number as an int32, the same 32 bits as the wire', () => {
    assert.equal(seqFromWire(0xffffffff), -1);
    assert.equal(seqFromWire(0x80000000), -0x80000000);
    assert.equal(seqFromWire(0x7fffffff), 0x7fffffff);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: -0x7fffffff, max: 0x7fffffff }), (wire, n) => {
        const sum = seqAdd(seqFromWire(wire), n);
        return sum === (sum | 0) && sum >>> 0 === (wire + n + 0x1_0000_0000) % 0x1_0000_0000;
      }),
    );
  });

  it('compares across the wrap', () => {
    assert.ok(seqLt(0xfffffff0, 0x10));
    assert.ok(seqGt(0x10, 0xfffffff0));
    assert.ok(seqLeq(7, 7) && seqGeq(7, 7) && !seqLt(7, 7) && !seqGt(7, 7));
    assert.equal(seqSub(0x10, 0xfffffff0), 0x20);
    assert.equal(seqSub(0xfffffff0, 0x10), -0x20);
    assert.equal(seqMax(0xfffffff0, 0x10), 0x10);
    assert.equal(seqMin(0xfffffff0, 0x10), 0xfffffff0);
  });

  it('tests window membership across the wrap', () => {
    assert.ok(seqInWindow(0x5, 0xfffffffe, 10));
    assert.ok(!seqInWindow(0x8, 0xfffffffe, 10));
    assert.ok(!seqInWindow(0xfffffffd, 0xfffffffe, 10));
    assert.ok(!seqInWindow(0, 0, 0));
  });

  it('orders a and a+d for every 0 < d < 2^31', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 1, max: 0x7fffffff }), (a, d) => {
        const b = seqAdd(a, d);
        return seqLt(a, b) && seqGt(b, a) && seqSub(b, a) === d && seqSub(a, b) === -d && seqInWindow(b, a, d + 1);
      }),
    );
  });
});
