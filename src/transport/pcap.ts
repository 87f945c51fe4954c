/**
 * Packet capture to a classic libpcap file (`--nic-trace<N>`), readable by
 * Wireshark and tshark while the capture is still running.
 *
 * Theory of operation:
 * - Format (libpcap "pcap" file, draft-ietf-opsawg-pcap §4–§5): a 24-byte
 *   file header — magic 0xa1b2c3d4 (microsecond timestamps) written in this
 *   host's byte order (readers detect the order from it), version 2.4,
 *   snaplen 65535, link type 1 (LINKTYPE_ETHERNET) — then per frame a 16-byte
 *   record header (seconds, microseconds, captured length, original length)
 *   and the frame, cut to the snaplen.
 * - `write` copies the record into a 256 KiB chunk: no syscall per frame. A
 *   full chunk is queued and written with one `write(2)`; a partly filled one
 *   is queued at most `flushMs` (100 ms) after its first frame, so a reader
 *   sees a capture at most that far behind.
 * - One write is in flight at a time. Queued plus unwritten bytes are bounded
 *   (`maxBufferedBytes`, 8 MiB): when the disk is slower than the network,
 *   frames are dropped and counted rather than held in memory.
 * - After a write error the capture stops; frames are counted as dropped and
 *   `stats.error` says why. Capturing never disturbs forwarding.
 */
import { close as closeFd, openSync, write as writeFd, writeSync } from 'node:fs';
import { TransportError } from './qemu-stream.js';

/** Largest captured length per frame; longer frames are cut (original length kept). */
export const PCAP_SNAPLEN = 65535;
/** LINKTYPE_ETHERNET. */
export const LINKTYPE_ETHERNET = 1;
/** Bytes gathered before one write. */
export const PCAP_CHUNK_BYTES = 256 * 1024;
/** Default cap on bytes waiting for the disk. */
export const PCAP_MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
/** Default longest time a frame waits in memory. */
export const PCAP_FLUSH_MS = 100;

const FILE_HEADER_LENGTH = 24;
const RECORD_HEADER_LENGTH = 16;
const MAGIC_MICROSECONDS = 0xa1b2c3d4;

export interface PcapOptions {
  flushMs?: number;
  maxBufferedBytes?: number;
}

export interface PcapStats {
  /** Frames accepted into the capture. */
  frames: number;
  /** Frames accepted but cut to the snaplen. */
  truncated: number;
  /** Frames not captured: buffer full, write error, or written after close. */
  dropped: number;
  /** Bytes of file written so far, headers included. */
  bytesWritten: number;
  /** The write error that stopped the capture, if any. */
  error: string | undefined;
}

/** A chunk on its way to disk. */
interface Pending {
  buffer: Buffer;
  length: number;
  frames: number;
}

/** Writes frames to a pcap file through a bounded in-memory buffer. */
export class PcapWriter {
  readonly stats: PcapStats = { frames: 0, truncated: 0, dropped: 0, bytesWritten: FILE_HEADER_LENGTH, error: undefined };
  private readonly flushMs: number;
  private readonly maxBufferedBytes: number;
  private chunk: Buffer = Buffer.allocUnsafe(PCAP_CHUNK_BYTES);
  private chunkFill = 0;
  private chunkFrames = 0;
  /** One emptied chunk kept for reuse, so a steady capture allocates nothing. */
  private spare: Buffer | undefined;
  private readonly queue: Pending[] = [];
  private queuedBytes = 0;
  private writing = false;
  private timer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;
  private drained: (() => void) | undefined;

  private constructor(
    private readonly fd: number,
    readonly path: string,
    options: PcapOptions,
  ) {
    this.flushMs = options.flushMs ?? PCAP_FLUSH_MS;
    this.maxBufferedBytes = options.maxBufferedBytes ?? PCAP_MAX_BUFFERED_BYTES;
  }

