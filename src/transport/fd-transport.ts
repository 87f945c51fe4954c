/**
 * A FrameTransport over one non-blocking fd driven by the native poller: the
 * part TapTransport and UnixDgramTransport share.
 *
 * Theory of operation
 * - fromGuest: the poller reads frames in batches into one reused slab and
 *   calls `deliver(count)` once per batch. Each frame is checked for length
 *   (MIN_FRAME..MAX_FRAME, else `dropsIn`) and handed to `onFrame` as a view
 *   into the slab: it is the engine's until the microtasks of the batch have
 *   run (the poller reads the next batch only after them).
 * - toGuest: `send` copies the frame into `txSlab` (so the caller's buffer is
 *   free again when `send` returns) and the first send of a JS turn queues a
 *   flush as a microtask. The native poller runs microtasks after each batch
 *   it delivers, so the replies to one input batch leave in one native call.
 *   A full slab (TX_BATCH_FRAMES frames or its byte size) flushes at once.
 *   A large frame (DIRECT_WRITE_MIN) is not copied: what the slab holds is
 *   flushed, then the frame is written from the caller's buffer at once.
 * - Backpressure: frames the fd did not take (EAGAIN) are copied to
 *   `backlog`, at most BACKLOG_LIMIT frames (beyond: `dropsOut`), and the
 *   poller watches for writability to drain it. While the backlog is not
 *   empty, new frames queue behind it so order is kept.
 * - With a virtio-net header (TAPs with IFF_VNET_HDR) each frame's offloads
 *   are read from the header the poller leaves in the slab just before it,
 *   and written as a header that `send` puts in txSlab before the frame.
 * - Frames the kernel refused for good (a TAP that is down, no datagram peer)
 *   count as `dropsOut`. An fd error (the TAP was deleted) closes the
 *   transport and calls `onClose` with the reason.
 */
import { newFrameOffload, readVirtioNetHeader, VIRTIO_NET_HDR_LENGTH, writeVirtioNetHeader, type FrameOffload } from '../wire/virtio-net.js';
import { afterCall } from '../after-call.js';
import { type NativePoller, type PollerOptions, WRITE_STATUS, nativeAddon } from './native.js';
import { type FrameTransport, MAX_FRAME, MIN_FRAME, type TransportStats, newTransportStats } from './types.js';

/** Most frames waiting for the fd to become writable; more are dropped and counted. */
export const BACKLOG_LIMIT = 1024;

/** Frames are packed into txSlab at this alignment. */
const TX_ALIGN = 8;

/**
 * Frames from this length on are written straight from the caller's buffer
 * instead of being copied into txSlab: a copy of a 64 KiB segment costs far
 * more than the native call it saves (docs/performance.md, "Copies").
 */
export const DIRECT_WRITE_MIN = 8192;

const NO_HEADER = new Uint8Array(0);

/** Shared transport over a non-blocking fd; subclasses open the fd and name the kind. */
export abstract class FdTransport implements FrameTransport {
  abstract readonly kind: string;
  onFrame: (frame: Uint8Array, offload?: FrameOffload) => void = () => {};
  /** Offloaded frames go out as they are (a virtio-net header with offloads enabled). */
  readonly acceptsOffload: boolean;
  /** Frames on the fd start with a virtio-net header. */
  private readonly vnetHeader: boolean;
  /** Reused for every received frame's offloads: valid only during onFrame. */
  private readonly rxOffload = newFrameOffload();
  onClose: (reason: string) => void = () => {};
  readonly stats: TransportStats = newTransportStats();

  private readonly poller: NativePoller;
  private readonly rxBytes: Uint8Array;
  private readonly rxMeta: Uint32Array;
  private readonly txBytes: Uint8Array;
  private readonly txMeta: Uint32Array;
  /** The virtio-net header of a frame written directly. */
  private readonly txHeader = new Uint8Array(VIRTIO_NET_HDR_LENGTH);
  /** Frames txMeta can describe. */
  private readonly txBatchLimit: number;
  private txCount = 0;
  private txUsed = 0;
  private flushQueued = false;
  /** Frames (owned copies) the fd did not take yet, oldest first. */
  private backlog: Uint8Array[] = [];
  private closed = false;

  /**
   * Takes over `fd` when it returns; if it throws, the fd is still the
   * caller's. `vnetHeader`: frames carry a virtio-net header; `offload`: the
   * fd was opened with checksum offload and TSO on.
   */
  protected constructor(fd: number, options: PollerOptions, framing: { vnetHeader?: boolean; offload?: boolean } = {}) {
    const { Poller } = nativeAddon();
    this.vnetHeader = framing.vnetHeader ?? false;
    this.acceptsOffload = this.vnetHeader && (framing.offload ?? false);
    const pollerOptions = this.vnetHeader ? { ...options, headerLength: VIRTIO_NET_HDR_LENGTH, txHeaderInFrame: true } : options;
    this.poller = new Poller(fd, this.deliver, this.drain, this.fail, pollerOptions);
    this.rxBytes = new Uint8Array(this.poller.rxSlab);
    this.rxMeta = this.poller.rxMeta;
    this.txBytes = new Uint8Array(this.poller.txSlab);
    this.txMeta = this.poller.txMeta;
    this.txBatchLimit = this.txMeta.length / 2;
  }

  /** True once closed, by `close()` or by an fd error. */
  get isClosed(): boolean {
    return this.closed;
  }

