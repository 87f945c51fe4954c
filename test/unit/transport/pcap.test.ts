import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PcapWriter, PCAP_SNAPLEN } from '../../../src/transport/pcap.js';
import { TransportError } from '../../../src/transport/qemu-stream.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'vnet-pcap-'));
}

/** An Ethernet frame carrying an IPv4/UDP-looking payload of `length` bytes total. */
function frameOf(length: number, seed = 0): Uint8Array {
  const f = new Uint8Array(length);
  f.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x88, 0xb5].slice(0, length));
  for (let i = 14; i < length; i++) f[i] = (seed + i) & 0xff;
  return f;
}

/** tshark's view: one "len cap_len time" line per frame. */
function tshark(path: string, fields = ['frame.len', 'frame.cap_len', 'frame.time_epoch']): string[][] {
  const out = execFileSync('tshark', ['-r', path, '-T', 'fields', ...fields.flatMap((f) => ['-e', f])], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
    timeout: 30_000,
  });
  return out
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split('\t'));
}

test('file header: magic a1b2c3d4 (µs), v2.4, snaplen 65535, Ethernet; mode 0600', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'empty.pcap');
    const w = PcapWriter.open(path);
    await w.close();
    const bytes = readFileSync(path);
    // magic (little-endian host) | major | minor | thiszone | sigfigs | snaplen | linktype
    assert.deepEqual(
      [...bytes],
      [
        0xd4, 0xc3, 0xb2, 0xa1,
        0x02, 0x00, 0x04, 0x00,
        0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00,
        0xff, 0xff, 0x00, 0x00,
        0x01, 0x00, 0x00, 0x00,
      ],
    );
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.deepEqual(tshark(path), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tshark reads frames, timestamps, a truncated oversize frame and a runt', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'cap.pcap');
    const w = PcapWriter.open(path);
    w.write(frameOf(60, 1), 1_700_000_000_123.456);
    w.write(frameOf(1514, 2), 1_700_000_001_000);
    w.write(frameOf(70_000, 3), 1_700_000_002_999.5); // above the snaplen: cut, original length kept
    w.write(frameOf(5), 1_700_000_003_000); // a runt is still captured as it was seen
    w.write(frameOf(PCAP_SNAPLEN), 1_700_000_004_000);
    await w.close();
    assert.deepEqual(w.stats, { frames: 5, truncated: 1, dropped: 0, bytesWritten: statSync(path).size, error: undefined });
    const rows = tshark(path);
    assert.deepEqual(
      rows.map((r) => [r[0], r[1]]),
      [
        ['60', '60'],
        ['1514', '1514'],
        ['70000', '65535'],
        ['5', '5'],
        ['65535', '65535'],
      ],
    );
    assert.deepEqual(
      rows.map((r) => r[2]),
      ['1700000000.123456000', '1700000001.000000000', '1700000002.999500000', '1700000003.000000000', '1700000004.000000000'],
    );
    // The bytes survive: the first frame's source MAC, as tshark decodes it.
    assert.deepEqual(tshark(path, ['eth.src']).map((r) => r[0])[0], '52:54:00:12:34:56');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('many frames span several chunks and all arrive, in order', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'many.pcap');
    const w = PcapWriter.open(path);
    for (let i = 0; i < 2000; i++) w.write(frameOf(60 + (i % 1400), i), 1_700_000_000_000 + i);
    await w.close();
    assert.equal(w.stats.frames, 2000);
    assert.equal(w.stats.dropped, 0);
    const lens = tshark(path, ['frame.len']).map((r) => Number(r[0]));
    assert.equal(lens.length, 2000);
    assert.ok(lens.every((len, i) => len === 60 + (i % 1400)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a running capture reaches the disk within the flush interval', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'live.pcap');
    const w = PcapWriter.open(path, { flushMs: 20 });
    w.write(frameOf(60));
    assert.equal(statSync(path).size, 24, 'buffered, not one syscall per frame');
    const deadline = Date.now() + 2000;
    while (statSync(path).size < 24 + 16 + 60 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(statSync(path).size, 24 + 16 + 60);
    assert.deepEqual(tshark(path, ['frame.len']), [['60']]);
    await w.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the in-memory buffer is bounded: excess frames are dropped and counted', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'bounded.pcap');
    const w = PcapWriter.open(path, { maxBufferedBytes: 300 * 1024 });
    // 1000 × 1530 bytes ≈ 1.5 MB written synchronously: the disk cannot keep up within one tick.
    for (let i = 0; i < 1000; i++) w.write(frameOf(1514, i));
    assert.ok(w.stats.dropped > 0, 'some dropped');
    assert.equal(w.stats.frames + w.stats.dropped, 1000);
    await w.close();
    assert.equal(tshark(path, ['frame.len']).length, w.stats.frames);
    w.write(frameOf(60));
    assert.equal(w.stats.frames + w.stats.dropped, 1001, 'writes after close are counted as dropped');
    assert.equal(w.close(), w.close(), 'close is idempotent');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an unwritable path is a TransportError', () => {
  assert.throws(() => PcapWriter.open('/nonexistent-vnet-dir/x.pcap'), (err: unknown) => {
    assert.ok(err instanceof TransportError);
    assert.match(err.message, /capture file \/nonexistent-vnet-dir\/x\.pcap/);
    return true;
  });
  // /dev/full accepts open(2) but every write fails with ENOSPC.
  assert.throws(() => PcapWriter.open('/dev/full'), TransportError);
});
