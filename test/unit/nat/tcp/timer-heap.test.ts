import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { TimerHeap } from '../../../../src/nat/tcp/timer-heap.js';

interface Item {
  id: number;
  timerAt: number;
  timerIndex: number;
}

function item(id: number): Item {
  return { id, timerAt: Infinity, timerIndex: -1 };
}

describe('TimerHeap', () => {
  it('pops due items earliest first and leaves later ones', () => {
    const heap = new TimerHeap<Item>();
    const [a, b, c] = [item(1), item(2), item(3)];
    heap.schedule(a, 30);
    heap.schedule(b, 10);
    heap.schedule(c, 20);
    assert.equal(heap.popDue(25)?.id, 2);
    assert.equal(heap.popDue(25)?.id, 3);
    assert.equal(heap.popDue(25), undefined);
    assert.equal(heap.size, 1);
    assert.equal(b.timerIndex, -1);
  });

  it('moves and cancels queued items', () => {
    const heap = new TimerHeap<Item>();
    const items = [item(0), item(1), item(2), item(3)];
    items.forEach((x, i) => heap.schedule(x, 100 + i));
    heap.schedule(items[3]!, 1);
    heap.schedule(items[0]!, 500);
    heap.cancel(items[1]!);
    heap.cancel(items[1]!);
    const order: number[] = [];
    for (let x = heap.popDue(1000); x !== undefined; x = heap.popDue(1000)) order.push(x.id);
    assert.deepEqual(order, [3, 2, 0]);
  });

  it('agrees with a sorted list under random operations', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('schedule' as const), id: fc.nat(19), at: fc.nat(1000) }),
      fc.record({ kind: fc.constant('cancel' as const), id: fc.nat(19) }),
      fc.record({ kind: fc.constant('pop' as const), now: fc.nat(1000) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        const heap = new TimerHeap<Item>();
        const items = Array.from({ length: 20 }, (_, i) => item(i));
        const model = new Map<number, number>();
        for (const o of ops) {
          if (o.kind === 'schedule') {
            heap.schedule(items[o.id]!, o.at);
            model.set(o.id, o.at);
          } else if (o.kind === 'cancel') {
            heap.cancel(items[o.id]!);
            model.delete(o.id);
          } else {
            const got = heap.popDue(o.now);
            const min = Math.min(...model.values());
            if (model.size === 0 || min > o.now) {
              assert.equal(got, undefined);
            } else {
              assert.ok(got !== undefined);
              assert.equal(got.timerAt, min);
              model.delete(got.id);
            }
          }
          assert.equal(heap.size, model.size);
        }
      }),
    );
  });
});
