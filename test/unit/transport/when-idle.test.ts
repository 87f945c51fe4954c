// Idle work (src/transport/when-idle.ts, native/src/busy_poll.c "Idle work"):
// queued tasks run together, in order, once the loop would sleep, and no more
// than about a millisecond later when something keeps the loop from sleeping.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { busyPollStats } from '../../../src/transport/busy-poll.js';
import { nativeAddon } from '../../../src/transport/native.js';
import { whenIdle } from '../../../src/transport/when-idle.js';
import { sleep } from '../../helpers/lab.js';

/** Turns the loop without letting it sleep (a pending immediate keeps libuv's poll timeout at 0) until `done()` or `limitMs`. */
function keepBusy(done: () => boolean, limitMs: number): Promise<number> {
  const start = performance.now();
  return new Promise((resolve) => {
    const turn = (): void => {
      if (done() || performance.now() - start > limitMs) resolve(performance.now() - start);
      else setImmediate(turn);
    };
    setImmediate(turn);
  });
}

describe('whenIdle', () => {
  it('runs queued tasks once each, in order, after the call that queued them', async () => {
    nativeAddon(); // the addon path, not the setImmediate fallback
    const ran: number[] = [];
    for (let i = 0; i < 3; i++) whenIdle(() => ran.push(i));
    assert.equal(ran.length, 0, 'not inside the call that queued them');
    await sleep(20);
    assert.deepEqual(ran, [0, 1, 2]);
    whenIdle(() => ran.push(3)); // a new request after a run
    await sleep(20);
    assert.deepEqual(ran, [0, 1, 2, 3]);
  });

  it('runs before the loop sleeps, not a millisecond later', async () => {
    const before = busyPollStats()!;
    let ran = false;
    whenIdle(() => (ran = true));
    // Nothing but a timer 50 ms away: the loop's next poll would block, so the task runs first.
    await new Promise<void>((resolve) => setTimeout(resolve, 50));
    assert.equal(ran, true);
    const after = busyPollStats()!;
    assert.equal(after.idleRuns, before.idleRuns + 1);
    assert.equal(after.idleOverdue, before.idleOverdue, 'ran because the loop was going to sleep');
  });

  it('runs within its bound while the loop never sleeps', async () => {
    const before = busyPollStats()!;
    const askedAt = performance.now();
    let ranAt: number | undefined;
    whenIdle(() => (ranAt = performance.now()));
    const busyMs = await keepBusy(() => ranAt !== undefined, 2_000);
    assert.ok(ranAt !== undefined, `still waiting after ${busyMs.toFixed(1)} ms of a busy loop`);
    const after = busyPollStats()!;
    assert.equal(after.idleOverdue, before.idleOverdue + 1, 'ran as overdue');
    assert.ok(ranAt - askedAt >= 1, `ran after ${(ranAt - askedAt).toFixed(3)} ms, before its 1 ms bound, with the loop busy`);
  });

  it('tasks a task queues run in a later round', async () => {
    const ran: string[] = [];
    whenIdle(() => {
      ran.push('first');
      whenIdle(() => ran.push('queued by first'));
    });
    await sleep(20);
    assert.deepEqual(ran, ['first', 'queued by first']);
  });
});
