/**
 * Typed access to the native addon (native/src): TAP devices in a network
 * namespace, unix datagram sockets, and the batched frame poller. Loaded on
 * first use, so code that never opens a TAP runs without the addon built.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** What `openTap` returns. */
export interface OpenedTap {
  fd: number;
  /** The device's real name (the kernel picks one when asked for ''). */
  ifname: string;
  /** With `offload`: the kernel takes UDP super-datagrams written to it (virtio-net GSO_UDP_L4, Linux 6.2+). */
  udpSegmentation: boolean;
}

/** Flags for `openTap`. */
export interface OpenTapOptions {
  /** IFF_VNET_HDR: every frame carries a 10-byte virtio-net header. Off by default. */
  vnetHdr?: boolean;
  /** IFF_MULTI_QUEUE: must match how a persistent device was created. */
  multiQueue?: boolean;
  /** TUNSETOFFLOAD: checksum offload and TSO (needs vnetHdr). */
  offload?: boolean;
}

/** How the poller frames and addresses what it reads and writes. */
export interface PollerOptions {
  /** Bytes before each frame on the fd (10 with IFF_VNET_HDR); stripped on read, zeros added on write. */
  headerLength?: number;
  /** Frames given to write already start with their header (JS fills it); nothing is added. */
  txHeaderInFrame?: boolean;
  /** Datagram sockets: the unix socket path frames toward the guest go to. */
  peerPath?: string | null;
  /** Datagram sockets: take the peer from the sender of received datagrams. */
  learnPeer?: boolean;
}

/**
 * Frame I/O on one non-blocking fd, one JS call per batch of frames read.
 *
 * The buffers are created once and shared with C: `rxSlab` holds the frames
 * of the batch just read, described by `[offset, length]` pairs in `rxMeta`,
 * valid only during `onFrames`. JS fills `txSlab`/`txMeta` for `writeSlab`.
 * `status` is `[failed, bytes, errno]` of the last write call.
 */
export interface NativePoller {
  readonly rxSlab: ArrayBuffer;
  readonly rxMeta: Uint32Array;
  readonly txSlab: ArrayBuffer;
  readonly txMeta: Uint32Array;
  readonly status: Uint32Array;
  /** Begin reading. */
  start(): void;
  /** While on, `onWritable` is called whenever the fd can take more frames. */
  watchWritable(on: boolean): void;
  /** Writes the first `count` frames of txMeta; returns how many were consumed (written or failed) before EAGAIN. */
  writeSlab(count: number): number;
  /** Writes up to 64 frames from `frames[start]`; returns how many were consumed before EAGAIN. */
  writeFrames(frames: readonly Uint8Array[], start: number): number;
  /**
   * Writes one frame from its own buffer, `header` (a virtio-net header)
   * before it; an empty `header` means the Poller's default. Returns 1 if
   * consumed, 0 on EAGAIN.
   */
  writeFrame(frame: Uint8Array, header: Uint8Array): number;
  /** Stops polling and closes the fd. Idempotent; no callback runs after it. */
  close(): void;
}

/** Slots of `NativePoller.status`. */
export const WRITE_STATUS = { failed: 0, bytes: 1, errno: 2 } as const;

/** `new Poller(fd, onFrames, onWritable, onError, options)`. */
export interface NativePollerConstructor {
  /** Takes over `fd` when it returns; if it throws, the fd is still the caller's. */
  new (
    fd: number,
    onFrames: (count: number) => void,
    onWritable: () => void,
    onError: (message: string) => void,
    options?: PollerOptions,
  ): NativePoller;
}

/** What `openIcmpSocket` returns: a non-blocking ICMP socket and how it behaves. */
export interface OpenedIcmpSocket {
  fd: number;
  /**
   * 'ping': SOCK_DGRAM/IPPROTO_ICMP; the kernel sets the echo identifier and
   * checksum and delivers only this socket's replies, ICMP errors come from
   * the error queue. 'raw': SOCK_RAW; the caller writes every byte and sees
   * every echo reply, unreachable and time exceeded of the namespace.
   */
  kind: 'ping' | 'raw';
}

