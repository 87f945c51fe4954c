import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GCProfiler } from 'node:v8';
import { KEEP_MS, TOP_UP_BYTES, YoungGenerationKeeper } from '../../../src/daemon/young-generation.js';

/** A keeper on a clock and a CPU counter the test moves; `made` lists the top-ups. */
function keeperUnderTest() {
  const state = { now: 0, cpu: 0, made: [] as number[] };
  const keeper = new YoungGenerationKeeper({
    now: () => state.now,
    cpuMicros: () => state.cpu,
    makeGarbage: (bytes) => {
      state.made.push(bytes);
      state.cpu += 15_000; // the top-up's own CPU, as on a slow machine: more than a busy second's threshold
    },
  });
  const second = (busyCpuUs: number) => {
    state.now += 1000;
    state.cpu += busyCpuUs;
    return keeper.tick();
  };
  return { state, second };
}

describe('the young generation keeper', () => {
  test('a daemon that was never busy makes no garbage', () => {
    const { state, second } = keeperUnderTest();
    for (let i = 0; i < 5; i++) assert.equal(second(2_000), false);
    assert.deepEqual(state.made, []);
  });

  test('after a busy second it tops up every second for KEEP_MS, then stops', () => {
    const { state, second } = keeperUnderTest();
    assert.equal(second(300_000), true);
    const quietSeconds = KEEP_MS / 1000;
    for (let i = 0; i < quietSeconds; i++) assert.equal(second(0), true, `quiet second ${i + 1}`);
    assert.equal(second(0), false);
    assert.equal(second(0), false);
    assert.equal(state.made.length, quietSeconds + 1);
    assert.ok(state.made.every((bytes) => bytes === TOP_UP_BYTES));
  });

  test('its own top-ups do not count as busy; traffic again starts a new window', () => {
    const { state, second } = keeperUnderTest();
    second(300_000);
    for (let i = 0; i < KEEP_MS / 1000; i++) second(0);
    assert.equal(second(0), false);
    const before = state.made.length;
    assert.equal(second(50_000), true);
    assert.equal(state.made.length, before + 1);
  });

  test('the real top-up is young-generation garbage: it brings on scavenges', () => {
    let cpu = 0;
    const keeper = new YoungGenerationKeeper({ cpuMicros: () => (cpu += 20_000) }); // every second busy
    const profiler = new GCProfiler();
    profiler.start();
    for (let i = 0; i < 40; i++) assert.equal(keeper.tick(), true); // 60 MiB, more than the young generation holds
    const gcs = profiler.stop()?.statistics ?? [];
    assert.ok(gcs.some((gc) => gc.gcType === 'Scavenge'), `no scavenge among ${JSON.stringify(gcs.map((gc) => gc.gcType))}`);
  });
});
