import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { seqAdd, seqGeq, seqGt, seqInWindow, seqLeq, seqLt, seqMax, seqMin, seqSub } from '../../../../src/nat/tcp/seq.js';

describe('seq', () => {
  it('adds modulo 2^32', () => {
    assert.equal(seqAdd(0xffffffff, 1), 0);
    assert.equal(seqAdd(0xfffffff0, 0x20), 0x10);
    assert.equal(seqAdd(5, -6), 0xffffffff);
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
