/** `natnetwork`, `leases` and `ip`: networks and addresses. */
import type { LeaseView, VmView } from '../daemon/daemon.js';
import type { NatNetworkChange } from '../model/nat-network.js';
import type { NatNetworkConfig } from '../model/types.js';
import { hasFlag, onOff, parseArgs, single, usageError, type ParsedArgs } from './argv.js';
import type { Command } from './commands.js';

type NatNetworkView = NatNetworkConfig & { running: boolean };

const NATNETWORK_OPTIONS = ['netname', 'network', 'enable', 'disable', 'dhcp', 'portforward', 'localhostreachable', 'json'];

/** `--port-forward-4 RULE`, `--port-forward-4 delete NAME` or `--port-forward-4=delete:NAME`. */
const portForwardArity = (key: string, first: string | undefined): number => (key === 'portforward' && first === 'delete' ? 2 : 1);

function natNetworkChange(parsed: ParsedArgs): NatNetworkChange {
  const change: NatNetworkChange = {};
  for (const option of parsed.options) {
    const [value, second] = option.values;
    switch (option.key) {
      case 'network':
        change.network = value;
        break;
      case 'enable':
      case 'disable':
        change.enabled = option.key === 'enable';
        break;
      case 'dhcp':
        change.dhcp = onOff(option);
        break;
      case 'localhostreachable':
        change.localhostReachable = onOff(option);
        break;
      case 'portforward':
        if (option.slot !== undefined && option.slot !== 4) throw usageError(`${option.spelling}: only IPv4 forwards (--port-forward-4) are supported`);
        if (value === 'delete') (change.deleteForwards ??= []).push(second!);
        else if (value!.startsWith('delete:')) (change.deleteForwards ??= []).push(value!.slice(7));
        else (change.addForwards ??= []).push(value!);
        break;
    }
  }
  return change;
}

function formatNatNetwork(n: NatNetworkView): string {
  const [address, prefix] = n.network.split('/');
  const gateway = address!.replace(/\d+$/, (last) => String(Number(last) + 1));
  return [
    `NetworkName:    ${n.name}`,
    `IP:             ${gateway}`,
    `Network:        ${n.network}`,
    `Prefix:         /${prefix}`,
    `DHCP Enabled:   ${n.dhcp ? 'Yes' : 'No'}`,
    `Enabled:        ${n.enabled ? 'Yes' : 'No'}`,
    `Running:        ${n.running ? 'Yes' : 'No'}`,
    `Localhost reachable: ${n.localhostReachable ? 'Yes' : 'No'}`,
    ...(n.portForwards.length ? ['Port-forwarding (ipv4)', ...n.portForwards.map((r) => `        ${r.name}:${r.protocol}:[${r.hostIp}]:${r.hostPort}:[${r.guestIp}]:${r.guestPort}`)] : []),
  ].join('\n');
}

export async function listNatNetworks(api: { get<T>(p: string): Promise<T> }, json: boolean): Promise<string> {
  const nets = await api.get<NatNetworkView[]>('/v1/natnetworks');
  return json ? JSON.stringify(nets, null, 2) : nets.map(formatNatNetwork).join('\n\n');
}

export const natnetwork: Command = async (args, { api, print }) => {
  const [action, ...rest] = args;
  const parsed = parseArgs(rest, { flags: ['enable', 'disable', 'json'], arity: portForwardArity });
  const unknown = parsed.options.find((o) => !NATNETWORK_OPTIONS.includes(o.key));
  if (unknown) throw usageError(`natnetwork: unknown option ${unknown.spelling}`);
  if (action === 'list') return print(await listNatNetworks(api, hasFlag(parsed, 'json')));
  const name = single(parsed, 'netname');
  if (!name) throw usageError(`natnetwork ${action ?? ''}: --netname is required`.replace('  ', ' '));
  const path = `/v1/natnetworks/${encodeURIComponent(name)}`;
  switch (action) {
    case 'add':
      await api.post('/v1/natnetworks', { name, ...natNetworkChange(parsed) });
      return;
    case 'modify':
      await api.patch(path, natNetworkChange(parsed));
      return;
    case 'remove':
      await api.delete(path);
      return;
    case 'start':
    case 'stop':
      await api.post(`${path}/${action}`);
      return;
    default:
      throw usageError(`natnetwork: unknown action '${action ?? ''}'; one of add, modify, remove, start, stop, list`);
  }
};

export const leases: Command = async (args, { api, print }) => {
  const parsed = parseArgs(args, { flags: ['json'] });
  const unknown = parsed.options.find((o) => !['json', 'network'].includes(o.key));
  if (unknown) throw usageError(`leases: unknown option ${unknown.spelling}`);
  const network = single(parsed, 'network');
  const all = await api.get<LeaseView[]>(`/v1/leases${network ? `?network=${encodeURIComponent(network)}` : ''}`);
  if (hasFlag(parsed, 'json')) return print(JSON.stringify(all, null, 2));
  const rows = [['Network', 'MAC', 'IP', 'Hostname', 'VM', 'NIC', 'Expires'], ...all.map((l) => [l.network, l.mac, l.ip, l.hostname ?? '-', l.vm ?? '-', String(l.nic ?? '-'), l.expiresAt])];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  print(rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n'));
};

/** `vnet ip VM [--nic N]`: the VM's address, from the leases vnet handed out. */
export const ip: Command = async (args, { api, print }) => {
  const parsed = parseArgs(args);
  const unknown = parsed.options.find((o) => o.key !== 'nic');
  if (unknown) throw usageError(`ip: unknown option ${unknown.spelling}`);
  const [name] = parsed.positionals;
  if (!name) throw usageError('ip: missing VM name');
  const vm = await api.get<VmView>(`/v1/vms/${encodeURIComponent(name)}`);
  const slot = single(parsed, 'nic');
  const found = (await api.get<LeaseView[]>('/v1/leases')).filter((l) => l.vm === vm.name && l.state === 'bound' && (!slot || String(l.nic) === slot));
  if (!found.length) throw usageError(`no address known for VM '${vm.name}'${slot ? ` NIC ${slot}` : ''} (no DHCP lease yet)`);
  print(found.map((l) => l.ip).join('\n'));
};
