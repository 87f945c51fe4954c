/**
 * Bridged networking with real guests. The daemon's namespace holds a Linux
 * bridge br0, joined by a veth to a "LAN" namespace that runs dnsmasq as the
 * LAN's DHCP server (203.0.113.0/24); a second veth `up1` (an ordinary
 * interface) leads to another LAN (192.0.2.0/24) for macvtap bridging.
 *
 *   guest b1 ─► vnet ─► TAP ─► br0 ─ lan0 ══ eth0 LAN ns (203.0.113.1, dnsmasq)
 *   guest b2 ─► vnet ─► macvtap on up1 ══ eth0 LAN2 ns (192.0.2.1)
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab, must } from '../helpers/lab.js';
import { VnetDaemon } from '../helpers/vnet.js';
import { ping } from '../helpers/guest.js';
import { dhcp } from '../helpers/internet.js';

const lab = new Lab();
let vnet: VnetDaemon;
let hostNs: string;
let lanNs: string;
let lan2Ns: string;
const ns: Record<string, string> = {};
let lease: Record<string, string>;

interface Lease {
  vm: string | null;
  ip: string;
  network: string;
  source: string;
}

describe('bridged network', { timeout: 180_000 }, () => {
  before(async () => {
    hostNs = await lab.netns('host');
    lanNs = await lab.netns('lan');
    lan2Ns = await lab.netns('lan2');
    const inHost = (...args: string[]) => must('ip', ['-n', hostNs, ...args]);
    await inHost('link', 'add', 'br0', 'type', 'bridge');
    await inHost('link', 'set', 'br0', 'up');
    await inHost('link', 'add', 'lan0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', lanNs);
    await inHost('link', 'set', 'lan0', 'master', 'br0', 'up');
    await must('ip', ['-n', lanNs, 'addr', 'add', '203.0.113.1/24', 'dev', 'eth0']);
    await must('ip', ['-n', lanNs, 'link', 'set', 'eth0', 'up']);
    await inHost('link', 'add', 'up1', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', lan2Ns);
    await inHost('link', 'set', 'up1', 'up');
    await must('ip', ['-n', lan2Ns, 'addr', 'add', '192.0.2.1/24', 'dev', 'eth0']);
    await must('ip', ['-n', lan2Ns, 'link', 'set', 'eth0', 'up']);
    const dir = lab.tempDir('dnsmasq');
    lab.spawn(lanNs, 'dnsmasq', [
      '-k', '--port=0', '--no-resolv', '--no-hosts', '--interface=eth0', '--bind-interfaces', '--user=root',
      '--dhcp-range=203.0.113.50,203.0.113.99,255.255.255.0,1h', '--dhcp-authoritative',
      `--dhcp-leasefile=${join(dir, 'leases')}`, `--pid-file=${join(dir, 'pid')}`,
    ]);
    await lab.waitListening(lanNs, 67, 'udp');
    vnet = await VnetDaemon.start(lab, hostNs);
  });
  after(async () => {
    if (vnet && !vnet.alive) console.error(vnet.log);
    await lab.cleanup();
  });

  test('list bridgedifs offers the bridge and the free interface, not the bridge port', async () => {
    const ifs = JSON.parse(await vnet.must(['list', 'bridgedifs', '--json']));
    const byName = Object.fromEntries(ifs.map((i: { name: string; kind: string }) => [i.name, i.kind]));
    assert.equal(byName.br0, 'bridge');
    assert.equal(byName.up1, 'ethernet');
    assert.equal(byName.lan0, undefined);
    assert.match(await vnet.must(['list', 'bridgedifs']), /Name:\s+br0[\s\S]*MediumType:\s+Bridge/);
  });

  test('a guest bridged onto br0 gets its lease from the LAN dnsmasq and pings the LAN host; vnet ip reports it', async () => {
    await vnet.must(['createvm', '--name', 'b1', '--register']);
    await vnet.must(['modifyvm', 'b1', '--nic1', 'bridged', '--bridge-adapter1', 'br0']);
    assert.match(await vnet.must(['showvminfo', 'b1', '--machinereadable']), /bridgeadapter1="br0"/);
    ns.b1 = lab.name('b1');
    await vnet.must(['startvm', 'b1', '--type', 'netns', '--netns', ns.b1]);
    lease = await dhcp(lab, ns.b1);
    assert.equal(lease.serverid, '203.0.113.1');
    const host = Number(lease.ip!.split('.')[3]);
    assert.ok(lease.ip!.startsWith('203.0.113.') && host >= 50 && host <= 99, `lease ${lease.ip}`);
    await ping(lab, ns.b1, '203.0.113.1');
    await ping(lab, lanNs, lease.ip!);
    // The guest has its own MAC on the LAN.
    const mac = (await lab.mustExec(ns.b1, 'cat', ['/sys/class/net/eth0/address'])).trim();
    assert.match(await lab.mustExec(lanNs, 'ip', ['neigh', 'show', lease.ip!]), new RegExp(mac));
    assert.equal((await vnet.must(['ip', 'b1'])).trim(), lease.ip);
    const leases: Lease[] = JSON.parse(await vnet.must(['leases', '--json']));
    assert.deepEqual(leases.filter((l) => l.vm === 'b1').map((l) => [l.ip, l.network, l.source]), [[lease.ip, 'bridged:br0', 'snooped-dhcp']]);
  });

  test('a guest bridged onto an ordinary interface goes through macvtap; vnet ip learns its static address from ARP', async () => {
    await vnet.must(['createvm', '--name', 'b2', '--register']);
    await vnet.must(['modifyvm', 'b2', '--nic1', 'bridged', '--bridge-adapter1', 'up1']);
    ns.b2 = lab.name('b2');
    await vnet.must(['startvm', 'b2', '--type', 'netns', '--netns', ns.b2]);
    await lab.mustExec(ns.b2, 'ip', ['addr', 'add', '192.0.2.10/24', 'dev', 'eth0']);
    await ping(lab, ns.b2, '192.0.2.1');
    await ping(lab, lan2Ns, '192.0.2.10');
    assert.equal((await vnet.must(['ip', 'b2'])).trim(), '192.0.2.10');
    const leases: Lease[] = JSON.parse(await vnet.must(['leases', '--network', 'up1', '--json']));
    assert.deepEqual(leases.map((l) => [l.vm, l.ip, l.source]), [['b2', '192.0.2.10', 'snooped-arp']]);
  });

  test('poweroff removes the uplink devices from the daemon namespace', async () => {
    await vnet.must(['controlvm', 'b1', 'poweroff']);
    await vnet.must(['controlvm', 'b2', 'poweroff']);
    const links = JSON.parse(await lab.mustExec(hostNs, 'ip', ['-j', 'link', 'show'])).map((l: { ifname: string }) => l.ifname);
    assert.deepEqual(links.sort(), ['br0', 'lan0', 'lo', 'up1']);
    assert.equal(JSON.parse(await vnet.must(['leases', '--json'])).length, 0);
  });

  test('an adapter that does not exist is a clear error', async () => {
    await vnet.must(['modifyvm', 'b1', '--bridge-adapter1', 'nope0']);
    const result = await vnet.cli(['startvm', 'b1', '--type', 'netns', '--netns', lab.name('b1x')]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /vnet: error: NIC 1: no interface 'nope0' in the daemon's network namespace/);
  });
});
