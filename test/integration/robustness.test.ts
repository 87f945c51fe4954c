/**
 * Bad input from a guest: 100,000 malformed or random frames sent with
 * AF_PACKET from a guest's eth0. The daemon stays up, its drop counters rise,
 * its MAC table stays within its limit, and the other guests still talk.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab } from '../helpers/lab.js';
import { REPO, VnetDaemon } from '../helpers/vnet.js';
import { ping } from '../helpers/guest.js';

const lab = new Lab();
let vnet: VnetDaemon;
const ns: Record<string, string> = {};

function totalDrops(stats: Record<string, any>): number {
  let total = 0;
  for (const network of stats.networks) for (const port of network.ports) for (const n of Object.values(port.drops)) total += n as number;
  return total;
}

describe('guest floods the switch with junk', { timeout: 180_000 }, () => {
  before(async () => {
    vnet = await VnetDaemon.start(lab);
    for (const [vm, addr] of [['a', '10.20.0.1'], ['b', '10.20.0.2'], ['x', '10.20.0.9']] as const) {
      await vnet.must(['createvm', '--name', vm, '--register']);
      await vnet.must(['modifyvm', vm, '--nic1', 'intnet', '--intnet1', 'junkyard']);
      ns[vm] = lab.name(vm);
      await vnet.must(['startvm', vm, '--type', 'netns', '--netns', ns[vm]!]);
      await lab.mustExec(ns[vm]!, 'ip', ['addr', 'add', `${addr}/24`, 'dev', 'eth0']);
    }
    await ping(lab, ns.a!, '10.20.0.2');
  });
  after(() => lab.cleanup());

  test('100,000 junk frames: daemon up, drops counted, MAC table bounded, a<->b fine', async () => {
    const dropsBefore = totalDrops(await vnet.stats());
    const script = join(REPO, 'test', 'helpers', 'send-junk.py');
    const sent = Number(await lab.mustExec(ns.x!, 'python3', [script, 'eth0', '100000', '42'], { timeoutMs: 120_000 }));
    assert.ok(sent > 90_000, `the kernel accepted only ${sent} frames`);
    assert.ok(vnet.alive, 'daemon died');
    const stats = await vnet.stats();
    assert.ok(totalDrops(stats) > dropsBefore, 'drop counters did not rise');
    const junkyard = stats.networks.find((n: any) => n.name === 'junkyard');
    assert.ok(junkyard.macCount <= junkyard.macLimit, `MAC table ${junkyard.macCount} > limit ${junkyard.macLimit}`);
    await ping(lab, ns.a!, '10.20.0.2', 3);
    await ping(lab, ns.b!, '10.20.0.1', 3);
  });
});
