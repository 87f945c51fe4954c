import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BlockPool } from '../../../../src/nat/tcp/block-pool.js';

describe('BlockPool', () => {
  it('reuses a block given back through any view of it', () => {
    const pool = new BlockPool(4096, 2);
    const block = pool.take();
    assert.equal(block.length, 4096);
    pool.give(block.subarray(100, 200));
    assert.equal(pool.freeCount, 1);
    assert.equal(pool.take().buffer, block.buffer, 'the same memory comes back');
  });

  it('ignores buffers of another size and keeps at most `keep` free blocks', () => {
    const pool = new BlockPool(4096, 2);
    pool.give(Buffer.alloc(100));
    pool.give(Buffer.allocUnsafeSlow(8192));
    assert.equal(pool.freeCount, 0);
    const blocks = [pool.take(), pool.take(), pool.take()];
    for (const b of blocks) pool.give(b);
    assert.equal(pool.freeCount, 2);
  });
});
