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
import { applyVmChange, createVm, findVm, type VmChange } from '../model/vm.js';
import { NetworkRegistry } from './network-registry.js';
import { NetnsVm } from './netns-vm.js';
import { netnsPath } from '../host/netns.js';
import { QemuVm, netdevArgs, nicLinkFor, qemuArgs, qemuPaths, qemuVersion, kvmUsable } from './qemu-vm.js';
import { VmFiles, formatOf } from './vm-files.js';
import { QMP_ACTIONS, type QmpAction } from '../host/qmp.js';
import { NatLans } from './nat-lans.js';
import { DhcpServers } from './dhcp-servers.js';
import { HostOnlyIfs } from './host-only.js';
import { AddressSnoop } from './address-snoop.js';
import { openBridged } from './bridged.js';
import type { NicRuntimeContext } from './nic-runtime.js';
import { applyNatNetworkChange, createNatNetwork, type NatNetworkChange } from '../model/nat-network.js';
import { formatIpv4 } from '../wire/address.js';
import { EventBus, Sampler, type ForwardEventData } from './events.js';
import type { NicRuntime } from './nic-runtime.js';
import type { PortForward } from '../model/types.js';
import { busyPollStats } from '../transport/busy-poll.js';

export interface CreateVmRequest {
  name: string;
  ostype?: string;
}

export interface StartVmRequest {
  type?: string;
  netns?: string;
}

export type VmState = 'poweroff' | 'running' | 'paused' | 'aborted';

export interface VmView extends VmConfig {
  state: VmState;
  running: VnetState['running'][string] | null;
  /** Why QEMU died, when `state` is `aborted`. */
  abortedReason?: string;
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
  /** Who knows the address: `dhcp` (a vnet DHCP server), `snooped-dhcp` / `snooped-arp` (watched on a bridged NIC). */
  source?: string;
}

export class Daemon {
  readonly registry = new NetworkRegistry();
  /** What changed, for the API's event stream. */
  readonly events = new EventBus();
  /** Per-NIC rates and sampled flow events; runs while `startSampling` is on. */
  readonly sampler = new Sampler(this.events);
  private samplingTimer: NodeJS.Timeout | undefined;
  readonly natLans: NatLans;
  /** `dhcpserver` objects and their responders on intnets and host-only networks. */
  readonly dhcpServers: DhcpServers;
  /** Host-only interfaces (`vboxnetN`) in the daemon's namespace. */
  readonly hostOnly: HostOnlyIfs;
  /** Addresses of bridged guests, learned from their DHCP and ARP traffic. */
  readonly snoop = new AddressSnoop();
  private readonly store: StateStore;
  private state: VnetState;
  private readonly guests = new Map<string, NetnsVm | QemuVm>();
  /** Media, storage, clone and import (issue 5). */
  readonly vmFiles = new VmFiles({
    state: () => this.state,
    save: () => this.save(),
    vmFolder: (name) => this.vmFolder(name),
    isRunning: (name) => this.guests.has(name),
  });

  constructor(
    readonly home: string,
    private readonly log: Logger = () => {},
  ) {
    this.store = new StateStore(home);
    this.state = this.store.load();
    this.natLans = new NatLans(home, () => this.state.natNetworks, (mac) => this.vmNameForMac(mac), log, (network, lease, event) =>
      this.events.emit(`lease.${event}`, { network, mac: lease.mac, ip: formatIpv4(lease.ip), hostname: lease.hostname ?? null }),
    );
    const access = { state: () => this.state, save: () => this.save() };
    this.dhcpServers = new DhcpServers(access, home, {
      natNetworkNames: () => this.state.natNetworks.map((n) => n.name),
      natNetworkRunning: (name) => !!this.natLans.running(name),
      macOf: (vm, slot) => this.state.vms.find((v) => v.name === vm)?.nics[slot - 1]?.mac,
    }, log);
    this.natLans.dhcpFor = (name, cidr) => this.dhcpServers.natDhcp(name, cidr);
    this.hostOnly = new HostOnlyIfs(access, this.dhcpServers, log);
  }

