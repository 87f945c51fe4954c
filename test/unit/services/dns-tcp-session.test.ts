import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { HostStreamEvents } from '../../../src/nat/tcp/host-stream.js';
import { DnsTcpSession, MAX_IN_FLIGHT, type AskDns, type DnsTcpCounters } from '../../../src/services/dns/tcp-session.js';

/** What the session told its connection, in order. */
class Recorder implements HostStreamEvents {
  log: string[] = [];
  data: Uint8Array[] = [];
  onHostConnect() {
    this.log.push('connect');
  }
  nextReadBlock(): Buffer {
    throw new Error('a DNS session has no blocks to read into');
  }
  onHostRead() {
    throw new Error('a DNS session delivers its own buffers');
  }
  onHostData(chunk: Uint8Array) {
    this.log.push('data');
    this.data.push(chunk);
  }
  onHostEnd() {
    this.log.push('end');
  }
  onHostDrain() {
    this.log.push('drain');
  }
  onHostError(code: string | undefined) {
    this.log.push(`error ${code}`);
  }
  onHostClose() {
    this.log.push('close');
  }
}

/** A DNS message of `length` bytes whose ID is `id` (the rest is filler: the session does not parse it). */
const message = (id: number, length = 20): Uint8Array => {
  const m = new Uint8Array(length).fill(0xaa);
  m[0] = id >> 8;
  m[1] = id & 0xff;
  return m;
};

const framed = (...messages: Uint8Array[]): Uint8Array =>
  Buffer.concat(messages.map((m) => Buffer.concat([Buffer.from([m.length >> 8, m.length & 0xff]), m])));

/** The IDs of the framed answers delivered, checking each frame's length. */
const answerIds = (chunks: Uint8Array[]): number[] =>
  chunks.map((c) => {
    assert.equal((c[0]! << 8) | c[1]!, c.length - 2, 'length prefix');
    return (c[2]! << 8) | c[3]!;
  });

const tick = () => new Promise((resolve) => setImmediate(resolve));

function session(ask: AskDns, idleMs?: number) {
  const events = new Recorder();
  const counters: DnsTcpCounters = { sessions: 0, messages: 0, broken: 0, idleClosed: 0 };
  return { events, counters, stream: new DnsTcpSession(events, ask, counters, idleMs) };
}

test('messages split across writes and pipelined in one are each asked; answers go back framed, in the order they come', async () => {
  const replies = new Map<number, (answer: Uint8Array) => void>();
  const { events, counters, stream } = session((query, reply) => replies.set((query[0]! << 8) | query[1]!, reply));
  assert.deepEqual(events.log, [], 'connected only after the call');
  await tick();
  assert.deepEqual(events.log, ['connect']);

  const bytes = framed(message(1), message(2, 300), message(3));
  assert.equal(stream.tryWrite(bytes.subarray(0, 1)), 1);
  stream.write(bytes.subarray(1, 30));
  await tick();
  assert.deepEqual([...replies.keys()], [1], 'only the whole message');
  stream.write(bytes.subarray(30));
  await tick();
  assert.deepEqual([...replies.keys()], [1, 2, 3]);
  assert.equal(stream.writableLength, 0);

  replies.get(3)!(message(3, 40));
  replies.get(1)!(message(1, 600));
  replies.get(1)!(message(1, 50)); // a second reply to one query is ignored
  await tick();
  replies.get(2)!(message(2, 70));
  await tick();
  assert.deepEqual(answerIds(events.data), [3, 1, 2]);
  assert.deepEqual(events.data.map((c) => c.length), [42, 602, 72]);
  assert.equal(counters.messages, 3);
  assert.equal(counters.sessions, 1);
  stream.destroy();
});

test('no more than MAX_IN_FLIGHT queries are out; the rest waits in the stream, counted as unwritten bytes', async () => {
  const replies: Array<(answer: Uint8Array) => void> = [];
  const { events, stream } = session((query, reply) => replies.push(reply));
  stream.write(framed(...Array.from({ length: MAX_IN_FLIGHT + 4 }, (_, i) => message(i))));
  await tick();
  assert.equal(replies.length, MAX_IN_FLIGHT);
  assert.equal(stream.writableLength, 4 * 22, 'four framed messages held');
  replies[0]!(message(0));
  await tick();
  assert.equal(replies.length, MAX_IN_FLIGHT + 1, 'an answer lets the next query in');
  for (const reply of replies.slice(1)) reply(message(0));
  await tick();
  await tick();
  assert.equal(replies.length, MAX_IN_FLIGHT + 4);
  assert.equal(stream.writableLength, 0);
  assert.ok(events.log.includes('drain'));
  stream.destroy();
});

test('answers wait while the connection is paused, and no new query is taken meanwhile', async () => {
  const replies: Array<(answer: Uint8Array) => void> = [];
  const { events, stream } = session((query, reply) => replies.push(reply));
  stream.write(framed(message(1)));
  await tick();
  stream.pause();
  replies[0]!(message(1));
  stream.write(framed(message(2)));
  await tick();
  assert.equal(events.data.length, 0);
  assert.equal(replies.length, 1);
  stream.resume();
  assert.deepEqual(answerIds(events.data), [1]);
  await tick();
  assert.equal(replies.length, 2);
  // Paused with no answer waiting: the query waits, and resuming takes it.
  stream.pause();
  stream.write(framed(message(3)));
  await tick();
  assert.equal(replies.length, 2);
  stream.resume();
  assert.equal(replies.length, 3);
  stream.destroy();
});

test("the guest's FIN: what it asked is answered, then our FIN, then the stream closes", async () => {
  const replies: Array<(answer: Uint8Array) => void> = [];
  const { events, stream } = session((query, reply) => replies.push(reply));
  stream.write(framed(message(7)));
  stream.end();
  assert.equal(stream.writableEnded, true);
  await tick();
  assert.deepEqual(events.log, ['connect', 'drain']);
  replies[0]!(message(7));
  await tick();
  await tick();
  assert.deepEqual(events.log, ['connect', 'drain', 'data', 'end', 'close']);
  assert.equal(stream.destroyed, true);
});

test('a message shorter than a DNS header breaks the stream: an error after the call, and nothing is asked', async () => {
  let asked = 0;
  const { events, counters, stream } = session(() => asked++);
  stream.write(framed(new Uint8Array(5)));
  await tick();
  await tick();
  assert.deepEqual(events.log, ['connect', 'error EPROTO', 'close']);
  assert.equal(asked, 0);
  assert.equal(counters.broken, 1);
  assert.equal(stream.destroyed, true);
});

test('an idle connection is closed from our side; a query never answered does not hold it open', async () => {
  const { events, counters, stream } = session(() => undefined, 30);
  stream.write(framed(message(1)));
  await sleep(80);
  assert.deepEqual(events.log, ['connect', 'drain', 'end']);
  assert.equal(counters.idleClosed, 1);
  stream.end();
  await tick();
  await tick();
  assert.deepEqual(events.log, ['connect', 'drain', 'end', 'close']);
});
