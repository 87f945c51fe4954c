/**
 * Read-only shapes the API returns for NICs, networks and the whole
 * topology: configuration joined with what the running engine says (link,
 * rates, capture).
 */
import type { ForwardEventData } from '../daemon/events.js';
import { hostname } from 'node:os';
import type { Daemon, VmView } from '../daemon/daemon.js';
import type { NicConfig } from '../model/types.js';

export interface NicRuntimeView {
  linkUp: boolean;
  fromGuestBps: number;
  toGuestBps: number;
  framesFromGuest: number;
  bytesFromGuest: number;
  framesToGuest: number;
  bytesToGuest: number;
  capture: { path: string; frames: number; dropped: number; bytesWritten: number } | null;
}

export type NicView = NicConfig & {
  vm: string;
  /** Key of the network the NIC is attached to (`intnet:lan`, `natnet:NAME`, `nat:VM/nic1`), or null. */
  network: string | null;
  /** Present while the VM runs and the NIC is plugged. */
  runtime: NicRuntimeView | null;
};

export interface NetworkView {
  key: string;
  kind: string;
  name: string;
  /** IPv4 network of NAT LANs; null where vnet does not address the segment. */
  cidr: string | null;
  /** A switch exists for it now. */
  active: boolean;
  /** NICs (`VM/nicN`) configured on it. */
  nics: string[];
}

/** The network key a NIC's configuration names. */
export function nicNetworkKey(vm: string, nic: NicConfig): string | null {
  const loose = nic as unknown as Record<string, unknown>;
  switch (nic.mode) {
    case 'none':
    case 'null':
      return null;
    case 'intnet':
      return `intnet:${nic.intnet}`;
    case 'natnetwork':
      return `natnet:${nic.natNetwork}`;
    case 'nat':
      return `nat:${vm}/nic${nic.slot}`;
    case 'generic':
      return `generic:${vm}/nic${nic.slot}`;
    case 'hostonly':
      return `hostonly:${String(loose.hostOnlyAdapter ?? '')}`;
    case 'bridged':
      return `bridged:${String(loose.bridgeAdapter ?? '')}`;
    default:
      return `${String(nic.mode)}:${vm}/nic${nic.slot}`;
  }
}

export function nicView(daemon: Daemon, vm: VmView, nic: NicConfig): NicView {
  const running = daemon.runningNic(vm.name, nic.slot);
  let runtime: NicRuntimeView | null = null;
  if (running) {
    const { transport } = running.stats();
    runtime = {
      linkUp: running.linkUp,
      ...daemon.sampler.rate(vm.name, nic.slot),
      framesFromGuest: transport.framesIn,
      bytesFromGuest: transport.bytesIn,
      framesToGuest: transport.framesOut,
      bytesToGuest: transport.bytesOut,
      capture: running.captureInfo,
    };
  }
  return { ...structuredClone(nic), vm: vm.name, network: nicNetworkKey(vm.name, nic), runtime };
}

/** Every network that is configured or exists: internal networks, NAT Networks, per-NIC NATs of running VMs, the rest of the registry. */
export function networkViews(daemon: Daemon): NetworkView[] {
  const vms = daemon.listVms();
  const byKey = new Map<string, NetworkView>();
  const add = (view: Omit<NetworkView, 'nics'>) => {
    if (!byKey.has(view.key)) byKey.set(view.key, { ...view, nics: [] });
    return byKey.get(view.key)!;
  };
  for (const n of daemon.listIntnets()) add({ key: `intnet:${n.name}`, kind: 'intnet', name: n.name, cidr: null, active: n.active });
  for (const n of daemon.listNatNetworks()) add({ key: `natnet:${n.name}`, kind: 'natnetwork', name: n.name, cidr: n.network, active: n.running });
  for (const n of daemon.registry.list()) add({ key: n.key, kind: n.kind, name: n.name, cidr: null, active: true });
  for (const vm of vms) {
    for (const nic of vm.nics) {
      const key = nicNetworkKey(vm.name, nic);
      if (!key) continue;
      const lan = daemon.runningNic(vm.name, nic.slot)?.natLan;
      if (nic.mode === 'nat' && !lan) continue; // a NAT NIC's LAN exists only while its VM runs
      const view = byKey.get(key) ?? add({
        key,
        kind: nic.mode,
        name: key.slice(key.indexOf(':') + 1),
        cidr: lan?.config.cidr ?? null,
        active: !!daemon.runningNic(vm.name, nic.slot),
      });
      view.nics.push(`${vm.name}/nic${nic.slot}`);
    }
  }
  return [...byKey.values()];
}

/** A port forward and who owns it: the same shape the `forward.*` events carry. */
export type ForwardView = ForwardEventData;

/** Every port forward of every NAT NIC and NAT Network. */
export function forwardViews(daemon: Daemon): ForwardView[] {
  const forwards: ForwardView[] = [];
  for (const vm of daemon.listVms()) {
    for (const nic of vm.nics) {
      if (nic.mode !== 'nat') continue;
      for (const r of nic.portForwards) forwards.push({ owner: `${vm.name}/nic${nic.slot}`, ...r });
    }
  }
  for (const n of daemon.listNatNetworks()) for (const r of n.portForwards) forwards.push({ owner: `natnet:${n.name}`, ...r });
  return forwards;
}

/** What the dashboard draws: the host, its networks, VMs with their NICs, and forwards. */
export function topology(daemon: Daemon) {
  return {
    host: { name: hostname(), home: daemon.home },
    networks: networkViews(daemon),
    vms: daemon.listVms().map((vm) => ({
      name: vm.name,
      state: vm.state,
      nics: vm.nics.filter((n) => n.mode !== 'none').map((n) => nicView(daemon, vm, n)),
    })),
    forwards: forwardViews(daemon),
  };
}
