/**
 * Lab files: `vnet apply -f lab.yaml` builds a lab with one NIC of each
 * attachment mode from an empty home; the VM then starts and its NICs get
 * their addresses; a second apply reports no changes; `export-config`
 * round-trips; a broken file changes nothing and names the bad line.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab, must } from '../helpers/lab.js';
import { VnetDaemon } from '../helpers/vnet.js';
import { dhcp } from '../helpers/internet.js';

const lab = new Lab();
let vnet: VnetDaemon;
let hostNs: string;
let dir: string;

const LAB = `# a lab with every attachment mode
version: 1
natnetworks:
  - name: labnat
    network: 10.15.0.0/24
    dhcp: true
    portForwards:
      - "ssh:tcp:[127.0.0.1]:12222:[10.15.0.4]:22"
hostonlyifs:
  - name: vboxnet0
    ip: 192.168.60.1
    netmask: 255.255.255.0
dhcpservers:
  - network: labnet
    serverIp: 10.21.0.1
    netmask: 255.255.255.0
    lowerIp: 10.21.0.10
    upperIp: 10.21.0.20
    fixed:
      - vm: lab-all
        nic: 3
        ip: 10.21.0.5
  - interface: vboxnet0
    serverIp: 192.168.60.2
    netmask: 255.255.255.0
    lowerIp: 192.168.60.150
    upperIp: 192.168.60.160
    leaseTime: 3600
vms:
  - name: lab-all
    ostype: Linux_64
    nics:
      1: { mode: nat, natLocalhostReachable: true, portForwards: ["web,tcp,127.0.0.1,18081,,80"] }
      2: { mode: natnetwork, natNetwork: labnat }
      3: { mode: intnet, intnet: labnet }
      4: { mode: hostonly, hostOnlyAdapter: vboxnet0 }
      5: { mode: bridged, bridgeAdapter: br0 }
      6:
        mode: generic
        genericDriver: UDPTunnel
        genericProperties: { dest: 127.0.0.1, sport: "14000", dport: "14001" }
      7: { mode: "null" }
  - name: lab-peer
    nics:
      1: { mode: intnet, intnet: labnet, mac: "080027000042" }
`;

function writeLab(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

describe('lab files', { timeout: 180_000 }, () => {
  before(async () => {
    hostNs = await lab.netns('host');
    await must('ip', ['-n', hostNs, 'link', 'add', 'br0', 'type', 'bridge']);
    await must('ip', ['-n', hostNs, 'link', 'set', 'br0', 'up']);
    vnet = await VnetDaemon.start(lab, hostNs);
    dir = lab.tempDir('labfiles');
  });
  after(async () => {
    if (vnet && !vnet.alive) console.error(vnet.log);
    await lab.cleanup();
  });

  test('apply builds the whole lab from an empty home', async () => {
    const out = await vnet.must(['apply', '-f', writeLab('lab.yaml', LAB)]);
    assert.match(out, /made \d+ change\(s\)/);
    assert.match(out, /create NAT network labnat/);
    assert.match(out, /create host-only interface vboxnet0/);
    assert.match(out, /create VM lab-all/);
    const info = await vnet.must(['showvminfo', 'lab-all', '--machinereadable']);
    for (const line of ['ostype="Linux_64"', 'nic1="nat"', 'natpf1_0="web,tcp,127.0.0.1,18081,,80"', 'natlocalhostreachable1="on"', 'nic2="natnetwork"', 'nat-network2="labnat"',
      'nic3="intnet"', 'intnet3="labnet"', 'nic4="hostonly"', 'hostonlyadapter4="vboxnet0"', 'nic5="bridged"', 'bridgeadapter5="br0"',
      'nic6="generic"', 'generic6="UDPTunnel"', 'nicproperty6_sport="14000"', 'nic7="null"']) {
      assert.ok(info.includes(line), `missing ${line} in:\n${info}`);
    }
    assert.match(await vnet.must(['showvminfo', 'lab-peer', '--machinereadable']), /macaddress1="080027000042"/);
    assert.match(await lab.mustExec(hostNs, 'ip', ['-4', 'addr', 'show', 'dev', 'vboxnet0']), /inet 192\.168\.60\.1\/24/);
    const servers = JSON.parse(await vnet.must(['list', 'dhcpservers', '--json']));
    assert.deepEqual(servers.map((s: { network: string; serverIp: string; lowerIp: string; leaseTimeSec: number }) => [s.network, s.serverIp, s.lowerIp, s.leaseTimeSec]).sort(), [
      ['HostInterfaceNetworking-vboxnet0', '192.168.60.2', '192.168.60.150', 3600],
      ['labnet', '10.21.0.1', '10.21.0.10', 86400],
    ]);
    assert.match(await vnet.must(['list', 'natnets']), /NetworkName:\s+labnat/);
  });

  test('a second apply reports no changes, and so does applying export-config', async () => {
    const file = join(dir, 'lab.yaml');
    assert.equal((await vnet.must(['apply', '-f', file])).trim(), `${file}: no changes`);
    const exported = writeLab('exported.yaml', await vnet.must(['export-config']));
    assert.equal((await vnet.must(['apply', '-f', exported])).trim(), `${exported}: no changes`);
  });

  test('the lab runs: every NIC of lab-all comes up and gets its address', async () => {
    const guest = lab.name('laball');
    await vnet.must(['startvm', 'lab-all', '--type', 'netns', '--netns', guest]);
    assert.equal((await dhcp(lab, guest, 'eth0')).ip, '10.0.2.15');
    assert.match((await dhcp(lab, guest, 'eth1')).ip!, /^10\.15\.0\.\d+$/);
    assert.equal((await dhcp(lab, guest, 'eth2')).ip, '10.21.0.5');
    const hostOnly = await dhcp(lab, guest, 'eth3');
    assert.match(hostOnly.ip!, /^192\.168\.60\.1(5\d|60)$/);
    assert.equal(hostOnly.lease, '3600');
    const links = await lab.mustExec(hostNs, 'ip', ['-o', 'link', 'show', 'master', 'br0']);
    assert.match(links, /vb[0-9a-f]{8}5/);
    await vnet.must(['controlvm', 'lab-all', 'poweroff']);
  });

  test('a broken file changes nothing and names the bad line and field', async () => {
    const before = await vnet.must(['export-config']);
    const broken = LAB.replace('name: labnat', 'name: labnat2').replace('4: { mode: hostonly,', '4: { mode: hostonyl,');
    const file = writeLab('broken.yaml', broken);
    const line = broken.split('\n').findIndex((l) => l.includes('hostonyl')) + 1;
    const result = await vnet.cli(['apply', '-f', file]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`^vnet: error: ${file.replace(/[.]/g, '\\.')}:${line}: vms\\[0\\]\\.nics\\.4\\.mode: invalid NIC 4 mode 'hostonyl'`));
    assert.equal(await vnet.must(['export-config']), before);

    const syntax = writeLab('syntax.yaml', 'vms:\n  - name: x\n    nics: [\n');
    const bad = await vnet.cli(['apply', '-f', syntax]);
    assert.match(bad.stderr, new RegExp(`^vnet: error: ${syntax.replace(/[.]/g, '\\.')}:\\d+: YAML syntax error`));

    const unknown = writeLab('unknown.yaml', 'vms:\n  - name: y\n    colour: blue\n');
    assert.match((await vnet.cli(['apply', '-f', unknown])).stderr, /unknown\.yaml:3: vms\[0\]\.colour: unknown setting 'colour'/);
    const badIp = writeLab('badip.yaml', 'hostonlyifs:\n  - name: vboxnet1\n    ip: 192.168.300.1\n');
    assert.match((await vnet.cli(['apply', '-f', badIp])).stderr, /badip\.yaml:3: hostonlyifs\[0\]\.ip: invalid .*192\.168\.300\.1/);
    assert.equal(await vnet.must(['export-config']), before);
  });
});
