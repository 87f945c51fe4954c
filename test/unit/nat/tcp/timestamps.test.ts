import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { segmentTimestamp, TIMESTAMP_OPTION_LENGTH, timestampNow, writeTimestampOption } from '../../../../src/nat/tcp/timestamps.js';
import { emitTcp, parseTcpOptions, tcpLength, type TcpOptions } from '../../../../src/wire/tcp.js';

/** A TCP segment (header and options only) as the wire codec writes it. */
function segment(options: TcpOptions): { bytes: Uint8Array; headerLength: number } {
  const fields = { sourcePort: 1, destinationPort: 2, sequenceNumber: 0, acknowledgmentNumber: 0, flags: 0x10, windowSize: 1, options, payload: new Uint8Array(0) };
  const bytes = new Uint8Array(tcpLength(fields));
  emitTcp(fields, bytes, 0, { source: 1, destination: 2 });
  return { bytes, headerLength: bytes.length };
}

describe('TCP timestamps', () => {
  it('reads the TSval of the aligned form and of one behind other options, as int32', () => {
    const alone = segment({ timestamp: { value: 0xfffffffe, echoReply: 7 } });
    assert.equal(alone.headerLength, 20 + TIMESTAMP_OPTION_LENGTH);
    assert.equal(segmentTimestamp(alone.bytes, alone.headerLength), -2);
    const among = segment({ mss: 1460, windowScale: 7, sackPermitted: true, timestamp: { value: 123456, echoReply: 0 } });
    assert.equal(segmentTimestamp(among.bytes, among.headerLength), 123456);
  });

  it('reads none (NaN) without the option, or from an option list that is broken', () => {
    const plain = segment({});
    assert.ok(Number.isNaN(segmentTimestamp(plain.bytes, plain.headerLength)));
    const mss = segment({ mss: 1460, windowScale: 2 });
    assert.ok(Number.isNaN(segmentTimestamp(mss.bytes, mss.headerLength)));
    const broken = segment({ mss: 1460, timestamp: { value: 1, echoReply: 1 } });
    broken.bytes[21] = 0; // the MSS option's length: 0 would loop forever if taken
    assert.ok(Number.isNaN(segmentTimestamp(broken.bytes, broken.headerLength)));
    broken.bytes[21] = 40; // past the header
    assert.ok(Number.isNaN(segmentTimestamp(broken.bytes, broken.headerLength)));
  });

  it('writes the option every stack reads: NOP, NOP, TS', () => {
    const bytes = new Uint8Array(20 + TIMESTAMP_OPTION_LENGTH);
    writeTimestampOption(bytes, 20, -1, 42);
    assert.deepEqual(parseTcpOptions(bytes.subarray(20)), { timestamp: { value: 0xffffffff, echoReply: 42 } });
    assert.equal(segmentTimestamp(bytes, bytes.length), -1);
  });

  it('ticks in milliseconds from the offset, as an int32', () => {
    const offset = 0x7fffffff;
    const a = timestampNow(offset);
    assert.equal(a, a | 0);
    assert.ok(((timestampNow(offset) - a) | 0) >= 0);
  });
});
