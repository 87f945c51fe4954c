// UnixDgramTransport with real AF_UNIX datagram sockets in a temp directory:
// pairs of transports, a python peer standing in for QEMU, backpressure, and
// a peer that restarts.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';

import { BACKLOG_LIMIT, DIRECT_WRITE_MIN } from '../../../src/transport/fd-transport.js';
import { nativeAddon } from '../../../src/transport/native.js';
import { UnixDgramTransport } from '../../../src/transport/unix-dgram.js';
import { keptAfterCollection } from '../../helpers/collected.js';

const run = promisify(execFile);
const WAIT_LIMIT_MS = 5_000;

async function waitFor(what: string, predicate: () => boolean): Promise<void> {
  const deadline = Date.now() + WAIT_LIMIT_MS;
  while (!predicate()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A 60-byte Ethernet frame whose bytes 14..17 carry `tag` (big-endian). */
function frame(tag: number, length = 60): Uint8Array {
  const bytes = new Uint8Array(length);
  bytes.set([0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x88, 0xb5], 0); // local experimental ethertype
  new DataView(bytes.buffer).setUint32(14, tag);
  return bytes;
}

function tagOf(bytes: Uint8Array): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(14);
}

describe('UnixDgramTransport', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vnt-dgram-'));
  const opened: UnixDgramTransport[] = [];
  let next = 0;

  function open(localPath: string, remotePath: string | null): UnixDgramTransport {
    const transport = UnixDgramTransport.open({ localPath, remotePath });
    opened.push(transport);
    return transport;
  }

  /** A connected pair: `a` knows `b`'s path, `b` learns `a` from its first datagram. */
  function pair(): { a: UnixDgramTransport; b: UnixDgramTransport } {
    const n = next++;
    const b = open(join(dir, `b${n}.sock`), null);
    const a = open(join(dir, `a${n}.sock`), join(dir, `b${n}.sock`));
    return { a, b };
  }

  /** Collects the tags of frames received, copying nothing else. */
  function collect(transport: UnixDgramTransport): number[] {
    const tags: number[] = [];
    transport.onFrame = (bytes) => tags.push(tagOf(bytes));
    transport.start();
    return tags;
  }

  after(() => {
    try {
      for (const transport of opened) transport.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('exchanges frames both ways; the second side learns the first', async () => {
    const { a, b } = pair();
    assert.equal(a.kind, 'unix-dgram');
    const atA = collect(a);
    const atB = collect(b);
    b.send(frame(99)); // no peer known yet: dropped
    for (let tag = 1; tag <= 3; tag++) a.send(frame(tag));
    await waitFor('frames at b', () => atB.length === 3);
    assert.deepEqual(atB, [1, 2, 3]);
    for (let tag = 11; tag <= 13; tag++) b.send(frame(tag));
    await waitFor('frames at a', () => atA.length === 3);
    assert.deepEqual(atA, [11, 12, 13]);
    const { framesOut, bytesOut, framesIn, bytesIn } = a.stats;
    assert.deepEqual([framesOut, bytesOut, framesIn, bytesIn], [3, 3 * 60, 3, 3 * 60]);
    assert.equal(b.stats.dropsOut, 1, 'the frame sent before any peer was known');
  });

  it('carries frames of every size up to MAX_FRAME', async () => {
    const { a, b } = pair();
    const sizes: number[] = [];
    b.onFrame = (bytes) => sizes.push(bytes.length);
    b.start();
    for (const size of [18, 1514, 9000, 65535 + 18]) a.send(frame(size, size));
    await waitFor('all sizes', () => sizes.length === 4);
    assert.deepEqual(sizes, [18, 1514, 9000, 65553]);
  });

  it('writes a large frame at once, after the small ones before it, and never reads its buffer again', async () => {
    const { a, b } = pair();
    const got: Array<[number, number]> = [];
    b.onFrame = (bytes) => got.push([tagOf(bytes), bytes.length]);
    b.start();
    const large = frame(2, DIRECT_WRITE_MIN);
    a.send(frame(1));
    a.send(large);
    assert.equal(a.stats.framesOut, 2, 'the small frame went with the large one, before it');
    new DataView(large.buffer).setUint32(14, 999); // the caller reuses its buffer
    a.send(frame(3));
    await waitFor('three frames', () => got.length === 3);
    assert.deepEqual(got, [[1, 60], [2, DIRECT_WRITE_MIN], [3, 60]]);
  });

  it('keeps a copy of a large frame the peer cannot take yet', async () => {
    const { a, b } = pair();
    const total = 200;
    const reused = frame(0, 4 * DIRECT_WRITE_MIN); // one buffer for every send, as the TCP NAT's segments
    for (let tag = 0; tag < total; tag++) {
      new DataView(reused.buffer).setUint32(14, tag);
      a.send(reused);
    }
    assert.ok(a.stats.framesOut < total, 'the receiver queue filled up');
    const atB = collect(b);
    await waitFor('every frame', () => atB.length === total);
    assert.deepEqual(atB, Array.from({ length: total }, (_, tag) => tag));
    assert.equal(a.stats.dropsOut, 0);
  });

  it('talks to a QEMU-like peer: counts runts as dropsIn, answers to its path', async () => {
    const ours = join(dir, 'vnet.sock');
    const qemu = join(dir, 'qemu.sock');
    const transport = open(ours, qemu);
    const received: number[] = [];
    transport.onFrame = (bytes) => {
      received.push(tagOf(bytes));
      transport.send(frame(tagOf(bytes) + 1));
    };
    transport.start();
    const peer = [
      'import socket, sys',
      's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
      `s.bind(${JSON.stringify(qemu)})`,
      's.settimeout(5)',
      `s.sendto(b"runt", ${JSON.stringify(ours)})`,
      `s.sendto(bytes(12) + b"\\x88\\xb5" + (41).to_bytes(4, "big") + bytes(42), ${JSON.stringify(ours)})`,
      'reply = s.recv(70000)',
      'print(len(reply), int.from_bytes(reply[14:18], "big"))',
    ].join('\n');
    const { stdout } = await run('python3', ['-c', peer], { timeout: 10_000 });
    assert.equal(stdout.trim(), '60 42');
    assert.deepEqual(received, [41]);
    assert.equal(transport.stats.dropsIn, 1);
  });

  it('holds frames the peer cannot take yet and delivers them all, in order', async () => {
    const { a, b } = pair();
    const total = 300;
    for (let tag = 0; tag < total; tag++) a.send(frame(tag));
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(a.stats.framesOut < total, 'the receiver queue filled up');
    const atB = collect(b);
    await waitFor('every frame', () => atB.length === total);
    assert.deepEqual(atB, Array.from({ length: total }, (_, tag) => tag));
    assert.equal(a.stats.framesOut, total);
    assert.equal(a.stats.dropsOut, 0);
  });

  it('drops what exceeds the backlog limit, and counts it', async () => {
    const { a, b } = pair();
    const total = BACKLOG_LIMIT + 200;
    for (let tag = 0; tag < total; tag++) a.send(frame(tag));
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(a.stats.dropsOut > 0);
    const atB = collect(b);
    await waitFor('the backlog to drain', () => atB.length + a.stats.dropsOut === total);
    assert.equal(a.stats.framesOut, atB.length);
    assert.deepEqual(atB.slice(0, 5), [0, 1, 2, 3, 4], 'oldest first');
  });

  it('reaches a peer that restarted at the same path', async () => {
    const { a, b } = pair();
    const first = collect(b);
    a.send(frame(1));
    await waitFor('first frame', () => first.length === 1);
    const path = b.localPath;
    b.close();
    const reborn = open(path, null);
    const second = collect(reborn);
    a.send(frame(2));
    await waitFor('frame at the restarted peer', () => second.length === 1);
    assert.deepEqual(second, [2]);
  });

  it('lets go of a closed Poller; a method kept after it was collected throws, as closed', async () => {
    // The native methods are bound to their object (native/src/bound_methods.c): this one outlives it.
    const { kept: writeFrame, collected } = await keptAfterCollection((register) => {
      const addon = nativeAddon();
      const poller = new addon.Poller(addon.openUnixDgram(join(dir, 'kept.sock')), () => {}, () => {}, () => {});
      register(poller);
      poller.close();
      return poller.writeFrame;
    });
    assert.ok(collected, 'a closed Poller is collected');
    assert.throws(() => writeFrame(frame(1), new Uint8Array(0)), { code: 'VNET_ERR_CLOSED' });
  });

  it('replaces a stale socket, refuses any other file, removes its socket on close', () => {
    const { a } = pair();
    const path = a.localPath;
    a.close();
    a.close(); // idempotent
    assert.equal(existsSync(path), false);

    const stale = open(join(dir, 'stale.sock'), null);
    const again = open(stale.localPath, null); // takes over the path
    assert.ok(statSync(again.localPath).isSocket());

    const plainFile = join(dir, 'not-a-socket');
    writeFileSync(plainFile, 'keep me');
    assert.throws(() => open(plainFile, null), (error: Error & { code?: string }) => {
      return error.code === 'VNET_ERR_UNIX_DGRAM' && /not-a-socket.*EEXIST/.test(error.message);
    });
    assert.ok(statSync(plainFile).isFile());
    assert.throws(() => open(join(dir, 'x'.repeat(120)), null), /ENAMETOOLONG/);
  });
});