  /**
   * Create (or truncate) `path`, mode 0600 (captures hold guests' traffic),
   * and write the file header.
   * @throws TransportError if the file cannot be created.
   */
  static open(path: string, options: PcapOptions = {}): PcapWriter {
    let fd: number;
    try {
      fd = openSync(path, 'w', 0o600);
    } catch (err) {
      throw TransportError.fromSystem(`capture file ${path}`, err);
    }
    const header = Buffer.alloc(FILE_HEADER_LENGTH);
    header.writeUInt32LE(MAGIC_MICROSECONDS, 0);
    header.writeUInt16LE(2, 4); // version major
    header.writeUInt16LE(4, 6); // version minor
    // thiszone (4) and sigfigs (4) stay 0: timestamps are UTC.
    header.writeUInt32LE(PCAP_SNAPLEN, 16);
    header.writeUInt32LE(LINKTYPE_ETHERNET, 20);
    try {
      writeSync(fd, header);
    } catch (err) {
      closeFd(fd, () => {});
      throw TransportError.fromSystem(`capture file ${path}`, err);
    }
    return new PcapWriter(fd, path, options);
  }

  /** Capture one frame (copied) stamped `timeMs` since the Unix epoch, default now. */
  write(frame: Uint8Array, timeMs: number = performance.timeOrigin + performance.now()): void {
    if (this.closing !== undefined || this.stats.error !== undefined) {
      this.stats.dropped++;
      return;
    }
    const captured = Math.min(frame.length, PCAP_SNAPLEN);
    const record = RECORD_HEADER_LENGTH + captured;
    if (this.chunkFill + record > this.chunk.length) this.seal();
    if (this.queuedBytes + this.chunkFill + record > this.maxBufferedBytes) {
      this.stats.dropped++;
      return;
    }
    const seconds = Math.floor(timeMs / 1000);
    const micros = Math.min(999_999, Math.floor((timeMs - seconds * 1000) * 1000));
    const chunk = this.chunk;
    let at = this.chunkFill;
    // Unsigned 32-bit seconds: fine until 2106.
    chunk.writeUInt32LE(seconds >>> 0, at);
    chunk.writeUInt32LE(micros, at + 4);
    chunk.writeUInt32LE(captured, at + 8);
    chunk.writeUInt32LE(frame.length >>> 0, at + 12);
    at += RECORD_HEADER_LENGTH;
    chunk.set(captured === frame.length ? frame : frame.subarray(0, captured), at);
    this.chunkFill = at + captured;
    this.chunkFrames++;
    this.stats.frames++;
    if (captured !== frame.length) this.stats.truncated++;
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.seal();
    }, this.flushMs).unref();
  }

  /** Start writing whatever is buffered now. */
  flush(): void {
    this.seal();
  }

  /** Write everything buffered, then close the file. Idempotent; always resolves. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.timer !== undefined) clearTimeout(this.timer);
      this.timer = undefined;
      this.seal();
      if (this.writing || this.queue.length > 0) {
        await new Promise<void>((resolve) => (this.drained = resolve));
      }
      await new Promise<void>((resolve) => closeFd(this.fd, () => resolve()));
    })();
    return this.closing;
  }

  /** Queue the current chunk for disk and start a fresh one. */
  private seal(): void {
    if (this.chunkFill === 0) return;
    this.queue.push({ buffer: this.chunk, length: this.chunkFill, frames: this.chunkFrames });
    this.queuedBytes += this.chunkFill;
    this.chunk = this.spare ?? Buffer.allocUnsafe(PCAP_CHUNK_BYTES);
    this.spare = undefined;
    this.chunkFill = 0;
    this.chunkFrames = 0;
    this.pump(0);
  }

  /** Write the head of the queue from `offset`, one write at a time. */
  private pump(offset: number): void {
    if (this.writing && offset === 0) return;
    const head = this.queue[0];
    if (head === undefined) {
      this.writing = false;
      this.drained?.();
      this.drained = undefined;
      return;
    }
    this.writing = true;
    writeFd(this.fd, head.buffer, offset, head.length - offset, null, (err, written) => {
      if (err) {
        this.fail(err);
        return;
      }
      this.stats.bytesWritten += written;
      if (offset + written < head.length) {
        this.pump(offset + written); // short write: go on with the rest
        return;
      }
      this.queue.shift();
      this.queuedBytes -= head.length;
      this.spare ??= head.buffer;
      this.writing = false;
      this.pump(0);
    });
  }

  /** A write failed: stop capturing and count what was lost. */
  private fail(err: Error): void {
    this.stats.error = err.message;
    for (const pending of this.queue) this.stats.dropped += pending.frames;
    this.stats.dropped += this.chunkFrames;
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.chunkFill = 0;
    this.chunkFrames = 0;
    this.writing = false;
    this.drained?.();
    this.drained = undefined;
  }
}
