/**
 * The TCP NAT's host streams on the addon's sockets (native/src/tcp_sockets.c):
 * what the daemon gives `TcpNat` instead of a net.Socket per connection.
 *
 * Theory of operation
 * - One `NativeHostStreams` per NAT owns a native `TcpSockets`; each stream
 *   is a slot in it, and so is each port forward's listener. The addon
 *   reports poll events per slot; the stream reads, writes and shuts down
 *   through plain calls; a listener accepts into new slots.
 * - Connect: connect(2) runs at once. On loopback the handshake is done when
 *   it returns: the stream is connected from the start and says so once the
 *   call that opened it has returned (src/after-call.ts), so the guest's
 *   SYN-ACK leaves in the SYN's I/O round.
 * - Reading: level-triggered polling while neither paused nor at end of
 *   file; each readable event reads into the connection's block until the
 *   kernel has no more (at most READS_PER_EVENT reads, so that one busy
 *   connection does not starve the others).
 * - Writing: straight to the kernel; what it does not take waits in a queue
 *   polled for writability, and `end()` shuts down once that is empty.
 *   `tryWrite()` gives the kernel what it takes now and keeps nothing;
 *   `tryWriteGathered()` the same for several buffers in one sendmsg(2). A
 *   failed write or shutdown is reported after the call, never inside
 *   `write()` or `end()`.
 * - Closing: a stream whose both directions ended closes its fd, as Node's
 *   sockets do; `destroy()`/`reset()` close at once. The second FIN (the
 *   host's end of file after our shutdown, or our shutdown after it) and
 *   that close wait until the loop would sleep, 1 ms at most (when-idle.ts).
 *   Errors (a refused connect, ECONNRESET) report `onHostError(code)` then
 *   `onHostClose()`.
 * - Splicing: an accepted connection can instead be joined in the kernel to
 *   one made inside a guest's network namespace (`spliceAccepted`); the pair
 *   is the addon's until it ends, and JS hears of it once.
 */
import { constants } from 'node:os';
import { getSystemErrorName } from 'node:util';
import type { AcceptedHostSocket, HostStream, HostStreamEvents, HostTcpListener } from '../nat/tcp/host-stream.js';
import { afterCall } from '../after-call.js';
import { nativeAddon, TCP_POLL, TCP_STATE, type NativeTcpSockets } from './native.js';
import { whenIdle } from './when-idle.js';

const EAGAIN = -constants.errno.EAGAIN;
/** Reads per readable event at most (libuv's streams stop at 32). */
const READS_PER_EVENT = 32;

export class NativeHostStreams {
  readonly native: NativeTcpSockets;
  /** What each slot is: a connection's stream or a listener. */
  private readonly slots: Array<Slot | undefined> = [];
  private closed = false;

  constructor() {
    this.native = new (nativeAddon().TcpSockets)(this.onEvent);
  }

  /** An `OpenHostStream` (src/nat/tcp/host-stream.ts); from `bindAddress` when given. */
  readonly open = (host: string, port: number, events: HostStreamEvents, bindAddress?: string): HostStream => {
    let id: number;
    try {
      id = this.closed ? -constants.errno.ECANCELED : this.native.connect(host, port, null, bindAddress);
    } catch {
      id = -constants.errno.EINVAL; // not an IP address: a refusal for the guest, not a crash
    }
    if (id < 0) return NativeHostStream.failed(id, events);
    const connected = this.native.state(id) === TCP_STATE.ESTABLISHED;
    return this.register(new NativeHostStream(this, id, events, !connected));
  };

  /** A `ListenHostTcp`: a listening slot whose connections are slots too, never net.Sockets. */
  readonly listen = (host: string, port: number, onAccept: (socket: AcceptedHostSocket) => void): Promise<HostTcpListener> => {
    let id: number;
    try {
      id = this.closed ? -constants.errno.ECANCELED : this.native.listen(host, port);
    } catch (err) {
      return Promise.reject(err);
    }
    if (id < 0) return Promise.reject(errnoError(id, `listen ${host}:${port}`));
    const listener = new NativeListener(this, id, onAccept);
    this.slots[id] = listener;
    this.native.poll(id, TCP_POLL.READABLE);
    return Promise.resolve(listener);
  };

  /** An accepted slot becomes a connection's stream. */
  openAccepted(id: number, events: HostStreamEvents): HostStream {
    return this.register(new NativeHostStream(this, id, events, false));
  }

  /** Closes every stream, those still held elsewhere too (no events follow). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.native.closeAll();
    for (const slot of this.slots) slot?.markClosed();
    this.slots.length = 0;
  }

  /** The slot was closed. */
  forget(id: number): void {
    this.slots[id] = undefined;
  }

