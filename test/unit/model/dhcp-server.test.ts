import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { applyDhcpServerChange, createDhcpServer, defaultHostOnlyDhcp, encodeDhcpOption, resolveDhcpTarget } from '../../../src/model/dhcp-server.js';
import { applyHostOnlyIpconfig, nextHostOnlyIf } from '../../../src/model/host-only.js';

const base = () => createDhcpServer('lab', 'intnet', { serverIp: '10.1.0.1', netmask: '255.255.255.0', lowerIp: '10.1.0.10', upperIp: '10.1.0.20' });

describe('dhcpserver model', () => {
  test('a host-only interface gets VirtualBox defaults: .100, pool .101-.254', () => {
    const iface = nextHostOnlyIf([]);
    assert.deepEqual(iface, { name: 'vboxnet0', ip: '192.168.56.1', netmask: '255.255.255.0' });
    assert.equal(nextHostOnlyIf([iface]).ip, '192.168.57.1');
    const s = defaultHostOnlyDhcp(iface);
    assert.deepEqual([s.network, s.serverIp, s.lowerIp, s.upperIp, s.enabled], ['HostInterfaceNetworking-vboxnet0', '192.168.56.100', '192.168.56.101', '192.168.56.254', true]);
  });

  test('targets: --interface, HostInterfaceNetworking-, NAT network, else intnet', () => {
    assert.deepEqual(resolveDhcpTarget({ interface: 'vboxnet1' }, []), { network: 'HostInterfaceNetworking-vboxnet1', kind: 'hostonly', ifname: 'vboxnet1' });
    assert.equal(resolveDhcpTarget({ network: 'HostInterfaceNetworking-vboxnet1' }, []).kind, 'hostonly');
    assert.equal(resolveDhcpTarget({ network: 'nat1' }, ['nat1']).kind, 'natnet');
    assert.equal(resolveDhcpTarget({ network: 'lab' }, ['nat1']).kind, 'intnet');
    assert.throws(() => resolveDhcpTarget({}, []), /--network NAME or --interface IF is required/);
  });

  test('changes are validated whole and leave the original alone', () => {
    const s = base();
    assert.throws(() => applyDhcpServerChange(s, { lowerIp: '10.2.0.1' }), /lower address 10\.2\.0\.1 is not a host address/);
    assert.throws(() => applyDhcpServerChange(s, { lowerIp: '10.1.0.30' }), /lower address 10\.1\.0\.30 is above upper address/);
    assert.throws(() => applyDhcpServerChange(s, { netmask: '255.0.255.0' }), /contiguous/);
    assert.throws(() => applyDhcpServerChange(s, { setOptions: { '54': '1.2.3.4' } }), /set by the server itself/);
    assert.throws(() => applyDhcpServerChange(s, { fixed: [{ mac: '08:00:27:00:00:01', ip: '10.9.0.1' }] }), /fixed address 10\.9\.0\.1 is not on/);
    assert.equal(s.lowerIp, '10.1.0.10');
    const fixed = applyDhcpServerChange(s, { fixed: [{ mac: '080027000001', ip: '10.1.0.50' }, { vm: 'g', nic: 2, ip: '10.1.0.51' }] });
    assert.deepEqual(fixed.fixed, [{ mac: '08:00:27:00:00:01', ip: '10.1.0.50' }, { vm: 'g', nic: 2, ip: '10.1.0.51' }]);
    assert.throws(() => applyDhcpServerChange(fixed, { fixed: [{ mac: '080027000002', ip: '10.1.0.50' }] }), /given to two clients/);
    assert.deepEqual(applyDhcpServerChange(fixed, { fixed: [{ mac: '08-00-27-00-00-01', ip: '' }] }).fixed, [{ vm: 'g', nic: 2, ip: '10.1.0.51' }]);
  });

  test('options encode by their RFC 2132 type', () => {
    assert.deepEqual([...encodeDhcpOption(6, '10.0.0.1, 10.0.0.2')], [10, 0, 0, 1, 10, 0, 0, 2]);
    assert.deepEqual([...encodeDhcpOption(26, '1400')], [0x05, 0x78]);
    assert.deepEqual([...encodeDhcpOption(15, 'lab.test')], [...Buffer.from('lab.test')]);
    assert.deepEqual([...encodeDhcpOption(43, 'hex:0a0b')], [10, 11]);
    assert.throws(() => encodeDhcpOption(3, 'router'), /invalid/);
    assert.throws(() => encodeDhcpOption(19, '256'), /below 256/);
  });

  test('hostonlyif ipconfig refuses network and broadcast addresses', () => {
    const iface = nextHostOnlyIf([]);
    assert.deepEqual(applyHostOnlyIpconfig(iface, '10.9.8.1', '16'), { name: 'vboxnet0', ip: '10.9.8.1', netmask: '255.255.0.0' });
    assert.throws(() => applyHostOnlyIpconfig(iface, '10.9.8.0', '255.255.255.0'), /network or broadcast/);
    assert.throws(() => applyHostOnlyIpconfig(iface, '300.1.1.1'), /expected an IPv4 address/);
  });
});
