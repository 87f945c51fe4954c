/**
 * The L2 learning switch of one virtual network (an intnet, a NAT network, a
 * host-only network): VirtualBox's "internal network" switch.
 *
 * Theory of operation (IEEE 802.1D-2004 §7.7 Forwarding Process, §7.8 Learning):
 * - A frame from a port is dropped if the port's link is down (`link-down`),
 *   if it is shorter than an Ethernet header (`runt`), or if its source is
 *   multicast, broadcast or all-zeros (`bad-source`: never learned).
 * - Its source MAC is learned on the ingress port (see `MacTable` for aging
 *   and the size limit).
 * - Known unicast goes to the learned port only — or nowhere if that is the
 *   ingress port (802.1D §7.7.1 filtering; counted in `filtered`, not a drop).
 *   O(1) plus one copy per snooping port.
 * - Broadcast, multicast and unknown unicast flood to every other port; for
 *   unknown unicast each port's promiscuous policy decides if it sees it.
 * - Ports with `allow-all` (and `allow-vms`, for VM-to-VM traffic) also get a
 *   copy of known unicast between other ports, as VirtualBox gives a
 *   promiscuous NIC all traffic of its internal network.
 * - 802.1Q tagged frames are forwarded unchanged: the switch reads only the
 *   two MACs in front of any tag.
 *
 * Frames are never copied: every receiving port is handed the same buffer,
 * which it may use only until the microtasks queued during its `deliver`
 * have run (src/transport/types.ts).
 *
 * Port lists are replaced, never mutated, so a `deliver` that attaches,
 * detaches or feeds another frame into the switch does not disturb an
 * iteration in progress.
 */
import type { FrameOffload } from '../wire/virtio-net.js';
import { DST_OFFSET, ETHERNET_HEADER_LENGTH, SRC_OFFSET, ZERO_KEY, formatMacKey, isGroupAt, macKey, macKeyAt } from './mac.js';
import { MacTable, type Clock, type MacTableStats } from './mac-table.js';
import { SwitchPort, type PortOptions, type PortOwner, type PortStats } from './port.js';

export { SwitchPort } from './port.js';
export type { PortCounters, PortKind, PortOptions, PortStats, PromiscPolicy } from './port.js';

export interface SwitchOptions {
  /** Milliseconds; only differences matter. Default `performance.now`. */
  clock?: Clock;
  /** MAC table size limit (default `DEFAULT_MAC_LIMIT`). */
  macLimit?: number;
  /** MAC aging in ms (default 300 s, 802.1D). */
  macAgingMs?: number;
}

/** Frames the switch itself handled; per-port counts live on the ports. */
export interface SwitchCounters {
  /** Known unicast sent to one port. */
  unicast: number;
  /** Broadcast, multicast and unknown unicast sent to every other port. */
  flooded: number;
  /** Known unicast whose destination is on the ingress port (802.1D filtering). */
  filtered: number;
}

export interface SwitchStats extends SwitchCounters {
  name: string;
  macCount: number;
  macLimit: number;
  macTable: MacTableStats;
  ports: PortStats[];
}

/** One learned MAC, for listings. */
export interface MacEntry {
  mac: string;
  port: string;
  ageMs: number;
}

/** An L2 learning switch with per-port link state and promiscuous policy. */
export class Switch implements PortOwner {
  readonly name: string;
  readonly counters: SwitchCounters = { unicast: 0, flooded: 0, filtered: 0 };
  private readonly clock: Clock;
  private readonly table: MacTable<SwitchPort>;
  private ports: readonly SwitchPort[] = [];
  /** Ports whose policy is not `deny`: they may take copies of known unicast. */
  private snoopers: readonly SwitchPort[] = [];
  /** Own MACs of `host` and `service` ports, hidden from `allow-vms`. */
  private hostMacs: ReadonlySet<number> = new Set();

  constructor(name: string, options: SwitchOptions = {}) {
    this.name = name;
    this.clock = options.clock ?? (() => performance.now());
    this.table = new MacTable({ limit: options.macLimit, agingMs: options.macAgingMs });
  }

  /** Every attached port, in attach order. */
  get attached(): readonly SwitchPort[] {
    return this.ports;
  }

  /** How many ports are attached. */
  get portCount(): number {
    return this.ports.length;
  }

  /** Plug a NIC in. Its link starts up. */
  attach(options: PortOptions): SwitchPort {
    const port = new SwitchPort(this, options);
    this.ports = [...this.ports, port];
    this.rebuild();
    return port;
  }

  /** Unplug a port and forget its MACs. Idempotent. */
  detach(port: SwitchPort): void {
    if (port.owner !== this) return;
    port.owner = undefined;
    this.ports = this.ports.filter((p) => p !== port);
    this.table.flushPort(port);
    this.rebuild();
  }

