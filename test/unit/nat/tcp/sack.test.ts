import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { maxSackBlocks, sackBlocks, sackOptionLength, sackPermittedBeforeTimestamps, writeSackOption, writeSackPermitted } from '../../../../src/nat/tcp/sack.js';
import { seqAdd } from '../../../../src/nat/tcp/seq.js';
import { writeTimestampOption } from '../../../../src/nat/tcp/timestamps.js';
import { parseTcpOptions } from '../../../../src/wire/tcp.js';

const held = (seq: number, length: number, fin = false) => ({ seq, data: new Uint8Array(length), fin });

describe('sackBlocks', () => {
  it('merges touching and overlapping segments and counts a FIN', () => {
    const blocks = sackBlocks([held(100, 10), held(110, 5), held(112, 10), held(200, 3, true)], 200, 4);
    assert.deepEqual(blocks, [200, 204, 100, 122]);
  });

  it('puts the block of the latest segment first, then the highest down, up to the limit', () => {
    const list = [held(10, 5), held(20, 5), held(30, 5), held(40, 5), held(50, 5)];
    assert.deepEqual(sackBlocks(list, 20, 3), [20, 25, 50, 55, 40, 45]);
    assert.deepEqual(sackBlocks(list, 52, 4), [50, 55, 40, 45, 30, 35, 20, 25]);
  });

  it('works across the wrap of sequence space', () => {
    const start = seqAdd(0, -8); // 8 bytes before 2^32
    const blocks = sackBlocks([held(start, 8), held(0, 4), held(20, 4)], 20, 3);
    assert.deepEqual(blocks, [20, 24, start, 4]);
  });
});

describe('SACK option bytes', () => {
  it('parse back as the blocks written, in the length given', () => {
    const frame = new Uint8Array(40);
    writeTimestampOption(frame, 0, 7, 9);
    writeSackOption(frame, 12, [1, 2, 3, 4, 0xfffffff0, 0xfffffff8]);
    const length = 12 + sackOptionLength(3);
    assert.equal(length, 40);
    assert.equal(maxSackBlocks(true), 3);
    const options = parseTcpOptions(frame.subarray(0, length));
    assert.deepEqual(options.timestamp, { value: 7, echoReply: 9 });
    assert.deepEqual(options.sackBlocks, [
      { left: 1, right: 2 },
      { left: 3, right: 4 },
      { left: 0xfffffff0, right: 0xfffffff8 },
    ]);
  });

  it('SACK-permitted in front of timestamps, or on its own', () => {
    const withTs = new Uint8Array(12);
    writeTimestampOption(withTs, 0, 1, 0);
    sackPermittedBeforeTimestamps(withTs, 0);
    assert.deepEqual(parseTcpOptions(withTs), { sackPermitted: true, timestamp: { value: 1, echoReply: 0 } });
    const alone = new Uint8Array(4);
    writeSackPermitted(alone, 0);
    assert.deepEqual(parseTcpOptions(alone), { sackPermitted: true });
  });
});
