import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  optionTsecr,
  optionTsval,
  segmentTimestamp,
  TIMESTAMP_OPTION_LENGTH,
  timestampAt,
  timestampOptionAt,
  writeTimestampOption,
} from '../../../../src/nat/tcp/timestamps.js';
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

  it('finds the option once for both its values: TSval and the echo of ours (TSecr)', () => {
    const alone = segment({ timestamp: { value: 5, echoReply: 0xffffffff } });
    const at = timestampOptionAt(alone.bytes, alone.headerLength);
    assert.equal(optionTsval(alone.bytes, at), 5);
    assert.equal(optionTsecr(alone.bytes, at), -1);
    const among = segment({ mss: 1460, windowScale: 7, timestamp: { value: 9, echoReply: 123456 } });
    const later = timestampOptionAt(among.bytes, among.headerLength);
    assert.ok(later > 20);
    assert.equal(optionTsval(among.bytes, later), 9);
    assert.equal(optionTsecr(among.bytes, later), 123456);
    const plain = segment({ mss: 1460 });
    assert.equal(timestampOptionAt(plain.bytes, plain.headerLength), -1);
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

  it('ticks in whole milliseconds of the clock it is given, from the offset, as an int32', () => {
    const offset = 0x7fffffff;
    assert.equal(timestampAt(offset, 0), 0x7fffffff);
    assert.equal(timestampAt(offset, 1.9), -0x80000000, 'wraps as an int32');
    assert.equal(timestampAt(offset, 1001.5) - timestampAt(offset, 1.5), 1000);
  });
});
