// src/after-call.ts: the packet path's deferral. What its users rely on: not
// inside the call, in the order queued, and before the event loop's next
// phase (a setImmediate, an I/O round).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { afterCall } from '../../src/after-call.js';

describe('afterCall', () => {
  it('runs after the current call returns, in the order queued, jobs queued by jobs included', async () => {
    const log: string[] = [];
    afterCall(() => {
      log.push('a');
      afterCall(() => log.push('c'));
    });
    afterCall(() => log.push('b'));
    log.push('caller');
    assert.deepEqual(log, ['caller']);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(log, ['caller', 'a', 'b', 'c']);
  });

  it('runs before the next setImmediate, even one queued first', async () => {
    const log: string[] = [];
    const immediate = new Promise<void>((resolve) =>
      setImmediate(() => {
        log.push('immediate');
        resolve();
      }),
    );
    afterCall(() => log.push('job'));
    await immediate;
    assert.deepEqual(log, ['job', 'immediate']);
  });
});
