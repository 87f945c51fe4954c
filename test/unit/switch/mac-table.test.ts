import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MacTable, DEFAULT_MAC_AGING_MS } from '../../../src/switch/mac-table.js';
import { formatMacKey, isGroupAt, macKey, macKeyAt } from '../../../src/switch/mac.js';

test('macKeyAt reads six bytes at an offset as one 48-bit number', () => {
  const bytes = Uint8Array.of(0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56);
  assert.equal(macKeyAt(bytes, 1), 0xffff_ffff_ffff);
  assert.equal(macKeyAt(bytes, 8), 0x5254_0012_3456);
  assert.equal(formatMacKey(macKeyAt(bytes, 8)), '52:54:00:12:34:56');
  assert.equal(macKey(Uint8Array.of(0x80, 0, 0, 0, 0, 1)), 0x8000_0000_0001);
  assert.throws(() => macKey(new Uint8Array(5)), RangeError);
});

test('isGroupAt is the I/G bit of the first octet', () => {
  assert.equal(isGroupAt(Uint8Array.of(0x01, 0, 0x5e), 0), true);
  assert.equal(isGroupAt(Uint8Array.of(0x33, 0x33), 0), true);
  assert.equal(isGroupAt(Uint8Array.of(0xff), 0), true);
  assert.equal(isGroupAt(Uint8Array.of(0x52), 0), false);
  assert.equal(isGroupAt(Uint8Array.of(0x02), 0), false);
});

test('learn, refresh, move', () => {
  const t = new MacTable<string>();
  assert.equal(t.learn(1, 'a', 0), 'learned');
  assert.equal(t.learn(1, 'a', 10), 'refreshed');
  assert.equal(t.learn(1, 'b', 20), 'moved');
  assert.equal(t.lookup(1, 30), 'b');
  assert.equal(t.lookup(2, 30), undefined);
  assert.deepEqual(t.stats, { learned: 1, moved: 1, aged: 0, full: 0 });
});

test('entries age out after 300 s by default (802.1D), refreshed entries do not', () => {
  const t = new MacTable<string>();
  assert.equal(DEFAULT_MAC_AGING_MS, 300_000);
  t.learn(1, 'a', 0);
  t.learn(2, 'b', 0);
  t.learn(2, 'b', 200_000);
  assert.equal(t.lookup(1, 300_000), 'a');
  assert.equal(t.lookup(1, 300_001), undefined);
  assert.equal(t.lookup(2, 300_001), 'b');
  assert.equal(t.stats.aged, 1);
  t.sweep(600_000);
  assert.equal(t.size, 0);
});

test('a full table does not learn, then reclaims expired entries', () => {
  const t = new MacTable<string>({ limit: 3, agingMs: 1000 });
  for (let k = 0; k < 3; k++) t.learn(k, 'a', 0);
  assert.equal(t.learn(99, 'a', 500), 'full');
  assert.equal(t.size, 3);
  assert.equal(t.stats.full, 1);
  assert.equal(t.learn(1, 'b', 600), 'moved', 'known MACs still move when full');
  // Entries 0 and 2 expire; the next new MAC triggers a sweep.
  assert.equal(t.learn(99, 'a', 1501), 'learned');
  assert.equal(t.size, 2);
});

test('flushPort forgets one port only', () => {
  const t = new MacTable<string>();
  t.learn(1, 'a', 0);
  t.learn(2, 'b', 0);
  t.learn(3, 'a', 0);
  t.flushPort('a');
  assert.deepEqual([...t.list(0)].map((e) => e.key), [2]);
});

test('limit must be positive', () => {
  assert.throws(() => new MacTable({ limit: 0 }), RangeError);
});