/**
 * Batched reads from an ICMP socket, one `onPackets(count)` call per batch.
 * Entry i of `rxMeta` is `[offset, length, address, info]` (4 slots): the
 * bytes in `rxSlab` are an ICMP message (a raw socket's IP header is already
 * skipped), valid only during `onPackets`. `info` 0: a message from `address`.
 * `info & ICMP_ERROR_QUEUE_ENTRY` (ping sockets): an ICMP error of type
 * `(info >> 8) & 0xff`, code `info & 0xff` about our request quoted in the
 * bytes, which went to `address`.
 */
export interface NativeIcmpReceiver {
  readonly rxSlab: ArrayBuffer;
  readonly rxMeta: Uint32Array;
  start(): void;
  /** Stops reading and closes the fd. Idempotent; no callback runs after it. */
  close(): void;
}

/** `info` bit of an error queue entry in `NativeIcmpReceiver.rxMeta`. */
export const ICMP_ERROR_QUEUE_ENTRY = 0x10000;
/** Slots per entry of `NativeIcmpReceiver.rxMeta`. */
export const ICMP_META_SLOTS = 4;

/** `new IcmpReceiver(fd, raw, onPackets, onError)`. */
export interface NativeIcmpReceiverConstructor {
  /** Takes over `fd` when it returns; if it throws, the fd is still the caller's. */
  new (fd: number, raw: boolean, onPackets: (count: number) => void, onError: (message: string) => void): NativeIcmpReceiver;
}

/** Options of `openUdpSocket`; addresses are IPv4 or IPv6 literals. */
export interface OpenUdpSocketOptions {
  /** Absent: any address of the connect address's family (and an ephemeral port when connecting). */
  bindAddress?: string | null;
  bindPort?: number;
  connectAddress?: string | null;
  connectPort?: number;
  /** SO_RCVBUF and SO_SNDBUF (forced past net.core.*mem_max where allowed); 0: the kernel's default. */
  bufferBytes?: number;
}

/** What `openUdpSocket` returns: a non-blocking UDP socket and its local port. */
export interface OpenedUdpSocket {
  fd: number;
  port: number;
}

/**
 * The buffers every `UdpSocket` of one NAT (or forwarder) shares
 * (native/src/udp.c). Entries of `rxMeta` and `txMeta` are
 * `[offset, length, address, port]` (UDP_META_SLOTS) describing a payload in
 * `rxSlab` / `txSlab`; each payload has UDP_HEADROOM bytes before it, whose
 * first 16 hold an IPv6 peer's address (address 0). A txMeta port of 0 sends
 * to the connected peer. `rxSlab` is valid only during `onDatagrams`.
 * `status` is `[failed, errno]` of the last `send`.
 */
export interface NativeUdpBuffers {
  readonly rxSlab: ArrayBuffer;
  readonly rxMeta: Uint32Array;
  readonly txSlab: ArrayBuffer;
  readonly txMeta: Uint32Array;
  readonly status: Uint32Array;
}

/** `new UdpBuffers(slotSize)`: room for received datagrams of up to `slotSize` bytes (longer ones are dropped). */
export interface NativeUdpBuffersConstructor {
  new (slotSize: number): NativeUdpBuffers;
}

/** Bytes before every payload of NativeUdpBuffers' slabs. */
export const UDP_HEADROOM = 64;
/** Slots per entry of `rxMeta` and `txMeta`. */
export const UDP_META_SLOTS = 4;
/** Slots of `NativeUdpBuffers.status` after a send: datagrams refused, the last errno, datagrams that left in UDP_SEGMENT messages. */
export const UDP_SEND_STATUS = { failed: 0, errno: 1, segmented: 2 } as const;

/** A UDP socket read with recvmmsg and written with sendmmsg, in batches. */
export interface NativeUdpSocket {
  /** Begin reading. */
  start(): void;
  /**
   * Sends txMeta entries `[start, start + count)`; returns how many were
   * consumed (sent, or refused and counted in `status`) before EAGAIN.
   */
  send(start: number, count: number): number;
  /** Stops reading and closes the fd. Idempotent; no callback runs after it. */
  close(): void;
}

