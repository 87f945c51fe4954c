import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { QemuStreamTransport, StreamDeframer, TransportError } from '../../../src/transport/qemu-stream.js';
import { MAX_FRAME } from '../../../src/transport/types.js';

/** Poll `cond` every 5 ms for at most `ms`. */
async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}

function frameOf(length: number, seed: number): Uint8Array {
  const f = new Uint8Array(length);
  for (let i = 0; i < length; i++) f[i] = (seed + i * 7) & 0xff;
  return f;
}

/** Length prefix + frame, as QEMU writes it. */
function encode(frames: Uint8Array[]): Uint8Array {
  const total = frames.reduce((n, f) => n + 4 + f.length, 0);
  const out = Buffer.alloc(total);
  let at = 0;
  for (const f of frames) {
    out.writeUInt32BE(f.length, at);
    out.set(f, at + 4);
    at += 4 + f.length;
  }
  return out;
}

/** Split `bytes` at the given cut points. */
function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const pieces: Uint8Array[] = [];
  let from = 0;
  for (const p of points) {
    pieces.push(bytes.subarray(from, p));
    from = p;
  }
  pieces.push(bytes.subarray(from));
  return pieces;
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'vnet-stream-'));
}

async function connectUnix(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ path }, () => resolve(s));
    s.once('error', reject);
  });
}

// --- parser ---

test('deframer: several frames in one chunk come out as views, without copies', () => {
  const frames = [frameOf(14, 1), frameOf(60, 2), frameOf(1514, 3)];
  const chunk = encode(frames);
  const got: Uint8Array[] = [];
  const d = new StreamDeframer((f) => {
    assert.equal(f.buffer, chunk.buffer);
    got.push(Uint8Array.from(f));
  });
  assert.equal(d.push(chunk), undefined);
  assert.deepEqual(got, frames);
});

test('deframer: prefix and frame split byte by byte', () => {
  const frames = [frameOf(20, 9), frameOf(100, 8)];
  const bytes = encode(frames);
  const got: Uint8Array[] = [];
  const d = new StreamDeframer((f) => got.push(Uint8Array.from(f)));
  for (let i = 0; i < bytes.length; i++) assert.equal(d.push(bytes.subarray(i, i + 1)), undefined);
  assert.deepEqual(got, frames);
});

test('deframer: lengths 0, 13 and MAX_FRAME+1 break the stream; 14 and MAX_FRAME do not', () => {
  for (const bad of [0, 13, MAX_FRAME + 1, 0xffffffff]) {
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(bad);
    const got: Uint8Array[] = [];
    const d = new StreamDeframer((f) => got.push(f));
    assert.equal(d.push(Buffer.concat([encode([frameOf(14, 0)]), prefix, Buffer.alloc(20)])), 'bad-length', `length ${bad}`);
    assert.equal(got.length, 1, 'the good frame before it still came out');
    assert.equal(d.push(encode([frameOf(14, 0)])), 'bad-length', 'stays broken');
    assert.equal(got.length, 1);
  }
  const got: number[] = [];
  const d = new StreamDeframer((f) => got.push(f.length));
  assert.equal(d.push(encode([frameOf(14, 0), frameOf(MAX_FRAME, 0)])), undefined);
  assert.deepEqual(got, [14, MAX_FRAME]);
});

test('deframer: stop() inside onFrame ends the chunk', () => {
  let n = 0;
  const d = new StreamDeframer(() => {
    n++;
    d.stop();
  });
  d.push(encode([frameOf(14, 0), frameOf(14, 0)]));
  assert.equal(n, 1);
  assert.equal(d.error, 'stopped');
});

