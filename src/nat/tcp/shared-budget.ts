/**
 * A byte budget all connections of one NAT share (limits.maxQueuedBytes
 * toward guests, limits.maxHeldForHosts toward hosts): what per-connection
 * limits cannot bound, since they multiply by the flow table. Connections
 * charge and release bytes; one that finds no room waits, and every waiter
 * is woken once the total falls to three quarters of the limit — not at
 * every released byte — after the current call, since whoever releases is
 * usually a connection in the middle of its own work.
 */
import { afterCall } from '../../after-call.js';

export class SharedBudget<Waiter> {
  private used = 0;
  private readonly waiting = new Set<Waiter>();
  private wakeQueued = false;

  constructor(
    private readonly limit: number,
    private readonly wake: (waiter: Waiter) => void,
  ) {}

  /** Bytes charged now. */
  get bytes(): number {
    return this.used;
  }

  /** Waiters not woken yet. */
  get waiters(): number {
    return this.waiting.size;
  }

  /** Adds `delta` bytes (negative: releases them); returns the room left, 0 when full. */
  charge(delta: number): number {
    // `| 0`: a caller's `-length` of 0 is minus zero, not a V8 small integer, and adding it would turn
    // the counter into a double: a new map for its owner and a deopt of every function that touched it.
    this.used += delta | 0;
    const limit = this.limit;
    if (delta < 0 && this.waiting.size > 0 && !this.wakeQueued && this.used <= limit - (limit >>> 2)) {
      this.wakeQueued = true;
      afterCall(this.wakeAll);
    }
    return this.used < limit ? limit - this.used : 0;
  }

  /** `wake(waiter)` once there is room again. */
  wait(waiter: Waiter): void {
    this.waiting.add(waiter);
  }

  /** No longer waits (it left). */
  forget(waiter: Waiter): void {
    this.waiting.delete(waiter);
  }

  private readonly wakeAll = (): void => {
    this.wakeQueued = false;
    const waiting = [...this.waiting];
    this.waiting.clear();
    for (const waiter of waiting) this.wake(waiter);
  };
}
