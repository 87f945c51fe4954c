/**
 * `vnet dhcpserver add|modify|remove|restart|findlease` and `list dhcpservers`,
 * in VBoxManage's words. Options after `--mac-address MAC` or `--vm VM --nic N`
 * belong to that client (its scope), as in VBoxManage: `--fixed-address A`,
 * `--remove-config`. `--global` returns to the server's own settings.
 */
import type { LeaseView } from '../daemon/daemon.js';
import type { DhcpServerChange } from '../model/dhcp-server.js';
import type { DhcpFixedAddress, DhcpServerSettings } from '../model/types.js';
import { hasFlag, parseArgs, single, usageError, type ParsedArgs } from './argv.js';
import type { Command } from './commands.js';

type ServerView = DhcpServerSettings & { running: boolean };

const FLAGS = ['enable', 'disable', 'removeconfig', 'global', 'json'];
const KNOWN = [
  ...FLAGS, 'network', 'netname', 'interface', 'ifname', 'serverip', 'ip', 'netmask', 'lowerip', 'upperip',
  'defaultleasetime', 'leasetime', 'minleasetime', 'maxleasetime', 'setopt', 'setopthex', 'unsetopt',
  'macaddress', 'vm', 'nic', 'fixedaddress',
];

const arity = (key: string): number => (key === 'setopt' || key === 'setopthex' ? 2 : 1);

/** The server's VirtualBox network name from `--network`/`--netname` or `--interface`/`--ifname`. */
function targetOf(parsed: ParsedArgs, action: string): { network?: string; interface?: string; name: string } {
  const network = single(parsed, 'network') ?? single(parsed, 'netname');
  const ifname = single(parsed, 'interface') ?? single(parsed, 'ifname');
  if (network !== undefined && ifname !== undefined) throw usageError(`dhcpserver ${action}: give --network or --interface, not both`);
  if (network === undefined && ifname === undefined) throw usageError(`dhcpserver ${action}: --network NAME or --interface IF is required`);
  return network !== undefined ? { network, name: network } : { interface: ifname, name: `HostInterfaceNetworking-${ifname}` };
}

type Scope = { kind: 'global' } | { kind: 'mac'; mac: string } | { kind: 'vm'; vm: string; nic: number };

/** Fold the options into a change, keeping track of the client scope each one is in. */
function changeOf(parsed: ParsedArgs, action: string): DhcpServerChange {
  const change: DhcpServerChange = {};
  let scope: Scope = { kind: 'global' };
  const scoped = (what: string): DhcpFixedAddress => {
    if (scope.kind === 'mac') return { mac: scope.mac, ip: '' };
    if (scope.kind === 'vm') return { vm: scope.vm, nic: scope.nic, ip: '' };
    throw usageError(`dhcpserver ${action}: ${what} needs a client first: --mac-address MAC or --vm VM --nic N`);
  };
  for (const option of parsed.options) {
    const [value, second] = option.values;
    switch (option.key) {
      case 'serverip':
      case 'ip':
        change.serverIp = value;
        break;
      case 'netmask':
        change.netmask = value;
        break;
      case 'lowerip':
        change.lowerIp = value;
        break;
      case 'upperip':
        change.upperIp = value;
        break;
      case 'enable':
      case 'disable':
        change.enabled = option.key === 'enable';
        break;
      case 'defaultleasetime':
      case 'leasetime':
      case 'maxleasetime':
        if (!/^\d+$/.test(value!)) throw usageError(`option ${option.spelling} expects a number of seconds, not '${value}'`);
        // One lease time is handed out: the default (VirtualBox also clamps client requests to min/max).
        if (option.key !== 'maxleasetime' || change.leaseTimeSec === undefined) change.leaseTimeSec = Number(value);
        break;
      case 'minleasetime':
        break; // clients' requested lease times are not honoured, so the lower bound changes nothing
      case 'setopt':
      case 'setopthex':
        if (scope.kind !== 'global') throw usageError(`dhcpserver ${action}: options per client are not supported; give ${option.spelling} before --mac-address/--vm`);
        (change.setOptions ??= {})[value!] = option.key === 'setopthex' ? `hex:${second}` : second!;
        break;
      case 'unsetopt':
        (change.unsetOptions ??= []).push(value!);
        break;
      case 'global':
        scope = { kind: 'global' };
        break;
      case 'macaddress':
        scope = { kind: 'mac', mac: value! };
        break;
      case 'vm':
        scope = { kind: 'vm', vm: value!, nic: 1 };
        break;
      case 'nic': {
        const current = scope as Scope;
        if (current.kind !== 'vm') throw usageError(`dhcpserver ${action}: --nic belongs after --vm VM`);
        if (!/^\d+$/.test(value!)) throw usageError(`option ${option.spelling} expects a NIC number, not '${value}'`);
        scope = { kind: 'vm', vm: current.vm, nic: Number(value) };
        break;
      }
      case 'fixedaddress':
        (change.fixed ??= []).push({ ...scoped('--fixed-address'), ip: value! });
        break;
      case 'removeconfig':
        (change.fixed ??= []).push(scoped('--remove-config'));
        break;
    }
  }
  return change;
}

