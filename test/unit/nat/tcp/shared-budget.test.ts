import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SharedBudget } from '../../../../src/nat/tcp/shared-budget.js';

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('SharedBudget', () => {
  it('returns the room left, 0 when full, and counts a released minus zero as nothing', () => {
    const budget = new SharedBudget<string>(1000, () => {});
    assert.equal(budget.charge(400), 600);
    assert.equal(budget.charge(700), 0);
    assert.equal(budget.charge(-0), 0);
    assert.ok(Object.is(budget.bytes, 1100), 'no minus zero in the sum');
    assert.equal(budget.charge(-1100), 1000);
    assert.ok(Object.is(budget.bytes, 0));
  });

  it('wakes every waiter once, after the call, when the total falls to three quarters', async () => {
    const woken: string[] = [];
    const budget = new SharedBudget<string>(1000, (w) => woken.push(w));
    budget.charge(1000);
    budget.wait('a');
    budget.wait('b');
    budget.wait('a');
    assert.equal(budget.waiters, 2);
    budget.charge(-200); // 800: above three quarters
    await settle();
    assert.deepEqual(woken, []);
    budget.charge(-50); // 750
    assert.deepEqual(woken, [], 'not inside the releasing call');
    await settle();
    assert.deepEqual(woken, ['a', 'b']);
    assert.equal(budget.waiters, 0);
  });

  it('does not wake a waiter that left', async () => {
    const woken: string[] = [];
    const budget = new SharedBudget<string>(100, (w) => woken.push(w));
    budget.charge(100);
    budget.wait('gone');
    budget.forget('gone');
    budget.charge(-100);
    await settle();
    assert.deepEqual(woken, []);
  });
});
