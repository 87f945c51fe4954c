import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { UdpTunnelTransport } from '../../../src/transport/udp.js';
import { TransportError } from '../../../src/transport/qemu-stream.js';

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A UDP port on loopback that was free a moment ago. */
async function freePort(type: 'udp4' | 'udp6' = 'udp4'): Promise<number> {
  const s = createSocket(type);
  await new Promise<void>((r) => s.bind(0, type === 'udp4' ? '127.0.0.1' : '::1', r));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function frameOf(length: number, seed: number): Uint8Array {
  const f = new Uint8Array(length);
  for (let i = 0; i < length; i++) f[i] = (seed + i * 3) & 0xff;
  return f;
}

async function pair(type: 'udp4' | 'udp6' = 'udp4'): Promise<[UdpTunnelTransport, UdpTunnelTransport]> {
  const host = type === 'udp4' ? '127.0.0.1' : '::1';
  const pa = await freePort(type);
  const pb = await freePort(type);
  const a = await UdpTunnelTransport.open({ sport: pa, dest: host, dport: pb });
  const b = await UdpTunnelTransport.open({ sport: pb, dest: host, dport: pa });
  return [a, b];
}

test('two tunnels on 127.0.0.1 exchange frames, one per datagram', async () => {
  const [a, b] = await pair();
  const gotA: Uint8Array[] = [];
  const gotB: Uint8Array[] = [];
  a.onFrame = (f) => gotA.push(Uint8Array.from(f));
  b.onFrame = (f) => gotB.push(Uint8Array.from(f));
  a.start();
  b.start();
  try {
    const big = frameOf(1514, 1);
    a.send(big);
    big.fill(0); // send copied it
    a.send(frameOf(60, 2));
    b.send(frameOf(14, 3));
    await until(() => gotB.length === 2 && gotA.length === 1);
    assert.deepEqual(gotB, [frameOf(1514, 1), frameOf(60, 2)]);
    assert.deepEqual(gotA, [frameOf(14, 3)]);
    assert.equal(a.kind, 'udp');
    assert.deepEqual(a.stats, { framesIn: 1, bytesIn: 14, framesOut: 2, bytesOut: 1574, dropsOut: 0, dropsIn: 0 });
  } finally {
    a.close();
    b.close();
  }
});

test('IPv6 loopback works too', async (t) => {
  let tunnels: [UdpTunnelTransport, UdpTunnelTransport];
  try {
    tunnels = await pair('udp6');
  } catch {
    t.skip('no IPv6 loopback here');
    return;
  }
  const [a, b] = tunnels;
  const got: Uint8Array[] = [];
  b.onFrame = (f) => got.push(Uint8Array.from(f));
  a.start();
  b.start();
  try {
    a.send(frameOf(100, 9));
    await until(() => got.length === 1);
    assert.deepEqual(got[0], frameOf(100, 9));
  } finally {
    a.close();
    b.close();
  }
});

test('datagrams from anyone but dest:dport, runts and early arrivals are dropped and counted', async () => {
  const [a, b] = await pair();
  const got: Uint8Array[] = [];
  b.onFrame = (f) => got.push(f);
  const stranger = createSocket('udp4');
  try {
    a.send(frameOf(60, 0)); // before b.start()
    await until(() => b.stats.dropsIn === 1);
    b.start();
    await new Promise<void>((r) => stranger.send(frameOf(60, 0), b.sport, '127.0.0.1', () => r()));
    await until(() => b.stats.dropsIn === 2);
    a.send(frameOf(13, 0)); // refused by the sender
    assert.equal(a.stats.dropsOut, 1);
    // A runt from the right peer: `send` refuses runts, so write it on a's socket directly.
    (a as unknown as { socket: import('node:dgram').Socket }).socket.send(new Uint8Array(10), b.sport, '127.0.0.1');
    await until(() => b.stats.dropsIn === 3);
    a.send(frameOf(60, 7));
    await until(() => got.length === 1);
    assert.equal(b.stats.framesIn, 1);
  } finally {
    stranger.close();
    a.close();
    b.close();
  }
});

test('a port in use rejects with a TransportError naming the port', async () => {
  const [a, b] = await pair();
  try {
    await assert.rejects(UdpTunnelTransport.open({ sport: a.sport, dest: '127.0.0.1', dport: 9 }), (err: unknown) => {
      assert.ok(err instanceof TransportError);
      assert.equal(err.code, 'VNET_ERR_PORT_IN_USE');
      assert.ok(err.message.includes(`UDP port ${a.sport}`), err.message);
      return true;
    });
  } finally {
    a.close();
    b.close();
  }
});

test('bad options are rejected before binding', async () => {
  await assert.rejects(UdpTunnelTransport.open({ sport: 70000, dest: '127.0.0.1', dport: 1 }), /sport/);
  await assert.rejects(UdpTunnelTransport.open({ sport: 0, dest: '127.0.0.1', dport: 0 }), /dport/);
  await assert.rejects(
    UdpTunnelTransport.open({ localAddress: '::1', sport: 0, dest: '127.0.0.1', dport: 9 }),
    /not the same IP version/,
  );
});

test('sending to a peer that is not listening does not break the tunnel', async () => {
  const dead = await freePort();
  const a = await UdpTunnelTransport.open({ sport: 0, dest: '127.0.0.1', dport: dead });
  let closed = false;
  a.onClose = () => (closed = true);
  a.start();
  try {
    for (let i = 0; i < 5; i++) {
      a.send(frameOf(60, i));
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(a.stats.framesOut, 5);
    assert.equal(closed, false);
  } finally {
    a.close();
    a.close();
  }
  a.send(frameOf(60, 0));
  assert.equal(a.stats.dropsOut >= 1, true);
});