  /** Re-attach VMs that were running when the daemon last stopped (or was killed). */
  async resume(): Promise<void> {
    this.hostOnly.resume();
    for (const [name, running] of Object.entries(this.state.running)) {
      const vm = this.state.vms.find((v) => v.name === name);
      try {
        if (!vm) throw new Error('no such VM');
        if (running.type !== 'netns') {
          this.guests.set(name, await QemuVm.resume(vm, running, this.vmFolder(name), this.nicContext(vm), this.qemuHooks(name)));
          this.log(`resumed ${name}: QEMU pid ${running.pid}`);
          continue;
        }
        this.guests.set(name, await NetnsVm.start(vm, running, this.nicContext(vm, running.netns)));
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
    this.emitVmChanges(vm, next);
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
    if (type === 'headless' || type === 'external') return this.startQemu(vm, type);
    if (type !== 'netns') {
      throw new VnetError('VNET_ERR_NOT_SUPPORTED', `start type '${type}' is not implemented yet; use --type netns`);
    }
    if (this.guests.has(name)) throw invalidState(`VM '${name}' is already running`);
    const netns = request.netns ?? name;
    if (Object.entries(this.state.running).some(([, r]) => r.type === 'netns' && r.netns === netns)) {
      throw invalidState(`network namespace '${netns}' is already used by another running VM`);
    }
    const running = NetnsVm.prepare(netns);
    // On failure, start() removes what it made, the namespace included if it made it.
    const guest = await NetnsVm.start(vm, running, this.nicContext(vm, netns));
    this.guests.set(name, guest);
    this.state.running[name] = running;
    this.save();
    this.log(`started ${name} in netns ${netns}`);
    this.events.emit('vm.state', { vm: name, state: 'running' });
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
    this.events.emit('vm.state', { vm: name, state: 'poweroff' });
    return this.view(vm);
  }

  /** Per-NIC counters of every running VM, per-network switch counters, and the event loop's busy polling. */
  stats() {
    const nat = [...this.guests.values()].flatMap((g) => g.nicStats().map((s) => g.nic(s.slot)?.natLan)).filter((l) => l !== null && l !== undefined);
    return {
      vms: Object.fromEntries([...this.guests].map(([name, guest]) => [name, guest.nicStats()])),
      nat: [...new Set([...nat, ...this.natLans.list()])].map((lan) => ({ ...lan.stats(), switch: lan.switch.snapshot() })),
      networks: this.registry.list().map((n) => ({ key: n.key, kind: n.kind, ...n.switch.snapshot(), name: n.name })),
      busyPoll: busyPollStats(),
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
    this.hostOnly.closeAll();
    this.dhcpServers.closeAll();
    clearInterval(this.samplingTimer);
  }

  /** The running NIC `slot` of VM `name`, if the VM runs and the NIC is plugged. */
  runningNic(name: string, slot: number): NicRuntime | undefined {
    return this.guests.get(name)?.nic(slot);
  }

  /** Sample NIC rates and NAT flows every `intervalMs` (and notice expired leases). */
  startSampling(intervalMs = 1000): void {
    clearInterval(this.samplingTimer);
    const tick = () => {
      const nics = [...this.guests].flatMap(([vm, guest]) =>
        guest.nicStats().map((s) => ({ vm, nic: s.slot, bytesFromGuest: s.transport.bytesIn, bytesToGuest: s.transport.bytesOut })),
      );
      const lans = [...new Set([...this.natLans.list(), ...[...this.guests.values()].flatMap((g) => g.nicStats().map((s) => g.nic(s.slot)?.natLan ?? []).flat())])];
      this.sampler.sample(Date.now(), nics, lans.map((lan) => {
        const tcp = lan.tcp.stats();
        return { network: lan.config.key, tcpOpened: tcp.opened, tcpClosed: tcp.closed, tcpActive: tcp.flows, udpActive: lan.udp.stats().flows };
      }));
      this.leases(); // listing sweeps expired leases, which emits their events
    };
    tick();
    this.samplingTimer = setInterval(tick, intervalMs);
    this.samplingTimer.unref();
  }

  /** Events for what a VM change did to running state: cables, forwards, captures. */
  private emitVmChanges(before: VmConfig, after: VmConfig): void {
    const running = this.guests.has(after.name);
    for (const nic of after.nics) {
      const old = before.nics[nic.slot - 1]!;
      if (running && old.cableConnected !== nic.cableConnected) this.events.emit('nic.link', { vm: after.name, nic: nic.slot, cableConnected: nic.cableConnected });
      this.emitForwardChanges(`${after.name}/nic${nic.slot}`, old.portForwards, nic.portForwards);
      const capture = this.runningNic(after.name, nic.slot)?.captureInfo;
      if (running && !old.trace && nic.trace && capture) this.events.emit('capture.started', { vm: after.name, nic: nic.slot, path: capture.path });
      if (running && old.trace && !nic.trace) this.events.emit('capture.stopped', { vm: after.name, nic: nic.slot, path: old.traceFile || join(this.vmFolder(after.name), `nic${nic.slot}.pcap`) });
    }
  }

  private emitForwardChanges(owner: string, before: PortForward[], after: PortForward[]): void {
    const key = (r: PortForward) => JSON.stringify(r);
    const data = (r: PortForward): ForwardEventData => ({ owner, ...r });
    for (const r of before) if (!after.some((a) => key(a) === key(r))) this.events.emit('forward.removed', data(r));
    for (const r of after) if (!before.some((b) => key(b) === key(r))) this.events.emit('forward.added', data(r));
  }

  vmFolder(name: string): string {
    return join(this.home, 'vms', name);
  }

  /** What the NICs of `vm` need from the daemon; `netns` names a namespace guest's namespace. */
  private nicContext(vm: VmConfig, netns?: string): NicRuntimeContext {
    const vmFolder = this.vmFolder(vm.name);
    mkdirSync(vmFolder, { recursive: true, mode: 0o700 });
    return {
      vmName: vm.name,
      vmFolder,
      registry: this.registry,
      createNat: (nic) => this.natLans.createNat(vm, nic),
      ...(netns === undefined ? {} : { guestNetns: netnsPath(netns) }),
      natNetwork: (name) => this.natLans.acquire(name),
      releaseNatNetwork: (name) => this.natLans.release(name),
      hostOnly: (name) => this.hostOnly.acquire(name),
      bridged: (nic) => openBridged({ vmName: vm.name, nic, snoop: this.snoop, log: this.log }),
      joinIntnet: (name, sw) => this.dhcpServers.joinIntnet(name, sw),
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
    this.emitForwardChanges(`natnet:${name}`, current.portForwards, next.portForwards);
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
          source: 'dhcp',
        });
      }
    }
    for (const lease of this.dhcpServers.leases()) {
      const owner = this.nicForMac(lease.mac);
      views.push({ ...lease, vm: owner?.vm ?? null, nic: owner?.slot ?? null, source: 'dhcp' });
    }
    for (const seen of this.snoop.list()) {
      const owner = this.nicForMac(seen.mac);
      views.push({
        network: seen.network,
        mac: seen.mac,
        ip: seen.ip,
        hostname: null,
        vm: owner?.vm ?? null,
        nic: owner?.slot ?? null,
        state: 'bound',
        expiresAt: new Date(seen.expiresAt).toISOString(),
        source: seen.source,
      });
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
    return findVm(this.state.vms, name);
  }

  private replaceVm(next: VmConfig): void {
    this.state.vms = this.state.vms.map((v) => (v.uuid === next.uuid ? next : v));
    this.save();
  }

  private view(vm: VmConfig): VmView {
    const running = this.state.running[vm.name] ?? null;
    const guest = this.guests.get(vm.name);
    const aborted = this.state.aborted?.[vm.name];
    const state: VmState = running ? (guest instanceof QemuVm && guest.paused ? 'paused' : 'running') : aborted ? 'aborted' : 'poweroff';
    return { ...structuredClone(vm), state, running, ...(aborted && !running ? { abortedReason: aborted.reason } : {}) };
  }

  // --- QEMU VMs (issue 5) -------------------------------------------------

  /** `startvm --type headless` (vnet runs QEMU) or `external` (vnet listens; the user runs QEMU). */
  private async startQemu(vm: VmConfig, type: 'headless' | 'external'): Promise<VmView> {
    const name = vm.name;
    if (this.guests.has(name)) throw invalidState(`VM '${name}' is already running`);
    const running = QemuVm.prepare(vm, this.vmFolder(name), type);
    const guest = await QemuVm.start(vm, running, this.vmFolder(name), this.nicContext(vm), this.qemuHooks(name));
    this.guests.set(name, guest);
    this.state.running[name] = running;
    if (this.state.aborted) delete this.state.aborted[name];
    this.save();
    this.log(type === 'headless' ? `started ${name}: QEMU pid ${running.pid}` : `listening for a hand-started QEMU for ${name}`);
    this.events.emit('vm.state', { vm: name, state: 'running' });
    return this.view(vm);
  }

  private qemuHooks(name: string) {
    return {
      formatOf: (path: string) => formatOf(this.state.media ?? [], path),
      log: this.log,
      onExit: (reason: string, aborted: boolean) => {
        this.guests.delete(name);
        delete this.state.running[name];
        if (aborted) (this.state.aborted ??= {})[name] = { reason, at: new Date().toISOString() };
        this.save();
        this.log(`${name}: ${reason}${aborted ? ' (aborted)' : ''}`);
        this.events.emit('vm.state', { vm: name, state: aborted ? 'aborted' : 'poweroff', reason });
      },
    };
  }

  /** `controlvm VM poweroff|reset|acpipowerbutton|pause|resume`. */
  async controlVm(name: string, action: string): Promise<VmView> {
    if (action === 'poweroff') return this.powerOff(name);
    const vm = this.findVm(name);
    if (!(action in QMP_ACTIONS)) throw new VnetError('VNET_ERR_BAD_REQUEST', `unknown action '${action}': one of ${Object.keys(QMP_ACTIONS).join(', ')}`);
    const guest = this.guests.get(name);
    if (!guest) throw invalidState(`VM '${name}' is not running`);
    if (!(guest instanceof QemuVm)) throw invalidState(`VM '${name}' is a network namespace: only poweroff applies`);
    await guest.control(action as QmpAction);
    this.events.emit('vm.state', { vm: name, state: this.view(vm).state });
    return this.view(vm);
  }

  /** The QEMU command line vnet uses for `vm` (`showvminfo --qemu-args`), and the `-netdev` part alone. */
  qemuCommand(name: string): { binary: string; args: string[]; netdev: string[] } {
    const vm = this.findVm(name);
    const folder = this.vmFolder(vm.name);
    const version = qemuVersion();
    const reconnect = version[0] >= 8;
    const nicLink = nicLinkFor(version);
    const args = qemuArgs(vm, folder, { accel: kvmUsable() ? 'kvm' : 'tcg', nicLink, reconnect, formatOf: (p) => formatOf(this.state.media ?? [], p) });
    return { binary: 'qemu-system-x86_64', args, netdev: netdevArgs(vm, folder, nicLink, reconnect) };
  }

  /** Where `vnet console VM` reads the serial console. */
  consolePath(name: string): { path: string } {
    return { path: qemuPaths(this.vmFolder(this.findVm(name).name)).console };
  }

  private save(): void {
    this.store.save(this.state);
  }
}
