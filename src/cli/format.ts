/** How the CLI prints VMs and lists: VirtualBox's human and `--machinereadable` forms. */
import type { NicConfig } from '../model/types.js';
import { virtualBoxMac } from '../model/vm.js';
import type { VmView } from '../daemon/daemon.js';

const ATTACHMENT_NAMES: Record<string, string> = {
  null: 'Not attached',
  nat: 'NAT',
  natnetwork: 'NAT Network',
  intnet: 'Internal Network',
  hostonly: 'Host-only Interface',
  bridged: 'Bridged Interface',
  generic: 'Generic',
};

const onOff = (b: boolean): string => (b ? 'on' : 'off');

function attachment(nic: NicConfig): string {
  if (nic.mode === 'intnet') return `Internal Network '${nic.intnet}'`;
  if (nic.mode === 'hostonly') return `Host-only Interface '${nic.hostOnlyAdapter}'`;
  if (nic.mode === 'bridged') return `Bridged Interface '${nic.bridgeAdapter}'`;
  if (nic.mode === 'natnetwork') return `NAT Network '${nic.natNetwork}'`;
  if (nic.mode === 'generic') {
    const props = Object.entries(nic.genericProperties).map(([k, v]) => `${k}=${v}`).join(', ');
    return `Generic '${nic.genericDriver}' { ${props} }`;
  }
  return ATTACHMENT_NAMES[nic.mode] ?? nic.mode;
}

function storageLines(vm: VmView): string[] {
  const lines = vm.storageControllers.map((c, i) => `Storage Controller Name (${i}):            ${c.name} (${c.bus})`);
  for (const a of vm.storage) lines.push(`${a.controller} (${a.port}, ${a.device}): ${a.medium || 'Empty'} (${a.type})`);
  return lines;
}

function stateLine(vm: VmView): string {
  const r = vm.running;
  if (!r) return vm.state === 'aborted' ? `aborted (${vm.abortedReason ?? 'QEMU exited'})` : 'powered off';
  const how = r.type === 'netns' ? `netns ${r.netns}` : r.type === 'headless' ? `QEMU pid ${r.pid}` : 'QEMU started by hand';
  return `${vm.state === 'paused' ? 'paused' : 'running'} (${how}, since ${r.startedAt})`;
}

export function formatVm(vm: VmView): string {
  const lines = [
    `Name:            ${vm.name}`,
    `UUID:            ${vm.uuid}`,
    `Guest OS:        ${vm.ostype}`,
    `Memory size:     ${vm.memoryMb}MB`,
    `Number of CPUs:  ${vm.cpus}`,
    `Boot order:      ${vm.bootOrder.filter((d) => d !== 'none').join(', ') || 'none'}`,
    ...storageLines(vm),
    `State:           ${stateLine(vm)}`,
  ];
  for (const nic of vm.nics) {
    const label = `NIC ${nic.slot}:`.padEnd(17);
    if (nic.mode === 'none') {
      lines.push(`${label}disabled`);
      continue;
    }
    const trace = nic.trace ? `on (file: ${nic.traceFile || `nic${nic.slot}.pcap in the VM folder`})` : 'off';
    lines.push(
      `${label}MAC: ${virtualBoxMac(nic.mac)}, Attachment: ${attachment(nic)}, Cable connected: ${onOff(nic.cableConnected)}, ` +
        `Trace: ${trace}, Promisc Policy: ${nic.promisc}${nic.mtu ? `, MTU: ${nic.mtu}` : ''}`,
    );
  }
  return lines.join('\n');
}

/** `key="value"` lines, as `VBoxManage showvminfo --machinereadable`. */
export function formatVmMachineReadable(vm: VmView): string {
  const pairs: [string, string | number][] = [
    ['name', vm.name],
    ['UUID', vm.uuid],
    ['ostype', vm.ostype],
    ['VMState', vm.state],
    ['memory', vm.memoryMb],
    ['cpus', vm.cpus],
    ...vm.bootOrder.map((device, i): [string, string] => [`boot${i + 1}`, device]),
  ];
  for (const c of vm.storageControllers) pairs.push([`storagecontrollername${vm.storageControllers.indexOf(c)}`, c.name], [`storagecontrollertype${vm.storageControllers.indexOf(c)}`, c.bus]);
  for (const a of vm.storage) pairs.push([`${a.controller}-${a.port}-${a.device}`, a.medium || 'emptydrive']);
  if (vm.running?.type === 'netns') pairs.push(['netns', vm.running.netns]);
  if (vm.running && vm.running.type !== 'netns') pairs.push(['qemupid', vm.running.pid]);
  for (const nic of vm.nics) {
    const n = nic.slot;
    pairs.push([`nic${n}`, nic.mode]);
    if (nic.mode === 'none') continue;
    pairs.push([`macaddress${n}`, virtualBoxMac(nic.mac)], [`cableconnected${n}`, onOff(nic.cableConnected)]);
    if (nic.mode === 'intnet') pairs.push([`intnet${n}`, nic.intnet]);
    if (nic.mode === 'hostonly') pairs.push([`hostonlyadapter${n}`, nic.hostOnlyAdapter]);
    if (nic.mode === 'bridged') pairs.push([`bridgeadapter${n}`, nic.bridgeAdapter]);
    if (nic.mode === 'natnetwork') pairs.push([`nat-network${n}`, nic.natNetwork], [`natsplice${n}`, onOff(nic.natSplice)]);
    if (nic.mode === 'nat') {
      pairs.push([`natnet${n}`, nic.natNet || 'nat'], [`natlocalhostreachable${n}`, onOff(nic.natLocalhostReachable)], [`natdnshostresolver${n}`, onOff(nic.natDnsHostResolver)], [`natdnspassdomain${n}`, onOff(nic.natDnsPassDomain)], [`natsplice${n}`, onOff(nic.natSplice)]);
      if (nic.natTftpPrefix) pairs.push([`nattftpprefix${n}`, nic.natTftpPrefix]);
      if (nic.natTftpFile) pairs.push([`nattftpfile${n}`, nic.natTftpFile]);
      if (nic.natTftpServer) pairs.push([`nattftpserver${n}`, nic.natTftpServer]);
      if (nic.natBindIp) pairs.push([`natbindip${n}`, nic.natBindIp]);
      nic.portForwards.forEach((r, i) => pairs.push([`natpf${n}_${i}`, `${r.name},${r.protocol},${r.hostIp},${r.hostPort},${r.guestIp},${r.guestPort}`]));
    }
    if (nic.mode === 'generic') {
      pairs.push([`generic${n}`, nic.genericDriver]);
      for (const [k, v] of Object.entries(nic.genericProperties)) pairs.push([`nicproperty${n}_${k}`, v]);
    }
    pairs.push([`nicpromisc${n}`, nic.promisc], [`nictrace${n}`, onOff(nic.trace)], [`nictracefile${n}`, nic.traceFile]);
    if (nic.mtu) pairs.push([`nicmtu${n}`, nic.mtu]);
  }
  return pairs.map(([k, v]) => `${k}="${String(v).replace(/(["\\])/g, '\\$1')}"`).join('\n');
}
