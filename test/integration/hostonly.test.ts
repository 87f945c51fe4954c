/**
 * Host-only networking with real guests: `hostonlyif create` + `ipconfig`
 * make vboxnet0 (192.168.56.1/24) in the daemon's namespace; a guest gets a
 * lease from VirtualBox's default server (.100, pool .101-.254); host and
 * guest ping each other; the guest cannot reach the internet namespace that
 * the host can. A fixed address for the guest's MAC is handed out on its next
 * DISCOVER and shown by `dhcpserver findlease`, `vnet ip` and `vnet leases`.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab, run, waitFor } from '../helpers/lab.js';
import { VNET_BIN, VnetDaemon } from '../helpers/vnet.js';
import { ping, pingFails } from '../helpers/guest.js';
import { dhcp, INTERNET_IP, makeWorld, type World } from '../helpers/internet.js';

const lab = new Lab();
let vnet: VnetDaemon;
let world: World;
let guest: string;
let lease: Record<string, string>;

const hostOf = (ip: string): number => Number(ip.split('.')[3]);

describe('host-only network', { timeout: 180_000 }, () => {
  before(async () => {
    world = await makeWorld(lab);
    vnet = await VnetDaemon.start(lab, world.hostNs, undefined, { VNET_RESOLV_CONF: world.resolvConf });
  });
  after(async () => {
    if (vnet && !vnet.alive) console.error(vnet.log);
    await lab.cleanup();
  });

  test('hostonlyif create + ipconfig put vboxnet0 192.168.56.1/24 in the daemon namespace', async () => {
    assert.match(await vnet.must(['hostonlyif', 'create']), /Interface 'vboxnet0' was successfully created/);
    await vnet.must(['hostonlyif', 'ipconfig', 'vboxnet0', '--ip', '192.168.56.1', '--netmask', '255.255.255.0']);
    const [link] = JSON.parse(await lab.mustExec(world.hostNs, 'ip', ['-j', 'addr', 'show', 'dev', 'vboxnet0']));
    assert.deepEqual(link.addr_info.filter((a: { family: string }) => a.family === 'inet').map((a: { local: string; prefixlen: number }) => `${a.local}/${a.prefixlen}`), ['192.168.56.1/24']);
    // Never in the machine's own namespace.
    assert.notEqual((await run('ip', ['link', 'show', 'dev', 'vboxnet0'])).code, 0);
    const listed = JSON.parse(await vnet.must(['list', 'hostonlyifs', '--json']));
    assert.deepEqual(listed.map((i: { name: string; ip: string; netmask: string }) => [i.name, i.ip, i.netmask]), [['vboxnet0', '192.168.56.1', '255.255.255.0']]);
    assert.match(await vnet.must(['list', 'hostonlyifs']), /Name:\s+vboxnet0[\s\S]*IPAddress:\s+192\.168\.56\.1[\s\S]*VBoxNetworkName:\s+HostInterfaceNetworking-vboxnet0/);
    const servers = JSON.parse(await vnet.must(['list', 'dhcpservers', '--json']));
    assert.deepEqual(servers.map((s: { network: string; serverIp: string; lowerIp: string; upperIp: string }) => [s.network, s.serverIp, s.lowerIp, s.upperIp]), [
      ['HostInterfaceNetworking-vboxnet0', '192.168.56.100', '192.168.56.101', '192.168.56.254'],
    ]);
  });

  test('a guest on it gets a lease from .101-.254; host and guest ping each other', async () => {
    await vnet.must(['createvm', '--name', 'h1', '--register']);
    await vnet.must(['modifyvm', 'h1', '--nic1', 'hostonly', '--host-only-adapter1', 'vboxnet0']);
    assert.match(await vnet.must(['showvminfo', 'h1', '--machinereadable']), /hostonlyadapter1="vboxnet0"/);
    assert.match(await vnet.must(['showvminfo', 'h1']), /Host-only Interface 'vboxnet0'/);
    guest = lab.name('h1');
    await vnet.must(['startvm', 'h1', '--type', 'netns', '--netns', guest]);
    lease = await dhcp(lab, guest);
    assert.match(lease.ip!, /^192\.168\.56\.\d+$/);
    assert.ok(hostOf(lease.ip!) >= 101 && hostOf(lease.ip!) <= 254, `lease ${lease.ip} outside .101-.254`);
    assert.equal(lease.serverid, '192.168.56.100');
    assert.equal(lease.router, '', 'a host-only network has no router');
    await ping(lab, guest, '192.168.56.1');
    await ping(lab, world.hostNs, lease.ip!);
  });

  test('the guest cannot reach the internet namespace, which the host can', async () => {
    await ping(lab, world.hostNs, INTERNET_IP);
    await pingFails(lab, guest, INTERNET_IP);
    // Not even when it routes through the host: the host does not forward for it.
    await lab.mustExec(guest, 'ip', ['route', 'replace', 'default', 'via', '192.168.56.1']);
    await pingFails(lab, guest, INTERNET_IP);
  });

  test('a fixed address for the guest MAC is handed out on the next DISCOVER; findlease, ip and leases show it', async () => {
    const mac = (await lab.mustExec(guest, 'cat', ['/sys/class/net/eth0/address'])).trim();
    await vnet.must(['dhcpserver', 'modify', '--interface', 'vboxnet0', '--mac-address', mac.replace(/:/g, ''), '--fixed-address', '192.168.56.50']);
    const fixed = await dhcp(lab, guest);
    assert.equal(fixed.ip, '192.168.56.50');
    const found = await vnet.must(['dhcpserver', 'findlease', '--interface', 'vboxnet0', '--mac-address', mac]);
    assert.match(found, /IP Address:\s+192\.168\.56\.50/);
    assert.match(found, new RegExp(`MAC Address:\\s+${mac}`));
    assert.equal((await vnet.must(['ip', 'h1'])).trim(), '192.168.56.50');
    const leases = JSON.parse(await vnet.must(['leases', '--json']));
    const mine = leases.filter((l: { vm: string; state: string }) => l.vm === 'h1' && l.state === 'bound');
    assert.deepEqual(mine.map((l: { ip: string; network: string; nic: number; source: string }) => [l.ip, l.network, l.nic, l.source]), [['192.168.56.50', 'hostonly:vboxnet0', 1, 'dhcp']]);
    assert.match(await vnet.must(['leases', '--network', 'vboxnet0']), /hostonly:vboxnet0\s+\S+\s+192\.168\.56\.50/);
    await ping(lab, world.hostNs, '192.168.56.50');
  });

  test('kill -9 and restart: vboxnet0 and its server are back, the guest still talks to the host', async () => {
    await vnet.kill9();
    await vnet.restart();
    await ping(lab, guest, '192.168.56.1');
    const again = await dhcp(lab, guest);
    assert.equal(again.ip, '192.168.56.50');
  });

  test('remove is refused while a NIC uses the interface, and removes the link afterwards', async () => {
    const refused = await vnet.cli(['hostonlyif', 'remove', 'vboxnet0']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /vnet: error: host-only interface 'vboxnet0' is used by 1 running NIC/);
    await vnet.must(['controlvm', 'h1', 'poweroff']);
    await vnet.must(['hostonlyif', 'remove', 'vboxnet0']);
    assert.notEqual((await lab.exec(world.hostNs, 'ip', ['link', 'show', 'dev', 'vboxnet0'])).code, 0);
    assert.deepEqual(JSON.parse(await vnet.must(['list', 'dhcpservers', '--json'])), []);
  });

  test('without the privilege to make interfaces, create says what is missing', async () => {
    const netns = await lab.netns('nocap');
    const home = lab.tempDir('nocap');
    // Root without CAP_NET_ADMIN: the daemon runs, but may not make interfaces.
    const child = spawn('setpriv', ['--bounding-set', '-net_admin', '--inh-caps', '-net_admin', 'nsenter', `--net=/var/run/netns/${netns}`, process.execPath, VNET_BIN, 'daemon', '--home', home], { stdio: 'ignore' });
    try {
      await waitFor('the capless daemon', async () => existsSync(join(home, 'vnet.sock')) && (await run(process.execPath, [VNET_BIN, '--home', home, 'list', 'vms'])).code === 0, 15_000);
      const result = await run(process.execPath, [VNET_BIN, '--home', home, 'hostonlyif', 'create']);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /^vnet: error: cannot create host-only interface 'vboxnet0': .*needs CAP_NET_ADMIN/);
      assert.equal(result.stderr.trim().split('\n').length, 1);
      assert.deepEqual(JSON.parse((await run(process.execPath, [VNET_BIN, '--home', home, 'list', 'hostonlyifs', '--json'])).stdout), []);
    } finally {
      child.kill('SIGKILL');
      await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r)));
    }
  });
});
