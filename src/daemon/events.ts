/**
 * The daemon's event bus: what changed, as it happens, for the API's event
 * stream (`GET /v1/events`, Server-Sent Events), `vnet events` and the
 * dashboard.
 *
 * - Producers (the daemon, NAT LANs, the sampler) call `emit`; it never
 *   throws and never blocks: a subscriber that throws is dropped.
 * - Every event gets a sequence number `id`; the last `MAX_RECENT_EVENTS`
 *   are kept so a client that reconnects with `Last-Event-ID` misses nothing
 *   that is still in the ring.
 * - Flows are not reported one by one (a busy NAT opens thousands a second):
 *   the sampler sends one `flows.sampled` event per LAN and interval with the
 *   counts opened and closed since the last sample.
 */

/** Events kept for replay to reconnecting clients. */
export const MAX_RECENT_EVENTS = 256;
/** Live subscribers (SSE clients); more are refused. */
export const MAX_SUBSCRIBERS = 64;

export interface VnetEventMap {
  /** A VM was started, powered off, paused or found dead (QEMU aborted). */
  'vm.state': { vm: string; state: 'running' | 'poweroff' | 'paused' | 'aborted'; reason?: string };
  /** A NIC's cable was plugged or pulled. */
  'nic.link': { vm: string; nic: number; cableConnected: boolean };
  /** A DHCP lease was granted (or renewed), released, or expired. */
  'lease.granted': LeaseEventData;
  'lease.released': LeaseEventData;
  'lease.expired': LeaseEventData;
  /** A port forward was added to or removed from a NAT NIC or a NAT Network. */
  'forward.added': ForwardEventData;
  'forward.removed': ForwardEventData;
  /** Flows opened and closed on one NAT LAN since the previous sample. */
  'flows.sampled': { network: string; tcpOpened: number; tcpClosed: number; tcpActive: number; udpActive: number };
  /** A capture started or stopped on a NIC. */
  'capture.started': { vm: string; nic: number; path: string };
  'capture.stopped': { vm: string; nic: number; path: string };
}

export interface LeaseEventData {
  network: string;
  mac: string;
  ip: string;
  hostname: string | null;
}

export interface ForwardEventData {
  /** `vm/nicN` for a NAT NIC, `natnet:NAME` for a NAT Network. */
  owner: string;
  name: string;
  protocol: string;
  hostIp: string;
  hostPort: number;
  guestIp: string;
  guestPort: number;
}

export type VnetEventType = keyof VnetEventMap;
export const EVENT_TYPES: readonly VnetEventType[] = [
  'vm.state', 'nic.link', 'lease.granted', 'lease.released', 'lease.expired',
  'forward.added', 'forward.removed', 'flows.sampled', 'capture.started', 'capture.stopped',
];

export interface VnetEvent<T extends VnetEventType = VnetEventType> {
  id: number;
  type: T;
  /** ISO 8601. */
  time: string;
  data: VnetEventMap[T];
}

export type Subscriber = (event: VnetEvent) => void;

export class EventBus {
  private nextId = 1;
  private readonly recent: VnetEvent[] = [];
  private readonly subscribers = new Set<Subscriber>();

  emit<T extends VnetEventType>(type: T, data: VnetEventMap[T]): void {
    const event: VnetEvent = { id: this.nextId++, type, time: new Date().toISOString(), data };
    this.recent.push(event);
    if (this.recent.length > MAX_RECENT_EVENTS) this.recent.shift();
    for (const subscriber of this.subscribers) {
      try {
        subscriber(event);
      } catch {
        this.subscribers.delete(subscriber);
      }
    }
  }

  /**
   * Call `subscriber` for every event from now on, after replaying the kept
   * events with an id above `afterId` (if given). Returns the unsubscribe.
   * @throws Error when MAX_SUBSCRIBERS are already listening.
   */
  subscribe(subscriber: Subscriber, afterId?: number): () => void {
    if (this.subscribers.size >= MAX_SUBSCRIBERS) throw new Error(`too many event subscribers (limit ${MAX_SUBSCRIBERS})`);
    if (afterId !== undefined) for (const event of this.recent) if (event.id > afterId) subscriber(event);
    this.subscribers.add(subscriber);
    return () => this.subscribers.delete(subscriber);
  }

  /** The kept events, oldest first. */
  history(): VnetEvent[] {
    return [...this.recent];
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }
}

/** What the sampler reads of one running NIC. */
export interface NicSample {
  vm: string;
  nic: number;
  /** Bytes read from the guest and written to it, since the NIC started. */
  bytesFromGuest: number;
  bytesToGuest: number;
}

/** What the sampler reads of one NAT LAN. */
export interface LanSample {
  network: string;
  tcpOpened: number;
  tcpClosed: number;
  tcpActive: number;
  udpActive: number;
}

export interface NicRate {
  /** Bytes per second over the last interval. */
  fromGuestBps: number;
  toGuestBps: number;
}

/**
 * Per-NIC traffic rates and sampled flow events, from counters read at a
 * fixed interval: rate = Δbytes / Δt. A counter that went down (the NIC was
 * re-plugged) restarts its rate at 0.
 */
export class Sampler {
  private readonly lastNic = new Map<string, { at: number; sample: NicSample }>();
  private readonly lastLan = new Map<string, LanSample>();
  private readonly rateByNic = new Map<string, NicRate>();

  constructor(private readonly events: EventBus) {}

  sample(nowMs: number, nics: NicSample[], lans: LanSample[]): void {
    const seen = new Set<string>();
    for (const s of nics) {
      const key = `${s.vm}/${s.nic}`;
      seen.add(key);
      const last = this.lastNic.get(key);
      const seconds = last ? (nowMs - last.at) / 1000 : 0;
      const from = last ? s.bytesFromGuest - last.sample.bytesFromGuest : 0;
      const to = last ? s.bytesToGuest - last.sample.bytesToGuest : 0;
      this.rateByNic.set(key, {
        fromGuestBps: seconds > 0 && from >= 0 ? Math.round(from / seconds) : 0,
        toGuestBps: seconds > 0 && to >= 0 ? Math.round(to / seconds) : 0,
      });
      this.lastNic.set(key, { at: nowMs, sample: s });
    }
    for (const key of [...this.lastNic.keys()]) {
      if (!seen.has(key)) {
        this.lastNic.delete(key);
        this.rateByNic.delete(key);
      }
    }
    const seenLans = new Set<string>();
    for (const lan of lans) {
      seenLans.add(lan.network);
      const last = this.lastLan.get(lan.network);
      this.lastLan.set(lan.network, lan);
      if (!last) continue;
      const tcpOpened = lan.tcpOpened - last.tcpOpened;
      const tcpClosed = lan.tcpClosed - last.tcpClosed;
      if (tcpOpened > 0 || tcpClosed > 0 || lan.udpActive !== last.udpActive) {
        this.events.emit('flows.sampled', { network: lan.network, tcpOpened, tcpClosed, tcpActive: lan.tcpActive, udpActive: lan.udpActive });
      }
    }
    for (const key of [...this.lastLan.keys()]) if (!seenLans.has(key)) this.lastLan.delete(key);
  }

  /** The last measured rate of a NIC; zeros before two samples. */
  rate(vm: string, nic: number): NicRate {
    return this.rateByNic.get(`${vm}/${nic}`) ?? { fromGuestBps: 0, toGuestBps: 0 };
  }
}
