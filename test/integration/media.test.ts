/**
 * Media: `createmedium` through qemu-img, `list hdds`, `storagectl` /
 * `storageattach`, `closemedium`, and `medium check|repair` on a VDI whose
 * pre-header was destroyed. No guest runs: these are file operations.
 */
import assert from 'node:assert/strict';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab, run } from '../helpers/lab.js';
import { VnetDaemon } from '../helpers/vnet.js';

const lab = new Lab();
let vnet: VnetDaemon;
let dir: string;

describe('media', { timeout: 120_000 }, () => {
  before(async () => {
    vnet = await VnetDaemon.start(lab);
    dir = lab.tempDir('media');
  });
  after(() => lab.cleanup());

  test('medium check passes a fresh VDI made by createmedium', async () => {
    const file = join(dir, 'fresh.vdi');
    assert.match(await vnet.must(['createmedium', 'disk', '--filename', file, '--size', '64', '--format', 'VDI']), /Medium created\. UUID: [0-9a-f-]{36}/);
    assert.match(await vnet.must(['medium', 'check', file]), /VDI pre-header OK .*qemu-img check: no errors/);
    const hdds = await vnet.must(['list', 'hdds']);
    assert.match(hdds, new RegExp(`Location: +${file}\\nStorage format: VDI\\nCapacity: +64 MBytes`));
    const again = await vnet.cli(['createmedium', 'disk', '--filename', file, '--size', '64']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already exists \(VERR_ALREADY_EXISTS\)/);
  });

  test('medium check names each fault of a VDI whose first 72 bytes were zeroed; repair makes qemu-img accept it', async () => {
    const file = join(dir, 'broken.vdi');
    await vnet.must(['createmedium', 'disk', '--filename', file, '--size', '32', '--format', 'VDI']);
    const original = readFileSync(file).subarray(0, 76);
    const fd = openSync(file, 'r+');
    writeSync(fd, new Uint8Array(72), 0, 72, 0);
    closeSync(fd);
    assert.notEqual((await run('qemu-img', ['check', '-f', 'vdi', file])).code, 0, 'qemu-img should reject the damaged image');

    const check = await vnet.cli(['medium', 'check', file]);
    assert.equal(check.code, 1);
    assert.match(check.stdout, /text line at offset 0 is missing \(64 zero bytes\)/);
    assert.match(check.stdout, /signature at offset 64 is 0x00000000, expected 0xBEDA107F/);
    assert.match(check.stdout, /version at offset 68 is 0\.0 \(0x00000000\), expected 1\.1 \(0x00010001\)/);
    assert.doesNotMatch(check.stdout, /header size/, 'the header size at offset 72 was not touched');
    assert.match(check.stderr, /^vnet: error: .*is damaged; 'vnet medium repair/);

    const repair = await vnet.must(['medium', 'repair', file]);
    assert.match(repair, /repaired 3 fault\(s\)/);
    const backup = /original bytes saved in (\S+)/.exec(repair)![1]!;
    assert.deepEqual(readFileSync(backup).subarray(0, 72), Buffer.alloc(72), 'the backup holds the bytes as they were');
    assert.equal((await run('qemu-img', ['check', '-f', 'vdi', file])).code, 0, 'qemu-img check accepts the repaired image');
    assert.deepEqual(readFileSync(file).subarray(64, 76), original.subarray(64, 76));
    assert.match(await vnet.must(['medium', 'check', file]), /pre-header OK/);
    assert.match(await vnet.must(['medium', 'repair', file]), /nothing to repair/);
  });

  test('a directory where a file is expected is VERR_IS_A_DIRECTORY', async () => {
    const folder = join(dir, 'folder.vdi');
    mkdirSync(folder);
    for (const args of [['medium', 'check', folder], ['createmedium', 'disk', '--filename', folder, '--size', '8']]) {
      const result = await vnet.cli(args);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /^vnet: error: medium '.*folder\.vdi' is a directory, not an image file \(VERR_IS_A_DIRECTORY\)\n$/);
    }
    await vnet.must(['createvm', '--name', 'd', '--register']);
    await vnet.must(['storagectl', 'd', '--name', 'SATA', '--add', 'sata']);
    const attach = await vnet.cli(['storageattach', 'd', '--storagectl', 'SATA', '--port', '0', '--device', '0', '--type', 'hdd', '--medium', folder]);
    assert.match(attach.stderr, /VERR_IS_A_DIRECTORY/);
  });

  test('storagectl and storageattach wire disks and a DVD into the QEMU command line; closemedium refuses an attached disk', async () => {
    const disk = join(dir, 'sys.qcow2');
    await vnet.must(['createmedium', 'disk', '--filename', disk, '--size', '16', '--format', 'QCOW2']);
    await vnet.must(['createvm', '--name', 's', '--register']);
    await vnet.must(['modifyvm', 's', '--memory', '512', '--cpus', '2']);
    await vnet.must(['storagectl', 's', '--name', 'SATA', '--add', 'sata']);
    await vnet.must(['storagectl', 's', '--name', 'IDE', '--add', 'ide']);
    await vnet.must(['storageattach', 's', '--storagectl', 'SATA', '--port', '0', '--device', '0', '--type', 'hdd', '--medium', disk]);
    await vnet.must(['storageattach', 's', '--storagectl', 'IDE', '--port', '1', '--device', '0', '--type', 'dvddrive', '--medium', 'emptydrive']);
    const bad = await vnet.cli(['storageattach', 's', '--storagectl', 'SATA', '--port', '30', '--device', '0', '--type', 'hdd', '--medium', disk]);
    assert.match(bad.stderr, /invalid port '30' on sata controller 'SATA': expected 0-29/);
    const args = await vnet.must(['showvminfo', 's', '--qemu-args']);
    assert.match(args, / -m 512 -smp 2 /);
    assert.match(args, /-device ahci,id=ctl0 -drive file=\S+sys\.qcow2,format=qcow2,if=none,id=ctl0p0d0 -device ide-hd,drive=ctl0p0d0,bus=ctl0\.0/);
    assert.match(args, /-drive if=ide,bus=1,unit=0,media=cdrom/);
    assert.match(await vnet.must(['showvminfo', 's']), /SATA \(0, 0\): \S+sys\.qcow2 \(hdd\)/);

    const close = await vnet.cli(['closemedium', 'disk', disk]);
    assert.match(close.stderr, /is attached to 's'; detach it first/);
    await vnet.must(['storageattach', 's', '--storagectl', 'SATA', '--port', '0', '--device', '0', '--medium', 'none']);
    await vnet.must(['closemedium', 'disk', disk, '--delete']);
    assert.equal(existsSync(disk), false);
    assert.doesNotMatch(await vnet.must(['list', 'hdds']), /sys\.qcow2/);
  });
});
