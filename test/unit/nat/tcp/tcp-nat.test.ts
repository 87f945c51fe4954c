import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { READ_BLOCK_SIZE } from '../../../../src/nat/tcp/block-pool.js';
import { TcpNat, type TcpNatOptions } from '../../../../src/nat/tcp/tcp-nat.js';
import { flowKey } from '../../../../src/nat/tcp/connection.js';
import { TcpFlags } from '../../../../src/wire/tcp.js';
import { sleep } from '../../../helpers/lab.js';
import { acceptedNetSocket, listenNetHostTcp, netHostStream } from '../../../../src/nat/tcp/host-stream.js';
import { NativeHostStreams } from '../../../../src/transport/tcp-socket.js';
import {
  FakeGuest,
  FakeLink,
  GATEWAY_IP,
  GUEST_IP,
  GuestTcp,
  has,
  recordSegments,
  REMOTE_IP,
  sha256,
  until,
  type Segment,
} from './fake-guest.js';

interface Server {
  port: number;
  sockets: net.Socket[];
  close(): Promise<void>;
}

/** A loopback server; `onSocket` gets each accepted socket (half-open allowed). */
async function listen(onSocket: (s: net.Socket) => void = () => {}): Promise<Server> {
  const sockets: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.push(s);
    s.on('error', () => {});
    onSocket(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    sockets,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A loopback port with nothing listening. */
async function closedPort(): Promise<number> {
  const s = await listen();
  await s.close();
  return s.port;
}

interface Rig {
  link: FakeLink;
  nat: TcpNat;
  guest: FakeGuest;
  icmps: Array<{ original: Uint8Array; code: number }>;
  /** The host sockets (absent with `net: true`). */
  streams: NativeHostStreams | undefined;
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/**
 * A NAT on a fake link. Host sockets are the addon's, as in the daemon;
 * `net: true` uses TcpNat's default instead (a net.Socket each).
 */
function rig(options: Partial<TcpNatOptions> & { mtu?: number; net?: boolean } = {}): Rig {
  const link = new FakeLink(options.mtu ?? 1500);
  const icmps: Rig['icmps'] = [];
  const streams = options.net ? undefined : new NativeHostStreams();
  const nat = new TcpNat({
    link,
    sendIcmpUnreachable: (original, code) => icmps.push({ original: Uint8Array.from(original), code }),
    ...(streams && { connect: streams.open }),
    ...options,
  });
  const guest = new FakeGuest(nat, link);
  cleanups.push(() => {
    nat.close();
    streams?.close();
    assert.deepEqual(link.errors, [], 'every emitted frame is well-formed');
  });
  return { link, nat, guest, icmps, streams };
}

async function server(onSocket?: (s: net.Socket) => void): Promise<Server> {
  const s = await listen(onSocket);
  cleanups.push(() => s.close());
  return s;
}

let nextPort = 40000;
function port(): number {
  return nextPort++;
}

/** A clock the test moves by hand. */
function fakeClock(): { now: number; clock: () => number } {
  const c = { now: 1_000_000, clock: () => c.now };
  return c;
}

describe('TcpNat handshake', () => {
  it('connects the host socket first, then answers SYN-ACK with MSS and window scale', async () => {
    const { nat, link, guest } = rig();
    let accepted = 0;
    const srv = await server(() => accepted++);
    const c = new GuestTcp(guest, { localPort: port(), remotePort: srv.port, shift: 6, mss: 1400 });
    await c.connect();
    // The kernel completed the handshake before the SYN-ACK; the server's JS hears of it a round later.
    await until(() => accepted === 1, 1000, 'the accept');
    const synAck = link.sent.find((s) => has(s, TcpFlags.SYN))!;
    assert.equal(synAck.flags, TcpFlags.SYN | TcpFlags.ACK);
    assert.equal(synAck.srcIp, REMOTE_IP, 'the guest sees its SYN destination, not the host address');
    assert.equal(synAck.dstIp, GUEST_IP);
    assert.equal(synAck.srcPort, srv.port);
    assert.equal(synAck.ack, (c.iss + 1) >>> 0);
    assert.equal(synAck.options.mss, 1460, 'MSS is link MTU − 40');
    assert.equal(synAck.options.windowScale, 7);
    assert.equal(synAck.options.sackPermitted, undefined);
    assert.equal(nat.flowCount, 1);
    assert.equal(nat.stats().states.established, 1);
    // IP ID increments.
    const ids = link.sent.map((s) => s.ipId);
    for (let i = 1; i < ids.length; i++) assert.equal(ids[i], (ids[i - 1]! + 1) & 0xffff);
  });

  it('answers a loopback connect in the SYN batch itself, not an event-loop round later', async () => {
    const srv = await server();
    const { link, guest } = rig();
    const c = new GuestTcp(guest, { localPort: port(), remotePort: srv.port });
    // As from a transport's callback: the connect(2) is done before the NAT's end-of-batch flush.
    await new Promise<void>((resolve) =>
      setImmediate(() => {
        c.sendSegment(TcpFlags.SYN, c.iss, 0, undefined, { mss: 1460 }, 0xffff);
        resolve();
      }),
    );
    assert.ok(link.sent.some((s) => s.flags === (TcpFlags.SYN | TcpFlags.ACK)), 'SYN-ACK before any I/O round');
  });

  it('does not offer window scaling to a guest that did not', async () => {
    const { link, guest } = rig();
    const srv = await server();
    const c = new GuestTcp(guest, { localPort: port(), remotePort: srv.port });
    await c.connect();
    const synAck = link.sent.find((s) => has(s, TcpFlags.SYN))!;
    assert.equal(synAck.options.windowScale, undefined);
  });

  it('takes a SYN with another ISN before the handshake completed as the guest starting over: the first host connection is reset', async () => {
    const { nat, guest } = rig();
    const srv = await server();
    const lp = port();
    guest.send({ srcPort: lp, dstPort: srv.port, seq: 5000, flags: TcpFlags.SYN, options: { mss: 1460 } });
    const synAck = await guest.next((s) => s.dstPort === lp);
    assert.equal(synAck.ack, 5001);
    // The guest never ACKs it and starts over from the same port with a new ISN.
    const c = new GuestTcp(guest, { localPort: lp, remotePort: srv.port });
    assert.notEqual(c.iss, 5000);
    await c.connect();
    c.write(Buffer.from('second try'));
    await until(() => srv.sockets.length === 2, 2000, 'the second host connection');
    const data: Buffer[] = [];
    srv.sockets[1]!.on('data', (d: Buffer) => data.push(d));
    await until(() => Buffer.concat(data).toString() === 'second try');
    await until(() => srv.sockets[0]!.destroyed, 2000, 'the first host connection closed');
    assert.equal(nat.flowCount, 1);
  });

  it('refuses at once with RST when the host port is closed', async () => {
    const { nat, guest } = rig();
    const p = await closedPort();
    const lp = port();
    guest.send({ srcPort: lp, dstPort: p, seq: 5000, flags: TcpFlags.SYN, options: { mss: 1460 } });
    const rst = await guest.next((s) => s.dstPort === lp);
    assert.equal(rst.flags, TcpFlags.RST | TcpFlags.ACK);
    assert.equal(rst.seq, 0);
    assert.equal(rst.ack, 5001);
    assert.equal(nat.flowCount, 0);
    assert.equal(nat.stats().refused, 1);
  });

  it('reports an unreachable host with ICMP, quoting the SYN', async () => {
    const unreachable = (): net.Socket => {
      const s = new net.Socket();
      process.nextTick(() => s.destroy(Object.assign(new Error('no route'), { code: 'EHOSTUNREACH' })));
      return s;
    };
    const { nat, icmps, guest } = rig({ connect: (_host, _port, events) => netHostStream(unreachable(), events) });
    guest.send({ srcPort: port(), dstPort: 80, seq: 1, flags: TcpFlags.SYN });
    await until(() => icmps.length === 1);
    assert.equal(icmps[0]!.code, 1);
    assert.equal(icmps[0]!.original[9], 6, 'the quoted packet is the guest TCP SYN');
    assert.equal(nat.flowCount, 0);
  });

  it('gives up a host connect that hangs and sends ICMP host unreachable', async () => {
    const time = fakeClock();
    const hanging: net.Socket[] = [];
    const { nat, icmps, guest } = rig({
      clock: time.clock,
      connect: (_host, _port, events) => {
        const s = new net.Socket();
        hanging.push(s);
        return netHostStream(s, events);
      },
    });
    guest.send({ srcPort: port(), dstPort: 80, seq: 1, flags: TcpFlags.SYN });
    guest.send({ srcPort: port(), dstPort: 80, seq: 1, flags: TcpFlags.SYN });
    assert.equal(nat.stats().connecting, 2);
    time.now += 19_000;
    nat.runTimers();
    assert.equal(icmps.length, 0);
    time.now += 1_001;
    nat.runTimers();
    assert.equal(icmps.length, 2);
    assert.equal(nat.flowCount, 0);
    assert.equal(nat.stats().connecting, 0);
    assert.ok(hanging.every((s) => s.destroyed));
  });

  it('answers segments for no connection with RST, and a RST with nothing', async () => {
    const { nat, guest } = rig();
    const lp = port();
    guest.send({ srcPort: lp, dstPort: 80, seq: 10, ack: 777, flags: TcpFlags.ACK, payload: Buffer.from('x') });
    const rst = await guest.next((s) => s.dstPort === lp);
    assert.equal(rst.flags, TcpFlags.RST);
    assert.equal(rst.seq, 777);
    guest.send({ srcPort: lp, dstPort: 80, seq: 10, flags: TcpFlags.RST });
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(guest.inbox.length, 0);
    assert.equal(nat.stats().drops['tcp:no-flow'], 2);
  });

  it('leaves no flow behind after 500 SYNs to a closed port', async () => {
    const { nat, guest } = rig();
    const p = await closedPort();
    for (let i = 0; i < 500; i++) guest.send({ srcPort: 20000 + i, dstPort: p, seq: i, flags: TcpFlags.SYN });
    await until(() => guest.inbox.filter((s) => has(s, TcpFlags.RST)).length === 500, 10_000, '500 RSTs');
    assert.equal(nat.flowCount, 0);
    assert.equal(nat.stats().connecting, 0);
  });
});

/** A segment's SACK blocks as [left, right] offsets from `base`; undefined when it carries none. */
const blocksFrom = (segment: Segment, base: number) => segment.options.sackBlocks?.map((b) => [b.left - base, b.right - base]);

describe('TcpNat data', () => {
  it('relays data both ways through an echo server', async () => {
    const { guest, link } = rig();
    const srv = await server((s) => s.pipe(s));
    const c = new GuestTcp(guest, { localPort: port(), remotePort: srv.port, shift: 7 });
    await c.connect();
    c.write(Buffer.from('hello, world'));
    await until(() => c.receivedBytes === 12);
    assert.equal(c.receivedData.toString(), 'hello, world');
    const data = link.sent.find((s) => s.payload.length > 0)!;
    assert.ok(has(data, TcpFlags.ACK) && has(data, TcpFlags.PSH));
  });

  it('moves 5 MB host → guest into a 16 KiB window, pausing the host socket', async () => {
    const { nat, guest, link } = rig();
    const payload = randomBytes(5 << 20);
    const srv = await server((s) => s.end(payload));
    const c = new GuestTcp(guest, { localPort: port(), remotePort: srv.port, window: 16384 });
    let maxQueued = 0;
    let maxInFlight = 0;
    c.onData = () => {
      for (const f of nat.connections()) {
        maxQueued = Math.max(maxQueued, f.queued);
        maxInFlight = Math.max(maxInFlight, f.inFlight);
      }
    };
    await c.connect();
    await until(() => c.finReceived, 30_000, 'the whole download');
    assert.equal(c.receivedBytes, payload.length);
    assert.equal(sha256(c.receivedData), sha256(payload));
    assert.ok(maxInFlight <= 16384, `in flight ${maxInFlight} within the guest's window`);
    assert.ok(maxQueued <= 512 * 1024, `queued ${maxQueued} stays bounded`);
    assert.ok(link.sent.every((s) => s.payload.length <= 1460));
    assert.ok(nat.readBlocks.freeCount > 0, 'read blocks acknowledged by the guest went back to the pool');
    c.end();
    await until(() => nat.flowCount === 0, 3000, 'the flow to go');
  });

  it('moves 5 MB guest → host while the host reads slowly, shrinking the window', async () => {
    // A unix socket toward the "host": its small kernel buffer lets the NAT's own buffer fill.
    const dir = mkdtempSync(join(tmpdir(), 'vnet-tcp-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'host.sock');
    const { nat, guest } = rig({
      limits: { receiveBuffer: 256 * 1024 },
      connect: (_host, _port, events) => netHostStream(net.connect({ path, allowHalfOpen: true }), events),
    });
    const payload = randomBytes(5 << 20);
    const chunks: Buffer[] = [];
    let ended = false;
    let maxBuffered = 0;
    const unix = net.createServer({ allowHalfOpen: true }, (s) => {
      s.pause();
      // Read in short bursts with pauses so the NAT's buffer fills.
      const tick = setInterval(() => {
        for (const f of nat.connections()) maxBuffered = Math.max(maxBuffered, f.buffered);
        s.resume();
        setTimeout(() => s.pause(), 1);
      }, 10);
      s.on('data', (d: Buffer) => chunks.push(d));
      s.on('end', () => {
        ended = true;
        clearInterval(tick);
        s.end();
      });
    });
    await new Promise<void>((r) => unix.listen(path, r));
    cleanups.push(() => new Promise<void>((r) => unix.close(() => r())));
    const c = new GuestTcp(guest, { localPort: port(), remotePort: 80, shift: 7, mss: 1460 });
    await c.connect();
    c.write(payload);
    c.end();
    await until(() => ended, 60_000, 'the whole upload');
    assert.equal(sha256(Buffer.concat(chunks)), sha256(payload));
    const minWindow = Math.min(...c.windowsSeen);
    assert.ok(minWindow < 32 * 1024, `the window shrank (min ${minWindow})`);
    assert.ok(Math.max(...c.windowsSeen) <= 256 * 1024 + 128, 'never more than the receive buffer');
    assert.ok(maxBuffered <= 256 * 1024 + 64 * 1024, `buffered toward the host stays bounded (${maxBuffered})`);
    await until(() => nat.flowCount === 0, 3000, 'the flow to go');
  });

  for (const timestamps of [false, true]) {
  it(`moves large segments at MTU 65520, built around the host reads in their blocks${timestamps ? ', with timestamps' : ''}`, async () => {
    const { guest, link } = rig({ mtu: 65520 });
    link.buildersOf = READ_BLOCK_SIZE;
    const payload = randomBytes(2 << 20);
    const chunks: Buffer[] = [];
    const srv = await server((s) => {
      s.on('data', (d: Buffer) => chunks.push(d));
      s.on('end', () => s.end(payload));
    });
    const c = new GuestTcp(guest, { localPort: port(), remotePort: srv.port, shift: 7, mss: 65480, window: 4 << 20, timestamps });
    await c.connect();
    c.write(payload);
    c.end();
    await until(() => c.finReceived, 20_000);
    assert.equal(sha256(Buffer.concat(chunks)), sha256(payload));
    assert.equal(sha256(c.receivedData), sha256(payload));
    assert.ok(link.sent.some((s) => s.payload.length > 32 * 1024), 'segments larger than 32 KiB');
    assert.ok(link.inBlocks > 0, 'some segments were built in place, not copied');
    assert.equal(link.sent.every((s) => (s.options.timestamp !== undefined) === timestamps), true);
  });
  }

  it('writes the large guest segments of one batch to the host in one call, done with their frames when the batch ends', async () => {
    const { guest, streams } = rig({ mtu: 65520 });
    const native = streams!.native;
    const gathers: number[] = [];
    const writev = native.writev.bind(native);
    const counted: typeof writev = (id, buffers) => (gathers.push(buffers.length), writev(id, buffers));
    Object.defineProperty(native, 'writev', { value: counted });
    const chunks: Buffer[] = [];
    const srv = await server((s) => s.on('data', (d: Buffer) => chunks.push(d)));
    const c = new GuestTcp(guest, { localPort: port(), remotePort: srv.port, shift: 7, mss: 65480, window: 4 << 20 });
    await c.connect();
    c.write(Buffer.from('open the window')); // its ACK carries the scaled window
    await until(() => chunks.length > 0);
    await sleep(20);
    chunks.length = 0;
    // The frames of one batch, overwritten once its microtasks have run: as a transport reuses its buffer.
    const frames: Uint8Array[] = [];
    const send = guest.send.bind(guest);
    guest.send = (fields) => send(fields, (frame) => frames.push(frame));
    const payload = randomBytes(4 * 65480);
    c.write(payload);
    guest.send = send;
    // The earliest the contract allows: after the microtasks queued while they were handed over.
    void Promise.resolve().then(() => frames.forEach((f) => f.fill(0)));
    await until(() => chunks.reduce((n, d) => n + d.length, 0) === payload.length, 5000, 'the upload');
    assert.equal(sha256(Buffer.concat(chunks)), sha256(payload));
    assert.deepEqual(gathers, [4], 'the four segments in one writev');
  });

  it('retransmits a lost segment after the RTO (fake clock)', async () => {
    const time = fakeClock();
    const { nat, guest, link } = rig({ clock: time.clock });
    let srvSocket: net.Socket | undefined;
    const srv = await server((s) => (srvSocket = s));
    const c = new GuestTcp(guest, { localPort: port(), remotePort: srv.port });
    await c.connect();
    let dropped: Segment | undefined;
    link.drop = (s) => {
      if (dropped === undefined && s.payload.length > 0) {
        dropped = s;
        return true;
      }
      return false;
    };
    srvSocket!.write('lost once');
    await until(() => dropped !== undefined);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(c.receivedBytes, 0);
    // The handshake gave an RTT sample of 0 ms: RTO is the 200 ms floor.
    time.now += 199;
    nat.runTimers();
    assert.equal(nat.stats().retransmits, 0);
    time.now += 2;
    nat.runTimers();
    assert.equal(nat.stats().retransmits, 1);
    await until(() => c.receivedBytes === 9);
    assert.equal(c.receivedData.toString(), 'lost once');
    const resent = link.sent.filter((s) => s.payload.length > 0);
    assert.equal(resent.length, 2);
    assert.equal(resent[1]!.seq, dropped!.seq);
  });

  it('fast-retransmits on three duplicate ACKs', async () => {
    const { nat, guest, link } = rig();
    const payload = randomBytes(200 * 1024);
    const srv = await server((s) => s.end(payload));
    const c = new GuestTcp(guest, { localPort: port(), remotePort: srv.port, shift: 7, window: 1 << 20 });
    let count = 0;
    link.drop = (s) => s.payload.length > 0 && ++count === 5;
    await c.connect();
    await until(() => c.finReceived, 10_000);
    assert.equal(sha256(c.receivedData), sha256(payload));
    assert.ok(nat.stats().fastRetransmits >= 1);
  });

  it('takes duplicate ACKs of data sent before a timeout for no loss (RFC 6582 §3.2), and fast-retransmits again once that data is acknowledged', async () => {
    const time = fakeClock();
    const { nat, guest, link } = rig({ clock: time.clock });
    let srvSocket: net.Socket | undefined;
    const srv = await server((s) => (srvSocket = s));
    const c = new GuestTcp(guest, { localPort: port(), remotePort: srv.port, mss: 1000 });
    await c.connect();
    await until(() => srvSocket !== undefined);
    let dropping = true;
    link.drop = (s) => dropping && s.payload.length > 0;
    const first = randomBytes(5000);
    srvSocket!.write(first);
    await until(() => nat.connections()[0]?.inFlight === 5000, 3000, 'five segments sent (and lost)');
    time.now += 201;
    nat.runTimers();
    assert.equal(nat.stats().retransmits, 1, 'the timeout resent the first segment (lost too)');
    // Three duplicate ACKs for data sent before the timeout: no fast retransmit.
    for (let i = 0; i < 3; i++) c.sendAck();
    await sleep(20);
    assert.equal(nat.stats().fastRetransmits, 0);
    dropping = false;
    time.now += 401;
    nat.runTimers();
    await until(() => c.receivedBytes === 5000, 3000, 'the first 5000 bytes');
    // All of it acknowledged: a new loss is fast-retransmitted, no timer needed.
    let lost = 0;
    link.drop = (s) => s.payload.length > 0 && ++lost === 1;
    const second = randomBytes(5000);
    srvSocket!.write(second);
    await until(() => c.receivedBytes === 10_000, 3000, 'the next 5000 bytes');
    assert.equal(nat.stats().fastRetransmits, 1);
    assert.equal(sha256(c.receivedData), sha256(Buffer.concat([first, second])));
  });

  for (const window of [20_000, 2_000]) {
    it(`probes a zero window with an ACK at SND.UNA−1 and no data, and resumes at once when it opens (window ${window})`, async () => {
      const time = fakeClock();
      const { nat, guest } = rig({ clock: time.clock });
      const payload = randomBytes(100_000);
      const srv = await server((s) => s.end(payload));
      const c = new GuestTcp(guest, { localPort: port(), remotePort: srv.port, window });
      c.holding = true;
      await c.connect();
      await until(() => c.receivedBytes === window, 3000, 'the first window');
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(c.windowsSeen.length > 0, true);
      const seen = recordSegments(c);
      // The window is zero: a probe goes out on the timer.
      time.now += 1_100;
      nat.runTimers();
      await new Promise((r) => setTimeout(r, 20));
      const probe = seen.at(-1)!;
      assert.equal(probe.payload.length, 0, 'no data: nothing a full receiver could drop');
      assert.equal(probe.seq, (c.rcvNxt - 1) >>> 0);
      assert.equal(nat.connections()[0]!.inFlight, 0);
      // The window opens. No timer runs from here on: a hole at SND.UNA would stall it for good
      // with a small window (too few segments for three duplicate ACKs).
      c.release();
      await until(() => c.finReceived, 5000, 'the rest after the window opened');
      assert.equal(sha256(c.receivedData), sha256(payload));
    });
  }

  it('reorders out-of-order guest data and answers it with a duplicate ACK', async () => {
    const { guest } = rig();
    const chunks: Buffer[] = [];
    const srv = await server((s) => s.on('data', (d: Buffer) => chunks.push(d)));
    const c = new GuestTcp(guest, { localPort: port(), remotePort: srv.port });
    await c.connect();
    const before = guest.inbox.length;
    const base = c.sndNxt;
    const seen = recordSegments(c);
    c.sendSegment(TcpFlags.ACK, base + 5, c.rcvNxt, Buffer.from('world'));
    await until(() => seen.length >= 1);
    assert.equal(seen[0]!.ack, base, 'duplicate ACK for the hole');
    c.sendSegment(TcpFlags.ACK, base, c.rcvNxt, Buffer.from('hello'));
    await until(() => Buffer.concat(chunks).length === 10);
    assert.equal(Buffer.concat(chunks).toString(), 'helloworld');
    await until(() => seen.some((s) => s.ack === base + 10));
    assert.equal(guest.inbox.length, before);
  });

  it('holds no more for guests than the NAT-wide budget: a guest that never acknowledges pauses every host socket, and they resume as it does', async () => {
    const budget = 400_000;
    const { nat, guest, link } = rig({ limits: { maxQueuedBytes: budget } });
    const payloads = [randomBytes(1_500_000), randomBytes(1_500_000), randomBytes(1_500_000)];
    let next = 0;
    const srv = await server((s) => s.end(payloads[next++]!));
    // The guest advertises 1 MiB windows and never sees (so never acknowledges) any data.
    link.drop = (s) => s.payload.length > 0;
    const clients: GuestTcp[] = [];
    for (let i = 0; i < 3; i++) {
      const c = new GuestTcp(guest, { localPort: port(), remotePort: srv.port, shift: 7, window: 1 << 20 });
      await c.connect();
      clients.push(c);
    }
    await until(() => nat.stats().waitingForRoom > 0, 3000, 'the budget reached');
    await new Promise((r) => setTimeout(r, 100));
    const held = nat.stats().queuedToGuests;
    assert.ok(held >= budget && held < budget + 3 * READ_BLOCK_SIZE, `${held} bytes held`);
    // The guest sees data again: retransmissions, acknowledgments, and the paused sockets resume.
    link.drop = () => false;
    await until(() => clients.every((c) => c.finReceived), 15_000, 'every transfer');
    assert.deepEqual(
      clients.map((c) => sha256(c.receivedData)).sort(),
      payloads.map((p) => sha256(p)).sort(),
    );
    assert.equal(nat.stats().queuedToGuests, 0);
  });

  it('holds no more for hosts than the NAT-wide budget: windows to guests close while hosts do not read, and reopen as they do', async () => {
    const budget = 1 << 20;
    const { nat, guest } = rig({ limits: { maxHeldForHosts: budget } });
    const payloads = [randomBytes(12_000_000), randomBytes(12_000_000), randomBytes(12_000_000)];
    const sockets: net.Socket[] = [];
    const received: Buffer[][] = [];
    const srv = await server((s) => {
      const parts: Buffer[] = [];
      received.push(parts);
      s.on('data', (d: Buffer) => parts.push(d));
      s.pause(); // the host reads nothing for now
      sockets.push(s);
    });
    const clients: GuestTcp[] = [];
    for (let i = 0; i < 3; i++) {
      const c = new GuestTcp(guest, { localPort: port(), remotePort: srv.port, shift: 7 });
      await c.connect();
      c.write(payloads[i]!);
      c.end();
      clients.push(c);
    }
    await until(() => nat.stats().waitingForWindowRoom > 0, 5000, 'the budget reached');
    // Some 30 samples while the hosts still read nothing: what the NAT buffers stays within its budget
    // (windows are rounded up to the scale's 128-byte unit).
    let peak = 0;
    for (let i = 0; i < 30; i++) {
      const buffered = nat.connections().reduce((sum, c) => sum + c.buffered, 0);
      const held = nat.stats().heldForHosts;
      assert.ok(buffered <= budget + 3 * 128, `${buffered} bytes buffered`);
      assert.ok(buffered <= held && held <= budget + 3 * 128, `buffered ${buffered}, held ${held}`);
      peak = Math.max(peak, buffered);
      await sleep(10);
    }
    assert.ok(peak >= budget / 2, `the hosts' sockets were full: ${peak} bytes buffered`);
    for (const s of sockets) s.resume();
    await until(() => received.every((parts) => parts.reduce((n, p) => n + p.length, 0) === 12_000_000), 20_000, 'every upload');
    assert.deepEqual(
      received.map((parts) => sha256(Buffer.concat(parts))).sort(),
      payloads.map((p) => sha256(p)).sort(),
    );
    for (const s of sockets) s.end();
    await until(() => clients.every((c) => c.finReceived), 5000, 'the closes');
    await until(() => nat.stats().heldForHosts === 0, 5000, 'nothing held');
  });

  for (const timestamps of [true, false]) {
    it(`answers out-of-order data with SACK blocks when the guest offered SACK (timestamps ${timestamps ? 'on' : 'off'})`, async () => {
      const { guest } = rig();
      const chunks: Buffer[] = [];
      const srv = await server((s) => s.on('data', (d: Buffer) => chunks.push(d)));
      const c = new GuestTcp(guest, { localPort: port(), remotePort: srv.port, sack: true, timestamps });
      const seen = recordSegments(c);
      await c.connect();
      assert.equal(seen[0]!.options.sackPermitted, true, 'the SYN-ACK answers the offer');
      assert.equal(seen[0]!.options.timestamp !== undefined, timestamps);
      const base = c.sndNxt;
      const blocksOfLast = () => blocksFrom(seen.at(-1)!, base);
      // Holes at 0–10, 15–20, 25–30, 35–40; kept: 10–15, 20–25, 30–35, 40–45, in that order.
      for (const at of [10, 20, 30, 40]) {
        const count = seen.length;
        c.sendSegment(TcpFlags.ACK, base + at, c.rcvNxt, Buffer.from('abcde'));
        await until(() => seen.length > count, 5000, `the ACK of ${at}`);
        assert.equal(seen.at(-1)!.ack, base);
      }
      // The latest first, then from the highest down, as many as fit beside the timestamps.
      assert.deepEqual(blocksOfLast(), timestamps ? [[40, 45], [30, 35], [20, 25]] : [[40, 45], [30, 35], [20, 25], [10, 15]]);
      // A segment that joins two blocks reports the merged one first.
      let count = seen.length;
      c.sendSegment(TcpFlags.ACK, base + 15, c.rcvNxt, Buffer.from('fghij'));
      await until(() => seen.length > count);
      assert.deepEqual(blocksOfLast()![0], [10, 25]);
      // Filling the first hole moves the ACK on; the blocks beyond the next hole remain.
      count = seen.length;
      c.sendSegment(TcpFlags.ACK, base, c.rcvNxt, Buffer.from('0123456789'));
      await until(() => seen.some((s, i) => i >= count && s.ack === base + 25));
      const last = seen.filter((s) => s.ack === base + 25).at(-1)!;
      assert.deepEqual(blocksFrom(last, base), [[40, 45], [30, 35]]);
      c.sendSegment(TcpFlags.ACK, base + 25, c.rcvNxt, Buffer.from('klmno'));
      c.sendSegment(TcpFlags.ACK, base + 35, c.rcvNxt, Buffer.from('pqrst'));
      await until(() => Buffer.concat(chunks).length === 45);
      await until(() => seen.some((s) => s.ack === base + 45));
      assert.equal(seen.filter((s) => s.ack === base + 45).at(-1)!.options.sackBlocks, undefined, 'no blocks once nothing is held');
    });
  }

  it('reports the bytes a guest segment repeats as the first SACK block, once (D-SACK, RFC 2883)', async () => {
    const { guest } = rig();
    const chunks: Buffer[] = [];
    const srv = await server((s) => s.on('data', (d: Buffer) => chunks.push(d)));
    const c = new GuestTcp(guest, { localPort: port(), remotePort: srv.port, sack: true, timestamps: true });
    const seen = recordSegments(c);
    await c.connect();
    const base = c.sndNxt;
    const send = async (at: number, text: string) => {
      const count = seen.length;
      c.sendSegment(TcpFlags.ACK, base + at, c.rcvNxt, Buffer.from(text));
      await until(() => seen.length > count, 5000, `the ACK after ${at}`);
      return seen.at(-1)!;
    };
    await send(0, '0123456789');
    await until(() => Buffer.concat(chunks).length === 10);
    // All of it again (§4.1.1): the ACK at once, the duplicate as its only block.
    let ack = await send(0, '0123456789');
    assert.equal(ack.ack, base + 10);
    assert.deepEqual(blocksFrom(ack, base), [[0, 10]]);
    // Part old, part new (§4.1.1): the old part is reported, the new one taken.
    await send(5, '56789abcde');
    await until(() => seen.at(-1)!.ack === base + 15);
    assert.deepEqual(blocksFrom(seen.find((s) => s.ack === base + 15 && s.options.sackBlocks !== undefined)!, base), [[5, 10]]);
    // A repeat of held out-of-order data (§4.2): the duplicate first, then the block that holds it.
    await send(20, 'klmno');
    ack = await send(20, 'klmno');
    assert.equal(ack.ack, base + 15);
    assert.deepEqual(blocksFrom(ack, base), [[20, 25], [20, 25]]);
    // Once: the next ACK reports only what is held.
    ack = await send(30, 'pqrst');
    assert.deepEqual(blocksFrom(ack, base), [[30, 35], [20, 25]]);
    assert.equal(Buffer.concat(chunks).toString(), '0123456789abcde');
  });

  it('sends no SACK-permitted and no blocks to a guest that did not offer SACK', async () => {
    const { guest } = rig();
    const srv = await server(() => {});
    const c = new GuestTcp(guest, { localPort: port(), remotePort: srv.port, timestamps: true });
    const seen = recordSegments(c);
    await c.connect();
    assert.equal(seen[0]!.options.sackPermitted, undefined);
    const base = c.sndNxt;
    c.sendSegment(TcpFlags.ACK, base + 5, c.rcvNxt, Buffer.from('world'));
    await until(() => seen.length >= 2);
    assert.equal(seen.at(-1)!.ack, base);
    assert.equal(seen.at(-1)!.options.sackBlocks, undefined);
  });

  it('keeps one copy of an out-of-order segment the guest repeats', async () => {
    const { nat, guest } = rig({ limits: { maxOutOfOrder: 4 } });
    const chunks: Buffer[] = [];
    const srv = await server((s) => s.on('data', (d: Buffer) => chunks.push(d)));
    const c = new GuestTcp(guest, { localPort: port(), remotePort: srv.port });
    await c.connect();
    const base = c.sndNxt;
    for (let i = 0; i < 10; i++) c.sendSegment(TcpFlags.ACK, base + 5, c.rcvNxt, Buffer.from('world'));
    c.sendSegment(TcpFlags.ACK, base + 7, c.rcvNxt, Buffer.from('rl')); // inside the first: not kept either
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(nat.stats().drops['tcp:out-of-order-full'], undefined, 'repeats take no room');
    c.sendSegment(TcpFlags.ACK, base, c.rcvNxt, Buffer.from('hello'));
    await until(() => Buffer.concat(chunks).length === 10);
    assert.equal(Buffer.concat(chunks).toString(), 'helloworld');
  });
});

describe('TcpNat closing', () => {
  for (const kind of ['the addon\'s sockets', 'net.Sockets (TcpNat\'s default)']) {
    it(`half-closes guest → host: guest FIN ends the socket, the host still answers (${kind})`, async () => {
      // The addon's reset probe: after our FIN and the host's, Linux also reports TCP_CLOSE.
      const { nat, guest } = rig({ limits: { timeWaitMs: 20 }, net: kind.startsWith('net') });
      const srv = await server((s) => {
        const parts: Buffer[] = [];
        s.on('data', (d: Buffer) => parts.push(d));
        s.on('end', () => s.end(Buffer.concat(parts).toString().toUpperCase()));
      });
      const c = new GuestTcp(guest, { localPort: port(), remotePort: srv.port });
      await c.connect();
      c.write(Buffer.from('shout'));
      c.end();
      await until(() => c.finReceived);
      assert.equal(c.receivedData.toString(), 'SHOUT');
      assert.equal(c.rstReceived, false, 'a host FIN after the guest FIN is a FIN, not a reset');
      assert.equal(nat.counters.resets, 0);
      await until(() => nat.flowCount === 0, 2000, 'the flow to drain');
    });
  }

  it('leaves the table when the guest that closed first acknowledges our FIN (LAST-ACK → CLOSED), with no TIME-WAIT of its own', async () => {
    const { nat, guest } = rig(); // the default linger: 1 s
    const srv = await server((s) => {
      s.resume();
      s.on('end', () => s.end());
    });
    const c = new GuestTcp(guest, { localPort: port(), remotePort: srv.port, timestamps: true });
    await c.connect();
    c.write(Buffer.from('bye'));
    c.end();
    await until(() => c.finReceived, 2000, 'the host\'s FIN');
    await until(() => nat.flowCount === 0, 300, 'the flow to leave at the guest\'s ACK, not after the linger');
    assert.equal(nat.counters.resets, 0);
  });

  it('in a simultaneous close, goes CLOSING → TIME-WAIT: the guest\'s FIN crossed ours (RFC 9293 §3.6)', async () => {
    const time = fakeClock();
    const { nat, guest, link } = rig({ clock: time.clock });
    const srv = await server((s) => {
      s.resume();
      s.end();
    });
    const c = new GuestTcp(guest, { localPort: port(), remotePort: srv.port });
    let lostFin = false;
    link.drop = (s) => !lostFin && has(s, TcpFlags.FIN) && (lostFin = true);
    await c.connect();
    await until(() => lostFin, 2000, 'our FIN (lost on the way)');
    c.end(); // the guest's FIN, not acknowledging ours
    await until(() => nat.stats().states.closing === 1, 2000, 'CLOSING');
    time.now += 1500; // our FIN goes again; the guest acknowledges it
    nat.runTimers();
    await until(() => c.finReceived && nat.stats().states.timeWait === 1, 2000, 'TIME-WAIT');
    assert.equal(nat.counters.resets, 0);
  });

  it('half-closes host → guest: host FIN reaches the guest, which can still send', async () => {
    const { nat, guest } = rig({ limits: { timeWaitMs: 20 } });
    let fromGuest = '';
    let hostSawEnd = false;
    const srv = await server((s) => {
      s.end('bye');
      s.on('data', (d: Buffer) => (fromGuest += d.toString()));
      s.on('end', () => (hostSawEnd = true));
    });
    const c = new GuestTcp(guest, { localPort: port(), remotePort: srv.port });
    await c.connect();
    await until(() => c.finReceived);
    assert.equal(c.receivedData.toString(), 'bye');
    assert.equal(nat.stats().states.finWait, 1);
    c.write(Buffer.from('still here'));
    c.end();
    await until(() => hostSawEnd);
    assert.equal(fromGuest, 'still here');
    await until(() => nat.flowCount === 0, 2000, 'the flow to drain');
  });

  it('passes a guest RST to the host as a reset', async () => {
    const { nat, guest } = rig();
    let hostError = '';
    const srv = await server((s) => s.on('error', (e: NodeJS.ErrnoException) => (hostError = e.code ?? '')));
    const c = new GuestTcp(guest, { localPort: port(), remotePort: srv.port });
    await c.connect();
    await until(() => srv.sockets.length === 1);
    c.reset();
    assert.equal(nat.flowCount, 0);
    await until(() => hostError === 'ECONNRESET', 2000, 'ECONNRESET on the host');
  });

  it('passes a host reset to the guest as RST', async () => {
    const { nat, guest } = rig();
    const srv = await server();
    const c = new GuestTcp(guest, { localPort: port(), remotePort: srv.port });
    await c.connect();
    await until(() => srv.sockets.length === 1);
    srv.sockets[0]!.resetAndDestroy();
    await until(() => c.rstReceived);
    assert.equal(nat.flowCount, 0);
  });

  it('resets a guest that vanishes mid-transfer, leaving nothing behind', async () => {
    const time = fakeClock();
    const { nat, guest, link } = rig({ clock: time.clock });
    let hostClosed = false;
    const srv = await server((s) => {
      s.write(randomBytes(1 << 20));
      s.on('close', () => (hostClosed = true));
    });
    const c = new GuestTcp(guest, { localPort: port(), remotePort: srv.port });
    await c.connect();
    await until(() => c.receivedBytes > 0);
    link.drop = () => true; // the guest is gone
    await new Promise((r) => setTimeout(r, 20));
    for (let i = 0; i < 20 && nat.flowCount > 0; i++) {
      time.now += 61_000;
      nat.runTimers();
    }
    assert.equal(nat.flowCount, 0);
    assert.ok(nat.stats().timeouts >= 1);
    assert.ok(link.sent.at(-1)!.flags & TcpFlags.RST, 'the last word is a RST');
    await until(() => hostClosed, 2000, 'the host socket to close');
  });

  it('times out an idle established connection after 2 h 4 min', async () => {
    const time = fakeClock();
    const { nat, guest } = rig({ clock: time.clock });
    const srv = await server();
    const c = new GuestTcp(guest, { localPort: port(), remotePort: srv.port });
    await c.connect();
    time.now += 7_439_000;
    nat.runTimers();
    assert.equal(nat.flowCount, 1);
    time.now += 2_000;
    nat.runTimers();
    assert.equal(nat.flowCount, 0);
    await until(() => c.rstReceived);
  });

  it('close() resets every flow', async () => {
    const { nat, guest } = rig();
    const srv = await server();
    const a = new GuestTcp(guest, { localPort: port(), remotePort: srv.port });
    const b = new GuestTcp(guest, { localPort: port(), remotePort: srv.port });
    await a.connect();
    await b.connect();
    assert.equal(nat.flowCount, 2);
    nat.close();
    assert.equal(nat.flowCount, 0);
    await until(() => a.rstReceived && b.rstReceived);
  });
});

describe('TcpNat timestamps (RFC 7323)', () => {
  it('answers a guest that offers timestamps with its own: on every segment, echoing the guest\'s latest, with data segments 12 bytes under the MSS', async () => {
    const { link, guest } = rig();
    const payload = randomBytes(20_000);
    let fromGuest = 0;
    const srv = await server((s) => {
      s.on('data', (d: Buffer) => (fromGuest += d.length));
      s.end(payload);
    });
    const c = new GuestTcp(guest, { localPort: port(), remotePort: srv.port, shift: 7, timestamps: true });
    const firstTsVal = c.tsVal;
    await c.connect();
    c.write(randomBytes(10_000));
    await until(() => c.finReceived && fromGuest === 10_000, 5000, 'both transfers');
    assert.equal(sha256(c.receivedData), sha256(payload));
    const toGuest = link.sent.filter((s) => s.dstPort === c.localPort);
    assert.equal(toGuest[0]!.flags, TcpFlags.SYN | TcpFlags.ACK);
    assert.equal(toGuest[0]!.options.timestamp?.echoReply, firstTsVal, 'the SYN-ACK echoes the SYN\'s timestamp');
    let last = toGuest[0]!.options.timestamp!.value;
    for (const s of toGuest) {
      const ts = s.options.timestamp;
      assert.ok(ts !== undefined, 'every segment carries a timestamp');
      assert.ok(((ts.value - last) | 0) >= 0, 'our timestamps never go back');
      last = ts.value;
      assert.ok(ts.echoReply >= firstTsVal && ts.echoReply < c.tsVal, 'each echoes one the guest sent');
    }
    assert.ok(toGuest.at(-1)!.options.timestamp!.echoReply > firstTsVal, 'the echo follows the guest');
    assert.equal(Math.max(...toGuest.map((s) => s.payload.length)), 1460 - 12, 'RFC 6691: the option comes out of the MSS');
  });

  it('sends no timestamps to a guest that offered none', async () => {
    const { link, guest } = rig();
    const srv = await server((s) => s.end('hello'));
    const c = new GuestTcp(guest, { localPort: port(), remotePort: srv.port });
    await c.connect();
    await until(() => c.finReceived);
    const toGuest = link.sent.filter((s) => s.dstPort === c.localPort);
    assert.ok(toGuest.length >= 3);
    assert.equal(toGuest.some((s) => s.options.timestamp !== undefined), false);
  });

  it('drops a segment whose timestamp is older than the last one taken (PAWS) and answers with an ACK', async () => {
    const { nat, link, guest } = rig();
    let received = '';
    const srv = await server((s) => s.on('data', (d: Buffer) => (received += d.toString())));
    const c = new GuestTcp(guest, { localPort: port(), remotePort: srv.port, timestamps: true });
    await c.connect();
    c.write(Buffer.from('new'));
    await until(() => received === 'new');
    const before = link.sent.length;
    // An old duplicate: sequence numbers still in the window, timestamp from before the connection's latest.
    c.sendSegment(TcpFlags.ACK | TcpFlags.PSH, c.sndNxt, c.rcvNxt, Buffer.from('old'), { timestamp: { value: c.tsVal - 10, echoReply: c.tsRecent } });
    assert.equal(nat.stats().drops['tcp:paws'], 1);
    await until(() => link.sent.length > before, 1000, 'the ACK');
    assert.equal(link.sent[before]!.ack, c.sndNxt, 'the ACK does not take the old bytes');
    c.write(Buffer.from('!'));
    await until(() => received === 'new!');
  });

  it('times round trips from the echoes of its timestamps, a retransmission\'s too, and takes no echo from its future (RFC 7323 §4)', async () => {
    const time = fakeClock();
    const { nat, guest, link } = rig({ clock: time.clock });
    let srvSocket: net.Socket | undefined;
    const srv = await server((s) => (srvSocket = s));
    const c = new GuestTcp(guest, { localPort: port(), remotePort: srv.port, timestamps: true });
    await c.connect();
    await until(() => srvSocket !== undefined);
    const rto = (): number => nat.connections()[0]!.rto;
    assert.equal(rto(), 200, 'the handshake echoed at once: a 0 ms sample, the floor');

    // The guest's ACK of some data reaches the NAT 300 ms (of its clock) after the data left.
    const send = guest.send.bind(guest);
    const held: Array<Parameters<typeof send>[0]> = [];
    guest.send = (fields) => void held.push(fields);
    srvSocket!.write('slow');
    await until(() => c.receivedBytes === 4);
    time.now += 300;
    guest.send = send;
    for (const fields of held.splice(0)) send(fields);
    // RFC 6298 §2.3 after samples of 0 and 300 ms: SRTT 37.5, RTTVAR 75, RTO ⌈37.5 + 4·75⌉.
    assert.equal(rto(), 338);

    // Lost once, then sent again and acknowledged at once: Karn's rule would take no sample, the echo does.
    let dropped = false;
    link.drop = (segment) => !dropped && segment.payload.length > 0 && (dropped = true);
    srvSocket!.write('lost');
    await until(() => dropped);
    time.now += 338;
    nat.runTimers();
    assert.equal(nat.stats().retransmits, 1);
    await until(() => c.receivedBytes === 8);
    // A 0 ms sample: SRTT 32.8125, RTTVAR 65.625, RTO ⌈295.3⌉ (not the 676 the timeout backed off to).
    assert.equal(rto(), 296);

    // An ACK of new data whose echo is from the NAT's future is no sample.
    guest.send = (fields) => void held.push(fields);
    srvSocket!.write('x');
    await until(() => c.receivedBytes === 9);
    guest.send = send;
    const ours = link.sent.filter((s) => s.dstPort === c.localPort).at(-1)!.options.timestamp!.value;
    c.sendSegment(TcpFlags.ACK, c.sndNxt, c.rcvNxt, Buffer.alloc(0), { timestamp: { value: c.tsVal, echoReply: (ours + 1000) >>> 0 } });
    assert.equal(nat.connections()[0]!.inFlight, 0, 'the ACK was taken');
    assert.equal(rto(), 296);
  });

  it('in TIME-WAIT, takes a SYN with a later timestamp as a new connection even below the old sequence space (RFC 6191), and not one with an older timestamp', async () => {
    const { nat, guest } = rig();
    // The host closes first, so the NAT's side is the one that lingers in TIME-WAIT.
    const srv = await server((s) => {
      s.resume();
      s.end();
    });
    const lp = port();
    const c = new GuestTcp(guest, { localPort: lp, remotePort: srv.port, timestamps: true });
    await c.connect();
    await until(() => c.finReceived, 2000, 'the host\'s FIN');
    c.end();
    await until(() => nat.stats().states.timeWait === 1, 2000, 'TIME-WAIT');
    const reuse = (tsVal: number) => {
      const next = new GuestTcp(guest, { localPort: lp, remotePort: srv.port, timestamps: true });
      next.iss = next.sndNxt = next.sndUna = (c.iss - 100_000) >>> 0;
      next.tsVal = tsVal;
      return next;
    };
    await assert.rejects(reuse(c.tsVal - 100).connect(200), /refused/);
    assert.equal(nat.stats().drops['tcp:paws'], 1);
    assert.equal(nat.stats().states.timeWait, 1);
    await reuse(c.tsVal + 100).connect();
    await until(() => srv.sockets.length === 2, 2000, 'the second host connection');
  });

  /** A connection the host closed first, in TIME-WAIT with its host socket closed: only the TimeWait record is left. */
  async function lingering(timestamps: boolean) {
    const time = fakeClock();
    const r = rig({ clock: time.clock, limits: { timeWaitMs: 1000 } });
    let hostClosed = false;
    const srv = await server((s) => {
      s.resume();
      s.end();
      s.on('close', () => (hostClosed = true));
    });
    const c = new GuestTcp(r.guest, { localPort: port(), remotePort: srv.port, timestamps });
    await c.connect();
    await until(() => c.finReceived, 2000, 'the host\'s FIN');
    c.end();
    await until(() => hostClosed, 2000, 'the host socket to close');
    // A TimeWait record describes itself with no queue and no RTO, as a Connection never does.
    await until(() => r.nat.connections()[0]?.rto === 0, 2000, 'the TIME-WAIT record');
    assert.deepEqual(r.nat.connections(), [{ guestIp: GUEST_IP, guestPort: c.localPort, remoteIp: REMOTE_IP, remotePort: srv.port, state: 'timeWait', queued: 0, inFlight: 0, sendWindow: 0, buffered: 0, rto: 0 }]);
    const mark = r.link.sent.length;
    return { ...r, c, time, replies: () => r.link.sent.slice(mark) };
  }

  for (const timestamps of [true, false]) {
    it(`in TIME-WAIT with its socket closed, re-acknowledges a repeated FIN, restarts the linger, ignores a stray ACK, then leaves (timestamps ${timestamps ? 'on' : 'off'})`, async () => {
      const { nat, link, c, time, replies } = await lingering(timestamps);
      const tsval = c.tsVal;
      c.sendSegment(TcpFlags.FIN | TcpFlags.ACK, c.sndNxt - 1, c.rcvNxt); // our ACK of its FIN was lost
      assert.equal(replies().length, 1, 'one ACK');
      const ack = replies()[0]!;
      assert.equal(ack.flags, TcpFlags.ACK);
      assert.equal(ack.seq, c.rcvNxt, 'SEQ: past our FIN');
      assert.equal(ack.ack, c.sndNxt, 'ACK: past the guest\'s FIN');
      assert.equal(ack.srcPort, c.remotePort);
      assert.equal(ack.dstPort, c.localPort);
      if (timestamps) assert.equal(ack.options.timestamp?.echoReply, tsval - 1, 'TSecr: TS.Recent, the guest\'s FIN\'s');
      else assert.equal(ack.options.timestamp, undefined);
      c.sendSegment(TcpFlags.ACK, c.sndNxt, c.rcvNxt);
      assert.equal(replies().length, 1, 'no answer to a stray ACK');
      time.now += 800;
      nat.runTimers();
      assert.equal(nat.flowCount, 1, 'the FIN restarted the linger');
      time.now += 300;
      nat.runTimers();
      assert.equal(nat.flowCount, 0);
      assert.equal(nat.stats().states.timeWait, undefined);
      assert.deepEqual(link.errors, []);
    });
  }

  it('in TIME-WAIT with its socket closed, leaves at a RST at RCV.NXT and answers another with a challenge ACK (RFC 5961 §3.2)', async () => {
    const { nat, c, replies } = await lingering(true);
    c.sendSegment(TcpFlags.RST, c.sndNxt + 10, 0);
    assert.equal(replies().length, 1);
    assert.equal(replies()[0]!.flags, TcpFlags.ACK);
    assert.equal(nat.flowCount, 1);
    c.sendSegment(TcpFlags.RST, c.sndNxt, 0);
    assert.equal(nat.flowCount, 0);
    assert.equal(replies().length, 1);
  });
});

describe('TcpNat port forward', () => {
  /** A forward as the daemon makes it: the addon's listener (`net: true`: a net.Server). */
  async function forwardRig(options: Partial<TcpNatOptions> & { net?: boolean } = {}): Promise<Rig & { client: net.Socket; clientPort: number }> {
    const r = rig(options);
    const listen = r.streams?.listen ?? listenNetHostTcp;
    const listener = await listen('127.0.0.1', 0, (a) => r.nat.forward(a, GUEST_IP, 8080, GATEWAY_IP, a.peerPort));
    cleanups.push(() => listener.close());
    const client = net.connect({ port: listener.port, host: '127.0.0.1', allowHalfOpen: true });
    client.on('error', () => {});
    cleanups.push(() => void client.destroy());
    await new Promise((res) => client.once('connect', res));
    return { ...r, client, clientPort: client.localPort! };
  }

  it('opens toward the guest with a SYN and relays both ways after its SYN-ACK (net.Server listener, the default)', async () => {
    const { guest, client, clientPort, nat } = await forwardRig({ net: true });
    const syn = await guest.next((s) => has(s, TcpFlags.SYN));
    assert.equal(syn.flags, TcpFlags.SYN);
    assert.equal(syn.srcIp, GATEWAY_IP);
    assert.equal(syn.srcPort, clientPort);
    assert.equal(syn.dstPort, 8080);
    assert.equal(syn.options.mss, 1460);
    assert.equal(syn.options.windowScale, 7);
    // Data from the client waits for the handshake.
    client.write('GET /');
    const c = new GuestTcp(guest, { localPort: 8080, remotePort: clientPort, remoteIp: GATEWAY_IP, shift: 7 });
    c.accept(syn);
    await until(() => c.receivedBytes === 5);
    assert.equal(c.receivedData.toString(), 'GET /');
    let reply = '';
    client.on('data', (d: Buffer) => (reply += d.toString()));
    c.write(Buffer.from('200 OK'));
    await until(() => reply === '200 OK');
    assert.equal(nat.stats().states.established, 1);
  });

  for (const timestamps of [true, false]) {
    it(`offers timestamps on its SYN, and the guest's SYN-ACK decides: ${timestamps ? 'answered' : 'not answered'}`, async () => {
      const { guest, link, client, clientPort } = await forwardRig();
      const syn = await guest.next((s) => has(s, TcpFlags.SYN));
      assert.equal(syn.options.timestamp?.echoReply, 0);
      const c = new GuestTcp(guest, { localPort: 8080, remotePort: clientPort, remoteIp: GATEWAY_IP, shift: 7, timestamps });
      const synAckTsVal = c.tsVal;
      c.accept(syn);
      client.write('ping');
      await until(() => c.receivedBytes === 4);
      const data = link.sent.find((s) => s.payload.length === 4)!;
      assert.equal(data.options.timestamp?.echoReply, timestamps ? synAckTsVal : undefined);
    });
  }

  it('moves 1 MB through a forward, reading into the NAT\'s blocks', async () => {
    const { guest, client, clientPort, nat } = await forwardRig();
    const syn = await guest.next((s) => has(s, TcpFlags.SYN));
    const payload = randomBytes(1 << 20);
    client.write(payload);
    const c = new GuestTcp(guest, { localPort: 8080, remotePort: clientPort, remoteIp: GATEWAY_IP, shift: 7 });
    c.accept(syn);
    await until(() => c.receivedBytes === payload.length, 10_000, 'the upload');
    assert.equal(sha256(c.receivedData), sha256(payload));
    assert.ok(nat.readBlocks.freeCount > 0, 'reads went through the pool');
    let reply = '';
    client.on('data', (d: Buffer) => (reply += d.toString()));
    c.write(Buffer.from('thanks'));
    c.end();
    await until(() => reply === 'thanks' && c.finReceived === false);
    client.end();
    await until(() => c.finReceived, 2000, 'the client FIN');
  });

  it('sends what the client wrote during the handshake with the ACK of the guest\'s SYN-ACK, not after a bare ACK', async () => {
    const { guest, link, client, clientPort } = await forwardRig();
    const syn = await guest.next((s) => has(s, TcpFlags.SYN));
    await new Promise<void>((res) => client.write('HELO', () => res()));
    await sleep(20); // in the accepted socket's queue, not yet read
    const c = new GuestTcp(guest, { localPort: 8080, remotePort: clientPort, remoteIp: GATEWAY_IP, shift: 7 });
    const before = link.sent.length;
    c.accept(syn);
    await until(() => c.receivedBytes === 4);
    const first = link.sent[before]!;
    assert.equal(first.payload.toString(), 'HELO', 'the first segment after the SYN-ACK carries the data');
    assert.equal(first.flags & (TcpFlags.ACK | TcpFlags.SYN), TcpFlags.ACK);
    assert.equal(first.ack, (c.iss + 1) >>> 0, 'and acknowledges the guest\'s SYN');
  });

  it('passes on a client that wrote and closed, or reset, before the guest answered', async () => {
    {
      const { guest, client, clientPort, nat } = await forwardRig();
      const syn = await guest.next((s) => has(s, TcpFlags.SYN));
      await new Promise<void>((res) => client.end('BYE', () => res()));
      await sleep(20);
      const c = new GuestTcp(guest, { localPort: 8080, remotePort: clientPort, remoteIp: GATEWAY_IP, shift: 7 });
      c.accept(syn);
      await until(() => c.finReceived && c.receivedBytes === 3, 2000, 'the data and the FIN');
      assert.equal(c.receivedData.toString(), 'BYE');
      c.end();
      await until(() => nat.flowCount === 0 || nat.stats().states.timeWait === 1, 2000, 'the close');
    }
    {
      const { guest, client, clientPort } = await forwardRig();
      const syn = await guest.next((s) => has(s, TcpFlags.SYN));
      client.resetAndDestroy();
      await sleep(20);
      const c = new GuestTcp(guest, { localPort: 8080, remotePort: clientPort, remoteIp: GATEWAY_IP, shift: 7 });
      c.accept(syn);
      await until(() => c.rstReceived, 2000, 'the RST');
    }
  });

  it('tells apart two forwarded flows that share a table key', async () => {
    // Same ports, and sources that differ only above the key's 21 address bits.
    const sources = [GATEWAY_IP, (GATEWAY_IP ^ (1 << 21)) >>> 0];
    assert.equal(flowKey(GUEST_IP, 8080, sources[0]!, 5555), flowKey(GUEST_IP, 8080, sources[1]!, 5555));
    assert.ok(Number.isSafeInteger(flowKey(0xffffffff, 65535, 0, 65535)), 'the largest key is a safe integer');
    const r = rig();
    let n = 0;
    const listener = await r.streams!.listen('127.0.0.1', 0, (a) => r.nat.forward(a, GUEST_IP, 8080, sources[n++]!, 5555));
    cleanups.push(() => listener.close());
    const guestSides: GuestTcp[] = [];
    const clients: net.Socket[] = [];
    for (const source of sources) {
      const client = net.connect({ port: listener.port, host: '127.0.0.1' });
      client.on('error', () => {});
      cleanups.push(() => void client.destroy());
      clients.push(client);
      const syn = await r.guest.next((s) => has(s, TcpFlags.SYN) && s.srcIp === source);
      const c = new GuestTcp(r.guest, { localPort: 8080, remotePort: 5555, remoteIp: source, shift: 7 });
      c.accept(syn);
      guestSides.push(c);
    }
    await until(() => r.nat.stats().states.established === 2, 2000, 'both established');
    const replies = ['', ''];
    clients.forEach((client, i) => {
      client.on('data', (d: Buffer) => (replies[i] += d.toString()));
      client.write(`to guest ${i}`);
    });
    guestSides.forEach((c, i) => c.write(Buffer.from(`from guest ${i}`)));
    await until(() => guestSides.every((c, i) => c.receivedData.toString() === `to guest ${i}`), 2000, 'each client\'s bytes on its own flow');
    await until(() => replies.every((reply, i) => reply === `from guest ${i}`), 2000, 'each guest side\'s bytes to its own client');
  });

  it('resets the host client when the guest refuses', async () => {
    const { guest, client, nat } = await forwardRig();
    const syn = await guest.next((s) => has(s, TcpFlags.SYN));
    let closed = false;
    client.on('close', () => (closed = true));
    guest.send({
      srcPort: 8080,
      dstPort: syn.srcPort,
      dstIp: GATEWAY_IP,
      seq: 0,
      ack: (syn.seq + 1) >>> 0,
      flags: TcpFlags.RST | TcpFlags.ACK,
    });
    assert.equal(nat.flowCount, 0);
    assert.equal(nat.stats().refused, 1);
    await until(() => closed);
  });

  it('retries the SYN and gives up on a silent guest', async () => {
    const time = fakeClock();
    const r = rig({ clock: time.clock });
    const listener = await server((s) => r.nat.forward(acceptedNetSocket(s), GUEST_IP, 8080, GATEWAY_IP, s.remotePort!));
    const client = net.connect({ port: listener.port, host: '127.0.0.1' });
    client.on('error', () => {});
    let closed = false;
    client.on('close', () => (closed = true));
    await until(() => r.nat.flowCount === 1);
    for (let i = 0; i < 10; i++) {
      time.now += 40_000;
      r.nat.runTimers();
    }
    assert.equal(r.nat.flowCount, 0);
    assert.equal(r.link.sent.filter((s) => has(s, TcpFlags.SYN)).length, 6);
    await until(() => closed);
  });
});

describe('TcpNat many connections', () => {
  it('carries 50 concurrent connections of 256 KiB each way intact', async () => {
    const { nat, guest } = rig({ limits: { timeWaitMs: 20 } });
    const srv = await server((s) => s.pipe(s));
    const size = 256 * 1024;
    const conns = Array.from({ length: 50 }, () => new GuestTcp(guest, { localPort: port(), remotePort: srv.port, shift: 7, window: 256 * 1024 }));
    const payloads = conns.map(() => randomBytes(size));
    await Promise.all(conns.map((c) => c.connect()));
    conns.forEach((c, i) => {
      c.write(payloads[i]!);
      c.end();
    });
    await until(() => conns.every((c) => c.finReceived), 30_000, 'all echoes');
    conns.forEach((c, i) => assert.equal(sha256(c.receivedData), sha256(payloads[i]!)));
    await until(() => nat.flowCount === 0, 3000, 'the table to drain');
  });
});
