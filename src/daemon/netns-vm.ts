/**
 * A VM realised as a Linux network namespace (`startvm --type netns`): the
 * cheapest real guest. NIC N is the TAP `eth<N-1>` in the namespace, with the
 * NIC's MAC, link up and no address — the guest's own tools configure it.
 */
import type { NetnsRunningState as RunningState, NicConfig, VmConfig } from '../model/types.js';
import { addNetns, deleteLink, deleteNetns, ensureTap, netnsExists, netnsPath } from '../host/netns.js';
import { TapTransport } from '../transport/tap.js';
import { NicRuntime, type NicRuntimeContext, wiringKey } from './nic-runtime.js';

/** Ethernet's MTU unless the NIC says otherwise. */
const DEFAULT_MTU = 1500;

export const guestIfname = (slot: number): string => `eth${slot - 1}`;

export class NetnsVm {
  private readonly nics = new Map<number, NicRuntime>();

  private constructor(
    readonly running: RunningState,
    private readonly context: NicRuntimeContext,
  ) {}

  /** Create the namespace if needed; `createdNetns` in the result says who owns it. */
  static prepare(netns: string): RunningState {
    const createdNetns = !netnsExists(netns);
    if (createdNetns) addNetns(netns);
    return { type: 'netns', netns, createdNetns, startedAt: new Date().toISOString() };
  }

  /** Bring up every attached NIC of `vm`; on failure undoes what it did and throws. */
  static async start(vm: VmConfig, running: RunningState, context: NicRuntimeContext): Promise<NetnsVm> {
    const guest = new NetnsVm(running, context);
    try {
      await guest.reconcile(vm);
    } catch (err) {
      guest.stop();
      throw err;
    }
    return guest;
  }

  /** Make the running NICs match `vm`: re-plug what changed, adjust the rest live. */
  async reconcile(vm: VmConfig): Promise<void> {
    for (const nic of vm.nics) {
      const current = this.nics.get(nic.slot);
      if (current && wiringKey(current.config) === wiringKey(nic)) {
        await current.applyLive(nic);
        continue;
      }
      if (current) this.unplug(nic.slot);
      if (nic.mode !== 'none') this.nics.set(nic.slot, await this.plug(nic));
    }
  }

  private async plug(nic: NicConfig): Promise<NicRuntime> {
    const ifname = guestIfname(nic.slot);
    ensureTap(this.running.netns, ifname, nic.mac, nic.mtu || DEFAULT_MTU);
    // Offloads: the guest sends and takes 64 KiB TCP frames with partial checksums (see wire/virtio-net.ts).
    const tap = TapTransport.open({ ifname, netnsPath: netnsPath(this.running.netns), offload: true });
    return NicRuntime.start(nic, tap, this.context);
  }

  private unplug(slot: number): void {
    this.nics.get(slot)?.close();
    this.nics.delete(slot);
    deleteLink(this.running.netns, guestIfname(slot));
  }

  /** NIC runtimes by slot (for leases, NAT state). */
  nic(slot: number): NicRuntime | undefined {
    return this.nics.get(slot);
  }

  nicStats() {
    return [...this.nics.values()].map((nic) => nic.stats());
  }

  /** Remove the TAPs, and the namespace if vnet made it. Best effort: keeps going on errors. */
  stop(): void {
    for (const slot of [...this.nics.keys()]) {
      try {
        this.unplug(slot);
      } catch {
        // The namespace may already be gone; deleting it below removes the rest.
      }
    }
    if (this.running.createdNetns) deleteNetns(this.running.netns);
  }

  /** Detach from the TAPs without deleting them: the daemon is shutting down, the guest keeps its links. */
  detach(): void {
    for (const nic of this.nics.values()) nic.close();
    this.nics.clear();
  }
}

