/**
 * The gateway's neighbour table (RFC 826): guest IPv4 → MAC, learned from ARP
 * and from the source of IPv4 frames on the LAN. Bounded; the oldest entry
 * goes when it is full. Frames for an address not yet resolved wait in a
 * small per-address queue while an ARP request is out (as Linux's
 * `unres_qlen`).
 */
import type { FrameOffload } from '../wire/virtio-net.js';
export const MAX_ARP_ENTRIES = 1024;
/** Frames kept per unresolved address, and addresses with pending frames. */
export const MAX_PENDING_PER_ADDRESS = 8;
export const MAX_PENDING_ADDRESSES = 64;
/** Entries older than this are refreshed by the next frame or ARP (Linux's base_reachable_time is 30 s; we are lenient). */
export const ARP_ENTRY_TTL_MS = 10 * 60_000;

/** A frame waiting for its destination's MAC, with its offloads. */
export interface ParkedFrame {
  frame: Uint8Array;
  offload?: FrameOffload;
}

interface Entry {
  mac: Uint8Array;
  seenAt: number;
}

/** Called for every frame from a guest: a plain loop, no closure. */
function sameMac(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 6; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class ArpTable {
  private readonly entries = new Map<number, Entry>();
  private readonly pending = new Map<number, ParkedFrame[]>();

  /** Remember `ip` at `mac` (copied). */
  learn(ip: number, mac: Uint8Array, now: number): void {
    const entry = this.entries.get(ip);
    if (entry && sameMac(entry.mac, mac)) {
      entry.seenAt = now;
      return;
    }
    this.entries.delete(ip);
    if (this.entries.size >= MAX_ARP_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(ip, { mac: Uint8Array.from(mac), seenAt: now });
  }

  lookup(ip: number, now: number): Uint8Array | undefined {
    const entry = this.entries.get(ip);
    if (!entry) return undefined;
    if (now - entry.seenAt > ARP_ENTRY_TTL_MS) {
      this.entries.delete(ip);
      return undefined;
    }
    return entry.mac;
  }

  /** Park a copy of a frame until `ip` resolves; false when the queue is full (the caller counts the drop). */
  park(ip: number, frame: Uint8Array, offload?: FrameOffload): boolean {
    let queue = this.pending.get(ip);
    if (!queue) {
      if (this.pending.size >= MAX_PENDING_ADDRESSES) return false;
      queue = [];
      this.pending.set(ip, queue);
    }
    if (queue.length >= MAX_PENDING_PER_ADDRESS) return false;
    // The sender may reuse its buffer once sendIpv4 returns: keep copies.
    queue.push({ frame: Uint8Array.from(frame), offload: offload && { ...offload } });
    return true;
  }

  /** The frames parked for `ip`, now that it resolved. */
  takeParked(ip: number): ParkedFrame[] {
    const queue = this.pending.get(ip) ?? [];
    this.pending.delete(ip);
    return queue;
  }

  get size(): number {
    return this.entries.size;
  }

  list(): { ip: number; mac: Uint8Array }[] {
    return [...this.entries].map(([ip, e]) => ({ ip, mac: e.mac }));
  }
}