/** `new UdpSocket(fd, buffers, onDatagrams, onError)`. */
export interface NativeUdpSocketConstructor {
  /**
   * Takes over `fd` when it returns; if it throws, the fd is still the
   * caller's. `onDatagrams(count, truncated)`: rxMeta entries 0..count-1, and
   * how many datagrams were longer than a slot and dropped. `onError(code,
   * fatal)`: an errno name; fatal means the socket is closed after the call.
   */
  new (
    fd: number,
    buffers: NativeUdpBuffers,
    onDatagrams: (count: number, truncated: number) => void,
    onError: (code: string, fatal: boolean) => void,
  ): NativeUdpSocket;
}

/** The functions and class native/src exports. */
export interface NativeAddon {
  /** Opens (creating if needed) TAP `ifname` inside the netns at `netnsPath` (null: the current one). */
  openTap(ifname: string, netnsPath: string | null, options?: OpenTapOptions): OpenedTap;
  /** TUNSETCARRIER: off looks like a pulled cable to the other side. */
  setCarrier(fd: number, on: boolean): void;
  /** A non-blocking AF_UNIX datagram socket bound to `localPath` (a stale socket there is removed). */
  openUnixDgram(localPath: string): number;
  Poller: NativePollerConstructor;
  /**
   * An ICMP socket for echo requests: a ping socket if allowed, else raw
   * (`kind` forces one). Throws VNET_ERR_ICMP naming what each needs.
   */
  openIcmpSocket(kind?: 'ping' | 'raw' | null, bindAddress?: string | null): OpenedIcmpSocket;
  /** sendto(fd, message, address); returns bytes sent. Throws VNET_ERR_ICMP with `errno` (EAGAIN included). */
  icmpSendTo(fd: number, message: Uint8Array, address: number): number;
  IcmpReceiver: NativeIcmpReceiverConstructor;
  /** A UDP socket: bound, connected, buffers set. Throws an Error whose `code` is the errno name (EADDRINUSE). */
  openUdpSocket(options: OpenUdpSocketOptions): OpenedUdpSocket;
  UdpBuffers: NativeUdpBuffersConstructor;
  UdpSocket: NativeUdpSocketConstructor;
  TcpSockets: NativeTcpSocketsConstructor;
  /**
   * After each fd event, keep the event loop polling instead of sleeping for
   * up to `microseconds` (0: off, at most 10,000; the window adapts below
   * it), so the next frame needs no wake-up (native/src/busy_poll.c).
   */
  setBusyPoll(microseconds: number): void;
  /**
   * The busy poller's budget and current window (µs), loop turns with events
   * that came while polling (`polled`) or after a sleep (`slept`), and streams
   * (16 KiB read within 200 µs), after which no window starts for a while (`bulk`).
   */
  busyPollStats(): BusyPollStats;
  /** The function requestIdle() runs when the loop would next sleep (native/src/busy_poll.c, "Idle work"). */
  setIdleCallback(onIdle: () => void): void;
  /** Runs the idle callback once, when the loop would next sleep, or 1 ms from now at the latest. */
  requestIdle(): void;
  /**
   * Replaces the process with `file` run with `args` (argv[0] first), same
   * pid, environment and standard streams (execve(2)). Returns only when
   * that fails, with the errno.
   */
  execNode(file: string, args: readonly string[]): number;
}

/** What `busyPollStats` returns. */
export interface BusyPollStats {
  budgetUs: number;
  windowUs: number;
  polled: number;
  slept: number;
  bulk: number;
  /** Idle-work callbacks run (requestIdle), and of those, the ones run after 1 ms of a loop that did not sleep. */
  idleRuns: number;
  idleOverdue: number;
}

/** What TcpSockets' onEvent reports (uv_poll's UV_READABLE, UV_WRITABLE; SPLICE_ENDED for a spliced pair). */
export const TCP_POLL = { READABLE: 1, WRITABLE: 2, SPLICE_ENDED: 4 } as const;

export interface NativeTcpSocketsConstructor {
  /** `onEvent(id, events)`: TCP_POLL bits, or a negative errno when polling failed (-EBADF: a socket error is pending, see connectError; polling stopped). */
  new (onEvent: (id: number, events: number) => void): NativeTcpSockets;
}

