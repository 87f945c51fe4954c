/** Each `vnet` command: argv → API calls → printed result. */
import type { VmView } from '../daemon/daemon.js';
import type { VmChange } from '../model/vm.js';
import { hasFlag, onOff, parseArgs, single, usageError, type ParsedArgs, type ParsedOption } from './argv.js';
import type { ApiClient } from './client.js';
import { formatVm, formatVmMachineReadable } from './format.js';
import { addNicOption, nicOptionArity } from './nic-options.js';
import { ip, leases, listNatNetworks, natnetwork } from './network-commands.js';
import { events } from './events-command.js';
import { dhcpserver, listDhcpServers } from './dhcp-commands.js';
import { hostonlyif, listBridgedIfs, listHostOnlyIfs } from './hostonly-commands.js';
import { apply, exportConfig } from './lab-file.js';
import { addHardwareOption, listMedia, qemuControl, QEMU_CONTROL_ACTIONS, showQemuArgs, VM_COMMANDS } from './vm-commands.js';

export interface CommandContext {
  api: ApiClient;
  print: (text: string) => void;
}

export type Command = (args: string[], context: CommandContext) => Promise<void>;

const vmPath = (name: string): string => `/v1/vms/${encodeURIComponent(name)}`;

function onlyKnown(parsed: ParsedArgs, known: readonly string[]): void {
  const unknown = parsed.options.find((o) => !known.includes(o.key));
  if (unknown) throw usageError(`unknown option ${unknown.spelling}`);
}

function vmArgument(parsed: ParsedArgs, command: string): string {
  const [vm, ...extra] = parsed.positionals;
  if (!vm) throw usageError(`${command}: missing VM name`);
  if (extra.length) throw usageError(`${command}: unexpected argument '${extra[0]}'`);
  return vm;
}

const createvm: Command = async (args, { api, print }) => {
  const parsed = parseArgs(args, { flags: ['register', 'json'] });
  onlyKnown(parsed, ['name', 'register', 'ostype', 'basefolder', 'json']);
  const name = single(parsed, 'name');
  if (!name) throw usageError('createvm: --name is required');
  const vm = await api.post<VmView>('/v1/vms', { name, ostype: single(parsed, 'ostype') });
  if (hasFlag(parsed, 'json')) return print(JSON.stringify(vm, null, 2));
  print(`Virtual machine '${vm.name}' is created and registered.\nUUID: ${vm.uuid}`);
};

const modifyvm: Command = async (args, { api }) => {
  const parsed = parseArgs(args, { arity: nicOptionArity });
  const vm = vmArgument(parsed, 'modifyvm');
  const change: VmChange = {};
  for (const option of parsed.options) {
    if (addNicOption(change, option)) continue;
    if (addHardwareOption(change, option)) continue;
    if (option.key === 'ostype') change.ostype = option.values[0];
    else throw usageError(`modifyvm: unknown option ${option.spelling}`);
  }
  if (!parsed.options.length) throw usageError('modifyvm: nothing to change');
  await api.patch(vmPath(vm), change);
};

const showvminfo: Command = async (args, { api, print }) => {
  const parsed = parseArgs(args, { flags: ['machinereadable', 'json', 'details', 'qemuargs', 'netdevargs'] });
  onlyKnown(parsed, ['machinereadable', 'json', 'details', 'qemuargs', 'netdevargs']);
  if (hasFlag(parsed, 'qemuargs') || hasFlag(parsed, 'netdevargs')) return print(await showQemuArgs(api, vmArgument(parsed, 'showvminfo'), hasFlag(parsed, 'netdevargs')));
  const vm = await api.get<VmView>(vmPath(vmArgument(parsed, 'showvminfo')));
  if (hasFlag(parsed, 'json')) print(JSON.stringify(vm, null, 2));
  else print(hasFlag(parsed, 'machinereadable') ? formatVmMachineReadable(vm) : formatVm(vm));
};

const list: Command = async (args, { api, print }) => {
  const parsed = parseArgs(args, { flags: ['json', 'long', 'l', 'sorted', 's'] });
  onlyKnown(parsed, ['json', 'long', 'l', 'sorted', 's']);
  const [what, ...extra] = parsed.positionals;
  if (extra.length) throw usageError(`list: unexpected argument '${extra[0]}'`);
  const json = hasFlag(parsed, 'json');
  switch (what) {
    case 'vms':
    case 'runningvms': {
      const vms = (await api.get<VmView[]>('/v1/vms')).filter((vm) => what === 'vms' || vm.state === 'running');
      if (json) return print(JSON.stringify(vms.map(({ name, uuid, state }) => ({ name, uuid, state })), null, 2));
      return print(vms.map((vm) => `"${vm.name}" {${vm.uuid}}`).join('\n'));
    }
    case 'intnets': {
      const nets = await api.get<{ name: string }[]>('/v1/networks?kind=intnet');
      if (json) return print(JSON.stringify(nets, null, 2));
      return print(nets.map((n) => `Name:        ${n.name}\n`).join('\n'));
    }
    case 'hdds':
    case 'dvds':
      return print(await listMedia(api, what, json));
    case 'hostonlyifs':
      return print(await listHostOnlyIfs(api, json));
    case 'bridgedifs':
      return print(await listBridgedIfs(api, json));
    case 'dhcpservers':
      return print(await listDhcpServers(api, json));
    case 'natnets':
    case 'natnetworks':
      return print(await listNatNetworks(api, json));
    default:
      throw usageError(`list: unknown list '${what ?? ''}'; one of vms, runningvms, intnets, natnets, hostonlyifs, bridgedifs, dhcpservers`);
  }
};