  start(): void {
    if (!this.closed) this.poller.start();
  }

  send(frame: Uint8Array, offload?: FrameOffload): void {
    const frameLength = frame.byteLength;
    if (this.closed || frameLength < MIN_FRAME || frameLength > MAX_FRAME) {
      this.stats.dropsOut++;
      return;
    }
    const header = this.vnetHeader ? VIRTIO_NET_HDR_LENGTH : 0;
    const length = header + frameLength;
    if (frameLength >= DIRECT_WRITE_MIN && this.backlog.length === 0) {
      this.flush(); // what came before leaves first
      if (this.backlog.length === 0) return this.writeDirect(frame, offload);
    }
    const slabFull = this.txCount === this.txBatchLimit || this.txUsed + length > this.txBytes.byteLength;
    if (slabFull && this.backlog.length === 0) this.flush();
    if (this.backlog.length > 0) return this.enqueueCopy(frame, offload);
    const offset = this.txUsed;
    if (header) writeVirtioNetHeader(offload, this.txBytes, offset);
    this.txBytes.set(frame, offset + header);
    this.txMeta[2 * this.txCount] = offset;
    this.txMeta[2 * this.txCount + 1] = length;
    this.txCount++;
    this.txUsed = offset + Math.ceil(length / TX_ALIGN) * TX_ALIGN;
    if (!this.flushQueued) {
      this.flushQueued = true;
      afterCall(this.flushTask);
    }
  }

  /** Writes `frame` now from its own buffer; if the fd is full, a copy waits in the backlog. */
  private writeDirect(frame: Uint8Array, offload: FrameOffload | undefined): void {
    let header = NO_HEADER;
    if (this.vnetHeader) {
      header = this.txHeader;
      writeVirtioNetHeader(offload, header, 0);
    }
    const consumed = this.poller.writeFrame(frame, header);
    this.account(consumed);
    if (consumed === 1) return;
    this.enqueueCopy(frame, offload);
    this.poller.watchWritable(true);
  }

  /** Queues a copy of `frame`, with its virtio-net header when the fd has them, behind the backlog. */
  private enqueueCopy(frame: Uint8Array, offload: FrameOffload | undefined): void {
    const header = this.vnetHeader ? VIRTIO_NET_HDR_LENGTH : 0;
    const owned = new Uint8Array(header + frame.byteLength);
    if (header) writeVirtioNetHeader(offload, owned, 0);
    owned.set(frame, header);
    this.enqueue(owned);
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.stats.dropsOut += this.backlog.length;
    this.backlog = [];
    this.poller.close();
  }

  /** Hands one batch from the poller to `onFrame`; the views die with the batch. */
  private readonly deliver = (count: number): void => {
    const meta = this.rxMeta;
    const stats = this.stats;
    for (let i = 0; i < count && !this.closed; i++) {
      const offset = meta[2 * i]!;
      const length = meta[2 * i + 1]!;
      if (length < MIN_FRAME || length > MAX_FRAME) {
        stats.dropsIn++;
        continue;
      }
      stats.framesIn++;
      stats.bytesIn += length;
      const offload = this.vnetHeader ? readVirtioNetHeader(this.rxBytes, offset - VIRTIO_NET_HDR_LENGTH, this.rxOffload) : undefined;
      this.onFrame(this.rxBytes.subarray(offset, offset + length), offload);
    }
  };

  private readonly flushTask = (): void => {
    this.flushQueued = false;
    this.flush();
  };

  /** Writes the frames collected in txSlab; what the fd does not take goes to the backlog. */
  private flush(): void {
    const count = this.txCount;
    if (count === 0 || this.closed) return;
    this.txCount = 0;
    this.txUsed = 0;
    const consumed = this.poller.writeSlab(count);
    this.account(consumed);
    if (consumed === count) return;
    for (let i = consumed; i < count; i++) {
      const offset = this.txMeta[2 * i]!;
      // A copy: the slab is refilled by the next send.
      this.enqueue(this.txBytes.slice(offset, offset + this.txMeta[2 * i + 1]!));
    }
    this.poller.watchWritable(true);
  }

  /** Called by the poller while the backlog waits and the fd can take more. */
  private readonly drain = (): void => {
    while (this.backlog.length > 0 && !this.closed) {
      const offered = this.backlog.length;
      const consumed = this.poller.writeFrames(this.backlog, 0);
      this.account(consumed);
      this.backlog.splice(0, consumed);
      // Fewer than offered (capped at one native batch) means the fd is full again.
      if (consumed === 0 || (consumed < offered && consumed < this.txBatchLimit)) return;
    }
    if (!this.closed) this.poller.watchWritable(false);
  };

  private readonly fail = (message: string): void => {
    if (this.closed) return;
    this.close();
    this.onClose(message);
  };

  private enqueue(owned: Uint8Array): void {
    if (this.backlog.length >= BACKLOG_LIMIT) {
      this.stats.dropsOut++;
      return;
    }
    this.backlog.push(owned);
  }

  /** Counts the result of one native write call of `consumed` frames. */
  private account(consumed: number): void {
    const status = this.poller.status;
    const failed = status[WRITE_STATUS.failed]!;
    this.stats.framesOut += consumed - failed;
    this.stats.bytesOut += status[WRITE_STATUS.bytes]!;
    this.stats.dropsOut += failed;
  }
}
