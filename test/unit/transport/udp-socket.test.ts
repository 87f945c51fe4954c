// The native UDP sockets (native/src/udp.c through src/transport/udp-socket.ts),
// against Node dgram peers on the loopback only (127.0.0.1, ::1).
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { readdirSync } from 'node:fs';
import { once } from 'node:events';
import { after, describe, it } from 'node:test';

import { HOST_UDP_HEADROOM, type HostUdpBatch, type HostUdpHandlers, type HostUdpSocket } from '../../../src/nat/udp-nat.js';
import { nativeAddon, UDP_HEADROOM } from '../../../src/transport/native.js';
import { openNativeUdpSockets } from '../../../src/transport/udp-socket.js';

const LOOPBACK = 0x7f000001;
const WAIT_LIMIT_MS = 5_000;
/** How long "nothing comes" is watched for. */
const QUIET_MS = 200;

interface Received {
  payload: Buffer;
  address: number;
  port: number;
  address6?: Buffer;
  headroom: number;
}

/** Handlers that record everything a socket reports. */
class Recorder implements HostUdpHandlers {
  readonly datagrams: Received[] = [];
  readonly batches: number[] = [];
  readonly errors: { code: string; fatal: boolean }[] = [];
  readonly drops: Record<string, number> = {};
  onBatch: (batch: HostUdpBatch) => void = () => {};

  received(batch: HostUdpBatch): void {
    this.batches.push(batch.count);
    for (let i = 0; i < batch.count; i++) {
      const payload = batch.payload(i);
      const address = batch.address(i);
      this.datagrams.push({
        payload: Buffer.from(payload),
        address,
        port: batch.port(i),
        address6: address === 0 ? Buffer.from(batch.address6(i)) : undefined,
        headroom: payload.byteOffset,
      });
      this.onBatch(batch);
    }
  }
  error(code: string, fatal: boolean): void {
    this.errors.push({ code, fatal });
  }
  dropped(reason: string, count: number): void {
    this.drops[reason] = (this.drops[reason] ?? 0) + count;
  }
}

