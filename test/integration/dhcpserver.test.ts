/**
 * `dhcpserver` for a NAT Network and for an internal network, with real
 * guests: two guests on one NAT Network whose DHCP server is reshaped by
 * `dhcpserver add` get distinct leases from its pool, see each other and
 * reach the internet namespace; on an intnet the server hands out its pool,
 * a fixed address per VM NIC and an option (`--set-opt`); a bad server
 * changes nothing.
 */
import assert from 'node:assert/strict';
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

interface LeaseView {
  vm: string | null;
  ip: string;
  network: string;
  state: string;
  source: string;
}

async function startGuest(vm: string, nicArgs: string[]): Promise<void> {
  await vnet.must(['createvm', '--name', vm, '--register']);
  await vnet.must(['modifyvm', vm, ...nicArgs]);
  ns[vm] = lab.name(vm);
  await vnet.must(['startvm', vm, '--type', 'netns', '--netns', ns[vm]!]);
}

const hostOf = (ip: string): number => Number(ip.split('.')[3]);

describe('DHCP servers', { timeout: 180_000 }, () => {
  before(async () => {
    world = await makeWorld(lab);
    vnet = await VnetDaemon.start(lab, world.hostNs, undefined, { VNET_RESOLV_CONF: world.resolvConf });
  });
  after(async () => {
    if (vnet && !vnet.alive) console.error(vnet.log);
    await lab.cleanup();
  });

  test('two guests on a NAT Network with a dhcpserver get distinct leases from its pool, see each other, reach the internet', async () => {
    await vnet.must(['natnetwork', 'add', '--netname', 'labnat', '--network', '10.14.0.0/24', '--enable', '--dhcp', 'on']);
    await vnet.must(['dhcpserver', 'add', '--network', 'labnat', '--server-ip', '10.14.0.3', '--netmask', '255.255.255.0', '--lower-ip', '10.14.0.100', '--upper-ip', '10.14.0.120', '--enable', '--default-lease-time', '7200']);
    for (const vm of ['n1', 'n2']) {
      await startGuest(vm, ['--nic1', 'natnetwork', '--nat-network1', 'labnat']);
      leases[vm] = await dhcp(lab, ns[vm]!);
    }
    const [a, b] = [leases.n1!, leases.n2!];
    assert.notEqual(a.ip, b.ip);
    for (const lease of [a, b]) {
      assert.ok(lease.ip!.startsWith('10.14.0.') && hostOf(lease.ip!) >= 100 && hostOf(lease.ip!) <= 120, `lease ${lease.ip}`);
      assert.equal(lease.router, '10.14.0.1');
      assert.equal(lease.serverid, '10.14.0.3');
      assert.equal(lease.lease, '7200');
    }
    await ping(lab, ns.n1!, b.ip!);
    await ping(lab, ns.n2!, a.ip!);
    await ping(lab, ns.n1!, INTERNET_IP);
    await ping(lab, ns.n2!, INTERNET_IP);
    const found = await vnet.must(['dhcpserver', 'findlease', '--network', 'labnat', '--mac-address', (await lab.mustExec(ns.n2!, 'cat', ['/sys/class/net/eth0/address'])).trim()]);
    assert.match(found, new RegExp(`IP Address:\\s+${b.ip!.replace(/\./g, '\\.')}`));
    const changed = await vnet.cli(['dhcpserver', 'modify', '--network', 'labnat', '--upper-ip', '10.14.0.130']);
    assert.equal(changed.code, 1);
    assert.match(changed.stderr, /NAT network 'labnat' is running/);
  });

  test('an intnet dhcpserver hands out its pool, a fixed address per VM NIC, and --set-opt options', async () => {
    await vnet.must([
      'dhcpserver', 'add', '--network', 'labnet', '--server-ip', '10.20.0.1', '--netmask', '255.255.255.0',
      '--lower-ip', '10.20.0.10', '--upper-ip', '10.20.0.20', '--enable', '--set-opt', '6', '10.20.0.1',
      '--vm', 'i2', '--nic', '1', '--fixed-address', '10.20.0.77',
    ]);
    for (const vm of ['i1', 'i2']) {
      await startGuest(vm, ['--nic1', 'intnet', '--intnet1', 'labnet']);
      leases[vm] = await dhcp(lab, ns[vm]!);
    }
    assert.ok(hostOf(leases.i1!.ip!) >= 10 && hostOf(leases.i1!.ip!) <= 20, `lease ${leases.i1!.ip}`);
    assert.equal(leases.i2!.ip, '10.20.0.77');
    assert.equal(leases.i1!.dns, '10.20.0.1');
    assert.equal(leases.i1!.router, '');
    await ping(lab, ns.i1!, '10.20.0.77');
    await ping(lab, ns.i2!, '10.20.0.1');
    const listed: LeaseView[] = JSON.parse(await vnet.must(['leases', '--network', 'labnet', '--json']));
    assert.deepEqual(listed.filter((l) => l.state === 'bound').map((l) => [l.vm, l.ip, l.network, l.source]).sort(), [
      ['i1', leases.i1!.ip, 'intnet:labnet', 'dhcp'],
      ['i2', '10.20.0.77', 'intnet:labnet', 'dhcp'],
    ]);
    assert.equal((await vnet.must(['ip', 'i2', '--nic', '1'])).trim(), '10.20.0.77');
    const servers = JSON.parse(await vnet.must(['list', 'dhcpservers', '--json']));
    assert.deepEqual(servers.map((s: { network: string; kind: string; running: boolean }) => [s.network, s.kind, s.running]), [
      ['labnat', 'natnet', true],
      ['labnet', 'intnet', true],
    ]);
    assert.match(await vnet.must(['list', 'dhcpservers']), /NetworkName:\s+labnet[\s\S]*Dhcpd IP:\s+10\.20\.0\.1[\s\S]*VM i2 NIC 1: Fixed Address 10\.20\.0\.77/);
  });

  test('a bad server is refused whole: nothing changes', async () => {
    const before = await vnet.must(['list', 'dhcpservers', '--json']);
    const outside = await vnet.cli(['dhcpserver', 'modify', '--network', 'labnet', '--lower-ip', '10.99.0.10']);
    assert.equal(outside.code, 1);
    assert.match(outside.stderr, /^vnet: error: DHCP server 'labnet': lower address 10\.99\.0\.10 is not a host address of 10\.20\.0\.0\/255\.255\.255\.0\n$/);
    const reserved = await vnet.cli(['dhcpserver', 'modify', '--network', 'labnet', '--set-opt', '53', 'x']);
    assert.match(reserved.stderr, /option 53 is set by the server itself/);
    const missing = await vnet.cli(['dhcpserver', 'add', '--network', 'other', '--server-ip', '10.30.0.1']);
    assert.match(missing.stderr, /--netmask is required/);
    assert.equal(await vnet.must(['list', 'dhcpservers', '--json']), before);
  });

  test('removing the intnet server stops it answering', async () => {
    await vnet.must(['dhcpserver', 'remove', '--network', 'labnet']);
    const result = await lab.exec(ns.i1!, 'busybox', ['udhcpc', '-i', 'eth0', '-n', '-q', '-f', '-t', '2', '-T', '1', '-s', '/bin/true'], { timeoutMs: 10_000 });
    assert.notEqual(result.code, 0);
  });
});
