/** `hostonlyif create|ipconfig|remove` and the `list hostonlyifs|bridgedifs` printers. */
import type { BridgedIfView } from '../daemon/bridged.js';
import type { HostOnlyIfView } from '../daemon/host-only.js';
import type { HostOnlyIfConfig } from '../model/types.js';
import { hasFlag, parseArgs, single, usageError } from './argv.js';
import type { Command } from './commands.js';

type Api = { get<T>(path: string): Promise<T> };

const ifPath = (name: string): string => `/v1/hostonlyifs/${encodeURIComponent(name)}`;

/** VBoxManage's `list hostonlyifs` block for one interface. */
function formatHostOnlyIf(i: HostOnlyIfView): string {
  return [
    `Name:            ${i.name}`,
    `GUID:            ${guidOf(i.name)}`,
    'DHCP:            Disabled',
    `IPAddress:       ${i.ip}`,
    `NetworkMask:     ${i.netmask}`,
    'IPV6Address:     ',
    'IPV6NetworkMaskPrefixLength: 0',
    `HardwareAddress: ${i.mac}`,
    'MediumType:      Ethernet',
    'Wireless:        No',
    `Status:          ${i.status}`,
    `VBoxNetworkName: ${i.networkName}`,
  ].join('\n');
}

/** A stable GUID-looking id from the name, as VirtualBox shows one per interface. */
function guidOf(name: string): string {
  const hex = Buffer.from(name.padEnd(16, '\0').slice(0, 16), 'latin1').toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

export async function listHostOnlyIfs(api: Api, json: boolean): Promise<string> {
  const ifs = await api.get<HostOnlyIfView[]>('/v1/hostonlyifs');
  return json ? JSON.stringify(ifs, null, 2) : ifs.map(formatHostOnlyIf).join('\n\n');
}

export async function listBridgedIfs(api: Api, json: boolean): Promise<string> {
  const ifs = await api.get<BridgedIfView[]>('/v1/bridgedifs');
  if (json) return JSON.stringify(ifs, null, 2);
  return ifs
    .map((i) => {
      const [address, prefix] = (i.addresses[0] ?? '0.0.0.0/0').split('/');
      const mask = Number(prefix) === 0 ? 0 : (0xffffffff << (32 - Number(prefix))) >>> 0;
      return [
        `Name:            ${i.name}`,
        `GUID:            ${guidOf(i.name)}`,
        'DHCP:            Disabled',
        `IPAddress:       ${address}`,
        `NetworkMask:     ${[24, 16, 8, 0].map((s) => (mask >>> s) & 0xff).join('.')}`,
        `HardwareAddress: ${i.mac}`,
        `MediumType:      ${i.kind === 'bridge' ? 'Bridge' : 'Ethernet'}`,
        `Status:          ${i.status}`,
        `VBoxNetworkName: HostInterfaceNetworking-${i.name}`,
      ].join('\n');
    })
    .join('\n\n');
}

/** `vnet hostonlyif create [--name IF] | ipconfig IF --ip A [--netmask M] | remove IF`. */
export const hostonlyif: Command = async (args, { api, print }) => {
  const [action, ...rest] = args;
  const parsed = parseArgs(rest, { flags: ['json', 'dhcp'] });
  const known = action === 'ipconfig' ? ['ip', 'netmask', 'json', 'dhcp', 'ipv6', 'netmasklengthv6'] : ['json', 'name'];
  const unknown = parsed.options.find((o) => !known.includes(o.key));
  if (unknown) throw usageError(`hostonlyif ${action ?? ''}: unknown option ${unknown.spelling}`);
  const json = hasFlag(parsed, 'json');
  switch (action) {
    case 'create': {
      if (parsed.positionals.length) throw usageError(`hostonlyif create: unexpected argument '${parsed.positionals[0]}'`);
      const created = await api.post<HostOnlyIfConfig>('/v1/hostonlyifs', { name: single(parsed, 'name') });
      return print(json ? JSON.stringify(created, null, 2) : `Interface '${created.name}' was successfully created`);
    }
    case 'ipconfig': {
      const [name, ...extra] = parsed.positionals;
      if (!name) throw usageError('hostonlyif ipconfig: missing interface name');
      if (extra.length) throw usageError(`hostonlyif ipconfig: unexpected argument '${extra[0]}'`);
      if (hasFlag(parsed, 'dhcp')) throw usageError('hostonlyif ipconfig --dhcp is not supported: give --ip and --netmask');
      if (single(parsed, 'ipv6') !== undefined) throw usageError('hostonlyif ipconfig --ipv6 is not supported yet: vnet is IPv4-only');
      const ip = single(parsed, 'ip');
      if (!ip) throw usageError('hostonlyif ipconfig: --ip is required');
      const changed = await api.patch<HostOnlyIfConfig>(ifPath(name), { ip, netmask: single(parsed, 'netmask') });
      if (json) print(JSON.stringify(changed, null, 2));
      return;
    }
    case 'remove': {
      const [name, ...extra] = parsed.positionals;
      if (!name) throw usageError('hostonlyif remove: missing interface name');
      if (extra.length) throw usageError(`hostonlyif remove: unexpected argument '${extra[0]}'`);
      await api.delete(ifPath(name));
      return;
    }
    default:
      throw usageError(`hostonlyif: unknown action '${action ?? ''}'; one of create, ipconfig, remove`);
  }
};
