/**
 * The lease table of one DHCP server: who holds which address until when.
 *
 * - A record is keyed by the client identifier (option 61) when the client
 *   sends one, else by its hardware address (RFC 2131 §4.2: "the combination
 *   of 'client identifier' or 'chaddr' and assigned network address").
 * - A record outlives its lease: when a lease expires or is released the
 *   address becomes free, but the record stays so that the same client gets
 *   the same address back, until the address is needed by someone else or
 *   the table is full.
 * - Expiry is noticed lazily: `sweep(now)` turns records whose time has
 *   passed into free ones and reports the bound ones that expired.
 * - Declined addresses (RFC 2131 §4.3.3) are kept out of use for a while.
 *
 * Limits: `limit` records (the least recently expired free record is evicted
 * first; live ones never are) and as many declined addresses.
 */

/** One client's lease, as the API and the store see it. */
export interface Lease {
  /** Client hardware address, `08:00:27:aa:bb:cc`. */
  mac: string;
  ip: number;
  /** Host name the client sent (option 12), already checked to be one DNS label. */
  hostname?: string;
  /** Client identifier (option 61) as lowercase hex, when the client sent one. */
  clientId?: string;
  /** End of the lease (or of the offer), ms on the server's clock. */
  expiresAt: number;
  state: 'offered' | 'bound';
}

/** Where leases survive a restart. The server calls `load` once, `save` after every binding change. */
export interface LeaseStore {
  load(): Lease[];
  save(leases: Lease[]): void;
}

/** What happened to a lease, for `onLease`. */
export type LeaseEvent = 'granted' | 'released' | 'expired';

/** A record of the table. `live` is false once the lease ended (expired, released): the address is free again. */
interface LeaseRecord {
  readonly key: string;
  lease: Lease;
  live: boolean;
}

/** The key of a client: its identifier when it sent one, else its MAC. */
export function leaseKey(mac: string, clientId: string | undefined): string {
  return clientId !== undefined ? `id:${clientId}` : `mac:${mac}`;
}

export class LeaseTable {
  private readonly byKey = new Map<string, LeaseRecord>();
  private readonly byIp = new Map<number, LeaseRecord>();
  /** Declined address → ms until which it is not handed out. */
  private readonly declined = new Map<number, number>();

  constructor(readonly limit: number) {}

  get size(): number {
    return this.byKey.size;
  }

  /** Ends the leases whose time has passed; returns the bound ones that did (each reported once). */
  sweep(now: number): Lease[] {
    const expired: Lease[] = [];
    for (const record of this.byKey.values()) {
      if (!record.live || record.lease.expiresAt > now) continue;
      record.live = false;
      if (record.lease.state === 'bound') expired.push({ ...record.lease });
    }
    for (const [ip, until] of this.declined) if (until <= now) this.declined.delete(ip);
    return expired;
  }

  /** The record of a client, live or not. */
  get(key: string): Readonly<LeaseRecord> | undefined {
    return this.byKey.get(key);
  }

  /** True when the address is held by a live lease of a client other than `key`. */
  heldByOther(ip: number, key: string): boolean {
    const record = this.byIp.get(ip);
    return record !== undefined && record.live && record.key !== key;
  }

  /** True when no record at all names the address. */
  unrecorded(ip: number): boolean {
    return !this.byIp.has(ip);
  }

  isDeclined(ip: number): boolean {
    return this.declined.has(ip);
  }

  /** A free (not live) record of another client with this MAC: the address it last had. */
  formerAddressOf(mac: string, key: string): number | undefined {
    for (const record of this.byKey.values()) {
      if (!record.live && record.key !== key && record.lease.mac === mac) return record.lease.ip;
    }
    return undefined;
  }

  /** Addresses of free records, the longest-ended first: the ones to reuse when the pool has no fresh address. */
  *reusable(): Iterable<number> {
    const free = [...this.byKey.values()].filter((r) => !r.live).sort((a, b) => a.lease.expiresAt - b.lease.expiresAt);
    for (const record of free) yield record.lease.ip;
  }

  /**
   * Records `lease` as live under `key`, replacing the client's earlier record
   * and any free record of another client at the same address. Returns false
   * (nothing changed) when the table is full of live records.
   */
  put(key: string, lease: Lease): boolean {
    const mine = this.byKey.get(key);
    const other = this.byIp.get(lease.ip);
    if (other !== undefined && other !== mine) this.remove(other);
    if (mine === undefined && this.byKey.size >= this.limit && !this.evictOne()) return false;
    if (mine !== undefined && this.byIp.get(mine.lease.ip) === mine) this.byIp.delete(mine.lease.ip);
    const record: LeaseRecord = { key, lease, live: true };
    this.byKey.set(key, record);
    this.byIp.set(lease.ip, record);
    return true;
  }

  /** Ends a client's lease now, keeping the record (the client gets the address back later). */
  end(key: string, now: number): Lease | undefined {
    const record = this.byKey.get(key);
    if (record === undefined || !record.live) return undefined;
    record.live = false;
    record.lease = { ...record.lease, expiresAt: Math.min(record.lease.expiresAt, now) };
    return { ...record.lease };
  }

  /** Forgets a client's record entirely. */
  forget(key: string): void {
    const record = this.byKey.get(key);
    if (record !== undefined) this.remove(record);
  }

  /** Keeps `ip` out of use until `until`; returns false when too many addresses are already declined. */
  decline(ip: number, until: number): boolean {
    if (!this.declined.has(ip) && this.declined.size >= this.limit) return false;
    this.declined.set(ip, until);
    return true;
  }

  /** Copies of the live leases. */
  live(): Lease[] {
    const out: Lease[] = [];
    for (const record of this.byKey.values()) if (record.live) out.push({ ...record.lease });
    return out;
  }

  /** The address of the first live bound lease, without copies (asked once per forwarded connection). */
  firstBoundIp(): number | undefined {
    for (const record of this.byKey.values()) if (record.live && record.lease.state === 'bound') return record.lease.ip;
    return undefined;
  }

  /** Copies of every lease that was ever bound (live or ended): what a store keeps, so addresses stay stable across restarts. */
  persistent(): Lease[] {
    const out: Lease[] = [];
    for (const record of this.byKey.values()) if (record.lease.state === 'bound') out.push({ ...record.lease });
    return out;
  }

  /** Adds a lease read from a store; it is live only if still bound and unexpired. Returns false when full. */
  restore(key: string, lease: Lease, now: number): boolean {
    if (this.byKey.has(key) || this.byIp.has(lease.ip)) return false;
    if (!this.put(key, lease)) return false;
    this.byKey.get(key)!.live = lease.state === 'bound' && lease.expiresAt > now;
    return true;
  }

  private remove(record: LeaseRecord): void {
    this.byKey.delete(record.key);
    if (this.byIp.get(record.lease.ip) === record) this.byIp.delete(record.lease.ip);
  }

  /** Evicts the free record that ended first. */
  private evictOne(): boolean {
    let oldest: LeaseRecord | undefined;
    for (const record of this.byKey.values()) {
      if (!record.live && (oldest === undefined || record.lease.expiresAt < oldest.lease.expiresAt)) oldest = record;
    }
    if (oldest === undefined) return false;
    this.remove(oldest);
    return true;
  }
}