  /**
   * Joins accepted slot `id` in the kernel to a connection to host:port made
   * in the namespace `netnsFd` (native/src/tcp_splice.c). That connection is
   * bound to `host` itself, so it goes ahead only when `host` is an address
   * of the namespace; else (EADDRNOTAVAIL) false, nothing changed. A connect
   * there that connect(2) leaves in progress (softirqs deferred under load)
   * is spliced all the same: the pair moves bytes once it completes. A
   * refusal, now or then, resets the client (a pair the addon cannot make
   * too): true.
   */
  spliceAccepted(id: number, host: string, port: number, netnsFd: number, ended: (error: string | undefined) => void): boolean {
    if (this.closed) return false;
    let inner: number;
    try {
      inner = this.native.connect(host, port, netnsFd, host);
    } catch {
      return false; // not an IP address: the NIC's path says what becomes of it
    }
    const refused = inner === -constants.errno.ECONNREFUSED || (inner >= 0 && this.native.connectError(inner) === constants.errno.ECONNREFUSED);
    if (inner < 0 && !refused) return false;
    if (refused || this.native.splice(id, inner) < 0) {
      if (inner >= 0) this.native.close(inner, false);
      this.native.close(id, true);
      this.forget(id);
      ended(refused ? 'ECONNREFUSED' : 'EIO');
      return true;
    }
    const pair = new SplicedPair(this, id, inner, ended);
    this.slots[id] = pair;
    this.slots[inner] = pair;
    return true;
  }

  /** Closes an accepted slot nobody took (unless everything is closed already). */
  closeUnclaimed(id: number): void {
    if (this.closed) return;
    this.native.close(id, false);
    this.forget(id);
  }

  private register(stream: NativeHostStream): NativeHostStream {
    this.slots[stream.id] = stream;
    stream.start();
    return stream;
  }

  private readonly onEvent = (id: number, events: number): void => {
    this.slots[id]?.onPoll(events);
  };
}

interface Slot {
  onPoll(events: number): void;
  /** Its NAT closed every socket: nothing to release, nothing more to do. */
  markClosed(): void;
}

function errnoError(negativeErrno: number, what: string): NodeJS.ErrnoException {
  const code = errnoName(negativeErrno);
  return Object.assign(new Error(`${what}: ${code}`), { code, errno: negativeErrno });
}

/** A listener that cannot accept (out of fds) rests this long instead of spinning on its readable socket. */
const ACCEPT_BACKOFF_MS = 100;

class NativeListener implements Slot, HostTcpListener {
  readonly port: number;
  private closed = false;
  private backoff: NodeJS.Timeout | undefined;

  constructor(
    private readonly owner: NativeHostStreams,
    private readonly id: number,
    private readonly onAccept: (socket: AcceptedHostSocket) => void,
  ) {
    this.port = owner.native.localPort(id);
  }

  /**
   * One connection per readable event. Its first frame toward the guest (a
   * forward's SYN) goes out when the event's JS returns, before any other
   * accept(2); the poll is level-triggered, so the loop's next turn comes
   * back for the rest of the queue, and the accept(2) that would find it
   * empty (EAGAIN) is never made.
   */
  onPoll(events: number): void {
    if (this.closed) return;
    const native = this.owner.native;
    const child = native.accept(this.id);
    if (child < 0) {
      // EAGAIN: nothing after all; ECONNABORTED: that client gave up (the poll says if another is there);
      // EMFILE and the like, or a failed poll: rest.
      if ((child !== EAGAIN && child !== -constants.errno.ECONNABORTED) || events < 0) this.rest();
      return;
    }
    const peer = native.peer(child);
    const owner = this.owner;
    this.onAccept({
      peerIp: Math.floor(peer / 65536),
      peerPort: peer % 65536,
      open: (streamEvents) => owner.openAccepted(child, streamEvents),
      close: () => owner.closeUnclaimed(child),
      splice: (host, port, netnsFd, ended) => owner.spliceAccepted(child, host, port, netnsFd, ended),
    });
  }

  close(): void {
    if (this.closed) return;
    this.markClosed();
    this.owner.native.close(this.id, false);
    this.owner.forget(this.id);
  }

  markClosed(): void {
    this.closed = true;
    if (this.backoff !== undefined) clearTimeout(this.backoff);
  }

