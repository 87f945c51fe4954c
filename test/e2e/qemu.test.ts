/**
 * A real QEMU guest under vnet: the Debian kernel and a busybox initramfs
 * built by the test boot under TCG (or KVM) from `startvm --type headless`,
 * get a DHCP lease over `-netdev stream`, download a file from a server on
 * the daemon namespace's loopback through the NAT and check its sha256, ping
 * the gateway with a datagram longer than the link's MTU, and answer through
 * a port forward. Then a diskless VM boots the same kernel
 * from the network: QEMU's own PXE ROM (iPXE) takes the boot file DHCP names
 * and fetches it, the kernel and the initramfs from the NAT's TFTP server.
 * The abort check kills a third QEMU before its guest gets anywhere.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab, run, waitFor } from '../helpers/lab.js';
import { VnetDaemon } from '../helpers/vnet.js';
import { buildInitramfs, findKernel, GUEST_HTTP_PORT, GUEST_PAGE } from '../helpers/initramfs.js';
import { nicLinkFor, qemuVersion } from '../../src/daemon/qemu-vm.js';

const lab = new Lab();
let vnet: VnetDaemon;
const kernel = findKernel();
const haveQemu = existsSync('/usr/bin/qemu-system-x86_64');
const skip = !kernel || !haveQemu ? 'needs qemu-system-x86 and linux-image-amd64' : false;

const LOOPBACK_PORT = 18931;
const FORWARD_PORT = 18932;
const blob = randomBytes(1 << 20);
const blobSha = createHash('sha256').update(blob).digest('hex');

let initrd: string;

const consoleLog = (vm = 'g') => join(vnet.home, 'vms', vm, 'console.log');
const consoleText = (vm = 'g') => (existsSync(consoleLog(vm)) ? readFileSync(consoleLog(vm), 'utf8') : '');
const vmInfo = async (name: string) => JSON.parse(await vnet.must(['showvminfo', name, '--json']));

/** Kill every QEMU this test's daemon started (they run detached and outlive it). */
async function killQemus(): Promise<void> {
  if (!vnet) return;
  for (const vm of ['g', 'h', 'p']) {
    const pidFile = join(vnet.home, 'vms', vm, 'qemu.pid');
    if (!existsSync(pidFile)) continue;
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    if (pid > 0) await run('kill', ['-9', String(pid)]);
  }
}

