/**
 * VirtualBox's UDPTunnel generic driver: Ethernet frames in UDP datagrams.
 * Two vnet daemons (two homes, one host namespace, so they share its
 * loopback) tunnel one guest each to the other over 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab } from '../helpers/lab.js';
import { VnetDaemon } from '../helpers/vnet.js';
import { ping } from '../helpers/guest.js';

const lab = new Lab();
const ns: Record<string, string> = {};

async function tunnelGuest(vnet: VnetDaemon, vm: string, sport: number, dport: number, address: string): Promise<void> {
  await vnet.must(['createvm', '--name', vm, '--register']);
  await vnet.must([
    'modifyvm', vm, '--nic1', 'generic', '--nic-generic-drv1', 'UDPTunnel',
    '--nic-property1', 'dest=127.0.0.1', '--nic-property1', `sport=${sport}`, '--nic-property1', `dport=${dport}`,
  ]);
  ns[vm] = lab.name(vm);
  await vnet.must(['startvm', vm, '--type', 'netns', '--netns', ns[vm]!]);
  await lab.mustExec(ns[vm]!, 'ip', ['addr', 'add', `${address}/24`, 'dev', 'eth0']);
}

describe('UDPTunnel', { timeout: 120_000 }, () => {
  let one: VnetDaemon;
  let two: VnetDaemon;
  before(async () => {
    one = await VnetDaemon.start(lab);
    two = await VnetDaemon.start(lab, one.netns);
    await tunnelGuest(one, 'e', 40001, 40002, '10.30.0.1');
    await tunnelGuest(two, 'f', 40002, 40001, '10.30.0.2');
  });
  after(() => lab.cleanup());

  test('guests on two daemons ping each other through the tunnel', async () => {
    await ping(lab, ns.e!, '10.30.0.2', 3);
    await ping(lab, ns.f!, '10.30.0.1', 3);
    const info = await one.must(['showvminfo', 'e', '--machinereadable']);
    assert.match(info, /nic1="generic"/);
    assert.match(info, /generic1="UDPTunnel"/);
    assert.match(info, /nicproperty1_sport="40001"/);
  });

  test('TCP through the tunnel: TSO frames from the TAP are cut to MTU-sized datagrams intact', async () => {
    const dir = lab.tempDir('tunnel-tcp');
    const input = join(dir, 'in');
    const output = join(dir, 'out');
    writeFileSync(input, randomBytes(5 << 20));
    const server = lab.spawn(ns.f!, 'socat', ['-u', 'TCP-LISTEN:5001,reuseaddr', `OPEN:${output},creat,trunc`]);
    const done = new Promise((r) => server.once('exit', r));
    await lab.waitListening(ns.f!, 5001);
    await lab.mustExec(ns.e!, 'socat', ['-u', `OPEN:${input}`, 'TCP:10.30.0.2:5001'], { timeoutMs: 60_000 });
    await done;
    const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');
    assert.equal(sha(output), sha(input));
  });

  test('a sport already in use is a clear error and leaves the NIC as it was', async () => {
    await one.must(['createvm', '--name', 'g', '--register']);
    await one.must(['modifyvm', 'g', '--nic1', 'generic', '--nic-generic-drv1', 'UDPTunnel', '--nic-property1', 'sport=40001', '--nic-property1', 'dport=40009']);
    const gns = lab.name('g');
    const result = await one.cli(['startvm', 'g', '--type', 'netns', '--netns', gns]);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /40001/);
    assert.match(await one.must(['showvminfo', 'g', '--machinereadable']), /VMState="poweroff"/);
    assert.equal((await lab.exec(gns, 'true', [])).code !== 0, true, 'the namespace made for g should be gone');
  });
});