function formatServer(s: ServerView): string {
  const individual = s.fixed.map((f) => `    ${f.mac !== undefined ? `MAC ${f.mac}` : `VM ${f.vm} NIC ${f.nic}`}: Fixed Address ${f.ip}`);
  const options = Object.entries(s.options).map(([code, value]) => `        ${code}: ${value}`);
  return [
    `NetworkName:    ${s.network}`,
    `Dhcpd IP:       ${s.serverIp}`,
    `LowerIPAddress: ${s.lowerIp}`,
    `UpperIPAddress: ${s.upperIp}`,
    `NetworkMask:    ${s.netmask}`,
    `Enabled:        ${s.enabled ? 'Yes' : 'No'}`,
    `Running:        ${s.running ? 'Yes' : 'No'}`,
    'Global Configuration:',
    `    defaultLeaseTime: ${s.leaseTimeSec}`,
    `    Forced options:   ${options.length ? '' : 'None'}`,
    ...options,
    `Individual Configs:   ${individual.length ? '' : 'None'}`,
    ...individual,
  ].join('\n');
}

export async function listDhcpServers(api: { get<T>(p: string): Promise<T> }, json: boolean): Promise<string> {
  const servers = await api.get<ServerView[]>('/v1/dhcpservers');
  return json ? JSON.stringify(servers, null, 2) : servers.map(formatServer).join('\n\n');
}

export const dhcpserver: Command = async (args, { api, print }) => {
  const [action, ...rest] = args;
  const parsed = parseArgs(rest, { flags: FLAGS, arity });
  const unknown = parsed.options.find((o) => !KNOWN.includes(o.key));
  if (unknown) throw usageError(`dhcpserver: unknown option ${unknown.spelling}`);
  if (parsed.positionals.length) throw usageError(`dhcpserver: unexpected argument '${parsed.positionals[0]}'`);
  const json = hasFlag(parsed, 'json');
  if (action === 'list') return print(await listDhcpServers(api, json));
  const target = targetOf(parsed, action ?? '');
  const path = `/v1/dhcpservers/${encodeURIComponent(target.name)}`;
  switch (action) {
    case 'add': {
      const { name: _name, ...where } = target;
      const added = await api.post<ServerView>('/v1/dhcpservers', { ...where, ...changeOf(parsed, action) });
      if (json) print(JSON.stringify(added, null, 2));
      return;
    }
    case 'modify':
    case 'restart': {
      const changed = await api.patch<ServerView>(path, action === 'modify' ? changeOf(parsed, action) : {});
      if (json) print(JSON.stringify(changed, null, 2));
      return;
    }
    case 'remove':
      await api.delete(path);
      return;
    case 'findlease': {
      const mac = single(parsed, 'macaddress');
      if (!mac) throw usageError('dhcpserver findlease: --mac-address is required');
      const found = await api.get<LeaseView[]>(`${path}/leases?mac=${encodeURIComponent(mac)}`);
      if (json) return print(JSON.stringify(found, null, 2));
      const lease = found[0]!;
      return print([
        `IP Address:  ${lease.ip}`,
        `MAC Address: ${lease.mac}`,
        `State:       ${lease.state === 'bound' ? 'acked' : lease.state}`,
        `Expire:      ${lease.expiresAt}`,
        ...(lease.vm ? [`VM:          ${lease.vm} (NIC ${lease.nic})`] : []),
      ].join('\n'));
    }
    default:
      throw usageError(`dhcpserver: unknown action '${action ?? ''}'; one of add, modify, remove, restart, findlease, list`);
  }
};
