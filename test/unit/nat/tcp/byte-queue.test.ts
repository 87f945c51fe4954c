import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ByteQueue } from '../../../../src/nat/tcp/byte-queue.js';

describe('ByteQueue', () => {
  it('copies ranges that span chunks', () => {
    const q = new ByteQueue();
    q.push(Uint8Array.of(1, 2, 3));
    q.push(Uint8Array.of(4, 5));
    q.push(Uint8Array.of(6, 7, 8, 9));
    const out = new Uint8Array(6);
    q.copyTo(2, 5, out, 1);
    assert.deepEqual([...out], [0, 3, 4, 5, 6, 7]);
    q.consume(4);
    assert.equal(q.length, 5);
    const again = new Uint8Array(5);
    q.copyTo(0, 5, again, 0);
    assert.deepEqual([...again], [5, 6, 7, 8, 9]);
  });

  it('hands out a chunk only for a range that starts at its first byte and stays inside it', () => {
    const q = new ByteQueue();
    const a = Uint8Array.of(1, 2, 3);
    const b = Uint8Array.of(4, 5);
    q.push(a);
    q.push(b);
    assert.equal(q.chunkAt(0, 3), a);
    assert.equal(q.chunkAt(0, 2), a, 'a front part of it');
    assert.equal(q.chunkAt(3, 2), b);
    assert.equal(q.chunkAt(0, 4), undefined, 'spans two chunks');
    assert.equal(q.chunkAt(1, 2), undefined, 'starts inside one');
    q.consume(1);
    assert.equal(q.chunkAt(0, 2), undefined, 'its first byte is gone');
    assert.equal(q.chunkAt(2, 2), b);
  });

  it('releases each chunk once no byte of it is queued, on consume and on clear', () => {
    const released: number[] = [];
    const q = new ByteQueue((chunk) => released.push(chunk[0]!));
    q.push(Uint8Array.of(1, 1));
    q.push(Uint8Array.of(2, 2, 2));
    q.push(Uint8Array.of(3));
    q.consume(1);
    assert.deepEqual(released, [], 'chunk 1 still has a byte queued');
    q.consume(3);
    assert.deepEqual(released, [1]);
    q.consume(1);
    assert.deepEqual(released, [1, 2]);
    q.push(Uint8Array.of(4, 4));
    q.clear();
    assert.deepEqual(released, [1, 2, 3, 4]);
  });

  it('matches a flat reference under random pushes, consumes and copies', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('push' as const), bytes: fc.uint8Array({ maxLength: 50 }) }),
      fc.record({ kind: fc.constant('consume' as const), n: fc.nat(60) }),
      fc.record({ kind: fc.constant('copy' as const), a: fc.nat(200), b: fc.nat(200) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 150 }), (ops) => {
        const q = new ByteQueue();
        let flat: number[] = [];
        for (const o of ops) {
          if (o.kind === 'push') {
            q.push(o.bytes);
            flat.push(...o.bytes);
          } else if (o.kind === 'consume') {
            q.consume(o.n);
            flat = flat.slice(Math.min(o.n, flat.length));
          } else if (flat.length > 0) {
            const offset = o.a % flat.length;
            const length = o.b % (flat.length - offset + 1);
            const out = new Uint8Array(length);
            q.copyTo(offset, length, out, 0);
            assert.deepEqual([...out], flat.slice(offset, offset + length));
          }
          assert.equal(q.length, flat.length);
        }
      }),
    );
  });
});
