/**
 * The host's UDP sockets for the NAT and the UDP port forwards
 * (src/nat/udp-nat.ts, src/nat/port-forwarder.ts), through the native addon
 * (native/src/udp.c): recvmmsg and sendmmsg in batches.
 *
 * Theory of operation
 * - One NativeUdpSockets per NAT (or forwarder); its sockets share one set of
 *   buffers, so thousands of flows do not cost thousands of slabs.
 * - fromHost: a socket's batch (up to 64 datagrams) comes in one native call
 *   and goes to its `received` handler as views into the shared slab, each
 *   with UDP_HEADROOM bytes in front that the handler may overwrite. They are
 *   valid only during the call. Datagrams longer than a slot are dropped by
 *   the kernel's MSG_TRUNC and reported to `dropped`.
 * - toHost: `send` copies the payload into the shared txSlab and chains it to
 *   its socket's queue; the first send of a JS turn queues a flush (a
 *   microtask, which Node runs right after the native callback that delivered
 *   the guest's frames), and the flush sends each socket's queue with one
 *   sendmmsg. A full slab flushes at once. What the kernel does not take
 *   (EAGAIN) is dropped and counted: nothing waits beyond the turn.
 */
import { closeSync } from 'node:fs';
import { constants } from 'node:os';
import type { HostUdpBatch, HostUdpHandlers, HostUdpSocket, HostUdpSocketOptions, HostUdpSockets } from '../nat/udp-nat.js';
import { afterCall } from '../after-call.js';
import { nativeAddon, type NativeUdpBuffers, type NativeUdpSocket, UDP_HEADROOM, UDP_META_SLOTS, UDP_SEND_STATUS } from './native.js';

const ERRNO_NAMES = new Map<number, string>(Object.entries(constants.errno).map(([name, value]) => [value, name]));
/** Payloads are packed into txSlab at this alignment. */
const TX_ALIGN = 8;
const IPV6_ADDRESS_LENGTH = 16;
const NO_ENTRY = -1;

/**
 * Host UDP sockets sharing buffers for datagrams of up to `maxPayload` bytes
 * (longer ones are dropped as `udp:too-long`). Throws NativeAddonMissingError.
 */
export function openNativeUdpSockets(maxPayload: number): HostUdpSockets {
  return new NativeUdpSockets(maxPayload);
}

class NativeUdpSockets implements HostUdpSockets {
  private readonly addon = nativeAddon();
  private readonly buffers: NativeUdpBuffers;
  private readonly txBytes: Uint8Array;
  private readonly txMeta: Uint32Array;
  /** txMeta as it was filled (arrival order), regrouped per socket into txMeta at flush. */
  private readonly queuedMeta: Uint32Array;
  /** Entry i's successor in its socket's queue. */
  private readonly queuedNext: Int32Array;
  private readonly txLimit: number;
  private txCount = 0;
  private txUsed = 0;
  /** Sockets with queued datagrams, in the order they first queued one this turn. */
  private pending: UdpSocket[] = [];
  private flushQueued = false;
  readonly batch: SlabBatch;
  /** `[failed, errno, segmented]` of the last native send (UDP_SEND_STATUS). */
  readonly sendStatus: Uint32Array;
  segmentedSends = 0;

  constructor(maxPayload: number) {
    this.buffers = new this.addon.UdpBuffers(maxPayload);
    this.batch = new SlabBatch(new Uint8Array(this.buffers.rxSlab), this.buffers.rxMeta);
    this.txBytes = new Uint8Array(this.buffers.txSlab);
    this.txMeta = this.buffers.txMeta;
    this.sendStatus = this.buffers.status;
    this.queuedMeta = new Uint32Array(this.txMeta.length);
    this.txLimit = this.txMeta.length / UDP_META_SLOTS;
    this.queuedNext = new Int32Array(this.txLimit);
  }

  open(options: HostUdpSocketOptions, handlers: HostUdpHandlers): HostUdpSocket {
    const { fd, port } = this.addon.openUdpSocket(options);
    const socket = new UdpSocket(this, port, handlers);
    let native: NativeUdpSocket;
    try {
      native = new this.addon.UdpSocket(fd, this.buffers, socket.onDatagrams, socket.onError);
    } catch (err) {
      closeSync(fd); // still ours
      throw err;
    }
    socket.start(native);
    return socket;
  }

  /** Copies `payload` into txSlab behind `socket`'s queue; flushes first when the slab is full. */
  queue(socket: UdpSocket, payload: Uint8Array, address: number, port: number, address6: Uint8Array | undefined): void {
    const length = payload.length; // at most 65507 (IPv4): far less than the slab
    if (this.txCount === this.txLimit || this.txUsed + UDP_HEADROOM + length > this.txBytes.length) this.flush();
    const offset = this.txUsed + UDP_HEADROOM;
    const entry = this.txCount++;
    this.txUsed = Math.ceil((offset + length) / TX_ALIGN) * TX_ALIGN;
    this.txBytes.set(payload, offset);
    if (address6 !== undefined) this.txBytes.set(address6.subarray(0, IPV6_ADDRESS_LENGTH), offset - UDP_HEADROOM);
    const meta = this.queuedMeta;
    const at = entry * UDP_META_SLOTS;
    meta[at] = offset;
    meta[at + 1] = length;
    meta[at + 2] = address6 !== undefined ? 0 : address;
    meta[at + 3] = port;
    this.queuedNext[entry] = NO_ENTRY;
    if (socket.queueTail === NO_ENTRY) {
      socket.queueHead = entry;
      this.pending.push(socket);
    } else {
      this.queuedNext[socket.queueTail] = entry;
    }
    socket.queueTail = entry;
    if (!this.flushQueued) {
      this.flushQueued = true;
      afterCall(this.flushTask);
    }
  }

