/** The event bus, its SSE framing, and the sampler's rates and flow events. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EventBus, MAX_RECENT_EVENTS, MAX_SUBSCRIBERS, Sampler, type VnetEvent } from '../../../src/daemon/events.js';
import { sseFrame } from '../../../src/api/routes-events.js';
import { formatEvent } from '../../../src/cli/events-command.js';

describe('EventBus', () => {
  test('numbers events, delivers them, and replays the kept ones after an id', () => {
    const bus = new EventBus();
    const seen: VnetEvent[] = [];
    const stop = bus.subscribe((e) => seen.push(e));
    bus.emit('vm.state', { vm: 'a', state: 'running' });
    bus.emit('nic.link', { vm: 'a', nic: 1, cableConnected: false });
    assert.deepEqual(seen.map((e) => [e.id, e.type]), [[1, 'vm.state'], [2, 'nic.link']]);
    stop();
    bus.emit('vm.state', { vm: 'a', state: 'poweroff' });
    assert.equal(seen.length, 2);
    const replayed: number[] = [];
    bus.subscribe((e) => replayed.push(e.id), 1);
    assert.deepEqual(replayed, [2, 3]);
  });

  test('keeps at most MAX_RECENT_EVENTS and drops a subscriber that throws', () => {
    const bus = new EventBus();
    bus.subscribe(() => {
      throw new Error('broken client');
    });
    for (let i = 0; i < MAX_RECENT_EVENTS + 10; i++) bus.emit('vm.state', { vm: `v${i}`, state: 'running' });
    assert.equal(bus.history().length, MAX_RECENT_EVENTS);
    assert.equal(bus.history()[0]!.id, 11);
    assert.equal(bus.subscriberCount, 0);
  });

  test('refuses subscribers past MAX_SUBSCRIBERS', () => {
    const bus = new EventBus();
    for (let i = 0; i < MAX_SUBSCRIBERS; i++) bus.subscribe(() => {});
    assert.throws(() => bus.subscribe(() => {}), /too many/);
  });

  test('SSE frame and CLI line', () => {
    const event: VnetEvent = { id: 7, type: 'nic.link', time: '2024-01-01T00:00:00.000Z', data: { vm: 'a', nic: 1, cableConnected: false } };
    assert.equal(sseFrame(event), `id: 7\nevent: nic.link\ndata: ${JSON.stringify(event)}\n\n`);
    assert.equal(formatEvent(event), '2024-01-01T00:00:00.000Z  nic.link         vm=a nic=1 cableConnected=false');
  });
});

describe('Sampler', () => {
  test('rates are byte deltas over time; a reset counter restarts at 0', () => {
    const sampler = new Sampler(new EventBus());
    sampler.sample(0, [{ vm: 'a', nic: 1, bytesFromGuest: 0, bytesToGuest: 0 }], []);
    assert.deepEqual(sampler.rate('a', 1), { fromGuestBps: 0, toGuestBps: 0 });
    sampler.sample(2000, [{ vm: 'a', nic: 1, bytesFromGuest: 4000, bytesToGuest: 1000 }], []);
    assert.deepEqual(sampler.rate('a', 1), { fromGuestBps: 2000, toGuestBps: 500 });
    sampler.sample(3000, [{ vm: 'a', nic: 1, bytesFromGuest: 10, bytesToGuest: 10 }], []);
    assert.deepEqual(sampler.rate('a', 1), { fromGuestBps: 0, toGuestBps: 0 });
    sampler.sample(4000, [], []);
    assert.deepEqual(sampler.rate('a', 1), { fromGuestBps: 0, toGuestBps: 0 });
  });

  test('flows are reported as sampled deltas, only when something changed', () => {
    const bus = new EventBus();
    const sampler = new Sampler(bus);
    const lan = (opened: number, closed: number, active: number) => ({ network: 'nat:a/nic1', tcpOpened: opened, tcpClosed: closed, tcpActive: active, udpActive: 0 });
    sampler.sample(0, [], [lan(5, 1, 4)]);
    sampler.sample(1000, [], [lan(5, 1, 4)]);
    assert.equal(bus.history().length, 0);
    sampler.sample(2000, [], [lan(8, 3, 5)]);
    assert.deepEqual(bus.history().map((e) => e.data), [{ network: 'nat:a/nic1', tcpOpened: 3, tcpClosed: 2, tcpActive: 5, udpActive: 0 }]);
  });
});
