/**
 * The TCP NAT's flows by key: a Map whose storage does not follow flows that
 * come and go by the thousand a second.
 *
 * Why not a plain Map: V8 shrinks a Map's hash table when a delete leaves it
 * less than half full, and grows it on a later insert, so with a flow or two
 * open at a time (a client's short connections in a row) nearly every close
 * reallocates it. A table replaced that way keeps a link to its successor
 * (for live iterators) and the entries it held. Once one of them has lived
 * long enough to reach the old generation, it keeps its successor alive
 * through every young-generation collection, and that one the next: the
 * whole chain, and the connections each table held when it was replaced,
 * survive and are promoted until a full collection finds them dead. Measured
 * in the daemon serving short connections guest→host (`--trace-gc-nvp`):
 * 0.4–0.6 MB survived each scavenge and was promoted, the scavenges took
 * 1.4–5.4 ms; with closed flows' keys kept, 3–9 KB and 0.3–1.1 ms
 * (docs/performance.md, "A Map that reallocated itself per connection").
 *
 * So a flow's removal keeps its key with the value `undefined`, which holds
 * nothing, and the Map is rebuilt once dead keys are both more than
 * REBUILD_AFTER and more than the live ones: growth and rebuilds are rare,
 * and what a replaced table holds is only what was live at that moment.
 */

/** Dead keys tolerated whatever the live count (a few tens of KB of table). */
export const REBUILD_AFTER = 1024;

export class FlowTable<V> {
  private map = new Map<number, V | undefined>();
  private live = 0;

  /** Live flows. */
  get size(): number {
    return this.live;
  }

  get(key: number): V | undefined {
    return this.map.get(key);
  }

  set(key: number, value: V): void {
    if (this.map.get(key) === undefined) this.live++;
    this.map.set(key, value);
  }

  delete(key: number): void {
    if (this.map.get(key) === undefined) return;
    this.map.set(key, undefined);
    this.live--;
    const dead = this.map.size - this.live;
    if (dead > REBUILD_AFTER && dead > this.live) this.rebuild();
  }

  /** Every live value (for status, tests and tear-down, not the packet path). */
  *values(): IterableIterator<V> {
    for (const value of this.map.values()) if (value !== undefined) yield value;
  }

  /** Keys held, dead ones included (for tests). */
  get keysHeld(): number {
    return this.map.size;
  }

  private rebuild(): void {
    const next = new Map<number, V | undefined>();
    for (const [key, value] of this.map) if (value !== undefined) next.set(key, value);
    this.map = next;
  }
}
