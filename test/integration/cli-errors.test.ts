/**
 * Bad input from a user: one clear line on stderr, a non-zero exit, and
 * nothing changed (the VM's whole configuration is compared before and after).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab } from '../helpers/lab.js';
import { VnetDaemon } from '../helpers/vnet.js';

const lab = new Lab();
let vnet: VnetDaemon;

const CASES: { why: string; args: string[]; message: RegExp }[] = [
  { why: 'unknown VM', args: ['modifyvm', 'nosuchvm', '--nic1', 'intnet'], message: /no VM named 'nosuchvm'/ },
  { why: 'NIC out of range', args: ['modifyvm', 'vm1', '--nic9', 'intnet'], message: /NIC number '9'/ },
  { why: 'bad MAC', args: ['modifyvm', 'vm1', '--mac-address1', '0800GG000001'], message: /invalid MAC address/ },
  { why: 'multicast MAC', args: ['modifyvm', 'vm1', '--macaddress1', '010000000001'], message: /multicast/ },
  { why: 'unknown mode', args: ['modifyvm', 'vm1', '--nic1', 'wormhole'], message: /invalid NIC 1 mode 'wormhole'/ },
  { why: 'missing value', args: ['modifyvm', 'vm1', '--intnet1'], message: /--intnet1 needs a value/ },
  { why: 'unknown option', args: ['modifyvm', 'vm1', '--frobnicate1', 'x'], message: /unknown option --frobnicate1/ },
  { why: 'bad on/off', args: ['modifyvm', 'vm1', '--cable-connected1', 'maybe'], message: /expects on or off/ },
  { why: 'bad promisc', args: ['modifyvm', 'vm1', '--nic-promisc1', 'some'], message: /promiscuous policy/ },
  // A good change next to a bad one must not be applied either.
  { why: 'half-good change', args: ['modifyvm', 'vm1', '--intnet1', 'changed', '--nic2', 'bogus'], message: /NIC 2 mode/ },
  { why: 'bad UDPTunnel port', args: ['modifyvm', 'vm1', '--nic1', 'generic', '--nic-generic-drv1', 'UDPTunnel', '--nic-property1', 'sport=99999'], message: /sport='99999'/ },
  { why: 'relative TFTP prefix', args: ['modifyvm', 'vm1', '--nat-tftp-prefix1', 'tftp'], message: /TFTP prefix 'tftp': expected an absolute path/ },
  { why: 'bad TFTP server', args: ['modifyvm', 'vm1', '--nattftpserver1', '10.0.2.256'], message: /TFTP server '10.0.2.256'/ },
  { why: 'bad pass-domain switch', args: ['modifyvm', 'vm1', '--nat-dns-pass-domain1', 'sometimes'], message: /expects on or off/ },
  { why: 'bad NAT bind address', args: ['modifyvm', 'vm1', '--natbindip1', 'eth0'], message: /NAT bind address 'eth0'/ },
  { why: 'bad boot device', args: ['modifyvm', 'vm1', '--boot1', 'tape'], message: /boot device 1 'tape'/ },
  { why: 'unknown command', args: ['frobvm', 'vm1'], message: /unknown command 'frobvm'/ },
  { why: 'duplicate VM', args: ['createvm', '--name', 'vm1', '--register'], message: /already exists/ },
  { why: 'bad VM name', args: ['createvm', '--name', '../etc', '--register'], message: /invalid VM name/ },
  { why: 'poweroff of a stopped VM', args: ['controlvm', 'vm1', 'poweroff'], message: /not running/ },
  { why: 'unknown controlvm action', args: ['controlvm', 'vm1', 'explode1', 'now'], message: /unknown action 'explode1'/ },
  { why: 'unknown list', args: ['list', 'spaceships'], message: /unknown list 'spaceships'/ },
];

describe('CLI errors', { timeout: 120_000 }, () => {
  before(async () => {
    vnet = await VnetDaemon.start(lab);
    await vnet.must(['createvm', '--name', 'vm1', '--register']);
    await vnet.must(['modifyvm', 'vm1', '--nic1', 'intnet', '--intnet1', 'lab']);
  });
  after(() => lab.cleanup());

  for (const { why, args, message } of CASES) {
    test(why, async () => {
      const before = await vnet.must(['showvminfo', 'vm1', '--machinereadable']);
      const result = await vnet.cli(args);
      assert.notEqual(result.code, 0, `exit code for: vnet ${args.join(' ')}`);
      const lines = result.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `one line, got:\n${result.stderr}`);
      assert.match(lines[0]!, /^vnet: error: /);
      assert.match(lines[0]!, message);
      assert.equal(result.stdout, '');
      assert.equal(await vnet.must(['showvminfo', 'vm1', '--machinereadable']), before);
    });
  }

  test('both spellings and --name=value are accepted', async () => {
    await vnet.must(['modifyvm', 'vm1', '--cableconnected1=off', '--nic-promisc1', 'allow-vms', '--macaddress1', '080027000001']);
    const info = await vnet.must(['showvminfo', 'vm1', '--machinereadable']);
    assert.match(info, /cableconnected1="off"/);
    assert.match(info, /nicpromisc1="allow-vms"/);
    assert.match(info, /macaddress1="080027000001"/);
    await vnet.must(['modifyvm', 'vm1', '--nic1', 'nat', '--nattftpprefix1', '/srv/tftp', '--nat-tftp-file1=pxelinux.0', '--nat-tftp-server1', '10.0.2.9', '--natbindip1', '192.0.2.7', '--boot1', 'net', '--boot2=disk']);
    const nat = await vnet.must(['showvminfo', 'vm1', '--machinereadable']);
    assert.match(nat, /nattftpprefix1="\/srv\/tftp"/);
    assert.match(nat, /nattftpfile1="pxelinux.0"/);
    assert.match(nat, /nattftpserver1="10.0.2.9"/);
    assert.match(nat, /natbindip1="192.0.2.7"/);
    assert.match(nat, /natdnspassdomain1="on"/, 'on by default, as VirtualBox');
    assert.match(nat, /boot1="net"\nboot2="disk"\nboot3="disk"\nboot4="none"/);
  });

  test('without a daemon, the CLI says where it looked', async () => {
    const home = lab.tempDir('nodaemon');
    const { run } = await import('../helpers/lab.js');
    const { VNET_BIN } = await import('../helpers/vnet.js');
    const result = await run(process.execPath, [VNET_BIN, '--home', home, 'list', 'vms']);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /^vnet: error: no vnet daemon at .*vnet\.sock/);
  });

  test('--listen unix:PATH serves the API there too, for a CLI with VNET_SOCKET; a file in the way is left alone', async () => {
    const { run, waitFor } = await import('../helpers/lab.js');
    const { VNET_BIN } = await import('../helpers/vnet.js');
    const home = lab.tempDir('unixlisten');
    const path = join(lab.tempDir('sock'), 'api.sock');
    const daemon = lab.spawnNsenter(await lab.netns('unixd'), process.execPath, [VNET_BIN, 'daemon', '--home', home, '--ui', 'off', '--listen', `unix:${path}`]);
    await waitFor('the extra socket', async () => existsSync(path), 15_000);
    const listed = await run(process.execPath, [VNET_BIN, 'createvm', '--name', 'viaunix', '--register'], { env: { ...process.env, VNET_SOCKET: path } });
    assert.equal(listed.code, 0, listed.stderr);
    assert.match((await run(process.execPath, [VNET_BIN, '--home', home, 'list', 'vms'])).stdout, /"viaunix"/);
    daemon.kill('SIGTERM');
    await waitFor('the daemon to stop', async () => daemon.exitCode !== null, 10_000);

    const file = join(lab.tempDir('notsock'), 'precious.txt');
    writeFileSync(file, 'keep me\n');
    const refused = await run(process.execPath, [VNET_BIN, 'daemon', '--home', home, '--ui', 'off', '--listen', `unix:${file}`], { timeoutMs: 10_000 });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr.trim(), /^vnet: error: .*precious\.txt exists and is not a socket$/);
    assert.equal(readFileSync(file, 'utf8'), 'keep me\n');
  });

  test('a daemon given a bad busy-poll budget stops with one line and starts nothing', async () => {
    const { run } = await import('../helpers/lab.js');
    const { VNET_BIN } = await import('../helpers/vnet.js');
    const home = lab.tempDir('badpoll');
    for (const [args, env, message] of [
      [['--busy-poll-us', '10001'], {}, /--busy-poll-us 10001: expected microseconds from 0 to 10000/],
      [['--busy-poll-us', 'fast'], {}, /--busy-poll-us fast: expected microseconds/],
      [[], { VNET_BUSY_POLL_US: '-5' }, /VNET_BUSY_POLL_US -5: expected microseconds/],
    ] as const) {
      const result = await run(process.execPath, [VNET_BIN, 'daemon', '--home', home, '--ui', 'off', ...args], { env: { ...process.env, ...env }, timeoutMs: 10_000 });
      assert.notEqual(result.code, 0);
      const lines = result.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `one line, got:\n${result.stderr}`);
      assert.match(lines[0]!, message);
      assert.ok(!existsSync(join(home, 'vnet.sock')), 'no API socket was made');
    }
  });
});
