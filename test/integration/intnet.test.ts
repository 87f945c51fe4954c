/**
 * Internal networking with real Linux guests: three netns VMs, `a` and `b` on
 * intnet `lab`, `c` on intnet `other`, static addresses in one subnet. The
 * daemon runs in its own namespace; all traffic stays inside the lab.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab, must, sleep, waitFor } from '../helpers/lab.js';
import { VnetDaemon } from '../helpers/vnet.js';
import { capture, ping, pingFails } from '../helpers/guest.js';

const lab = new Lab();
let vnet: VnetDaemon;
const ns: Record<string, string> = {};
const ADDR: Record<string, string> = { a: '10.10.0.1', b: '10.10.0.2', c: '10.10.0.3', d: '10.10.0.4' };

async function startGuest(vm: string, intnet: string, extra: string[] = []): Promise<void> {
  await vnet.must(['createvm', '--name', vm, '--register']);
  await vnet.must(['modifyvm', vm, '--nic1', 'intnet', '--intnet1', intnet, ...extra]);
  ns[vm] = lab.name(vm);
  await vnet.must(['startvm', vm, '--type', 'netns', '--netns', ns[vm]!]);
  await lab.mustExec(ns[vm]!, 'ip', ['addr', 'add', `${ADDR[vm]}/24`, 'dev', 'eth0']);
}

const macOf = async (vm: string): Promise<string> =>
  (await lab.mustExec(ns[vm]!, 'cat', ['/sys/class/net/eth0/address'])).trim();

describe('internal network', { timeout: 180_000 }, () => {
  before(async () => {
    vnet = await VnetDaemon.start(lab);
    await startGuest('a', 'lab');
    await startGuest('b', 'lab');
    await startGuest('c', 'other');
  });
  after(async () => {
    if (vnet && !vnet.alive) console.error(vnet.log);
    await lab.cleanup();
  });

  test('netns guests get eth0 with the NIC MAC, and list shows them running', async () => {
    const info = await vnet.must(['showvminfo', 'a', '--machinereadable']);
    const mac = /macaddress1="([0-9A-F]{12})"/.exec(info)![1]!;
    assert.equal((await macOf('a')).replace(/:/g, '').toUpperCase(), mac);
    assert.match(mac, /^080027/);
    assert.match(info, /intnet1="lab"/);
    assert.match(info, /VMState="running"/);
    const running = await vnet.must(['list', 'runningvms']);
    for (const vm of ['a', 'b', 'c']) assert.match(running, new RegExp(`"${vm}"`));
    assert.match(await vnet.must(['list', 'intnets']), /Name:\s+lab[\s\S]*Name:\s+other/);
  });

  test('a and b ping each other; c, on another intnet, reaches neither and sees none of their frames', async () => {
    const sniff = capture(lab, ns.c!, 'eth0', join(lab.tempDir('cap'), 'c.pcap'));
    await sleep(500);
    await ping(lab, ns.a!, ADDR.b!);
    await ping(lab, ns.b!, ADDR.a!);
    await pingFails(lab, ns.c!, ADDR.a!);
    await pingFails(lab, ns.c!, ADDR.b!);
    const [macA, macB] = [await macOf('a'), await macOf('b')];
    const seen = await sniff.stop();
    assert.ok(!seen.includes(macA) && !seen.includes(macB), `c saw a/b frames:\n${seen}`);
  });

  test('20 MB over TCP from a to b arrive intact', async () => {
    const dir = lab.tempDir('tcp');
    const input = join(dir, 'in');
    const output = join(dir, 'out');
    writeFileSync(input, randomBytes(20 << 20));
    const server = lab.spawn(ns.b!, 'socat', ['-u', 'TCP-LISTEN:5000,reuseaddr', `OPEN:${output},creat,trunc`]);
    const done = new Promise((r) => server.once('exit', r));
    await lab.waitListening(ns.b!, 5000);
    await lab.mustExec(ns.a!, 'socat', ['-u', `OPEN:${input}`, `TCP:${ADDR.b}:5000`], { timeoutMs: 60_000 });
    await done;
    const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');
    assert.equal(sha(output), sha(input));
  });

  test('setlinkstate off cuts a; on restores it', async () => {
    await vnet.must(['controlvm', 'a', 'setlinkstate1', 'off']);
    assert.match(await vnet.must(['showvminfo', 'a', '--machinereadable']), /cableconnected1="off"/);
    await pingFails(lab, ns.b!, ADDR.a!);
    const link = await lab.mustExec(ns.a!, 'ip', ['link', 'show', 'eth0']);
    assert.match(link, /NO-CARRIER/);
    await vnet.must(['controlvm', 'a', 'setlinkstate1', 'on']);
    await waitFor('carrier on a', async () => !(await lab.mustExec(ns.a!, 'ip', ['link', 'show', 'eth0'])).includes('NO-CARRIER'));
    await ping(lab, ns.b!, ADDR.a!);
  });

  test('promisc deny hides a<->b unicast from a third VM; allow-all shows it', async () => {
    await startGuest('d', 'lab', ['--nic-promisc1', 'deny']);
    // Teach the switch both MACs, then watch d while a pings b.
    await ping(lab, ns.a!, ADDR.b!);
    const [macA, macB] = [await macOf('a'), await macOf('b')];
    const filter = `ether host ${macA} and ether host ${macB} and icmp`;
    const dir = lab.tempDir('promisc');
    let sniff = capture(lab, ns.d!, 'eth0', join(dir, 'deny.pcap'), filter);
    await sleep(500);
    await ping(lab, ns.a!, ADDR.b!, 5);
    assert.equal(await sniff.count(), 0, 'd saw unicast between a and b under deny');

    await vnet.must(['controlvm', 'd', 'nicpromisc1', 'allow-all']);
    sniff = capture(lab, ns.d!, 'eth0', join(dir, 'all.pcap'), filter);
    await sleep(500);
    await ping(lab, ns.a!, ADDR.b!, 5);
    assert.ok((await sniff.count()) >= 5, 'd should see a<->b under allow-all');
  });

  test('--nic-trace1 writes a pcap that tshark reads, with the ICMP echoes in it', async () => {
    const file = join(lab.tempDir('trace'), 'a.pcap');
    await vnet.must(['modifyvm', 'a', '--nic-trace1', 'on', '--nic-trace-file1', file]);
    await ping(lab, ns.a!, ADDR.b!, 3);
    await vnet.must(['controlvm', 'a', 'nictrace1', 'off']);
    await sleep(300);
    const out = await must('tshark', ['-r', file, '-Y', 'icmp', '-T', 'fields', '-e', 'icmp.type']);
    const types = out.trim().split('\n');
    assert.ok(types.filter((t) => t === '8').length >= 3, `echo requests in trace: ${out}`);
    assert.ok(types.filter((t) => t === '0').length >= 3, `echo replies in trace: ${out}`);
  });

  test('kill -9 and restart: every VM and setting is there, and a still reaches b', async () => {
    const before = await Promise.all(['a', 'b', 'c', 'd'].map((vm) => vnet.must(['showvminfo', vm, '--machinereadable'])));
    await vnet.kill9();
    await vnet.restart();
    const afterRestart = await Promise.all(['a', 'b', 'c', 'd'].map((vm) => vnet.must(['showvminfo', vm, '--machinereadable'])));
    assert.deepEqual(afterRestart, before);
    await ping(lab, ns.a!, ADDR.b!);
    await pingFails(lab, ns.c!, ADDR.a!);
  });

  test('poweroff removes the TAP and the namespace vnet made', async () => {
    await vnet.must(['controlvm', 'd', 'poweroff']);
    assert.doesNotMatch(await vnet.must(['list', 'runningvms']), /"d"/);
    assert.match(await vnet.must(['showvminfo', 'd', '--machinereadable']), /VMState="poweroff"/);
    assert.equal((await lab.exec(ns.d!, 'true', [])).code !== 0, true, 'namespace d should be gone');
  });
});