  private rest(): void {
    if (this.backoff !== undefined) return;
    this.owner.native.poll(this.id, 0);
    this.backoff = setTimeout(() => {
      this.backoff = undefined;
      if (!this.closed) this.owner.native.poll(this.id, TCP_POLL.READABLE);
    }, ACCEPT_BACKOFF_MS);
    this.backoff.unref();
  }
}

/** Two slots the addon moves bytes between; it reports once, on the first slot, when they are done (and closed). */
class SplicedPair implements Slot {
  constructor(
    private readonly owner: NativeHostStreams,
    private readonly outer: number,
    private readonly inner: number,
    private readonly ended: (error: string | undefined) => void,
  ) {}

  onPoll(events: number): void {
    this.owner.forget(this.outer);
    this.owner.forget(this.inner);
    this.ended(events === TCP_POLL.SPLICE_ENDED ? undefined : errnoName(events));
  }

  markClosed(): void {}
}

function errnoName(negativeErrno: number): string {
  try {
    return getSystemErrorName(negativeErrno);
  } catch {
    return 'EIO';
  }
}

class NativeHostStream implements HostStream, Slot {
  private mask = 0;
  private paused = false;
  private readEnded = false;
  private ended = false;
  private shutDown = false;
  private closed = false;
  private pending: Uint8Array[] = [];
  private callbacks: Array<(() => void) | undefined> = [];
  private pendingBytes = 0;

  constructor(
    private readonly owner: NativeHostStreams | null,
    readonly id: number,
    private readonly events: HostStreamEvents,
    private connecting: boolean,
  ) {}

  /** A stream whose connect(2) failed at once: it reports the error after the call. */
  static failed(negativeErrno: number, events: HostStreamEvents): NativeHostStream {
    const stream = new NativeHostStream(null, -1, events, false);
    stream.closed = true;
    afterCall(() => {
      events.onHostError(errnoName(negativeErrno));
      events.onHostClose();
    });
    return stream;
  }

  get writableLength(): number {
    return this.pendingBytes;
  }

  get destroyed(): boolean {
    return this.closed;
  }

  get writableEnded(): boolean {
    return this.ended;
  }

  start(): void {
    this.updatePoll();
    if (!this.connecting) afterCall(() => this.closed || this.events.onHostConnect());
  }

  write(data: Uint8Array, written?: () => void): void {
    if (this.closed || this.ended) return;
    if (this.pending.length === 0 && !this.connecting) {
      const n = this.sendNow(data);
      if (n === data.length || (n < 0 && n !== EAGAIN)) {
        written?.(); // with the kernel, or dropped with the connection: either way the buffer is free
        return;
      }
      if (n > 0) data = data.subarray(n);
    }
    this.pending.push(data);
    this.callbacks.push(written);
    this.pendingBytes += data.length;
    this.updatePoll();
  }

  tryWrite(data: Uint8Array): number {
    if (this.closed || this.ended || this.connecting || this.pending.length > 0) return 0;
    return Math.max(0, this.sendNow(data));
  }

  tryWriteGathered(chunks: readonly Uint8Array[]): number {
    if (this.closed || this.ended || this.connecting || this.pending.length > 0) return 0;
    return Math.max(0, this.sent(this.owner!.native.writev(this.id, chunks)));
  }

  /** One send(2) of `data`: the bytes taken, or a negative errno. */
  private sendNow(data: Uint8Array): number {
    return this.sent(this.owner!.native.write(this.id, data, 0, data.length));
  }

  /** A send's result, passed on; a failure other than EAGAIN is reported after the call. */
  private sent(n: number): number {
    if (n < 0 && n !== EAGAIN) afterCall(() => this.fail(n));
    return n;
  }

  end(): void {
    if (this.closed || this.ended) return;
    this.ended = true;
    if (this.pending.length > 0 || this.connecting) return; // the FIN follows the queued writes (or the connect)
    // The host closed first: this FIN and the fd's close complete the
    // connection, and nobody waits for them (see read()).
    if (this.readEnded) return void whenIdle(() => this.shutdownIfOpen());
    // At once, in the order the guest closed: a peer that serves one
    // connection at a time reads this end of file before it accepts the next.
    this.shutdown();
  }

  pause(): void {
    this.paused = true;
    this.updatePoll();
  }

  resume(): void {
    this.paused = false;
    this.updatePoll();
  }

  destroy(): void {
    this.close(false);
  }

  reset(): void {
    this.close(true);
  }

  wasReset(): boolean {
    return !this.closed && this.owner!.native.state(this.id) === TCP_STATE.CLOSE;
  }

