import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { randomBytes } from 'node:crypto';
import { parseTftp, TFTP_PORT, tftpAck, tftpError, tftpRequest, TftpOpcode, type TftpPacket } from '../../../src/wire/tftp.js';
import { TftpServer, type TftpServerOptions } from '../../../src/services/tftp/server.js';
import { toNetascii } from '../../../src/services/tftp/transfer.js';

const GUEST = 0x0a00020f;
const OTHER = 0x0a000210;
const dir = mkdtempSync(join(tmpdir(), 'vnet-tftp-'));
const root = join(dir, 'root');
mkdirSync(join(root, 'sub'), { recursive: true });
const small = randomBytes(1300);
const exact = randomBytes(1024);
writeFileSync(join(root, 'small.bin'), small);
writeFileSync(join(root, 'sub', 'exact.bin'), exact);
writeFileSync(join(dir, 'secret'), 'outside');
symlinkSync(join(dir, 'secret'), join(root, 'link-out'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Sent {
  from: number;
  to: number;
  toPort: number;
  packet: TftpPacket;
}

/** A server whose datagrams land in `sent`; `next()` waits (bounded) for the next one. */
function server(options: Partial<TftpServerOptions> = {}) {
  const sent: Sent[] = [];
  const tftp = new TftpServer({
    root,
    maxPayload: 1472,
    send: (from, to, toPort, payload) => sent.push({ from, to, toPort, packet: parseTftp(payload) }),
    ...options,
  });
  let seen = 0;
  const next = async (): Promise<Sent> => {
    for (let i = 0; i < 2000 && sent.length <= seen; i++) await new Promise((resolve) => setTimeout(resolve, 1));
    assert.ok(sent.length > seen, 'a datagram was sent');
    return sent[seen++]!;
  };
  const quiet = async (ms: number) => {
    await new Promise((resolve) => setTimeout(resolve, ms));
    assert.equal(sent.length, seen, 'nothing more was sent');
  };
  return { tftp, sent, next, quiet };
}

const rrq = (name: string, options?: Map<string, string>, mode = 'octet') => tftpRequest(TftpOpcode.RRQ, name, mode, options);

/** Acknowledges block after block until the short one; the file's bytes. */
async function download(s: ReturnType<typeof server>, first: Sent, port = 1069): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  let packet = first;
  for (let i = 0; i < 100_000; i++) {
    assert.equal(packet.packet.opcode, TftpOpcode.DATA);
    if (packet.packet.opcode !== TftpOpcode.DATA) break;
    parts.push(packet.packet.data);
    const last = packet.packet.data.length < 512;
    s.tftp.fromGuest(GUEST, port, packet.from, tftpAck(packet.packet.block));
    if (last) break;
    packet = await s.next();
  }
  return Buffer.concat(parts);
}

test('a plain read: 512-byte blocks from a port of its own, the short block last', async () => {
  const s = server();
  assert.equal(s.tftp.fromGuest(GUEST, 1069, TFTP_PORT, rrq('/small.bin')), true);
  const first = await s.next();
  assert.ok(first.from >= 49152, 'the transfer has its own TID');
  assert.equal(first.to, GUEST);
  assert.equal(first.toPort, 1069);
  assert.deepEqual(await download(s, first), small);
  await s.quiet(20);
  assert.deepEqual({ ...s.tftp.stats(), drops: undefined }, { requests: 1, completed: 1, bytesSent: 1300, active: 0, notFound: 0, refused: 0, timeouts: 0, busy: 0, aborted: 0, drops: undefined });
  assert.equal(s.tftp.fromGuest(GUEST, 1069, first.from, tftpAck(3)), false, "a finished transfer's port is closed");
});

test('a file of whole blocks ends with an empty block', async () => {
  const s = server();
  s.tftp.fromGuest(GUEST, 1070, TFTP_PORT, rrq('sub\\exact.bin'));
  const first = await s.next();
  const bytes = await download(s, first, 1070);
  assert.deepEqual(bytes, exact);
  assert.equal(s.sent.length, 3, 'two full blocks and an empty one');
});

test('options: blksize (capped by the link), tsize and timeout are acknowledged in an OACK, then ACK 0 starts the data', async () => {
  const s = server({ maxPayload: 1000 });
  s.tftp.fromGuest(GUEST, 1071, TFTP_PORT, rrq('small.bin', new Map([['blksize', '1468'], ['tsize', '0'], ['timeout', '3'], ['windowsize', '8']])));
  const oack = await s.next();
  assert.deepEqual(oack.packet, { opcode: TftpOpcode.OACK, options: new Map([['blksize', '996'], ['timeout', '3'], ['tsize', '1300']]) });
  s.tftp.fromGuest(GUEST, 1071, oack.from, tftpAck(0));
  const first = await s.next();
  assert.equal(first.packet.opcode === TftpOpcode.DATA && first.packet.data.length, 996);
  s.tftp.fromGuest(GUEST, 1071, first.from, tftpAck(1));
  const second = await s.next();
  assert.equal(second.packet.opcode === TftpOpcode.DATA && second.packet.data.length, 304);
  s.tftp.fromGuest(GUEST, 1071, first.from, tftpAck(2));
  assert.equal(s.tftp.stats().completed, 1);
});

test('names outside the root, missing files, directories, writes and unknown modes are refused', async () => {
  const s = server();
  const answer = async (request: Uint8Array) => {
    s.tftp.fromGuest(GUEST, 1072, TFTP_PORT, request);
    const reply = await s.next();
    assert.equal(reply.from, TFTP_PORT);
    assert.equal(reply.packet.opcode, TftpOpcode.ERROR);
    return reply.packet.opcode === TftpOpcode.ERROR ? reply.packet.code : -1;
  };
  assert.equal(await answer(rrq('../secret')), 2);
  assert.equal(await answer(rrq('sub/../../secret')), 2);
  assert.equal(await answer(rrq('link-out')), 2, 'a symbolic link out of the root');
  assert.equal(await answer(rrq('missing.bin')), 1);
  assert.equal(await answer(rrq('sub')), 2, 'a directory');
  assert.equal(await answer(tftpRequest(TftpOpcode.WRQ, 'new.bin', 'octet')), 2, 'read-only');
  assert.equal(await answer(rrq('small.bin', undefined, 'mail')), 4);
  const stats = s.tftp.stats();
  assert.equal(stats.notFound, 1);
  assert.equal(stats.refused, 5);
  assert.equal(stats.active, 0);
});

test('a duplicate ACK is not answered; a stranger on the transfer port gets ERROR 5 and the transfer goes on', async () => {
  const s = server();
  s.tftp.fromGuest(GUEST, 1073, TFTP_PORT, rrq('small.bin'));
  const first = await s.next();
  s.tftp.fromGuest(GUEST, 1073, first.from, tftpAck(1));
  const second = await s.next();
  s.tftp.fromGuest(GUEST, 1073, first.from, tftpAck(1));
  await s.quiet(20);
  s.tftp.fromGuest(OTHER, 1073, first.from, tftpAck(2));
  const stranger = await s.next();
  assert.deepEqual([stranger.to, stranger.packet.opcode === TftpOpcode.ERROR && stranger.packet.code], [OTHER, 5]);
  s.tftp.fromGuest(GUEST, 1073, first.from, tftpAck(2));
  const third = await s.next();
  assert.equal(second.packet.opcode === TftpOpcode.DATA && second.packet.block, 2);
  assert.equal(third.packet.opcode === TftpOpcode.DATA && third.packet.block, 3);
  s.tftp.fromGuest(GUEST, 1073, first.from, tftpAck(3));
  assert.equal(s.tftp.stats().completed, 1);
});

test('an unacknowledged block is sent again, then the transfer is given up; a client ERROR ends one at once', async () => {
  const s = server({ retransmitMs: 20, maxRetries: 2 });
  s.tftp.fromGuest(GUEST, 1074, TFTP_PORT, rrq('small.bin'));
  const first = await s.next();
  const again = await s.next();
  assert.deepEqual(again, first);
  await s.next();
  await s.quiet(60);
  assert.deepEqual([s.tftp.stats().timeouts, s.tftp.stats().active], [1, 0]);

  s.tftp.fromGuest(GUEST, 1075, TFTP_PORT, rrq('small.bin'));
  const other = await s.next();
  s.tftp.fromGuest(GUEST, 1075, other.from, tftpError(0, 'cancelled'));
  assert.deepEqual([s.tftp.stats().aborted, s.tftp.stats().active], [1, 0]);

  // A client that went away (the guest's ICMP port unreachable): only its own transfer ends.
  s.tftp.fromGuest(GUEST, 1079, TFTP_PORT, rrq('small.bin'));
  const gone = await s.next();
  s.tftp.clientGone(gone.from, OTHER, 1079);
  s.tftp.clientGone(gone.from, GUEST, 1080);
  assert.equal(s.tftp.stats().active, 1, 'not for another client');
  s.tftp.clientGone(gone.from, GUEST, 1079);
  assert.deepEqual([s.tftp.stats().aborted, s.tftp.stats().active], [2, 0]);
  s.tftp.close();
});

test('block numbers wrap to 0 after 65535 and the data goes on', async () => {
  const big = randomBytes(8 * 65540 + 3);
  writeFileSync(join(root, 'wrap.bin'), big);
  const s = server();
  s.tftp.fromGuest(GUEST, 1076, TFTP_PORT, rrq('wrap.bin', new Map([['blksize', '8']])));
  const oack = await s.next();
  s.tftp.fromGuest(GUEST, 1076, oack.from, tftpAck(0));
  const parts: Uint8Array[] = [];
  const blocks: number[] = [];
  for (let i = 0; i < 70_000; i++) {
    const packet = (await s.next()).packet;
    if (packet.opcode !== TftpOpcode.DATA) assert.fail('data expected');
    parts.push(packet.data);
    if (blocks.length < 3 || packet.block <= 1) blocks.push(packet.block);
    s.tftp.fromGuest(GUEST, 1076, oack.from, tftpAck(packet.block));
    if (packet.data.length < 8) break;
  }
  assert.deepEqual(Buffer.concat(parts), big);
  assert.deepEqual(blocks, [1, 2, 3, 0, 1], 'after 65535 comes 0');
  assert.equal(s.tftp.stats().completed, 1);
});

test('a repeated request while the file opens starts one transfer; malformed datagrams are counted', async () => {
  const s = server();
  s.tftp.fromGuest(GUEST, 1077, TFTP_PORT, rrq('small.bin'));
  s.tftp.fromGuest(GUEST, 1077, TFTP_PORT, rrq('small.bin'));
  s.tftp.fromGuest(GUEST, 1078, TFTP_PORT, Uint8Array.of(0, 1, 0x61));
  await s.next();
  await s.quiet(20);
  assert.equal(s.tftp.stats().active, 1);
  assert.deepEqual(s.tftp.stats().drops, { 'tftp:repeated-request': 1, 'tftp:bad-string': 1 });
  s.tftp.close();
});

test('netascii: LF goes out as CR LF, a bare CR as CR NUL', () => {
  assert.deepEqual([...toNetascii(Buffer.from('a\nb\rc'))], [...Buffer.from('a\r\nb\r\0c', 'latin1')]);
});
