// The addon's TCP sockets as the NAT's host streams (native/src/tcp_sockets.c
// through src/transport/tcp-socket.ts), against Node peers on 127.0.0.1 only.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { afterEach, describe, it } from 'node:test';

import type { HostStream, HostStreamEvents } from '../../../src/nat/tcp/host-stream.js';
import { busyPollStats } from '../../../src/transport/busy-poll.js';
import { NativeHostStreams } from '../../../src/transport/tcp-socket.js';
import { keptAfterCollection } from '../../helpers/collected.js';

const WAIT_LIMIT_MS = 5_000;
const BLOCK = 64 * 1024;

/** Records what a stream reports; reads land in its own block. */
class Recorder implements HostStreamEvents {
  readonly log: string[] = [];
  readonly chunks: Buffer[] = [];
  private block = Buffer.alloc(BLOCK);
  onHostConnect(): void {
    this.log.push('connect');
  }
  nextReadBlock(): Buffer {
    return this.block;
  }
  onHostRead(length: number, block: Buffer): void {
    this.chunks.push(Buffer.from(block.subarray(0, length)));
  }
  onHostData(chunk: Uint8Array): void {
    this.chunks.push(Buffer.from(chunk));
  }
  onHostEnd(): void {
    this.log.push('end');
  }
  onHostDrain(): void {
    this.log.push('drain');
  }
  onHostError(code: string | undefined): void {
    this.log.push(`error ${code}`);
  }
  onHostClose(): void {
    this.log.push('close');
  }
  get received(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

async function until(check: () => boolean, what: string): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > WAIT_LIMIT_MS) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()!();
});

function streams(): NativeHostStreams {
  const s = new NativeHostStreams();
  cleanups.push(() => s.close());
  return s;
}

/** A loopback server handing each accepted socket (half-open allowed) to `onSocket`. */
async function server(onSocket: (s: net.Socket) => void): Promise<number> {
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    cleanups.push(() => s.destroy());
    onSocket(s);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanups.push(() => srv.close());
  return (srv.address() as net.AddressInfo).port;
}

