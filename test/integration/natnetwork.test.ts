/**
 * NAT Network: one NAT router shared by two VMs. They get different leases
 * from its DHCP server, see each other, resolve each other by name, and both
 * reach the internet namespace; a forward reaches one of them.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab } from '../helpers/lab.js';
import { VnetDaemon } from '../helpers/vnet.js';
import { ping } from '../helpers/guest.js';
import { dhcp, INTERNET_IP, makeWorld, type World } from '../helpers/internet.js';

const lab = new Lab();
let vnet: VnetDaemon;
let world: World;
const ns: Record<string, string> = {};
const leases: Record<string, Record<string, string>> = {};

describe('NAT Network', { timeout: 180_000 }, () => {
  before(async () => {
    world = await makeWorld(lab);
    vnet = await VnetDaemon.start(lab, world.hostNs, undefined, { VNET_RESOLV_CONF: world.resolvConf });
    await vnet.must(['natnetwork', 'add', '--netname', 'lab-nat', '--network', '10.13.0.0/24', '--enable', '--dhcp', 'on']);
    for (const vm of ['n1', 'n2']) {
      await vnet.must(['createvm', '--name', vm, '--register']);
      await vnet.must(['modifyvm', vm, '--nic1', 'natnetwork', '--nat-network1', 'lab-nat']);
      ns[vm] = lab.name(vm);
      await vnet.must(['startvm', vm, '--type', 'netns', '--netns', ns[vm]!]);
      leases[vm] = await dhcp(lab, ns[vm]!);
    }
  });
  after(async () => {
    if (vnet && !vnet.alive) console.error(vnet.log);
    await lab.cleanup();
  });

  test('two VMs get distinct leases from the pool, gateway .1', async () => {
    const [a, b] = [leases.n1!, leases.n2!];
    assert.notEqual(a.ip, b.ip);
    for (const lease of [a, b]) {
      assert.match(lease.ip!, /^10\.13\.0\.([4-9]|\d\d+)$/);
      assert.equal(lease.router, '10.13.0.1');
    }
    const listed = JSON.parse(await vnet.must(['leases', '--network', 'lab-nat', '--json']));
    assert.deepEqual(listed.map((l: { vm: string }) => l.vm).sort(), ['n1', 'n2']);
    assert.match(await vnet.must(['list', 'natnets']), /NetworkName:\s+lab-nat[\s\S]*Network:\s+10\.13\.0\.0\/24/);
  });

  test('they see each other and resolve each other by VM name', async () => {
    await ping(lab, ns.n1!, leases.n2!.ip!);
    await ping(lab, ns.n2!, leases.n1!.ip!);
    const answer = await lab.mustExec(ns.n1!, 'dig', ['+short', '+time=2', '@10.13.0.1', 'n2']);
    assert.equal(answer.trim(), leases.n2!.ip);
    const overTcp = await lab.mustExec(ns.n2!, 'dig', ['+short', '+tcp', '+time=2', '@10.13.0.1', 'n1']);
    assert.equal(overTcp.trim(), leases.n1!.ip, 'the gateway answers DNS over TCP too');
  });

  test('both reach the internet host', async () => {
    const dir = lab.tempDir('www');
    writeFileSync(join(dir, 'x.txt'), 'outside\n');
    lab.spawn(world.internetNs, 'python3', ['-m', 'http.server', '--bind', INTERNET_IP, '8000', '--directory', dir]);
    await lab.waitListening(world.internetNs, 8000);
    for (const vm of ['n1', 'n2']) {
      assert.equal(await lab.mustExec(ns[vm]!, 'curl', ['-sS', '--max-time', '10', `http://${INTERNET_IP}:8000/x.txt`]), 'outside\n');
    }
  });

  test('a --port-forward-4 rule reaches the guest it names', async () => {
    const dir = lab.tempDir('n2www');
    writeFileSync(join(dir, 'index.html'), 'n2 here\n');
    lab.spawn(ns.n2!, 'python3', ['-m', 'http.server', '--bind', '0.0.0.0', '8080', '--directory', dir]);
    await lab.waitListening(ns.n2!, 8080);
    await vnet.must(['natnetwork', 'modify', '--netname', 'lab-nat', '--port-forward-4', `web:tcp:[127.0.0.1]:18180:[${leases.n2!.ip}]:8080`]);
    assert.equal(await lab.mustExec(world.hostNs, 'curl', ['-sS', '--max-time', '5', 'http://127.0.0.1:18180/index.html']), 'n2 here\n');
    await vnet.must(['natnetwork', 'modify', '--netname', 'lab-nat', '--port-forward-4', 'delete', 'web']);
    assert.notEqual((await lab.exec(world.hostNs, 'curl', ['-sS', '--max-time', '5', 'http://127.0.0.1:18180/'])).code, 0);
  });

  test('with --nat-splice on for n2, loopback clients of a forward to n2 are spliced in its namespace; forwards to n1 are not', async () => {
    // Each guest answers with the client address it sees.
    for (const vm of ['n1', 'n2']) lab.spawn(ns[vm]!, 'socat', ['TCP-LISTEN:9100,fork,reuseaddr', 'SYSTEM:echo $SOCAT_PEERADDR']);
    for (const vm of ['n1', 'n2']) await lab.waitListening(ns[vm]!, 9100);
    await vnet.must(['modifyvm', 'n2', '--nat-splice1', 'on']);
    assert.match(await vnet.must(['showvminfo', 'n2', '--machinereadable']), /natsplice1="on"/);
    await vnet.must(['natnetwork', 'modify', '--netname', 'lab-nat', '--port-forward-4', `e1:tcp:[127.0.0.1]:18191:[${leases.n1!.ip}]:9100`, '--port-forward-4', `e2:tcp:[127.0.0.1]:18192:[${leases.n2!.ip}]:9100`]);
    const seen = async (port: number) => (await lab.mustExec(world.hostNs, 'socat', ['-u', `TCP:127.0.0.1:${port}`, '-'])).trim();
    const forwarding = async () => (await vnet.stats()).nat.find((lan: { key: string }) => lan.key === 'natnet:lab-nat').forwarding;
    const before = await forwarding();
    assert.equal(await seen(18192), leases.n2!.ip, 'spliced: n2 sees its own address as the client');
    assert.equal(await seen(18191), '10.13.0.1', 'through the NIC: n1 sees the gateway');
    const after = await forwarding();
    assert.equal(after.spliced - before.spliced, 1);
    await vnet.must(['modifyvm', 'n2', '--nat-splice1', 'off']);
    assert.equal(await seen(18192), '10.13.0.1', 'splicing off: the NIC again');
    await vnet.must(['natnetwork', 'modify', '--netname', 'lab-nat', '--port-forward-4', 'delete', 'e1', '--port-forward-4', 'delete', 'e2']);
  });
});