test('property: any split of any frame sequence yields the same frames, each intact until its push returns', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 14, max: 3000 }), { minLength: 1, maxLength: 12 }),
      fc.array(fc.nat(), { maxLength: 30 }),
      (lengths, cuts) => {
        const frames = lengths.map((l, i) => frameOf(l, i));
        const got: Uint8Array[] = [];
        let views: Uint8Array[] = [];
        const d = new StreamDeframer((f) => {
          got.push(Uint8Array.from(f));
          views.push(f);
        });
        for (const piece of split(encode(frames), cuts)) {
          assert.equal(d.push(piece), undefined);
          // What was handed out must not change before the push's microtasks (FrameTransport's contract).
          views.forEach((view, i) => assert.deepEqual(Uint8Array.from(view), got[got.length - views.length + i]));
          views = [];
        }
        assert.deepEqual(got, frames);
      },
    ),
    { numRuns: 500 },
  );
});

// --- transport over real sockets (unix sockets in a temp dir, TCP on 127.0.0.1) ---

test('unix: socket is 0600, frames split across writes arrive whole (property, real socket)', async () => {
  const dir = tempDir();
  const path = join(dir, 'nic1.sock');
  const t = await QemuStreamTransport.listen({ path });
  try {
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(t.address, `unix:${path}`);
    const got: Uint8Array[] = [];
    t.onFrame = (f) => got.push(Uint8Array.from(f));
    t.start();
    const client = await connectUnix(path);
    await until(() => t.connected);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 14, max: 9000 }), { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        async (lengths, cuts) => {
          got.length = 0;
          const frames = lengths.map((l, i) => frameOf(l, i + 3));
          for (const piece of split(encode(frames), cuts)) {
            client.write(piece);
            await new Promise((r) => setImmediate(r));
          }
          await until(() => got.length >= frames.length);
          assert.deepEqual(got, frames);
        },
      ),
      { numRuns: 25 },
    );
    assert.equal(t.stats.dropsIn, 0);
    client.destroy();
  } finally {
    t.close();
    await until(() => !existsSync(path));
    rmSync(dir, { recursive: true, force: true });
  }
});

test('send frames each frame with a 4-byte big-endian length; drops while nobody is connected', async () => {
  const t = await QemuStreamTransport.listen({ host: '127.0.0.1', port: 0 });
  try {
    assert.match(t.address, /^tcp:127\.0\.0\.1:\d+$/);
    t.send(frameOf(60, 0));
    assert.equal(t.stats.dropsOut, 1);
    const received: Buffer[] = [];
    const client = connect({ host: '127.0.0.1', port: t.port! });
    client.on('data', (b: Buffer) => received.push(b));
    await until(() => t.connected);
    const a = frameOf(60, 1);
    const b = frameOf(1514, 2);
    t.send(a);
    t.send(b);
    a.fill(0); // send copied it
    t.send(new Uint8Array(13)); // runt: not sendable
    assert.equal(t.stats.dropsOut, 2);
    await until(() => Buffer.concat(received).length >= 4 + 60 + 4 + 1514);
    assert.deepEqual(Buffer.concat(received), Buffer.from(encode([frameOf(60, 1), b])));
    assert.equal(t.stats.framesOut, 2);
    assert.equal(t.stats.bytesOut, 60 + 1514);
    client.destroy();
  } finally {
    t.close();
  }
});