  onPoll(events: number): void {
    if (events < 0) {
      // libuv's uv_poll reports a socket error (POLLERR) as EBADF and stops polling: SO_ERROR has the real one.
      const err = this.owner!.native.connectError(this.id);
      return this.fail(err !== 0 ? -err : events);
    }
    if (this.connecting) {
      const err = this.owner!.native.connectError(this.id);
      if (err !== 0) return this.fail(-err);
      this.connecting = false;
      this.events.onHostConnect();
      if (this.closed) return;
      this.writePending();
      if (this.ended && this.pending.length === 0 && !this.closed) this.shutdown();
    } else {
      if ((events & TCP_POLL.WRITABLE) !== 0) this.writePending();
      if ((events & TCP_POLL.READABLE) !== 0 && !this.closed) this.read();
    }
    if (!this.closed) this.updatePoll();
  }

  readNow(): void {
    if (this.closed || this.connecting) return;
    this.read();
    if (!this.closed) this.updatePoll();
  }

  private read(): void {
    const native = this.owner!.native;
    for (let i = 0; i < READS_PER_EVENT && !this.paused && !this.readEnded && !this.closed; i++) {
      const block = this.events.nextReadBlock();
      const n = native.read(this.id, block);
      if (n > 0) {
        this.events.onHostRead(n, block);
        if (n < block.length) return;
      } else if (n === 0) {
        this.readEnded = true;
        // After ours, the host's FIN ends a connection whose guest closed
        // first: what is left (the FIN to the guest, the fd's close) waits
        // until the loop would sleep, as nobody waits for it; in front of the
        // next connection's SYN or request it would delay them.
        if (this.shutDown) whenIdle(() => this.endOfFile());
        else this.endOfFile();
        return;
      } else {
        if (n !== EAGAIN) this.fail(n);
        return;
      }
    }
  }

  private endOfFile(): void {
    if (this.closed) return;
    this.events.onHostEnd();
    this.finishIfDone();
  }

  private writePending(): void {
    const native = this.owner!.native;
    const hadPending = this.pending.length > 0;
    while (this.pending.length > 0 && !this.closed) {
      const data = this.pending[0]!;
      const n = native.write(this.id, data, 0, data.length);
      if (n < 0) {
        if (n !== EAGAIN) this.fail(n);
        return;
      }
      this.pendingBytes -= n;
      if (n < data.length) {
        this.pending[0] = data.subarray(n);
        return;
      }
      this.pending.shift();
      this.callbacks.shift()?.();
    }
    if (!hadPending || this.closed) return;
    this.events.onHostDrain();
    if (this.ended && this.pending.length === 0 && !this.closed) this.shutdown();
  }

  private shutdownIfOpen(): void {
    if (!this.closed) this.shutdown();
  }

  private shutdown(): void {
    const err = this.owner!.native.shutdown(this.id);
    // After the call, as every failure here: whoever got us here (a write
    // completing, a connect) may be inside the connection's own state change.
    if (err < 0) return void afterCall(() => this.fail(err));
    this.shutDown = true;
    this.finishIfDone();
  }

  /**
   * Both directions ended: close the fd, as Node does for a socket that
   * allows half-open, and say so after the call (Node: on the next tick):
   * the call that got here (an `end()`) may come before its caller's state
   * change.
   */
  private finishIfDone(): void {
    if (!this.readEnded || !this.shutDown || this.closed) return;
    this.close(false);
    afterCall(() => this.events.onHostClose());
  }

  private fail(negativeErrno: number): void {
    if (this.closed) return;
    this.close(false);
    this.events.onHostError(errnoName(negativeErrno));
    this.events.onHostClose();
  }

  /** Its NAT closed every socket: nothing to release, nothing more to do. */
  markClosed(): void {
    this.closed = true;
    this.pending = [];
    this.callbacks = [];
    this.pendingBytes = 0;
  }

  private close(reset: boolean): void {
    if (this.closed) return;
    this.closed = true;
    this.owner!.native.close(this.id, reset);
    this.owner!.forget(this.id);
    // Writes that never reached the kernel: their buffers are free again (as Node's callbacks with an error).
    const callbacks = this.callbacks;
    this.pending = [];
    this.callbacks = [];
    this.pendingBytes = 0;
    for (const callback of callbacks) callback?.();
  }

  private updatePoll(): void {
    let mask = 0;
    if (this.connecting) mask = TCP_POLL.WRITABLE;
    else {
      if (!this.paused && !this.readEnded) mask |= TCP_POLL.READABLE;
      if (this.pending.length > 0) mask |= TCP_POLL.WRITABLE;
    }
    if (mask === this.mask || this.closed) return;
    this.mask = mask;
    this.owner!.native.poll(this.id, mask);
  }
}
