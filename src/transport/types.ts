/**
 * How frames get in and out of the engine, whatever carries them (TAP, QEMU
 * stream socket, datagram socket).
 *
 * Ownership: a frame handed to `onFrame` may be a view into a reused buffer;
 * it stays valid until the microtasks queued during that call have run (the
 * end of the batch, where the TCP NAT writes the large guest segments it
 * gathered in one call), not longer. Whoever keeps it longer copies it.
 * `send` never keeps the caller's buffer past its return unless it copied it.
 */
import type { FrameOffload } from '../wire/virtio-net.js';

export interface FrameTransport {
  /**
   * True if `send` takes frames with offloads (partial checksums, TCP
   * super-segments) as they are. Otherwise the caller finishes them first
   * (src/wire/gso.ts).
   */
  readonly acceptsOffload: boolean;
  /**
   * True if `send` also takes UDP super-datagrams (GsoType.UdpL4, which only
   * some TAPs do); otherwise they are finished like other offloads.
   */
  readonly acceptsUdpSegmentation?: boolean;
  /** Short kind for logs and `showvminfo`: `tap`, `qemu-stream`, `unix-dgram`, `udp`. */
  readonly kind: string;
  /**
   * Called once per frame from the guest, with its offloads when it has any
   * (valid, like the frame, only during the call). Set before `start()`.
   */
  onFrame: (frame: Uint8Array, offload?: FrameOffload) => void;
  /** Called when the transport goes away by itself (peer closed, fd error). */
  onClose: (reason: string) => void;
  /** Begin delivering frames. */
  start(): void;
  /**
   * Queue one frame toward the guest. Dropped (and counted) when the bounded
   * queue is full. `offload` only when `acceptsOffload`.
   */
  send(frame: Uint8Array, offload?: FrameOffload): void;
  /** Release every resource. Idempotent. */
  close(): void;
  readonly stats: TransportStats;
}

export interface TransportStats {
  framesIn: number;
  bytesIn: number;
  framesOut: number;
  bytesOut: number;
  /** Frames dropped toward the guest because the queue was full or the peer was gone. */
  dropsOut: number;
  /** Frames from the guest that were not frames (bad length prefix, oversize). */
  dropsIn: number;
}

export function newTransportStats(): TransportStats {
  return { framesIn: 0, bytesIn: 0, framesOut: 0, bytesOut: 0, dropsOut: 0, dropsIn: 0 };
}

/** Largest Ethernet frame we accept: 65535-byte IP packet + 14-byte header + 802.1Q tag. */
export const MAX_FRAME = 65535 + 14 + 4;
/** Smallest: an Ethernet header. */
export const MIN_FRAME = 14;
