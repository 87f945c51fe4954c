import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FlowTable, REBUILD_AFTER } from '../../../../src/nat/tcp/flow-table.js';

describe('FlowTable', () => {
  it('gets, replaces and deletes as a Map does', () => {
    const table = new FlowTable<string>();
    table.set(1, 'a');
    table.set(2, 'b');
    table.set(1, 'a2');
    assert.equal(table.size, 2);
    assert.equal(table.get(1), 'a2');
    table.delete(1);
    table.delete(1);
    table.delete(99);
    assert.equal(table.size, 1);
    assert.equal(table.get(1), undefined);
    assert.deepEqual([...table.values()], ['b']);
    table.set(1, 'a3');
    assert.equal(table.size, 2);
    assert.deepEqual([...table.values()].sort(), ['a3', 'b']);
  });

  it('keeps a bounded number of dead keys however many flows come and go', () => {
    const table = new FlowTable<number>();
    const live = 10;
    for (let key = 0; key < live; key++) table.set(key, key);
    for (let key = live; key < live + 50 * REBUILD_AFTER; key++) {
      table.set(key, key);
      table.delete(key - live);
      assert.ok(table.keysHeld <= REBUILD_AFTER + live + 1, `${table.keysHeld} keys held at ${key}`);
    }
    assert.equal(table.size, live);
    assert.deepEqual([...table.values()].sort((a, b) => a - b), Array.from({ length: live }, (_, i) => 50 * REBUILD_AFTER + i));
  });

  it('rebuilds only past both REBUILD_AFTER and the live count', () => {
    const table = new FlowTable<number>();
    const live = 3 * REBUILD_AFTER;
    for (let key = 0; key < 2 * live; key++) table.set(key, key);
    for (let key = 0; key < live; key++) table.delete(key);
    assert.equal(table.keysHeld, 2 * live, 'as many dead keys as live ones: kept');
    table.delete(live);
    assert.equal(table.keysHeld, live - 1, 'one more: rebuilt with the live ones');
    assert.equal(table.get(live + 1), live + 1);
  });
});