  private readonly flushTask = (): void => {
    this.flushQueued = false;
    this.flush();
  };

  /**
   * Sends every socket's queue, one sendmmsg per socket; then tells the
   * sockets' handlers what was lost (after all sends, so a handler that sends
   * cannot overwrite what is still to go).
   */
  private flush(): void {
    const sockets = this.pending;
    if (sockets.length === 0) return;
    this.pending = [];
    const meta = this.txMeta;
    const queued = this.queuedMeta;
    let losses: UdpSocket[] | undefined;
    for (const socket of sockets) {
      // The socket's entries, in order, to the start of txMeta.
      let count = 0;
      for (let entry = socket.queueHead; entry !== NO_ENTRY; entry = this.queuedNext[entry]!) {
        const from = entry * UDP_META_SLOTS;
        const to = count++ * UDP_META_SLOTS;
        meta[to] = queued[from]!;
        meta[to + 1] = queued[from + 1]!;
        meta[to + 2] = queued[from + 2]!;
        meta[to + 3] = queued[from + 3]!;
      }
      socket.queueHead = NO_ENTRY;
      socket.queueTail = NO_ENTRY;
      if (!socket.sendQueued(count)) (losses ??= []).push(socket);
    }
    this.txCount = 0;
    this.txUsed = 0;
    for (const socket of losses ?? []) socket.reportLosses();
  }
}

/** The view of one received batch over the shared slab (HostUdpBatch). */
class SlabBatch implements HostUdpBatch {
  count = 0;
  /** The socket whose batch this is, during its `received` call. */
  owner: UdpSocket | undefined;
  constructor(
    private readonly bytes: Uint8Array,
    private readonly meta: Uint32Array,
  ) {}

  payload(i: number): Uint8Array {
    const offset = this.meta[i * UDP_META_SLOTS]!;
    return this.bytes.subarray(offset, offset + this.meta[i * UDP_META_SLOTS + 1]!);
  }

  address(i: number): number {
    return this.meta[i * UDP_META_SLOTS + 2]!;
  }

  port(i: number): number {
    return this.meta[i * UDP_META_SLOTS + 3]!;
  }

  address6(i: number): Uint8Array {
    const offset = this.meta[i * UDP_META_SLOTS]! - UDP_HEADROOM;
    return this.bytes.subarray(offset, offset + IPV6_ADDRESS_LENGTH);
  }
}

class UdpSocket implements HostUdpSocket {
  /** First and last entry of this socket's send queue in the group's txSlab. */
  queueHead = NO_ENTRY;
  queueTail = NO_ENTRY;
  private closed = false;
  private native!: NativeUdpSocket;
  /** What the last send lost: not taken (EAGAIN), refused (with the last errno). */
  private unsent = 0;
  private failed = 0;
  private failedErrno = 0;

  constructor(
    private readonly group: NativeUdpSockets,
    readonly port: number,
    readonly handlers: HostUdpHandlers,
  ) {}

  /** Starts reading through `native`, which owns the fd from now on (closed here if it cannot start). */
  start(native: NativeUdpSocket): void {
    this.native = native;
    try {
      native.start();
    } catch (err) {
      this.close();
      throw err;
    }
  }

  send(payload: Uint8Array, address = 0, port = 0, address6?: Uint8Array): void {
    if (this.closed) return this.handlers.dropped('udp:socket-closed', 1);
    this.group.queue(this, payload, address, port, address6);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const batch = this.group.batch;
    if (batch.owner === this) batch.count = 0; // closed inside its `received`: the rest is not looked at
    this.native.close();
  }

  /** Sends txMeta entries [0, count): this socket's queue. False if some were lost (see reportLosses). */
  sendQueued(count: number): boolean {
    if (this.closed) return true; // what was queued went with the socket
    const consumed = this.native.send(0, count);
    const status = this.group.sendStatus;
    this.unsent = count - consumed;
    this.failed = status[UDP_SEND_STATUS.failed]!;
    this.failedErrno = status[UDP_SEND_STATUS.errno]!;
    this.group.segmentedSends += status[UDP_SEND_STATUS.segmented]!;
    return this.unsent === 0 && this.failed === 0;
  }

  /** Tells the handlers what the last send lost. */
  reportLosses(): void {
    if (this.unsent > 0) this.handlers.dropped('udp:send-would-block', this.unsent);
    if (this.failed === 0) return;
    const code = ERRNO_NAMES.get(this.failedErrno) ?? 'EIO';
    // A pending ICMP port unreachable surfaces on whichever call comes first: report it as the receive side would.
    if (code === 'ECONNREFUSED') this.handlers.error(code, false);
    else this.handlers.dropped('udp:send-failed', this.failed);
  }

  readonly onDatagrams = (count: number, truncated: number): void => {
    if (this.closed) return;
    if (truncated > 0) this.handlers.dropped('udp:too-long', truncated);
    if (count === 0 || this.closed) return;
    const batch = this.group.batch;
    batch.count = count;
    batch.owner = this;
    try {
      this.handlers.received(batch);
    } finally {
      batch.owner = undefined;
    }
  };

  readonly onError = (code: string, fatal: boolean): void => {
    if (this.closed) return;
    if (fatal) this.closed = true; // the native side closes it when this returns
    this.handlers.error(code, fatal);
  };
}
