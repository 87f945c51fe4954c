/**
 * The composition root: loads the saved state, realises running VMs, and
 * offers the operations the API exposes. Every change is validated whole,
 * applied to the running engine, then saved atomically; a failure on the way
 * leaves the saved state as it was.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { VnetError, invalidState, notFound } from '../errors.js';
import { StateStore } from '../model/store.js';
import type { NatNetworkConfig, VmConfig, VnetState } from '../model/types.js';
import { applyVmChange, createVm, type VmChange } from '../model/vm.js';
import { NetworkRegistry } from './network-registry.js';
import { NetnsVm } from './netns-vm.js';
import { NatLans } from './nat-lans.js';
import type { NicRuntimeContext } from './nic-runtime.js';
import { applyNatNetworkChange, createNatNetwork, type NatNetworkChange } from '../model/nat-network.js';
import { formatIpv4 } from '../wire/address.js';

export interface CreateVmRequest {
  name: string;
  ostype?: string;
}

export interface StartVmRequest {
  type?: string;
  netns?: string;
}

export type VmState = 'poweroff' | 'running';

export interface VmView extends VmConfig {
  state: VmState;
  running: VnetState['running'][string] | null;
}

export type Logger = (line: string) => void;

export interface LeaseView {
  network: string;
  mac: string;
  ip: string;
  hostname: string | null;
  vm: string | null;
  nic: number | null;
  state: string;
  expiresAt: string;
}

export class Daemon {
  readonly registry = new NetworkRegistry();
  readonly natLans: NatLans;
  private readonly store: StateStore;
  private state: VnetState;
  private readonly guests = new Map<string, NetnsVm>();

  constructor(
    readonly home: string,
    private readonly log: Logger = () => {},
  ) {
    this.store = new StateStore(home);
    this.state = this.store.load();
    this.natLans = new NatLans(home, () => this.state.natNetworks, (mac) => this.vmNameForMac(mac), log);
  }

  /** Re-attach VMs that were running when the daemon last stopped (or was killed). */
  async resume(): Promise<void> {
    for (const [name, running] of Object.entries(this.state.running)) {
      const vm = this.state.vms.find((v) => v.name === name);
      try {
        if (!vm) throw new Error('no such VM');
        this.guests.set(name, await NetnsVm.start(vm, running, this.nicContext(vm)));
        this.log(`resumed ${name} in netns ${running.netns}`);
      } catch (err) {
        this.log(`could not resume ${name}: ${(err as Error).message}; marking it powered off`);
        delete this.state.running[name];
        this.save();
      }
    }
  }

  listVms(): VmView[] {
    return this.state.vms.map((vm) => this.view(vm));
  }

  getVm(name: string): VmView {
    return this.view(this.findVm(name));
  }

  createVm(request: CreateVmRequest): VmView {
    if (typeof request.name !== 'string') throw new VnetError('VNET_ERR_BAD_REQUEST', 'missing VM name');
    const vm = createVm(request.name, request.ostype);
    if (this.state.vms.some((v) => v.name === vm.name)) {
      throw new VnetError('VNET_ERR_EXISTS', `a VM named '${vm.name}' already exists`);
    }
    this.state.vms.push(vm);
    this.save();
    return this.view(vm);
  }

  async modifyVm(name: string, change: VmChange): Promise<VmView> {
    const vm = this.findVm(name);
    const next = applyVmChange(vm, change);
    const guest = this.guests.get(name);
    if (guest) {
      try {
        await guest.reconcile(next);
      } catch (err) {
        // Put the running NICs back as they were, so config and engine agree.
        await guest.reconcile(vm).catch((e: Error) => this.log(`restoring ${name} failed: ${e.message}`));
        throw err;
      }
    }
    this.replaceVm(next);
    return this.view(next);
  }

  unregisterVm(name: string, deleteFiles: boolean): void {
    const vm = this.findVm(name);
    if (this.guests.has(name)) throw invalidState(`VM '${name}' is running: power it off first`);
    this.state.vms = this.state.vms.filter((v) => v !== vm);
    this.save();
    if (deleteFiles) rmSync(this.vmFolder(name), { recursive: true, force: true });
  }

  async startVm(name: string, request: StartVmRequest): Promise<VmView> {
    const vm = this.findVm(name);
    const type = request.type ?? 'netns';
    if (type !== 'netns') {
      throw new VnetError('VNET_ERR_NOT_SUPPORTED', `start type '${type}' is not implemented yet; use --type netns`);
    }
    if (this.guests.has(name)) throw invalidState(`VM '${name}' is already running`);
    const netns = request.netns ?? name;
    if (Object.entries(this.state.running).some(([, r]) => r.netns === netns)) {
      throw invalidState(`network namespace '${netns}' is already used by another running VM`);
    }
    const running = NetnsVm.prepare(netns);
    // On failure, start() removes what it made, the namespace included if it made it.
    const guest = await NetnsVm.start(vm, running, this.nicContext(vm));
    this.guests.set(name, guest);
    this.state.running[name] = running;
    this.save();
    this.log(`started ${name} in netns ${netns}`);
    return this.view(vm);
  }

  powerOff(name: string): VmView {
    const vm = this.findVm(name);
    const guest = this.guests.get(name);
    if (!guest) throw invalidState(`VM '${name}' is not running`);
    this.guests.delete(name);
    delete this.state.running[name];
    this.save();
    guest.stop();
    this.log(`powered off ${name}`);
    return this.view(vm);
  }

  /** Per-NIC counters of every running VM, and per-network switch counters. */
  stats() {
    const nat = [...this.guests.values()].flatMap((g) => g.nicStats().map((s) => g.nic(s.slot)?.natLan)).filter((l) => l !== null && l !== undefined);
    return {
      vms: Object.fromEntries([...this.guests].map(([name, guest]) => [name, guest.nicStats()])),
      nat: [...new Set([...nat, ...this.natLans.list()])].map((lan) => ({ ...lan.stats(), switch: lan.switch.snapshot() })),
      networks: this.registry.list().map((n) => ({ key: n.key, kind: n.kind, ...n.switch.snapshot(), name: n.name })),
    };
  }

  /** Internal networks in use by any VM's configuration, with how many NICs name each. */
  listIntnets(): { name: string; nics: number; active: boolean }[] {
    const counts = new Map<string, number>();
    for (const vm of this.state.vms) {
      for (const nic of vm.nics) if (nic.mode === 'intnet') counts.set(nic.intnet, (counts.get(nic.intnet) ?? 0) + 1);
    }
    return [...counts].sort().map(([name, nics]) => ({ name, nics, active: !!this.registry.get(NetworkRegistry.key('intnet', name)) }));
  }

  /** Leave running guests in place (their TAPs persist) so the next daemon re-attaches. */
  shutdown(): void {
    for (const guest of this.guests.values()) guest.detach();
    this.guests.clear();
    this.natLans.closeAll();
  }

  vmFolder(name: string): string {
    return join(this.home, 'vms', name);
  }

  private nicContext(vm: VmConfig): NicRuntimeContext {
    const vmFolder = this.vmFolder(vm.name);
    mkdirSync(vmFolder, { recursive: true, mode: 0o700 });
    return {
      vmName: vm.name,
      vmFolder,
      registry: this.registry,
      createNat: (nic) => this.natLans.createNat(vm, nic),
      natNetwork: (name) => this.natLans.acquire(name),
      releaseNatNetwork: (name) => this.natLans.release(name),
    };
  }

  private vmNameForMac(mac: string): string | undefined {
    return this.state.vms.find((vm) => vm.nics.some((nic) => nic.mode !== 'none' && nic.mac === mac))?.name;
  }

  // --- NAT Networks -------------------------------------------------------

  listNatNetworks(): (NatNetworkConfig & { running: boolean })[] {
    return this.state.natNetworks.map((n) => ({ ...structuredClone(n), running: !!this.natLans.running(n.name) }));
  }

  addNatNetwork(name: string, change: NatNetworkChange): NatNetworkConfig {
    if (typeof name !== 'string' || !name) throw new VnetError('VNET_ERR_BAD_REQUEST', 'natnetwork add: --netname is required');
    if (this.state.natNetworks.some((n) => n.name === name)) throw new VnetError('VNET_ERR_EXISTS', `a NAT network named '${name}' already exists`);
    const config = createNatNetwork(name, change);
    this.state.natNetworks.push(config);
    this.save();
    return config;
  }

  async modifyNatNetwork(name: string, change: NatNetworkChange): Promise<NatNetworkConfig> {
    const current = this.findNatNetwork(name);
    const next = applyNatNetworkChange(current, change);
    if (this.natLans.running(name) && (next.network !== current.network || next.dhcp !== current.dhcp || (!next.enabled && this.natLans.isUsed(name)))) {
      throw invalidState(`NAT network '${name}' is in use: stop its VMs first to change its network, DHCP or to disable it`);
    }
    await this.natLans.update(next);
    this.state.natNetworks = this.state.natNetworks.map((n) => (n.name === name ? next : n));
    this.save();
    return next;
  }

  removeNatNetwork(name: string): void {
    this.findNatNetwork(name);
    if (this.natLans.running(name)) throw invalidState(`NAT network '${name}' is running: stop it and its VMs first`);
    this.state.natNetworks = this.state.natNetworks.filter((n) => n.name !== name);
    this.save();
  }

  async startNatNetwork(name: string): Promise<void> {
    this.findNatNetwork(name);
    await this.natLans.acquire(name, true);
  }

  stopNatNetwork(name: string): void {
    this.findNatNetwork(name);
    this.natLans.release(name, true);
  }

  private findNatNetwork(name: string): NatNetworkConfig {
    const found = this.state.natNetworks.find((n) => n.name === name);
    if (!found) throw notFound(`no NAT network named '${name}'`);
    return found;
  }

  // --- Leases -------------------------------------------------------------

  /** Every DHCP lease vnet handed out, with the VM and NIC it belongs to. */
  leases(): LeaseView[] {
    const lans = [...this.natLans.list()];
    for (const guest of this.guests.values()) {
      for (const stats of guest.nicStats()) {
        const lan = guest.nic(stats.slot)?.natLan;
        if (lan && !lans.includes(lan)) lans.push(lan);
      }
    }
    const views: LeaseView[] = [];
    for (const lan of lans) {
      for (const lease of lan.dhcp?.leases() ?? []) {
        const owner = this.nicForMac(lease.mac);
        views.push({
          network: lan.config.key,
          mac: lease.mac,
          ip: formatIpv4(lease.ip),
          hostname: lease.hostname ?? null,
          vm: owner?.vm ?? null,
          nic: owner?.slot ?? null,
          state: lease.state,
          expiresAt: new Date(lease.expiresAt).toISOString(),
        });
      }
    }
    return views;
  }

  private nicForMac(mac: string): { vm: string; slot: number } | undefined {
    for (const vm of this.state.vms) {
      const nic = vm.nics.find((n) => n.mode !== 'none' && n.mac === mac);
      if (nic) return { vm: vm.name, slot: nic.slot };
    }
    return undefined;
  }

  private findVm(name: string): VmConfig {
    const vm = this.state.vms.find((v) => v.name === name || v.uuid === name);
    if (!vm) throw notFound(`no VM named '${name}'`);
    return vm;
  }

  private replaceVm(next: VmConfig): void {
    this.state.vms = this.state.vms.map((v) => (v.uuid === next.uuid ? next : v));
    this.save();
  }

  private view(vm: VmConfig): VmView {
    const running = this.state.running[vm.name] ?? null;
    return { ...structuredClone(vm), state: running ? 'running' : 'poweroff', running };
  }

  private save(): void {
    this.store.save(this.state);
  }
}