async function until(what: string, done: () => boolean): Promise<void> {
  const deadline = Date.now() + WAIT_LIMIT_MS;
  while (!done()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const quiet = () => new Promise((resolve) => setTimeout(resolve, QUIET_MS));

const peers: Socket[] = [];
async function peer(type: 'udp4' | 'udp6' = 'udp4', address = type === 'udp4' ? '127.0.0.1' : '::1'): Promise<Socket> {
  const socket = createSocket(type);
  peers.push(socket);
  socket.bind(0, address);
  await once(socket, 'listening');
  return socket;
}

/** A loopback port nothing listens on (bound once, then released). */
async function closedPort(): Promise<number> {
  const socket = createSocket('udp4');
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  const { port } = socket.address();
  socket.close();
  return port;
}

function sendFrom(socket: Socket, payload: Uint8Array, port: number, address = '127.0.0.1'): Promise<void> {
  return new Promise((resolve, reject) => socket.send(payload, port, address, (err) => (err ? reject(err) : resolve())));
}

const openFds = (): number => readdirSync('/proc/self/fd').length;

const ipv6Loopback = await (async () => {
  const socket = createSocket('udp6');
  try {
    socket.bind(0, '::1');
    await once(socket, 'listening');
    return true;
  } catch {
    return false;
  } finally {
    socket.close();
  }
})();

describe('native UDP sockets', () => {
  const opened: HostUdpSocket[] = [];
  after(() => {
    for (const s of opened) s.close();
    for (const p of peers) p.close();
  });
  const sockets = openNativeUdpSockets(1472);
  const open = (options: Parameters<typeof sockets.open>[0], handlers: HostUdpHandlers): HostUdpSocket => {
    const socket = sockets.open(options, handlers);
    opened.push(socket);
    return socket;
  };

  it('receives a burst in batches, with each source address and port, and headroom before each payload', async () => {
    const recorder = new Recorder();
    const socket = open({ bindAddress: '127.0.0.1', bindPort: 0, bufferBytes: 1 << 20 }, recorder);
    assert.ok(socket.port > 0);
    const a = await peer();
    const b = await peer();
    // Sent before the loop polls the socket again: they queue in its buffer and come in batches.
    for (let i = 0; i < 100; i++) a.send(Buffer.from(`a${i}`), socket.port, '127.0.0.1');
    b.send(Buffer.from('from b'), socket.port, '127.0.0.1');
    await until('101 datagrams', () => recorder.datagrams.length === 101);
    assert.ok(recorder.batches.some((count) => count > 1), `batches: ${recorder.batches.join(',')}`);
    assert.ok(recorder.batches.every((count) => count <= 64));
    const fromA = recorder.datagrams.filter((d) => d.port === a.address().port);
    assert.deepEqual(
      fromA.map((d) => d.payload.toString()),
      Array.from({ length: 100 }, (_, i) => `a${i}`),
    );
    const fromB = recorder.datagrams.find((d) => d.port === b.address().port);
    assert.equal(fromB?.payload.toString(), 'from b');
    for (const d of recorder.datagrams) {
      assert.equal(d.address, LOOPBACK);
      assert.ok(d.headroom >= HOST_UDP_HEADROOM);
    }
  });

  it('sends what one turn queued, to the connected peer or to each datagram’s address', async () => {
    const server = await peer();
    const got: string[] = [];
    server.on('message', (m) => got.push(m.toString()));
    const connected = open({ connectAddress: '127.0.0.1', connectPort: server.address().port }, new Recorder());
    for (let i = 0; i < 200; i++) connected.send(Buffer.from(`c${i}`));
    await until('200 datagrams', () => got.length === 200);
    assert.deepEqual(got, Array.from({ length: 200 }, (_, i) => `c${i}`));

    const other = await peer();
    const gotOther: string[] = [];
    other.on('message', (m) => gotOther.push(m.toString()));
    const unconnected = open({ bindAddress: '127.0.0.1' }, new Recorder());
    // Interleaved with the connected socket's: each socket's datagrams still leave in order.
    for (let i = 0; i < 10; i++) {
      unconnected.send(Buffer.from(`u${i}`), LOOPBACK, other.address().port);
      connected.send(Buffer.from(`d${i}`));
    }
    await until('10 + 10 datagrams', () => gotOther.length === 10 && got.length === 210);
    assert.deepEqual(gotOther, Array.from({ length: 10 }, (_, i) => `u${i}`));
    assert.deepEqual(got.slice(200), Array.from({ length: 10 }, (_, i) => `d${i}`));
  });

  it('a payload queued is a copy: the caller may reuse its buffer at once', async () => {
    const server = await peer();
    const got: string[] = [];
    server.on('message', (m) => got.push(m.toString()));
    const socket = open({ connectAddress: '127.0.0.1', connectPort: server.address().port }, new Recorder());
    const buffer = Buffer.from('first');
    socket.send(buffer);
    buffer.write('XXXXX');
    socket.send(buffer);
    await until('2 datagrams', () => got.length === 2);
    assert.deepEqual(got, ['first', 'XXXXX']);
  });

  it('a peer that answers with ICMP port unreachable is reported as ECONNREFUSED, and the socket stays open', async () => {
    const recorder = new Recorder();
    const socket = open({ connectAddress: '127.0.0.1', connectPort: await closedPort() }, recorder);
    socket.send(Buffer.from('anyone?'));
    await until('ECONNREFUSED', () => recorder.errors.length > 0);
    assert.deepEqual(recorder.errors[0], { code: 'ECONNREFUSED', fatal: false });
    // Still usable: another refusal is reported again.
    socket.send(Buffer.from('still?'));
    await until('a second ECONNREFUSED', () => recorder.errors.length > 1);
    assert.ok(recorder.errors.every((e) => e.code === 'ECONNREFUSED' && !e.fatal));
  });

  it('a datagram longer than a slot is dropped and counted, the others delivered', async () => {
    const small = openNativeUdpSockets(100);
    const recorder = new Recorder();
    const socket = small.open({ bindAddress: '127.0.0.1' }, recorder);
    opened.push(socket);
    const client = await peer();
    await sendFrom(client, new Uint8Array(101), socket.port);
    await sendFrom(client, new Uint8Array(100).fill(7), socket.port);
    await until('one datagram', () => recorder.datagrams.length === 1);
    await quiet();
    assert.equal(recorder.datagrams.length, 1);
    assert.equal(recorder.datagrams[0]!.payload.length, 100);
    assert.deepEqual(recorder.drops, { 'udp:too-long': 1 });
  });

  it('a busy host port is EADDRINUSE', async () => {
    const busy = await peer();
    assert.throws(
      () => sockets.open({ bindAddress: '127.0.0.1', bindPort: busy.address().port }, new Recorder()),
      (err: NodeJS.ErrnoException) => err.code === 'EADDRINUSE' && /127\.0\.0\.1/.test(err.message),
    );
  });

  it('close is idempotent; closed inside `received`, the rest of the batch and every later datagram go unseen', async () => {
    const recorder = new Recorder();
    const socket = sockets.open({ bindAddress: '127.0.0.1' }, recorder);
    recorder.onBatch = () => socket.close();
    const client = await peer();
    for (let i = 0; i < 20; i++) client.send(Buffer.from(`x${i}`), socket.port, '127.0.0.1');
    await until('the first datagram', () => recorder.datagrams.length > 0);
    await quiet();
    assert.equal(recorder.datagrams.length, 1);
    socket.close();
    socket.send(Buffer.from('late'));
    assert.deepEqual(recorder.drops, { 'udp:socket-closed': 1 });
    assert.deepEqual(recorder.errors, []);
  });

  it('datagrams queued by a socket closed before the flush are not sent', async () => {
    const server = await peer();
    const got: string[] = [];
    server.on('message', (m) => got.push(m.toString()));
    const socket = sockets.open({ connectAddress: '127.0.0.1', connectPort: server.address().port }, new Recorder());
    socket.send(Buffer.from('never'));
    socket.close();
    const other = open({ connectAddress: '127.0.0.1', connectPort: server.address().port }, new Recorder());
    other.send(Buffer.from('sent'));
    await until('one datagram', () => got.length === 1);
    await quiet();
    assert.deepEqual(got, ['sent']);
  });

  it('IPv6: a client is seen by its 16-byte address and answered there', { skip: ipv6Loopback ? false : 'no ::1' }, async () => {
    const recorder = new Recorder();
    const socket = open({ bindAddress: '::1' }, recorder);
    const client = await peer('udp6');
    const answers: string[] = [];
    client.on('message', (m) => answers.push(m.toString()));
    await sendFrom(client, Buffer.from('hello'), socket.port, '::1');
    await until('the datagram', () => recorder.datagrams.length === 1);
    const d = recorder.datagrams[0]!;
    assert.equal(d.address, 0);
    assert.equal(d.port, client.address().port);
    assert.deepEqual([...d.address6!], [...new Uint8Array(15), 1]);
    assert.ok(UDP_HEADROOM - 16 >= HOST_UDP_HEADROOM, 'frame headers built in front of a payload leave its peer address alone');
    socket.send(Buffer.from('hi back'), 0, d.port, d.address6);
    await until('the answer', () => answers.length === 1);
    assert.equal(answers[0], 'hi back');
  });

  it('rejects bad arguments in the addon: a UdpSocket takes only UdpBuffers, sends only entries inside the slab', () => {
    const addon = nativeAddon();
    const { fd } = addon.openUdpSocket({ bindAddress: '127.0.0.1' });
    const buffers = new addon.UdpBuffers(100);
    // Its properties without the native tag: refused, and the fd stays ours.
    assert.throws(() => new addon.UdpSocket(fd, { ...buffers }, () => {}, () => {}), /UdpBuffers/);
    const socket = new addon.UdpSocket(fd, buffers, () => {}, () => {});
    buffers.txMeta.set([0, 10, LOOPBACK, 9]); // offset 0: no headroom before it
    assert.throws(() => socket.send(0, 1), /outside txSlab/);
    assert.throws(() => socket.send(0, 100_000), /beyond txMeta/);
    socket.close();
    socket.close();
    assert.throws(() => socket.send(0, 0), /closed/);
    assert.throws(() => addon.openUdpSocket({ bindAddress: 'nowhere' }), /IP addresses/);
    assert.throws(() => addon.openUdpSocket({ bindAddress: '127.0.0.1', connectAddress: '::1', connectPort: 9 }), /same family/);
  });

  it('opening and closing sockets leaks no fd, failed opens included', async () => {
    const before = openFds();
    const busy = await peer();
    const fdsWithPeer = openFds();
    for (let i = 0; i < 50; i++) {
      sockets.open({ connectAddress: '127.0.0.1', connectPort: 9 }, new Recorder()).close();
      assert.throws(() => sockets.open({ bindAddress: '127.0.0.1', bindPort: busy.address().port }, new Recorder()));
    }
    // Closed fds go at once; the uv handles finish closing on the next loop turn.
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(openFds(), fdsWithPeer);
    assert.ok(fdsWithPeer >= before);
  });
});
