import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { applyVmChange, createVm, type VmChange } from '../../../src/model/vm.js';
import { checkLabShape, exportLab, formatLabPath, LabError, parseLabPath, planLab, type LabState } from '../../../src/model/lab-file.js';

const empty = (): LabState => ({ vms: [], natNetworks: [], hostOnlyIfs: [], dhcpServers: [] });

describe('lab files', () => {
  test('shape errors name the path', () => {
    assert.throws(() => checkLabShape({ vm: [] }), (e: LabError) => e.path.join() === 'vm' && /unknown section/.test(e.message));
    assert.throws(() => checkLabShape({ vms: [{ name: 'a', nics: { 9: {} } }] }), (e: LabError) => formatLabPath(e.path) === 'vms[0].nics.9');
    assert.throws(() => checkLabShape({ vms: [{ name: 'a', nics: { 1: { mode: null } } }] }), (e: LabError) => formatLabPath(e.path) === 'vms[0].nics.1.mode' && /expected text/.test(e.reason));
    assert.throws(() => checkLabShape({ vms: [{ name: 'a', nics: { 1: { mac: 80027000001 } } }] }), /quotes/);
    assert.deepEqual(parseLabPath('vms[0].nics.1.mode'), ['vms', 0, 'nics', '1', 'mode']);
  });

  test('values are checked by planning: the error names the field', () => {
    const spec = checkLabShape({ vms: [{ name: 'a', nics: { 2: { mode: 'intnet', intnet: 'x', mtu: 5 } } }] });
    assert.throws(() => planLab(empty(), spec), (e: LabError) => formatLabPath(e.path) === 'vms[0].nics.2.mtu');
    assert.throws(() => planLab(empty(), checkLabShape({ natnetworks: [{ name: 'n' }] })), /needs 'network'/);
    assert.throws(() => planLab(empty(), checkLabShape({ dhcpservers: [{ interface: 'vboxnet9', serverIp: '1.1.1.1' }] })), (e: LabError) => formatLabPath(e.path) === 'dhcpservers[0].interface');
  });

  test('a plan simulates its own steps: host-only create brings the default server, which the file then modifies', () => {
    const spec = checkLabShape({
      hostonlyifs: [{ name: 'vboxnet0', ip: '192.168.60.1' }],
      dhcpservers: [{ interface: 'vboxnet0', lowerIp: '192.168.60.150', upperIp: '192.168.60.160' }],
    });
    assert.deepEqual(planLab(empty(), spec).map((s) => s.op), ['hostonlyif.create', 'hostonlyif.ipconfig', 'dhcpserver.modify']);
  });

  test('an exported state plans no steps', () => {
    const state = empty();
    state.natNetworks.push({ name: 'n', network: '10.5.0.0/24', enabled: true, dhcp: true, localhostReachable: false, portForwards: [{ name: 'ssh', protocol: 'tcp', hostIp: '127.0.0.1', hostPort: 2222, guestIp: '10.5.0.4', guestPort: 22 }] });
    const spec = checkLabShape({ vms: [{ name: 'g', nics: { 1: { portForwards: ['web,tcp,,8080,,80'] }, 2: { mode: 'intnet', intnet: 'lab' } } }] });
    const steps = planLab(state, spec);
    assert.deepEqual(steps.map((s) => s.op), ['vm.create', 'vm.modify']);
    // Build the state the steps describe, then export and plan again.
    const after = structuredClone(state);
    const vm = applyVmChange(createVm('g'), (steps[1] as { change: VmChange }).change);
    after.vms.push(vm);
    const exported = checkLabShape(JSON.parse(JSON.stringify(exportLab(after))));
    assert.deepEqual(planLab(after, exported), []);
    assert.deepEqual(planLab(after, spec), []);
  });
});