describe('NativeHostStreams', () => {
  it('connects to loopback at once, relays both ways, half-closes, and closes when both ends are done', async () => {
    let peer: net.Socket | undefined;
    const peerGot: Buffer[] = [];
    let peerEnded = false;
    const port = await server((s) => {
      peer = s;
      s.on('data', (d: Buffer) => peerGot.push(d));
      s.on('end', () => (peerEnded = true));
    });
    const events = new Recorder();
    const stream = streams().open('127.0.0.1', port, events);
    // A loopback handshake is done inside connect(2): the stream says so once open() has returned, before any I/O round.
    assert.equal(events.log.length, 0, 'not from inside open()');
    await Promise.resolve();
    assert.deepEqual(events.log, ['connect']);
    await until(() => peer !== undefined, 'accept');
    const up = randomBytes(300_000);
    stream.write(up);
    stream.end();
    await until(() => peerEnded, 'the peer to see our FIN');
    assert.equal(sha(Buffer.concat(peerGot)), sha(up));
    assert.equal(events.log.includes('close'), false, 'still open for the peer to answer');
    const down = randomBytes(500_000);
    peer!.end(down);
    await until(() => events.log.includes('close'), 'close');
    assert.equal(sha(events.received), sha(down));
    assert.deepEqual(events.log, ['connect', 'end', 'close']);
    assert.equal(stream.wasReset(), false);
    assert.equal(stream.destroyed, true, 'both directions ended: the fd is closed');
  });

  it('sends the FIN of end() at once, or when the loop is idle if the host ended first', async () => {
    const peers: net.Socket[] = [];
    const peerLog: string[] = [];
    const port = await server((s) => {
      peers.push(s);
      s.on('end', () => peerLog.push(`end ${peers.indexOf(s)}`));
      s.on('error', (err: NodeJS.ErrnoException) => peerLog.push(`error ${err.code}`));
    });
    const all = streams();
    const TCP_FIN_WAIT1 = 4;
    const TCP_FIN_WAIT2 = 5;
    // The guest ends first: the FIN leaves inside end() (a peer serving one connection at a time waits for it).
    const first = all.open('127.0.0.1', port, new Recorder()) as HostStream & { id: number };
    await until(() => peers.length === 1, 'accept');
    first.end();
    assert.ok([TCP_FIN_WAIT1, TCP_FIN_WAIT2].includes(all.native.state(first.id)), 'FIN sent by end()');
    await until(() => peerLog.includes('end 0'), 'the peer to see the FIN');
    // Then the host's FIN: it completes the close, so it is taken when the loop is idle, and the fd closes.
    const idleBefore = busyPollStats()!.idleRuns;
    peers[0]!.end();
    await until(() => first.destroyed, 'the close after the host FIN');
    assert.ok(busyPollStats()!.idleRuns > idleBefore, 'the host FIN was taken as idle work');
    // The host ended first: end()'s FIN and the close come as idle work, and the close is a FIN (not a RST).
    const events = new Recorder();
    const second = all.open('127.0.0.1', port, events);
    await until(() => peers.length === 2, 'accept');
    peers[1]!.end();
    await until(() => events.log.includes('end'), 'the host FIN');
    second.end();
    assert.equal(second.destroyed, false, 'not inside end()');
    await until(() => second.destroyed, 'both directions ended: closed when idle');
    await until(() => peerLog.includes('end 1'), 'the peer to see the FIN');
    assert.deepEqual(
      peerLog.filter((l) => l.startsWith('error')),
      [],
    );
  });

  it('reports a refused connect as ECONNREFUSED, then close', async () => {
    const port = await server(() => {});
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const closedPort = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    assert.notEqual(closedPort, port);
    const events = new Recorder();
    const stream = streams().open('127.0.0.1', closedPort, events);
    await until(() => events.log.includes('close'), 'close');
    assert.deepEqual(events.log, ['error ECONNREFUSED', 'close']);
    assert.equal(stream.destroyed, true);
  });

  it('queues what the kernel does not take, reports drain, and runs write callbacks in order', async () => {
    let peer: net.Socket | undefined;
    const port = await server((s) => {
      peer = s;
      s.pause();
    });
    const events = new Recorder();
    const stream = streams().open('127.0.0.1', port, events);
    await until(() => peer !== undefined, 'accept');
    const payload = randomBytes(16 << 20);
    const written: number[] = [];
    for (let i = 0; i < 16; i++) stream.write(payload.subarray(i << 20, (i + 1) << 20), () => written.push(i));
    assert.ok(stream.writableLength > 0, 'a paused peer leaves bytes queued');
    assert.equal(events.log.includes('drain'), false);
    const got: Buffer[] = [];
    peer!.on('data', (d: Buffer) => got.push(d));
    peer!.resume();
    await until(() => events.log.includes('drain'), 'drain');
    assert.equal(stream.writableLength, 0);
    assert.deepEqual(written, [...Array(16).keys()]);
    await until(() => Buffer.concat(got).length === payload.length, 'all bytes');
    assert.equal(sha(Buffer.concat(got)), sha(payload));
  });

  it('tryWrite gives the kernel what it takes now, keeps nothing, and yields to a queue', async () => {
    let peer: net.Socket | undefined;
    const port = await server((s) => {
      peer = s;
      s.pause();
    });
    const stream = streams().open('127.0.0.1', port, new Recorder());
    await until(() => peer !== undefined, 'accept');
    const payload = randomBytes(8 << 20);
    const first = stream.tryWrite(payload);
    assert.ok(first > 0 && first < payload.length, `a paused peer takes some, not all (${first})`);
    assert.equal(stream.writableLength, 0, 'the rest stays the caller\'s');
    stream.write(payload.subarray(first));
    assert.ok(stream.writableLength > 0);
    assert.equal(stream.tryWrite(payload), 0, 'nothing jumps the queue');
    const got: Buffer[] = [];
    peer!.on('data', (d: Buffer) => got.push(d));
    peer!.resume();
    await until(() => Buffer.concat(got).length === payload.length, 'all bytes');
    assert.equal(sha(Buffer.concat(got)), sha(payload));
    stream.end();
    assert.equal(stream.tryWrite(payload), 0, 'nothing after end()');
  });

  it('tryWriteGathered writes several buffers in order in one call', async () => {
    const got: Buffer[] = [];
    let peer: net.Socket | undefined;
    const port = await server((s) => {
      peer = s;
      s.on('data', (d: Buffer) => got.push(d));
    });
    const stream = streams().open('127.0.0.1', port, new Recorder());
    await until(() => peer !== undefined, 'accept');
    const parts = [randomBytes(70_000), randomBytes(10), randomBytes(65_536)];
    assert.equal(stream.tryWriteGathered(parts), 70_000 + 10 + 65_536);
    await until(() => Buffer.concat(got).length === 135_546, 'all bytes');
    assert.equal(sha(Buffer.concat(got)), sha(Buffer.concat(parts)));
    stream.end();
    assert.equal(stream.tryWriteGathered(parts), 0, 'nothing after end()');
  });

  it('connects from the bind address it is given', async () => {
    const peers: Array<string | undefined> = [];
    const port = await server((s) => peers.push(s.remoteAddress));
    const set = streams();
    set.open('127.0.0.1', port, new Recorder(), '127.0.0.7');
    set.open('127.0.0.1', port, new Recorder());
    await until(() => peers.length === 2, 'both accepts');
    assert.deepEqual(peers.sort(), ['127.0.0.1', '127.0.0.7']);
    const unbindable = new Recorder();
    set.open('127.0.0.1', port, unbindable, '192.0.2.1');
    await until(() => unbindable.log.includes('close'), 'the failed connect to report');
    assert.deepEqual(unbindable.log, ['error EADDRNOTAVAIL', 'close'], 'an address the host does not have');
  });

  it('connects to the loopback with reno, whatever congestion control the host defaults to', async (t) => {
    const byDefault = readFileSync('/proc/sys/net/ipv4/tcp_congestion_control', 'utf8').trim();
    if (byDefault === 'reno') return t.skip('the default is reno: nothing to tell apart');
    const clientPorts: number[] = [];
    const port = await server((s) => clientPorts.push(s.remotePort!));
    streams().open('127.0.0.1', port, new Recorder());
    await until(() => clientPorts.length === 1, 'our connection');
    const nodeSocket = net.connect(port, '127.0.0.1');
    nodeSocket.on('error', () => {});
    cleanups.push(() => nodeSocket.destroy());
    await until(() => clientPorts.length === 2, "Node's connection");
    // `ss -ti` names each socket's congestion control on its second line (after `ts sack` where they are on).
    const known = readFileSync('/proc/sys/net/ipv4/tcp_available_congestion_control', 'utf8').trim().split(/\s+/);
    const congestion = (clientPort: number): string => {
      const out = execFileSync('ss', ['-tinH', 'src', `127.0.0.1:${clientPort}`], { encoding: 'utf8' });
      const words = out.split('\n')[1]?.trim().split(/\s+/) ?? [];
      return words.find((word) => known.includes(word)) ?? `none in: ${out}`;
    };
    assert.equal(congestion(clientPorts[0]!), 'reno');
    assert.equal(congestion(clientPorts[1]!), byDefault, "Node's socket keeps the default");
  });

  it('stops reading while paused and goes on when resumed', async () => {
    let peer: net.Socket | undefined;
    const port = await server((s) => (peer = s));
    const events = new Recorder();
    const stream = streams().open('127.0.0.1', port, events);
    stream.pause();
    await until(() => peer !== undefined, 'accept');
    peer!.write('while paused');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(events.received.length, 0);
    stream.resume();
    await until(() => events.received.toString() === 'while paused', 'the bytes');
  });

  it('tells a reset from a FIN, and resets its own side on request', async () => {
    let peer: net.Socket | undefined;
    let peerError = '';
    const port = await server((s) => {
      peer = s;
      s.on('error', (e: NodeJS.ErrnoException) => (peerError = e.code ?? ''));
    });
    const events = new Recorder();
    const stream = streams().open('127.0.0.1', port, events);
    await until(() => peer !== undefined, 'accept');
    peer!.resetAndDestroy();
    await until(() => events.log.some((l) => l === 'end' || l.startsWith('error')), 'the reset');
    assert.ok(events.log.includes('error ECONNRESET') || stream.wasReset(), events.log.join());

    const second = new Recorder();
    const other = streams().open('127.0.0.1', port, second);
    await until(() => second.log.includes('connect'), 'connect');
    await new Promise((r) => setTimeout(r, 20));
    other.reset();
    await until(() => peerError === 'ECONNRESET', 'the peer to see our RST');
    assert.deepEqual(second.log, ['connect'], 'no event after our own reset');
  });

  it('listens without net.Sockets: accepted connections carry their client and become streams', async () => {
    const hosts = streams();
    const events = new Recorder();
    let adopted: HostStream | undefined;
    let client: net.Socket | undefined;
    const listener = await hosts.listen('127.0.0.1', 0, (accepted) => {
      assert.equal(accepted.peerIp, 0x7f000001);
      assert.equal(accepted.peerPort, client!.localPort);
      adopted = accepted.open(events);
    });
    cleanups.push(() => listener.close());
    client = net.connect({ port: listener.port, host: '127.0.0.1', allowHalfOpen: true });
    cleanups.push(() => client!.destroy());
    const back: Buffer[] = [];
    client.on('data', (d: Buffer) => back.push(d));
    client.write('ping');
    await until(() => events.received.toString() === 'ping', 'the bytes');
    adopted!.write(Buffer.from('pong'));
    await until(() => Buffer.concat(back).toString() === 'pong', 'the answer');
    await assert.rejects(hosts.listen('127.0.0.1', listener.port, () => {}), { code: 'EADDRINUSE' });
    await assert.rejects(hosts.listen('not an address', 1, () => {}), { code: 'VNET_ERR_INVALID_ARG' });
  });

  it('turns a connection away when told to close it', async () => {
    const hosts = streams();
    const listener = await hosts.listen('127.0.0.1', 0, (accepted) => accepted.close());
    cleanups.push(() => listener.close());
    const client = net.connect({ port: listener.port, host: '127.0.0.1' });
    cleanups.push(() => client.destroy());
    client.on('error', () => {});
    await new Promise((r) => client.once('close', r));
  });

  it('refuses a host that is not an IP address without throwing; closing the lot closes held streams', async () => {
    const hosts = new NativeHostStreams();
    const events = new Recorder();
    hosts.open('example.invalid', 80, events);
    await until(() => events.log.includes('close'), 'close');
    assert.deepEqual(events.log, ['error EINVAL', 'close']);
    const port = await server(() => {});
    const held = hosts.open('127.0.0.1', port, new Recorder());
    hosts.close();
    assert.equal(held.destroyed, true);
    held.destroy();
    held.write(Buffer.from('ignored'));
    const late = new Recorder();
    hosts.open('127.0.0.1', port, late);
    await until(() => late.log.includes('close'), 'close');
    assert.deepEqual(late.log, ['error ECANCELED', 'close']);
  });

  it('rejects bad calls with one clear error and serves no more after close', () => {
    const hosts = new NativeHostStreams();
    assert.throws(() => hosts.native.poll(12345, 1), { code: 'VNET_ERR_INVALID_ARG' });
    assert.throws(() => hosts.native.connect('not an address', 80), { code: 'VNET_ERR_INVALID_ARG' });
    assert.throws(() => hosts.native.connect('127.0.0.1', 0), { code: 'VNET_ERR_INVALID_ARG' });
    hosts.close();
    assert.throws(() => hosts.native.connect('127.0.0.1', 80), { code: 'VNET_ERR_CLOSED' });
  });

  it('lets go of its object once closed; a method kept after that object was collected throws, as closed', async () => {
    // The native methods are bound to their object (native/src/bound_methods.c): this one outlives it.
    const { kept: connect, collected } = await keptAfterCollection((register) => {
      const hosts = new NativeHostStreams();
      register(hosts.native);
      hosts.close();
      return hosts.native.connect;
    });
    assert.ok(collected, 'a closed TcpSockets is collected');
    assert.throws(() => connect('127.0.0.1', 80), { code: 'VNET_ERR_CLOSED' });
  });
});