  /** A frame from `port`'s guest. Not kept past return. Never throws for any bytes. */
  input(port: SwitchPort, frame: Uint8Array, offload?: FrameOffload): void {
    if (port.owner !== this) {
      port.drop('detached');
      return;
    }
    if (!port.linkUp) {
      port.drop('link-down');
      return;
    }
    if (frame.length < ETHERNET_HEADER_LENGTH) {
      port.drop('runt');
      return;
    }
    const src = macKeyAt(frame, SRC_OFFSET);
    if (isGroupAt(frame, SRC_OFFSET) || src === ZERO_KEY) {
      port.drop('bad-source');
      return;
    }
    port.counters.framesIn++;
    port.counters.bytesIn += frame.length;

    const now = this.clock();
    this.table.learn(src, port, now);

    if (isGroupAt(frame, DST_OFFSET)) {
      this.flood(port, frame, -1, offload);
      return;
    }
    const dst = macKeyAt(frame, DST_OFFSET);
    const out = this.table.lookup(dst, now);
    if (out === undefined) {
      this.flood(port, frame, dst, offload);
      return;
    }
    if (out === port) {
      this.counters.filtered++;
      return;
    }
    this.counters.unicast++;
    out.toGuest(frame, offload);
    const snoopers = this.snoopers;
    for (let i = 0; i < snoopers.length; i++) {
      const s = snoopers[i]!;
      if (s !== port && s !== out && this.seesOthersUnicast(s, port, out)) s.toGuest(frame, offload);
    }
  }

  /**
   * Whether a frame to `mac` would reach a port that takes UDP
   * super-datagrams as they are (PortOptions.takesUdpSegmentation); false
   * for a MAC not learned.
   */
  takesUdpSegmentation(mac: Uint8Array): boolean {
    return this.table.lookup(macKey(mac), this.clock())?.takesUdpSegmentation ?? false;
  }

  /** Called by a port when its link or policy changes. */
  portChanged(port: SwitchPort, what: 'link' | 'promisc'): void {
    // A port going down takes its stations with it, so traffic for them floods
    // (and reaches them again wherever they reappear) instead of vanishing.
    if (what === 'link' && !port.linkUp) this.table.flushPort(port);
    if (what === 'promisc') this.rebuild();
  }

  /** Learned MACs that have not aged out. */
  macs(): MacEntry[] {
    const entries: MacEntry[] = [];
    for (const e of this.table.list(this.clock())) {
      entries.push({ mac: formatMacKey(e.key), port: e.port.name, ageMs: e.ageMs });
    }
    return entries;
  }

  /** Drop aged MAC entries now (the daemon may call this from a timer; lookups also age lazily). */
  sweep(): void {
    this.table.sweep(this.clock());
  }

  /** A snapshot of counters, MAC table state and every port. */
  snapshot(): SwitchStats {
    return {
      name: this.name,
      ...this.counters,
      macCount: this.table.size,
      macLimit: this.table.limit,
      macTable: { ...this.table.stats },
      ports: this.ports.map((p) => p.snapshot()),
    };
  }

  /** Send to every port but `ingress`; `dst` is the unicast key, or −1 for group addresses. */
  private flood(ingress: SwitchPort, frame: Uint8Array, dst: number, offload: FrameOffload | undefined): void {
    this.counters.flooded++;
    const ports = this.ports;
    for (let i = 0; i < ports.length; i++) {
      const p = ports[i]!;
      if (p === ingress) continue;
      if (dst !== -1 && !this.acceptsFloodedUnicast(p, ingress, dst)) continue;
      p.toGuest(frame, offload);
    }
  }

  /** May `p` see a unicast frame to unknown `dst` that came in on `ingress`? */
  private acceptsFloodedUnicast(p: SwitchPort, ingress: SwitchPort, dst: number): boolean {
    // Without its own MAC the port cannot filter: it gets what a hub would give it.
    if (p.macKey === -1 || p.macKey === dst) return true;
    switch (p.promisc) {
      case 'deny':
        return false;
      case 'allow-all':
        return true;
      case 'allow-vms':
        return ingress.kind === 'vm' && !this.hostMacs.has(dst);
    }
  }

  /** May snooping port `s` take a copy of known unicast from `ingress` to `out`? */
  private seesOthersUnicast(s: SwitchPort, ingress: SwitchPort, out: SwitchPort): boolean {
    switch (s.promisc) {
      case 'deny':
        return false;
      case 'allow-all':
        return true;
      case 'allow-vms':
        return ingress.kind === 'vm' && out.kind === 'vm';
    }
  }

  /** Recompute the lists derived from the ports. */
  private rebuild(): void {
    this.snoopers = this.ports.filter((p) => p.promisc !== 'deny');
    const hostMacs = new Set<number>();
    for (const p of this.ports) if (p.kind !== 'vm' && p.macKey !== -1) hostMacs.add(p.macKey);
    this.hostMacs = hostMacs;
  }
}
