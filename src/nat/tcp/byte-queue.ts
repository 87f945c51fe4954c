/**
 * The bytes read from a host socket and not yet acknowledged by the guest:
 * a queue of the socket's own chunks (kept as read, never copied) from which
 * segments are cut at any offset. Bytes leave from the front when the guest
 * acknowledges them.
 *
 * A cursor remembers where the last copy ended, so cutting a window into
 * segments walks the chunks once rather than once per segment. `chunkAt`
 * hands out a chunk itself when a segment is exactly one chunk's front, so
 * the segment can be built around it without a copy.
 *
 * `release` gets each chunk once no byte of it is queued any more (consumed
 * or cleared), so its buffer can be reused.
 */

export class ByteQueue {
  private chunks: Uint8Array[] = [];
  /** Index of the first live chunk. */
  private head = 0;
  /** Bytes of `chunks[head]` already consumed. */
  private headOffset = 0;
  /** Chunk the cursor is on, and the queue offset where that chunk's bytes start (may be negative for the head chunk). */
  private cursorChunk = 0;
  private cursorStart = 0;
  /** Bytes queued. */
  length = 0;

  constructor(private readonly release: (chunk: Uint8Array) => void = () => {}) {}

  /** Appends `chunk`; the queue keeps the reference, so the caller must not reuse it. */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** Drops `n` bytes (at most `length`) from the front. */
  consume(n: number): void {
    if (n <= 0) return;
    if (n >= this.length) {
      this.clear();
      return;
    }
    this.length -= n;
    this.cursorStart -= n;
    let left = n + this.headOffset;
    while (left >= this.chunks[this.head]!.length) {
      left -= this.chunks[this.head]!.length;
      this.release(this.chunks[this.head]!);
      this.chunks[this.head] = EMPTY;
      this.head++;
    }
    this.headOffset = left;
    if (this.cursorChunk < this.head) this.resetCursor();
    if (this.head >= 64 && this.head * 2 >= this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.cursorChunk -= this.head;
      this.head = 0;
    }
  }

  /** Copies `length` bytes starting `offset` bytes from the front into `into` at `at`. The range must be queued. */
  copyTo(offset: number, length: number, into: Uint8Array, at: number): void {
    this.seek(offset);
    const chunks = this.chunks;
    let c = this.cursorChunk;
    let from = offset - this.cursorStart;
    let left = length;
    while (left > 0) {
      const chunk = chunks[c]!;
      const n = Math.min(left, chunk.length - from);
      into.set(n === chunk.length ? chunk : chunk.subarray(from, from + n), at);
      at += n;
      left -= n;
      from = 0;
      c++;
    }
  }

  /**
   * The chunk whose first byte is `offset` bytes from the front, if the
   * `length` bytes from there lie within it; otherwise undefined. The range
   * must be queued.
   */
  chunkAt(offset: number, length: number): Uint8Array | undefined {
    this.seek(offset);
    const chunk = this.chunks[this.cursorChunk]!;
    return this.cursorStart === offset && length <= chunk.length ? chunk : undefined;
  }

  /** Drops everything. */
  clear(): void {
    for (let i = this.head; i < this.chunks.length; i++) this.release(this.chunks[i]!);
    this.chunks = [];
    this.head = 0;
    this.headOffset = 0;
    this.length = 0;
    this.resetCursor();
  }

  /** Moves the cursor to the chunk that holds the byte `offset` from the front (which must be queued). */
  private seek(offset: number): void {
    if (offset < this.cursorStart) this.resetCursor();
    const chunks = this.chunks;
    let c = this.cursorChunk;
    let start = this.cursorStart;
    while (start + chunks[c]!.length <= offset) {
      start += chunks[c]!.length;
      c++;
    }
    this.cursorChunk = c;
    this.cursorStart = start;
  }

  private resetCursor(): void {
    this.cursorChunk = this.head;
    this.cursorStart = -this.headOffset;
  }
}

const EMPTY = new Uint8Array(0);