const startvm: Command = async (args, { api, print }) => {
  const parsed = parseArgs(args);
  onlyKnown(parsed, ['type', 'netns']);
  const vm = vmArgument(parsed, 'startvm');
  print(`Waiting for VM "${vm}" to power on...`);
  await api.post(`${vmPath(vm)}/start`, { type: single(parsed, 'type') ?? 'netns', netns: single(parsed, 'netns') });
  print(`VM "${vm}" has been successfully started.`);
};

/** NIC words `controlvm` takes (VBoxManage's runtime subset). */
const CONTROLVM_NIC_WORDS = ['cableconnected', 'nictrace', 'nictracefile', 'nicpromisc', 'nicproperty', 'nic', 'natpf'];

/** `controlvm VM ACTION [ARGS]`: actions are VBoxManage's words with the NIC number glued on. */
const controlvm: Command = async (args, { api }) => {
  const [vm, action, ...rest] = args;
  if (!vm) throw usageError('controlvm: missing VM name');
  if (!action) throw usageError('controlvm: missing action (poweroff, setlinkstate<N>, nictrace<N>, nicpromisc<N>, nic<N>, …)');
  if (action === 'poweroff') {
    if (rest.length) throw usageError(`controlvm poweroff: unexpected argument '${rest[0]}'`);
    await api.post(`${vmPath(vm)}/poweroff`);
    return;
  }
  if (QEMU_CONTROL_ACTIONS.includes(action)) {
    if (rest.length) throw usageError(`controlvm ${action}: unexpected argument '${rest[0]}'`);
    await qemuControl(api, vm, action);
    return;
  }
  // `setlinkstate1 off` is `--cableconnected1 off` applied to the running VM; the rest map onto modifyvm's words.
  const match = /^([a-z-]+?)(\d+)$/i.exec(action);
  if (!match) throw usageError(`controlvm: unknown action '${action}'`);
  const word = match[1]!.toLowerCase().replace(/-/g, '');
  const key = word === 'setlinkstate' ? 'cableconnected' : word;
  const arity = key === 'natpf' && rest[0] === 'delete' ? 2 : 1;
  // `controlvm VM nic1 intnet NAME`: the network name follows the mode.
  const values = key === 'nic' && rest.length === 2 ? rest.slice(0, 1) : rest;
  if (values.length !== arity) throw usageError(`controlvm ${action}: expects ${arity === 2 ? 'delete NAME' : 'one value'}`);
  const option: ParsedOption = { spelling: action, key, slot: Number(match[2]), values };
  const change: VmChange = {};
  if (!CONTROLVM_NIC_WORDS.includes(key) || !addNicOption(change, option)) throw usageError(`controlvm: unknown action '${action}'`);
  if (key === 'nic' && rest.length === 2) {
    const nic = change.nics![String(option.slot)]!;
    if (rest[0] === 'intnet') nic.intnet = rest[1];
    else if (rest[0] === 'natnetwork') nic.natNetwork = rest[1];
    else if (rest[0] === 'hostonly') nic.hostOnlyAdapter = rest[1];
    else if (rest[0] === 'bridged') nic.bridgeAdapter = rest[1];
    else throw usageError(`controlvm ${action}: unexpected argument '${rest[1]}'`);
  }
  await api.patch(vmPath(vm), change);
};

const unregistervm: Command = async (args, { api }) => {
  const parsed = parseArgs(args, { flags: ['delete', 'deleteall'] });
  onlyKnown(parsed, ['delete', 'deleteall']);
  const vm = vmArgument(parsed, 'unregistervm');
  const del = hasFlag(parsed, 'delete') || hasFlag(parsed, 'deleteall');
  await api.delete(`${vmPath(vm)}${del ? '?delete=true' : ''}`);
};

const stats: Command = async (args, { api, print }) => {
  const parsed = parseArgs(args, { flags: ['json'] });
  onlyKnown(parsed, ['json']);
  print(JSON.stringify(await api.get('/v1/stats'), null, 2));
};

export const COMMANDS: Record<string, Command> = {
  ...VM_COMMANDS,
  createvm,
  modifyvm,
  showvminfo,
  list,
  startvm,
  controlvm,
  unregistervm,
  stats,
  natnetwork,
  leases,
  ip,
  hostonlyif,
  dhcpserver,
  apply,
  'export-config': exportConfig,
  events,
};

export { onOff };
