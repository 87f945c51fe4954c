/**
 * Buffers reused between host socket I/O calls instead of allocated per
 * call: at several Gbit/s, a new 64 KiB buffer per host read (and a new
 * staging buffer per 256 KiB written) kept V8's garbage collector busier than
 * the NAT itself.
 *
 * - Reads: a connection reads into one block at a time, after room for a
 *   segment's headers (SEGMENT_HEADROOM). A long read keeps the block: it
 *   goes into the send queue as it is (no copy), its segment is built around
 *   it in the block, and the block comes back when the guest has
 *   acknowledged all of it. A short read is copied out and the same block is
 *   read into again, so a queue of small reads never pins a block each.
 * - Writes: guest bytes are staged in a block and written to the socket in
 *   pieces; the block comes back when the write of its last piece completes.
 *
 * A pool keeps a bounded number of free blocks; beyond that they are left to
 * the garbage collector. Blocks are told apart by their ArrayBuffer's size,
 * so a pool's size must be one nothing else allocates.
 */

/** A read block holds one read; larger than libuv's 64 KiB so Node's own read buffers are never mistaken for one. */
export const READ_BLOCK_SIZE = 64 * 1024 + 4096;
/** Reads shorter than this are copied out of the block (at most half a block is ever wasted). */
export const SHORT_READ = READ_BLOCK_SIZE >>> 1;
/** A staging block (guest → host). */
export const STAGING_BLOCK_SIZE = 256 * 1024;

export class BlockPool {
  private readonly free: Buffer[] = [];

  constructor(
    readonly size: number,
    /** Free blocks kept at most. */
    private readonly keep: number,
  ) {}

  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }

  /** Returns the block behind `view` if it is one of this pool's size; nothing may use it afterwards. */
  readonly give = (view: Uint8Array): void => {
    const buffer = view.buffer;
    if (buffer.byteLength === this.size && this.free.length < this.keep) this.free.push(Buffer.from(buffer, 0, this.size));
  };

  /** Free blocks held (for tests). */
  get freeCount(): number {
    return this.free.length;
  }
}
