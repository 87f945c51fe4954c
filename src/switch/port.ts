/**
 * One port of a virtual switch: where a NIC (VM, host interface, or one of
 * our own services such as the gateway) plugs in.
 *
 * A port carries the attachment's settings that the switch consults on every
 * frame — link state ("cable connected"), promiscuous policy, the NIC's own
 * MAC — and counts what went through it and what was dropped, by reason.
 */
import type { FrameOffload } from '../wire/virtio-net.js';
import { formatMac, macKey } from './mac.js';

/**
 * VirtualBox `--nic-promisc`: which frames not addressed to this NIC it still sees.
 * - `deny`: none — only its own MAC, broadcast and multicast.
 * - `allow-vms`: also unicast between other VMs, never traffic to or from the host/service ports.
 * - `allow-all`: a copy of everything on the network.
 */
export type PromiscPolicy = 'deny' | 'allow-vms' | 'allow-all';

/** What sits behind the port; `allow-vms` hides `host` and `service` traffic. */
export type PortKind = 'vm' | 'host' | 'service';

/** Reasons a port counts a drop. */
export type PortDropReason = 'link-down' | 'runt' | 'bad-source' | 'deliver-error' | 'detached';

/** Frames and bytes through one port; `in` is from the guest into the switch, `out` is toward the guest. */
export interface PortCounters {
  framesIn: number;
  bytesIn: number;
  framesOut: number;
  bytesOut: number;
  drops: Partial<Record<PortDropReason, number>>;
}

/** A copy of a port's state and counters, safe to serialise. */
export interface PortStats extends PortCounters {
  name: string;
  kind: PortKind;
  mac: string | undefined;
  linkUp: boolean;
  promisc: PromiscPolicy;
}

export interface PortOptions {
  name: string;
  /**
   * The NIC's own MAC, used by the promiscuous filter. Without it the port
   * cannot tell frames for it from frames for others and receives every
   * flooded frame (right for a bridged TAP, which stands for a whole LAN).
   */
  mac?: Uint8Array;
  /** Default `deny`, as VirtualBox. */
  promisc?: PromiscPolicy;
  /**
   * Hands a frame toward the guest. The frame is shared with other ports and
   * is the receiver's only until the microtasks queued during the delivery
   * have run (src/transport/types.ts): it must not be modified, and must be
   * copied to be kept. `offload` (likewise shared and
   * short-lived) says when the frame has a partial checksum or is a TCP
   * super-segment. A throw is counted (`deliver-error`) and forwarding goes on.
   */
  deliver: (frame: Uint8Array, offload?: FrameOffload) => void;
  /**
   * `deliver` takes UDP super-datagrams as they are (the NIC's TAP has the
   * kernel cut them); senders may then batch a flow's datagrams. Default
   * false: `deliver` finishes them in software (src/wire/gso.ts).
   */
  takesUdpSegmentation?: boolean;
  /** Default `vm`. */
  kind?: PortKind;
}

/** What a port needs from the switch it is attached to. */
export interface PortOwner {
  input(port: SwitchPort, frame: Uint8Array, offload?: FrameOffload): void;
  portChanged(port: SwitchPort, what: 'link' | 'promisc'): void;
}

/** One attachment to a switch. Made by `Switch.attach`. */
export class SwitchPort {
  readonly name: string;
  readonly kind: PortKind;
  /** A copy of the NIC's MAC, if known. */
  readonly mac: Uint8Array | undefined;
  /** `mac` as a 48-bit key, or −1 when unknown. */
  readonly macKey: number;
  /** See PortOptions.takesUdpSegmentation. */
  readonly takesUdpSegmentation: boolean;
  readonly counters: PortCounters = { framesIn: 0, bytesIn: 0, framesOut: 0, bytesOut: 0, drops: {} };
  /** The switch, until detached. */
  owner: PortOwner | undefined;
  private link = true;
  private policy: PromiscPolicy;
  private readonly deliver: (frame: Uint8Array, offload?: FrameOffload) => void;

  constructor(owner: PortOwner, options: PortOptions) {
    this.owner = owner;
    this.name = options.name;
    this.kind = options.kind ?? 'vm';
    this.mac = options.mac === undefined ? undefined : Uint8Array.from(options.mac);
    this.macKey = this.mac === undefined ? -1 : macKey(this.mac);
    this.policy = options.promisc ?? 'deny';
    this.deliver = options.deliver;
    this.takesUdpSegmentation = options.takesUdpSegmentation ?? false;
  }

  /** Cable connected. While false nothing goes in or out (counted as `link-down`). */
  get linkUp(): boolean {
    return this.link;
  }

  set linkUp(up: boolean) {
    if (up === this.link) return;
    this.link = up;
    this.owner?.portChanged(this, 'link');
  }

  get promisc(): PromiscPolicy {
    return this.policy;
  }

  set promisc(policy: PromiscPolicy) {
    if (policy === this.policy) return;
    this.policy = policy;
    this.owner?.portChanged(this, 'promisc');
  }

  /** A frame from this port's guest into the switch. Not kept past return. */
  fromGuest(frame: Uint8Array, offload?: FrameOffload): void {
    if (this.owner === undefined) {
      this.drop('detached');
      return;
    }
    this.owner.input(this, frame, offload);
  }

  /** Same as `fromGuest`: the port as a sink for frames from its guest. */
  send(frame: Uint8Array, offload?: FrameOffload): void {
    this.fromGuest(frame, offload);
  }

  /** Called by the switch: hand `frame` to the guest unless the link is down. */
  toGuest(frame: Uint8Array, offload?: FrameOffload): void {
    if (!this.link) {
      this.drop('link-down');
      return;
    }
    try {
      this.deliver(frame, offload);
    } catch {
      this.drop('deliver-error');
      return;
    }
    this.counters.framesOut++;
    this.counters.bytesOut += frame.length;
  }

  /** Count one dropped frame. */
  drop(reason: PortDropReason): void {
    const drops = this.counters.drops;
    drops[reason] = (drops[reason] ?? 0) + 1;
  }

  /** A snapshot of settings and counters. */
  snapshot(): PortStats {
    const c = this.counters;
    return {
      name: this.name,
      kind: this.kind,
      mac: this.mac === undefined ? undefined : formatMac(this.mac),
      linkUp: this.link,
      promisc: this.policy,
      framesIn: c.framesIn,
      bytesIn: c.bytesIn,
      framesOut: c.framesOut,
      bytesOut: c.bytesOut,
      drops: { ...c.drops },
    };
  }
}