/** Host TCP sockets by slot number (native/src/tcp_sockets.c). Negative results are negated errnos. */
export interface NativeTcpSockets {
  /**
   * A non-blocking connect under way: the slot, or a negative errno (nothing
   * left open). With `netnsFd` (an open /var/run/netns/NAME), the socket is
   * made in that namespace; with `bindAddress`, it leaves from that address
   * (EADDRNOTAVAIL when it is not the host's). Throws for a host that is not
   * an IP address.
   */
  connect(host: string, port: number, netnsFd?: number | null, bindAddress?: string): number;
  /** A listening socket (an IPv6 host takes IPv4 clients too): the slot, or a negative errno (EADDRINUSE…). */
  listen(host: string, port: number): number;
  /** The next connection of a listening slot: its slot, or a negative errno (-EAGAIN: none). */
  accept(id: number): number;
  /** An accepted slot's client: IPv4 address·65536 + port (address 0 for an IPv6 client). */
  peer(id: number): number;
  /** The slot's local port, or a negative errno. */
  localPort(id: number): number;
  /** What onEvent reports for the slot (TCP_POLL bits; 0: nothing). */
  poll(id: number, events: number): void;
  /** Bytes read into `buffer`, 0 at end of file, or a negative errno (-EAGAIN: nothing now). */
  read(id: number, buffer: Uint8Array): number;
  /** Bytes of buffer[offset, offset+length) the kernel took, or a negative errno. */
  write(id: number, buffer: Uint8Array, offset: number, length: number): number;
  /** As write, for 1 to 16 buffers in order in one sendmsg(2). */
  writev(id: number, buffers: readonly Uint8Array[]): number;
  /** shutdown(SHUT_WR): 0 or a negative errno. */
  shutdown(id: number): number;
  /** SO_ERROR: 0, or the socket's pending error (a failed connect's, a reset's), which it clears. */
  connectError(id: number): number;
  /** TCP_INFO's tcpi_state (TCP_STATE), or a negative errno. */
  state(id: number): number;
  /**
   * Joins two slots in the kernel (splice(2) through a pipe each way): 0 or
   * a negative errno. Their events stop; once both directions ended (or one
   * side broke) both are closed and onEvent(a, SPLICE_ENDED or -errno) says so.
   */
  splice(a: number, b: number): number;
  /** Closes the slot (a spliced one with its partner); `reset` sends RST (SO_LINGER 0). No event for it follows. */
  close(id: number, reset: boolean): void;
  closeAll(): void;
}

/** Linux's TCP states (include/net/tcp_states.h); CLOSE is what a socket is in after the peer reset it. */
export const TCP_STATE = { ESTABLISHED: 1, CLOSE: 7 } as const;

/** The addon is not built; `npm ci` (or `npm run install`) builds it. */
export class NativeAddonMissingError extends Error {
  readonly code = 'VNET_ERR_NATIVE_MISSING';
  constructor(cause: unknown) {
    super('the native addon is not built: run `npm ci` or `npx node-gyp rebuild --directory=native`', {
      cause,
    });
    this.name = 'NativeAddonMissingError';
  }
}

const ADDON_FILE = join('native', 'build', 'Release', 'vnet_native.node');
/** How far up from this file the repository root can be (src/transport or dist/src/transport). */
const MAX_LEVELS_UP = 4;

let loaded: NativeAddon | undefined;

/** The addon, loaded on first call; throws NativeAddonMissingError when it is not built. */
export function nativeAddon(): NativeAddon {
  if (loaded === undefined) loaded = load();
  return loaded;
}

function load(): NativeAddon {
  const require = createRequire(import.meta.url);
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let level = 0; level <= MAX_LEVELS_UP; level++) {
    const candidate = join(dir, ADDON_FILE);
    if (existsSync(candidate)) return require(candidate) as NativeAddon;
    dir = dirname(dir);
  }
  throw new NativeAddonMissingError(new Error(`${ADDON_FILE} not found above ${fileURLToPath(import.meta.url)}`));
}
