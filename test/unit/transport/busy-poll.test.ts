// Busy polling of the event loop (native/src/busy_poll.c), driven by real fd
// events: a ping-pong of datagrams between two AF_UNIX transports in this
// process. What is checked is the mechanism (which loop turns found their
// events while polling, and that an idle loop sleeps again), not speed.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { busyPollStats, setBusyPoll } from '../../../src/transport/busy-poll.js';
import { nativeAddon, type BusyPollStats } from '../../../src/transport/native.js';
import { UnixDgramTransport } from '../../../src/transport/unix-dgram.js';
import { sleep } from '../../helpers/lab.js';

const ROUND_TRIPS = 2_000;
const WAIT_LIMIT_MS = 10_000;

const FRAME = new Uint8Array(60).fill(0xaa);

describe('busy polling', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vnt-busy-'));
  const opened: UnixDgramTransport[] = [];
  let next = 0;

  after(() => {
    try {
      setBusyPoll(0);
      for (const transport of opened) transport.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /** Bounces a frame between two transports `ROUND_TRIPS` times; resolves when done. */
  async function pingPong(frame = FRAME): Promise<void> {
    const n = next++;
    const b = UnixDgramTransport.open({ localPath: join(dir, `b${n}.sock`), remotePath: null });
    const a = UnixDgramTransport.open({ localPath: join(dir, `a${n}.sock`), remotePath: join(dir, `b${n}.sock`) });
    opened.push(a, b);
    let trips = 0;
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`ping-pong stalled after ${trips} round trips`)), WAIT_LIMIT_MS);
      b.onFrame = (bytes) => b.send(bytes.slice());
      a.onFrame = () => {
        if (++trips === ROUND_TRIPS) {
          clearTimeout(timer);
          resolve();
        } else {
          a.send(frame);
        }
      };
    });
    a.start();
    b.start();
    a.send(frame);
    await done;
  }

  function delta(before: BusyPollStats, now: BusyPollStats): { polled: number; slept: number } {
    return { polled: now.polled - before.polled, slept: now.slept - before.slept };
  }

  it('rejects budgets out of range and says what it is set to', () => {
    for (const bad of [-1, 10_001, 1.5, Number.NaN]) {
      assert.throws(() => nativeAddon().setBusyPoll(bad), /microseconds/, String(bad));
    }
    assert.throws(() => nativeAddon().setBusyPoll('50' as unknown as number), /microseconds/);
    assert.equal(setBusyPoll(250), true);
    assert.equal(busyPollStats()?.budgetUs, 250);
    assert.equal(setBusyPoll(0), true);
    assert.equal(busyPollStats()?.budgetUs, 0);
  });

  it('off: events wake a sleeping loop and nothing is counted', async () => {
    setBusyPoll(0);
    const before = busyPollStats()!;
    await pingPong();
    assert.deepEqual(delta(before, busyPollStats()!), { polled: 0, slept: 0 });
    assert.equal(busyPollStats()!.windowUs, 0);
  });

  it('on: the window grows and the ping-pong turns find their events while polling', async () => {
    setBusyPoll(10_000);
    const before = busyPollStats()!;
    await pingPong();
    const { polled, slept } = delta(before, busyPollStats()!);
    assert.ok(busyPollStats()!.windowUs > 0, 'the window grew');
    // Each round trip is at least one loop turn with an event; the first few grow the window.
    assert.ok(polled >= ROUND_TRIPS / 2, `polled ${polled}, slept ${slept}`);
    assert.ok(slept < polled, `polled ${polled}, slept ${slept}`);
  });

  it('does not poll after bulk reads: a stream keeps the loop busy without it', async () => {
    setBusyPoll(10_000);
    const before = busyPollStats()!;
    await pingPong(new Uint8Array(20_000).fill(0xbb)); // every read is a bulk one (16 KiB or more)
    const now = busyPollStats()!;
    const { polled, slept } = delta(before, now);
    assert.ok(now.bulk - before.bulk >= ROUND_TRIPS, `bulk reads counted (${now.bulk - before.bulk})`);
    assert.ok(polled < ROUND_TRIPS / 10, `polled ${polled}, slept ${slept}`);
  });

  it('counts smaller reads that add up to a stream within a short span as bulk too', async () => {
    setBusyPoll(10_000);
    const before = busyPollStats()!;
    // Each read is 6,000 bytes (under 16 KiB); three of them, a round trip and a half, make a stream's 16 KiB.
    await pingPong(new Uint8Array(6_000).fill(0xcc));
    const now = busyPollStats()!;
    const { polled, slept } = delta(before, now);
    assert.ok(now.bulk - before.bulk >= ROUND_TRIPS / 4, `bulk spans counted (${now.bulk - before.bulk})`);
    assert.ok(polled < ROUND_TRIPS / 10, `polled ${polled}, slept ${slept}`);
  });

  it('an idle loop stops polling: no CPU burnt once events stop', async () => {
    setBusyPoll(10_000);
    await pingPong();
    await sleep(50); // past the longest window (10 ms)
    const cpu = process.cpuUsage();
    await sleep(300);
    const used = process.cpuUsage(cpu);
    const ms = (used.user + used.system) / 1000;
    assert.ok(ms < 100, `${ms.toFixed(1)} ms of CPU in 300 ms of idle (a spinning loop uses ~300)`);
  });
});
