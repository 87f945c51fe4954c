/**
 * `clonevm` (new UUID and MACs unless KeepAllMACs; disks copied) and
 * `export` / `import` of a VM with a 200 MB disk of random data: the disk
 * comes back bit for bit, the import refuses to overwrite.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, openSync, closeSync, writeSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab } from '../helpers/lab.js';
import { VnetDaemon } from '../helpers/vnet.js';

const lab = new Lab();
let vnet: VnetDaemon;
let dir: string;
let disk: string;
let diskSha: string;

const DISK_MB = 200;

async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

const info = async (vm: string) => JSON.parse(await vnet.must(['showvminfo', vm, '--json']));
const macs = (vm: { nics: { mode: string; mac: string }[] }) => vm.nics.filter((n) => n.mode !== 'none').map((n) => n.mac);

describe('clone, export and import', { timeout: 180_000 }, () => {
  before(async () => {
    vnet = await VnetDaemon.start(lab);
    dir = lab.tempDir('clone');
    disk = join(dir, 'a.img');
    await vnet.must(['createmedium', 'disk', '--filename', disk, '--size', String(DISK_MB), '--format', 'RAW']);
    // Fill the whole disk with random data, 1 MiB at a time.
    const fd = openSync(disk, 'r+');
    for (let i = 0; i < DISK_MB; i++) writeSync(fd, randomBytes(1 << 20), 0, 1 << 20, i << 20);
    closeSync(fd);
    diskSha = await sha256(disk);
    await vnet.must(['createvm', '--name', 'a', '--register']);
    await vnet.must(['modifyvm', 'a', '--memory', '300', '--nic1', 'nat', '--nic2', 'intnet', '--intnet2', 'lab', '--nat-pf1', 'ssh,tcp,,2222,,22']);
    await vnet.must(['storagectl', 'a', '--name', 'SATA', '--add', 'sata']);
    await vnet.must(['storageattach', 'a', '--storagectl', 'SATA', '--port', '0', '--device', '0', '--type', 'hdd', '--medium', disk]);
  });
  after(() => lab.cleanup());

  test('clonevm gives a new UUID and new MACs and copies the disk', async () => {
    assert.match(await vnet.must(['clonevm', 'a', '--name', 'b', '--register']), /successfully cloned as "b"/);
    const [a, b] = [await info('a'), await info('b')];
    assert.notEqual(b.uuid, a.uuid);
    assert.equal(macs(b).length, 2);
    for (const mac of macs(b)) assert.ok(!macs(a).includes(mac), `clone reuses MAC ${mac}`);
    assert.equal(b.memoryMb, 300);
    assert.deepEqual(b.nics.map((n: { mode: string }) => n.mode), a.nics.map((n: { mode: string }) => n.mode));
    const cloneDisk = b.storage[0].medium as string;
    assert.notEqual(cloneDisk, disk);
    assert.ok(cloneDisk.startsWith(join(vnet.home, 'vms', 'b')), cloneDisk);
    assert.equal(await sha256(cloneDisk), diskSha);
  });

  test('clonevm --options KeepAllMACs keeps them; a taken name is refused', async () => {
    await vnet.must(['clonevm', 'a', '--name', 'c', '--options', 'KeepAllMACs', '--register']);
    const [a, c] = [await info('a'), await info('c')];
    assert.notEqual(c.uuid, a.uuid);
    assert.deepEqual(macs(c), macs(a));
    const taken = await vnet.cli(['clonevm', 'a', '--name', 'b']);
    assert.match(taken.stderr, /^vnet: error: a VM named 'b' already exists/);
  });

  test('export then import round-trips the VM and its 200 MB disk intact', async () => {
    const archive = join(dir, 'a.vnet.tgz');
    assert.match(await vnet.must(['export', 'a', '-o', archive]), /Successfully exported 1 machine/);
    assert.ok(statSync(archive).size > DISK_MB * 0.9 * (1 << 20), 'random data does not compress');
    const again = await vnet.cli(['export', 'a', '-o', archive]);
    assert.match(again.stderr, /already exists; not overwriting it/);

    const refused = await vnet.cli(['import', archive]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^vnet: error: a VM named 'a' already exists; not overwriting it/);

    assert.match(await vnet.must(['import', archive, '--vsys-name', 'a2']), /imported the appliance as "a2"/);
    const [a, a2] = [await info('a'), await info('a2')];
    const importedDisk = a2.storage[0].medium as string;
    assert.ok(importedDisk.startsWith(join(vnet.home, 'vms', 'a2')), importedDisk);
    assert.equal(await sha256(importedDisk), diskSha);
    assert.equal(a2.memoryMb, 300);
    assert.deepEqual(a2.nics[0].portForwards, a.nics[0].portForwards);
    assert.equal(a2.nics[1].intnet, 'lab');
    // A second copy next to the original gets its own identity.
    assert.notEqual(a2.uuid, a.uuid);
    assert.ok(!macs(a2).some((m: string) => macs(a).includes(m)));
    assert.ok(!existsSync(join(vnet.home, 'vms', '.import')), 'no staging folder left behind');
  });
});
