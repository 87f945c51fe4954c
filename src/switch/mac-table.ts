/**
 * MAC learning table of one virtual switch: which port a source address was
 * last seen on.
 *
 * Theory of operation (IEEE 802.1D-2004 §7.8 Learning Process, §7.9.2 Dynamic Filtering Entries):
 * - Every accepted frame refreshes (or creates) the entry for its source MAC;
 *   a MAC seen on another port moves there ("station moved").
 * - An entry not refreshed for `agingMs` (802.1D-2004 Table 7-5: Ageing Time
 *   recommended 300 s) is gone: lookups treat it as absent and delete it.
 *   Expired entries are also swept in bulk, at most once per `sweepEveryMs`.
 * - The table never holds more than `limit` entries. When full, an expired
 *   entry is reclaimed if one exists; otherwise the new MAC is not learned and
 *   `full` is counted. Traffic to an unlearned MAC is flooded, which is always
 *   correct, so a flood of random source MACs costs bandwidth, never memory.
 *   (Not learning rather than evicting the oldest keeps the stations that
 *   were there first reachable without flooding; Linux's bridge does the same
 *   with `max_learned`.)
 *
 * Time comes from an injected clock in milliseconds, so tests can age entries.
 */

/** IEEE 802.1D-2004 Table 7-5: recommended Ageing Time. */
export const DEFAULT_MAC_AGING_MS = 300_000;
/** Entries per switch; the memory bound under a source-MAC flood. */
export const DEFAULT_MAC_LIMIT = 4096;

/** A clock in milliseconds; only differences matter. */
export type Clock = () => number;

interface Entry<P> {
  port: P;
  seenAt: number;
}

export interface MacTableOptions {
  agingMs?: number;
  limit?: number;
}

/** What `learn` did, for the switch's counters. */
export type LearnResult = 'refreshed' | 'learned' | 'moved' | 'full';

/** Counters of the table's life. */
export interface MacTableStats {
  learned: number;
  moved: number;
  aged: number;
  /** Source MACs not learned because the table was at its limit. */
  full: number;
}

/** MAC (as a 48-bit number) → port, with 802.1D aging and a hard size limit. */
export class MacTable<P> {
  readonly agingMs: number;
  readonly limit: number;
  readonly stats: MacTableStats = { learned: 0, moved: 0, aged: 0, full: 0 };
  private readonly entries = new Map<number, Entry<P>>();
  private lastSweepAt = -Infinity;
  private readonly sweepEveryMs: number;

  constructor(options: MacTableOptions = {}) {
    this.agingMs = options.agingMs ?? DEFAULT_MAC_AGING_MS;
    this.limit = options.limit ?? DEFAULT_MAC_LIMIT;
    if (!(this.limit >= 1)) throw new RangeError(`MAC table limit must be ≥ 1, got ${this.limit}`);
    // Sweeping is O(size); bound how often a flood can make us pay it.
    this.sweepEveryMs = Math.max(1000, this.agingMs / 10);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Record that `key` was seen on `port` at `now`. Allocates only for a new entry. */
  learn(key: number, port: P, now: number): LearnResult {
    const entry = this.entries.get(key);
    if (entry !== undefined) {
      entry.seenAt = now;
      if (entry.port === port) return 'refreshed';
      entry.port = port;
      this.stats.moved++;
      return 'moved';
    }
    if (this.entries.size >= this.limit) {
      this.sweep(now);
      if (this.entries.size >= this.limit) {
        this.stats.full++;
        return 'full';
      }
    }
    this.entries.set(key, { port, seenAt: now });
    this.stats.learned++;
    return 'learned';
  }

  /** The port `key` was last seen on, unless that was more than `agingMs` ago. */
  lookup(key: number, now: number): P | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (now - entry.seenAt > this.agingMs) {
      this.entries.delete(key);
      this.stats.aged++;
      return undefined;
    }
    return entry.port;
  }

  /** Delete expired entries; does nothing if the last sweep was under `sweepEveryMs` ago. */
  sweep(now: number): void {
    if (now - this.lastSweepAt < this.sweepEveryMs) return;
    this.lastSweepAt = now;
    for (const [key, entry] of this.entries) {
      if (now - entry.seenAt > this.agingMs) {
        this.entries.delete(key);
        this.stats.aged++;
      }
    }
  }

  /** Forget every MAC learned on `port` (detached or link down): traffic to them floods until they are heard again. */
  flushPort(port: P): void {
    for (const [key, entry] of this.entries) {
      if (entry.port === port) this.entries.delete(key);
    }
  }

  /** Current entries (for `showvminfo`-style listings and tests). */
  *list(now: number): IterableIterator<{ key: number; port: P; ageMs: number }> {
    for (const [key, entry] of this.entries) {
      const ageMs = now - entry.seenAt;
      if (ageMs <= this.agingMs) yield { key, port: entry.port, ageMs };
    }
  }
}
