import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DAEMON_NODE_FLAGS, missingNodeFlags } from '../../../src/cli/node-flags.js';

describe('the daemon V8 flags', () => {
  test('none given: all of them are missing', () => {
    assert.deepEqual(missingNodeFlags([]), [...DAEMON_NODE_FLAGS]);
    assert.deepEqual(missingNodeFlags(['--cpu-prof', '--perf-basic-prof']), [...DAEMON_NODE_FLAGS]);
  });

  test('a flag given either way, with any value or spelling, is not added again', () => {
    assert.deepEqual(missingNodeFlags(['--no-memory-reducer']), ['--interrupt-budget=4096']);
    assert.deepEqual(missingNodeFlags(['--memory-reducer']), ['--interrupt-budget=4096']);
    assert.deepEqual(missingNodeFlags(['--memory_reducer']), ['--interrupt-budget=4096']);
    assert.deepEqual(missingNodeFlags(['--interrupt-budget=1000']), ['--no-memory-reducer']);
    assert.deepEqual(missingNodeFlags(['--interrupt_budget=1000', '--no-memory-reducer']), []);
  });
});