describe('spliced pairs (native/src/tcp_splice.c)', () => {
  /** The test's own network namespace as the "guest's": splicing connects inside it. */
  function ownNetns(): number {
    const fd = openSync('/proc/self/ns/net', 'r');
    cleanups.push(() => closeSync(fd));
    return fd;
  }

  /** A listener whose connections are spliced to 127.0.0.1:`target`; `ended` collects how pairs end. */
  async function splicingListener(target: number, ended: Array<string | undefined>, taken: boolean[] = []): Promise<number> {
    const hosts = streams();
    const netns = ownNetns();
    const listener = await hosts.listen('127.0.0.1', 0, (accepted) => {
      const spliced = accepted.splice!('127.0.0.1', target, netns, (error) => ended.push(error));
      taken.push(spliced);
      if (!spliced) accepted.close();
    });
    cleanups.push(() => listener.close());
    return listener.port;
  }

  function client(port: number): net.Socket {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    cleanups.push(() => socket.destroy());
    return socket;
  }

  it('moves megabytes both ways intact, half-closes each way on its own, and ends once both have', async () => {
    let peer: net.Socket | undefined;
    const atPeer: Buffer[] = [];
    let peerEnded = false;
    const target = await server((s) => {
      peer = s;
      s.on('data', (d: Buffer) => atPeer.push(d));
      s.on('end', () => (peerEnded = true));
    });
    const ended: Array<string | undefined> = [];
    const c = client(await splicingListener(target, ended));
    const atClient: Buffer[] = [];
    let clientEnded = false;
    c.on('data', (d: Buffer) => atClient.push(d));
    c.on('end', () => (clientEnded = true));
    const up = randomBytes(8 << 20);
    c.end(up);
    await until(() => peerEnded, 'the FIN to reach the far side');
    assert.equal(sha(Buffer.concat(atPeer)), sha(up));
    assert.deepEqual(ended, [], 'one direction done: the pair lives on');
    const down = randomBytes(6 << 20);
    peer!.end(down);
    await until(() => clientEnded && ended.length === 1, 'the pair to end');
    assert.equal(sha(Buffer.concat(atClient)), sha(down));
    assert.deepEqual(ended, [undefined]);
  });

  it('a refused connect resets the client; a reset from the far side resets the client too', async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const closedPort = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const ended: Array<string | undefined> = [];
    const taken: boolean[] = [];
    const refusedClient = client(await splicingListener(closedPort, ended, taken));
    const refusedError = await new Promise<string | undefined>((r) => refusedClient.on('error', (e: NodeJS.ErrnoException) => r(e.code)));
    assert.equal(refusedError, 'ECONNRESET');
    assert.deepEqual(taken, [true], 'a refusal is the splice\'s answer, not a fallback');
    assert.deepEqual(ended, ['ECONNREFUSED']);

    const target = await server((s) => s.once('data', () => s.resetAndDestroy()));
    const ended2: Array<string | undefined> = [];
    const c = client(await splicingListener(target, ended2));
    c.write('hello');
    const error = await new Promise<string | undefined>((r) => c.on('error', (e: NodeJS.ErrnoException) => r(e.code)));
    assert.equal(error, 'ECONNRESET');
    await until(() => ended2.length === 1, 'the pair to end');
    assert.equal(ended2[0], 'ECONNRESET');
  });

  it('leaves a connection it cannot splice untouched; closing the lot closes live pairs', async () => {
    const hosts = streams();
    const netns = ownNetns();
    let peer: net.Socket | undefined;
    const target = await server((s) => (peer = s));
    const outcomes: boolean[] = [];
    const ended: Array<string | undefined> = [];
    const listener = await hosts.listen('127.0.0.1', 0, (accepted) => {
      outcomes.push(accepted.splice!('not an address', 1, netns, () => {}));
      outcomes.push(accepted.splice!('127.0.0.1', target, netns, (error) => ended.push(error)));
    });
    cleanups.push(() => listener.close());
    const c = client(listener.port);
    await until(() => peer !== undefined, 'the pair');
    assert.deepEqual(outcomes, [false, true]);
    let ended2 = false;
    c.on('end', () => (ended2 = true));
    hosts.close();
    await until(() => ended2, 'the client to see the pair close');
    assert.deepEqual(ended, [], 'closing the lot reports nothing');
  });
});