describe('QEMU guest (headless)', { timeout: 420_000, skip }, () => {
  before(async () => {
    const hostNs = await lab.netns('host');
    // TCG: the issue asks for it, and a nested host's /dev/kvm may open without running guests.
    vnet = await VnetDaemon.start(lab, hostNs, undefined, { VNET_QEMU_ACCEL: 'tcg' });
    const files = lab.tempDir('qemu');
    writeFileSync(join(files, 'blob.bin'), blob);
    lab.spawn(hostNs, 'python3', ['-m', 'http.server', '--bind', '127.0.0.1', String(LOOPBACK_PORT), '--directory', files]);
    await lab.waitListening(hostNs, LOOPBACK_PORT);
    initrd = await buildInitramfs(files, kernel!.version, `http://10.0.2.2:${LOOPBACK_PORT}/blob.bin`);
    await vnet.must(['createvm', '--name', 'g', '--register']);
    await vnet.must([
      'modifyvm', 'g', '--memory', '256', '--cpus', '1',
      '--kernel', kernel!.path, '--initrd', initrd, '--append', 'console=ttyS0 quiet panic=-1',
      '--nic1', 'nat', '--nat-localhostreachable1', 'on', '--nat-pf1', `web,tcp,127.0.0.1,${FORWARD_PORT},,${GUEST_HTTP_PORT}`,
    ]);
    await vnet.must(['startvm', 'g', '--type', 'headless']);
    await waitFor('the guest to finish its /init', () => consoleText().includes('VNET-READY') || consoleText().includes('Kernel panic'), 300_000, 500).catch((err) => {
      throw new Error(`${(err as Error).message}\nconsole:\n${consoleText().slice(-3000)}\ndaemon:\n${vnet.log.slice(-2000)}`);
    });
  });
  after(async () => {
    if (vnet) for (const vm of ['g', 'p']) await vnet.cli(['controlvm', vm, 'poweroff']);
    await killQemus();
    await lab.cleanup();
  });

  test('the guest boots, loads virtio-net and gets 10.0.2.15 from vnet over -netdev stream', async () => {
    const text = consoleText();
    assert.match(text, /VNET-MODULES .*eth0/, text.slice(-2000));
    assert.match(text, /VNET-LEASE ip=10\.0\.2\.15 router=10\.0\.2\.2 dns=10\.0\.2\.3/, text.slice(-2000));
    const leases = JSON.parse(await vnet.must(['leases', '--json']));
    assert.ok(leases.some((l: { ip: string; vm: string }) => l.ip === '10.0.2.15' && l.vm === 'g'), JSON.stringify(leases));
    const info = await vmInfo('g');
    assert.equal(info.state, 'running');
    assert.equal(info.running.type, 'headless');
    assert.equal(info.memoryMb, 256);
  });

  test('the guest downloads a file from the host loopback through NAT, sha256 intact', () => {
    const match = /VNET-SHA256 ([0-9a-f]{64})/.exec(consoleText());
    assert.ok(match, `no checksum on the console:\n${consoleText().slice(-2000)}`);
    assert.equal(match[1], blobSha);
  });

  test('a 4000-byte ping from the guest crosses its 1500-byte link in fragments both ways', async () => {
    assert.match(consoleText(), /VNET-PING-4000 ok/, consoleText().slice(-2000));
    const lan = (await vnet.stats()).nat.find((l: { key: string }) => l.key === 'nat:g/nic1');
    assert.ok(lan.gateway.reassembly.reassembled >= 1 && lan.gateway.fragmented >= 1, JSON.stringify(lan.gateway));
  });

  test('the guest answers through a port forward', async () => {
    const body = await lab.mustExec(vnet.netns, 'curl', ['-sS', '--max-time', '20', `http://127.0.0.1:${FORWARD_PORT}/index.html`], { timeoutMs: 30_000 });
    assert.equal(body, GUEST_PAGE);
  });

  test('after kill -9 of the daemon, a new one takes the running QEMU back and its NIC carries traffic again', async () => {
    await vnet.kill9();
    await vnet.restart();
    assert.equal((await vmInfo('g')).state, 'running');
    // Host → new daemon → QEMU → guest and back: QEMU 7.2 over -netdev dgram, later QEMUs reconnecting their stream.
    let body = '';
    await waitFor('the guest to answer through the forward again', async () => {
      const result = await lab.exec(vnet.netns, 'curl', ['-sS', '--max-time', '5', `http://127.0.0.1:${FORWARD_PORT}/index.html`], { timeoutMs: 10_000 });
      body = result.stdout;
      return result.code === 0;
    }, 30_000, 500);
    assert.equal(body, GUEST_PAGE);
  });

  test('pause and resume through QMP; list runningvms; --qemu-args shows the -netdev', async () => {
    await vnet.must(['controlvm', 'g', 'pause']);
    assert.equal((await vmInfo('g')).state, 'paused');
    await vnet.must(['controlvm', 'g', 'resume']);
    assert.equal((await vmInfo('g')).state, 'running');
    assert.match(await vnet.must(['list', 'runningvms']), /^"g" \{/);
    const args = await vnet.must(['showvminfo', 'g', '--qemu-args']);
    assert.match(args, nicLinkFor(qemuVersion()) === 'dgram'
      ? /-netdev dgram,id=n1,local\.type=unix,local\.path=\S+nic1\.qemu,remote\.type=unix,remote\.path=\S+nic1\.sock/
      : /-netdev stream,id=n1,server=off,addr\.type=unix,addr\.path=\S+nic1\.sock/);
    assert.match(args, /-device virtio-net-pci,netdev=n1,id=vnic1,mac=08:00:27:/);
    const console = await vnet.must(['console', 'g', '--no-follow']);
    assert.match(console, /VNET-READY/);
  });

  test('poweroff through QMP stops QEMU', async () => {
    const { pid } = (await vmInfo('g')).running;
    await vnet.must(['controlvm', 'g', 'poweroff']);
    await waitFor('QEMU to exit', async () => (await run('kill', ['-0', String(pid)])).code !== 0, 10_000);
    assert.equal((await vnet.must(['list', 'runningvms'])).trim(), '');
    assert.equal((await vmInfo('g')).state, 'poweroff');
  });

  test('network boot: a diskless VM boots Linux over PXE from the NAT (DHCP boot file, TFTP at 10.0.2.4)', async () => {
    const root = lab.tempDir('tftp');
    copyFileSync(kernel!.path, join(root, 'vmlinuz'));
    copyFileSync(initrd, join(root, 'initrd'));
    // The boot file DHCP names by default is the VM's name + .pxe; iPXE runs it as a script.
    writeFileSync(join(root, 'p.pxe'), '#!ipxe\nkernel tftp://10.0.2.4/vmlinuz console=ttyS0 quiet panic=-1\ninitrd tftp://10.0.2.4/initrd\nboot\n');
    await vnet.must(['createvm', '--name', 'p', '--register']);
    await vnet.must(['modifyvm', 'p', '--memory', '256', '--boot1', 'net', '--nic1', 'nat', '--nat-localhostreachable1', 'on', '--nat-tftp-prefix1', root]);
    assert.match(await vnet.must(['showvminfo', 'p', '--qemu-args']), /-boot order=ndc /);
    await vnet.must(['startvm', 'p', '--type', 'headless']);
    await waitFor('the network-booted guest to finish its /init', () => consoleText('p').includes('VNET-READY') || consoleText('p').includes('Kernel panic'), 300_000, 500).catch((err) => {
      throw new Error(`${(err as Error).message}\nconsole:\n${consoleText('p').slice(-3000)}\ndaemon:\n${vnet.log.slice(-2000)}`);
    });
    const text = consoleText('p');
    assert.match(text, /VNET-LEASE ip=10\.0\.2\.15 router=10\.0\.2\.2 dns=10\.0\.2\.3/, text.slice(-2000));
    assert.equal(/VNET-SHA256 ([0-9a-f]{64})/.exec(text)?.[1], blobSha, 'the booted guest downloads through the NAT too');
    const stats = JSON.parse(await vnet.must(['stats', '--json']));
    const tftp = stats.nat.find((l: { key: string }) => l.key === 'nat:p/nic1').tftp;
    const sizes = ['p.pxe', 'vmlinuz', 'initrd'].map((f) => statSync(join(root, f)).size);
    assert.deepEqual([tftp.completed, tftp.bytesSent, tftp.timeouts], [3, sizes.reduce((a, b) => a + b), 0]);
    await vnet.must(['controlvm', 'p', 'poweroff']);
  });

  test('a QEMU that dies is shown as aborted with the reason', async () => {
    await vnet.must(['createvm', '--name', 'h', '--register']);
    await vnet.must(['modifyvm', 'h', '--memory', '64', '--nic1', 'null']);
    await vnet.must(['startvm', 'h', '--type', 'headless']);
    const { pid } = (await vmInfo('h')).running;
    await run('kill', ['-9', String(pid)]);
    await waitFor('the VM to show aborted', async () => (await vmInfo('h')).state === 'aborted', 10_000);
    assert.match((await vmInfo('h')).abortedReason, /killed by SIGKILL/);
    assert.match(await vnet.must(['showvminfo', 'h']), /State: +aborted/);
  });

  test('a QEMU that cannot start fails startvm with its own message', async () => {
    await vnet.must(['modifyvm', 'h', '--kernel', '/nonexistent/vmlinuz']);
    const failed = await vnet.cli(['startvm', 'h', '--type', 'headless']);
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /^vnet: error: QEMU did not start: .*nonexistent\/vmlinuz/);
    assert.equal((await vmInfo('h')).running, null);
  });
});
