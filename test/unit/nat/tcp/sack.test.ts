import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ackBlocks, maxSackBlocks, sackBlocks } from '../../../../src/nat/tcp/sack.js';
import { seqAdd } from '../../../../src/nat/tcp/seq.js';
import { emitTcpOptions, parseTcpOptions, tcpOptionsLength, type TcpOptions } from '../../../../src/wire/tcp.js';

const held = (seq: number, length: number, fin = false) => ({ seq, data: new Uint8Array(length), fin });
/** Blocks as flat [left, right, …] pairs, for short expectations. */
const flat = (blocks: { left: number; right: number }[]) => blocks.flatMap((b) => [b.left, b.right]);

describe('sackBlocks', () => {
  it('merges touching and overlapping segments and counts a FIN', () => {
    const blocks = sackBlocks([held(100, 10), held(110, 5), held(112, 10), held(200, 3, true)], 200, 4);
    assert.deepEqual(flat(blocks), [200, 204, 100, 122]);
  });

  it('puts the block of the latest segment first, then the highest down, up to the limit', () => {
    const list = [held(10, 5), held(20, 5), held(30, 5), held(40, 5), held(50, 5)];
    assert.deepEqual(flat(sackBlocks(list, 20, 3)), [20, 25, 50, 55, 40, 45]);
    assert.deepEqual(flat(sackBlocks(list, 52, 4)), [50, 55, 40, 45, 30, 35, 20, 25]);
  });

  it('works across the wrap of sequence space', () => {
    const start = seqAdd(0, -8); // 8 bytes before 2^32
    const blocks = sackBlocks([held(start, 8), held(0, 4), held(20, 4)], 20, 3);
    assert.deepEqual(flat(blocks), [20, 24, start, 4]);
  });
});

describe('ackBlocks (D-SACK, RFC 2883)', () => {
  it('puts the duplicate first and leaves room for it', () => {
    const list = [held(10, 5), held(20, 5), held(30, 5), held(40, 5)];
    assert.deepEqual(flat(ackBlocks({ left: 0, right: 8 }, [], 0, 3)), [0, 8]);
    assert.deepEqual(flat(ackBlocks({ left: 0, right: 8 }, list, 40, 3)), [0, 8, 40, 45, 30, 35]);
    // §4.2: a repeat of held data, then the block that holds it.
    assert.deepEqual(flat(ackBlocks({ left: 20, right: 25 }, list, 20, 4)), [20, 25, 20, 25, 40, 45, 30, 35]);
    assert.deepEqual(flat(ackBlocks(null, list, 40, 3)), flat(sackBlocks(list, 40, 3)));
  });
});

describe('SACK option bytes, as the connection writes them (emitTcpOptions)', () => {
  const roundTrip = (options: TcpOptions, length: number) => {
    assert.equal(tcpOptionsLength(options), length);
    const frame = new Uint8Array(length);
    assert.equal(emitTcpOptions(options, frame, 0), length);
    return parseTcpOptions(frame);
  };

  it('parse back as the blocks written, three beside the timestamps filling 40 bytes', () => {
    assert.equal(maxSackBlocks(true), 3);
    const blocks = [
      { left: 1, right: 2 },
      { left: 3, right: 4 },
      { left: 0xfffffff0, right: 0xfffffff8 },
    ];
    const options = roundTrip({ timestamp: { value: 7, echoReply: 9 }, sackBlocks: blocks }, 40);
    assert.deepEqual(options.timestamp, { value: 7, echoReply: 9 });
    assert.deepEqual(options.sackBlocks, blocks);
  });

  it('SACK-permitted in front of timestamps, or on its own', () => {
    assert.deepEqual(roundTrip({ sackPermitted: true, timestamp: { value: 1, echoReply: 0 } }, 12), { sackPermitted: true, timestamp: { value: 1, echoReply: 0 } });
    assert.deepEqual(roundTrip({ sackPermitted: true }, 4), { sackPermitted: true });
  });
});
