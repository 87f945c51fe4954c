import assert from 'node:assert/strict';
import { test } from 'node:test';
import { netdevArgs, nicLinkFor, qemuArgs } from '../../../src/daemon/qemu-vm.js';
import { applyStorageAttach, applyStorageCtl } from '../../../src/model/media.js';
import { applyVmChange, createVm } from '../../../src/model/vm.js';

function vm() {
  let v = createVm('web');
  v = applyVmChange(v, { memoryMb: 256, cpus: 2, nics: { '1': { mode: 'nat', mac: '080027000001' }, '2': { mode: 'intnet', mac: '080027000002' } } });
  v = applyStorageCtl(v, { name: 'SATA', add: 'sata' });
  v = applyStorageCtl(v, { name: 'VirtIO', add: 'virtio' });
  v = applyStorageAttach(v, { storagectl: 'SATA', port: 1, device: 0, type: 'dvddrive', medium: '/iso/a,b.iso' });
  v = applyStorageAttach(v, { storagectl: 'VirtIO', port: 0, type: 'hdd', medium: '/d/web.vdi' });
  return v;
}

test('one -netdev stream and one virtio-net-pci per attached NIC, with its MAC', () => {
  assert.deepEqual(netdevArgs(vm(), '/h/vms/web', 'stream', false), [
    '-netdev', 'stream,id=n1,server=off,addr.type=unix,addr.path=/h/vms/web/nic1.sock',
    '-device', 'virtio-net-pci,netdev=n1,id=vnic1,mac=08:00:27:00:00:01',
    '-netdev', 'stream,id=n2,server=off,addr.type=unix,addr.path=/h/vms/web/nic2.sock',
    '-device', 'virtio-net-pci,netdev=n2,id=vnic2,mac=08:00:27:00:00:02',
  ]);
  assert.match(netdevArgs(vm(), '/h', 'stream', true)[1]!, /,reconnect=1$/);
});

test('QEMU 7.2 gets -netdev dgram between its socket and ours (a datagram needs no reconnect); 8.0 and later a reconnecting stream', () => {
  assert.deepEqual(netdevArgs(vm(), '/h/vms/web', 'dgram', false).slice(0, 2), [
    '-netdev', 'dgram,id=n1,local.type=unix,local.path=/h/vms/web/nic1.qemu,remote.type=unix,remote.path=/h/vms/web/nic1.sock',
  ]);
  assert.equal(nicLinkFor([7, 2]), 'dgram');
  assert.equal(nicLinkFor([8, 2]), 'stream');
  assert.equal(nicLinkFor([9, 0]), 'stream');
  assert.equal(nicLinkFor([0, 0]), 'stream', 'no QEMU found');
});

test('memory, CPUs, accelerator, disks and DVD; commas in paths doubled', () => {
  const args = qemuArgs(vm(), '/h/vms/web', { accel: 'tcg', nicLink: 'stream', reconnect: false }).join(' ');
  assert.match(args, /-accel tcg -m 256 -smp 2 -nodefaults/);
  assert.match(args, /-serial file:\/h\/vms\/web\/console\.log -qmp unix:\/h\/vms\/web\/qmp\.sock,server=on,wait=off/);
  assert.match(args, /-device ahci,id=ctl0 -drive file=\/iso\/a,,b\.iso,format=raw,if=none,id=ctl0p1d0,media=cdrom -device ide-cd,drive=ctl0p1d0,bus=ctl0\.1/);
  assert.match(args, /-drive file=\/d\/web\.vdi,format=vdi,if=none,id=ctl1p0d0 -device virtio-blk-pci,drive=ctl1p0d0/);
});

test('memory and CPU bounds are checked', () => {
  assert.throws(() => applyVmChange(createVm('x'), { cpus: 0 }), /invalid CPU count '0': expected 1-64/);
  assert.throws(() => applyVmChange(createVm('x'), { memoryMb: 1.5 }), /invalid memory size/);
});

test("boot order: VirtualBox's default (floppy, dvd, disk) as SeaBIOS letters; --boot1 net puts the NIC's PXE ROM first; a kernel boots directly", () => {
  const order = (v: ReturnType<typeof vm>) => qemuArgs(v, '/h', { accel: 'tcg', nicLink: 'stream', reconnect: false }).join(' ').match(/-boot (\S+)/)?.[1];
  assert.equal(order(vm()), 'order=adc');
  assert.equal(order(applyVmChange(vm(), { boot: { '1': 'net', '2': 'disk', '3': 'none', '4': 'none' } })), 'order=nc');
  assert.equal(order(applyVmChange(vm(), { boot: { '1': 'none', '2': 'none', '3': 'none' } })), undefined, 'nothing to boot from: no -boot');
  assert.equal(order(applyVmChange(vm(), { kernel: '/boot/vmlinuz' })), undefined);
  assert.throws(() => applyVmChange(vm(), { boot: { '5': 'net' } }), /invalid boot position '5': expected 1-4/);
  assert.throws(() => applyVmChange(vm(), { boot: { '1': 'tape' as never } }), /invalid boot device 1 'tape': expected one of none, floppy, dvd, disk, net/);
});
