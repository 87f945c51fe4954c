import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { WireError } from '../../../src/wire/errors.js';
import { parseTftp, tftpAck, tftpData, tftpError, tftpOack, tftpRequest, TftpOpcode } from '../../../src/wire/tftp.js';

test('requests, data, acks, errors and OACKs survive a round trip', () => {
  const rrq = parseTftp(tftpRequest(TftpOpcode.RRQ, 'pxelinux.0', 'OCTET', new Map([['BlkSize', '1468'], ['tsize', '0']])));
  assert.deepEqual(rrq, { opcode: TftpOpcode.RRQ, filename: 'pxelinux.0', mode: 'octet', options: new Map([['blksize', '1468'], ['tsize', '0']]) });
  const data = parseTftp(tftpData(65536 + 7, Uint8Array.of(1, 2, 3)));
  assert.equal(data.opcode, TftpOpcode.DATA);
  assert.equal(data.opcode === TftpOpcode.DATA && data.block, 7, 'block numbers are 16 bits');
  assert.deepEqual(parseTftp(tftpAck(9)), { opcode: TftpOpcode.ACK, block: 9 });
  assert.deepEqual(parseTftp(tftpError(1, 'file not found')), { opcode: TftpOpcode.ERROR, code: 1, message: 'file not found' });
  assert.deepEqual(parseTftp(tftpOack(new Map([['blksize', '512']]))), { opcode: TftpOpcode.OACK, options: new Map([['blksize', '512']]) });
});

test('malformed packets throw WireError, and only that', () => {
  assert.throws(() => parseTftp(Uint8Array.of(0)), /tftp: truncated/);
  assert.throws(() => parseTftp(Uint8Array.of(0, 9)), /tftp: bad-opcode/);
  assert.throws(() => parseTftp(Uint8Array.of(0, 1, 0x61, 0x62)), /tftp: bad-string/, 'an unterminated file name');
  assert.throws(() => parseTftp(Uint8Array.of(0, 1, 0x61, 0)), /tftp: bad-string/, 'no mode');
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      try {
        parseTftp(bytes);
      } catch (err) {
        assert.ok(err instanceof WireError);
      }
    }),
  );
});