test('a bad length prefix closes the connection, not the transport; QEMU can reconnect', async () => {
  const dir = tempDir();
  const path = join(dir, 'nic.sock');
  const t = await QemuStreamTransport.listen({ path });
  const events: string[] = [];
  let closed = false;
  t.onConnect = () => events.push('connect');
  t.onDisconnect = (reason) => events.push(`disconnect: ${reason}`);
  t.onClose = () => (closed = true);
  const got: Uint8Array[] = [];
  t.onFrame = (f) => got.push(Uint8Array.from(f));
  t.start();
  try {
    const first = await connectUnix(path);
    let firstClosed = false;
    first.on('close', () => (firstClosed = true));
    first.on('error', () => {});
    first.write(encode([frameOf(20, 1)]));
    first.write(Uint8Array.of(0, 0, 0, 5, 1, 2, 3, 4, 5));
    await until(() => firstClosed);
    assert.equal(t.stats.dropsIn, 1);
    assert.equal(t.stats.framesIn, 1);
    assert.equal(t.connected, false);
    assert.equal(closed, false);

    const second = await connectUnix(path);
    await until(() => t.connected);
    second.write(encode([frameOf(30, 2)]));
    await until(() => got.length === 2);
    assert.deepEqual(got[1], frameOf(30, 2));
    second.end();
    await until(() => !t.connected);
    assert.deepEqual(events, ['connect', 'disconnect: bad length prefix', 'connect', 'disconnect: guest disconnected']);
    assert.equal(closed, false, 'onClose is not for guests leaving');
    assert.equal(t.connections, 2);
  } finally {
    t.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a second connection replaces the first', async () => {
  const t = await QemuStreamTransport.listen({ host: '127.0.0.1', port: 0 });
  const got: number[] = [];
  t.onFrame = (f) => got.push(f[0]!);
  t.start();
  try {
    const first = connect({ host: '127.0.0.1', port: t.port! });
    first.on('error', () => {});
    let firstClosed = false;
    first.on('close', () => (firstClosed = true));
    await until(() => t.connections === 1);
    const second = connect({ host: '127.0.0.1', port: t.port! });
    await until(() => t.connections === 2 && firstClosed);
    assert.equal(t.connected, true);
    second.write(encode([frameOf(14, 42)]));
    await until(() => got.length === 1);
    assert.deepEqual(got, [42]);
    second.destroy();
  } finally {
    t.close();
  }
});

test('frames wait for start()', async () => {
  const t = await QemuStreamTransport.listen({ host: '127.0.0.1', port: 0 });
  const got: Uint8Array[] = [];
  t.onFrame = (f) => got.push(Uint8Array.from(f));
  try {
    const client = connect({ host: '127.0.0.1', port: t.port! });
    client.write(encode([frameOf(14, 5)]));
    await until(() => t.connected);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(got.length, 0);
    t.start();
    await until(() => got.length === 1);
    client.destroy();
  } finally {
    t.close();
  }
});

test('stale socket file is replaced; a regular file is not removed', async () => {
  const dir = tempDir();
  try {
    const stalePath = join(dir, 'stale.sock');
    // A listener that exits without closing leaves its socket file behind, as a killed daemon does.
    spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stalePath)}, () => process.exit(0))`]);
    assert.ok(existsSync(stalePath), 'the stale socket file exists');
    const t = await QemuStreamTransport.listen({ path: stalePath });
    assert.equal(statSync(stalePath).mode & 0o777, 0o600);
    t.close();

    const filePath = join(dir, 'not-a-socket');
    writeFileSync(filePath, 'keep me');
    await assert.rejects(QemuStreamTransport.listen({ path: filePath }), (err: unknown) => {
      assert.ok(err instanceof TransportError);
      assert.equal(err.code, 'VNET_ERR_INVALID_VALUE');
      assert.match(err.message, /not a socket/);
      return true;
    });
    assert.ok(existsSync(filePath));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('TCP port in use is a TransportError naming the port', async () => {
  const t = await QemuStreamTransport.listen({ host: '127.0.0.1', port: 0 });
  try {
    await assert.rejects(QemuStreamTransport.listen({ host: '127.0.0.1', port: t.port! }), (err: unknown) => {
      assert.ok(err instanceof TransportError);
      assert.equal(err.code, 'VNET_ERR_PORT_IN_USE');
      assert.ok(err.message.includes(String(t.port)), err.message);
      return true;
    });
  } finally {
    t.close();
  }
});

test('close is idempotent and drops the guest without onDisconnect', async () => {
  const t = await QemuStreamTransport.listen({ host: '127.0.0.1', port: 0 });
  let disconnects = 0;
  t.onDisconnect = () => disconnects++;
  t.start();
  const client = connect({ host: '127.0.0.1', port: t.port! });
  client.on('error', () => {});
  let clientClosed = false;
  client.on('close', () => (clientClosed = true));
  await until(() => t.connected);
  t.close();
  t.close();
  await until(() => clientClosed);
  assert.equal(disconnects, 0);
  t.send(frameOf(14, 0));
  assert.equal(t.stats.dropsOut, 1);
});
