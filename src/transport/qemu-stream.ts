/**
 * QEMU `-netdev stream` (and the older `-netdev socket,connect=`): Ethernet
 * frames over a stream socket, each preceded by its length as a 4-byte
 * big-endian number.
 *
 * Theory of operation:
 * - vnet listens — on a unix socket path (one per NIC, created mode 0600, a
 *   stale socket file removed first) or a TCP `host:port` — and QEMU connects:
 *   `-netdev stream,id=n1,server=off,addr.type=unix,addr.path=P,reconnect=1`.
 * - One guest connection at a time. A new connection **replaces** the current
 *   one: the socket is owner-only, so whoever connects is the VM's own QEMU,
 *   and the newest connection is the live one (a restarted QEMU, or a reconnect
 *   racing the kernel's close of the old socket).
 * - A guest disconnecting is not the transport going away: `onClose` is not
 *   called, `onDisconnect` is, and the listener waits for QEMU to reconnect.
 * - From the guest: an incremental parser (`StreamDeframer`) hands out whole
 *   frames as views into the received chunk when they fit in it, and copies a
 *   frame split across chunks once into a reused buffer; no chunk is ever
 *   concatenated. A length of 0, below `MIN_FRAME` or above `MAX_FRAME` means
 *   the stream cannot be resynchronised: counted in `dropsIn`, connection closed.
 * - To the guest: `send` copies prefix and frame into one new Buffer (one
 *   write, and the caller's buffer is free on return). Frames are dropped and
 *   counted in `dropsOut` while no guest is connected or while more than
 *   `MAX_QUEUED_BYTES` wait in the socket's write buffer.
 */
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { MAX_FRAME, MIN_FRAME, newTransportStats, type FrameTransport, type TransportStats } from './types.js';

/** Bytes we let queue toward one guest before dropping frames (about 60 full-size frames). */
export const MAX_QUEUED_BYTES = 4 * 1024 * 1024;
/** Bytes of the length prefix. */
const PREFIX_LENGTH = 4;

/** Where to listen: a unix socket path, or a TCP address. */
export type StreamAddress = { path: string } | { host: string; port: number };

/** Codes shared with the daemon's `VnetError` so the API maps them alike. */
export type TransportErrorCode = 'VNET_ERR_PORT_IN_USE' | 'VNET_ERR_PERMISSION' | 'VNET_ERR_INVALID_VALUE' | 'VNET_ERR_HOST';

/** A transport could not be opened: the message names the address, `cause` is the system error. */
export class TransportError extends Error {
  constructor(
    readonly code: TransportErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TransportError';
  }

  /** Wrap a bind/listen failure on `what` (e.g. `UDP port 4444 on 127.0.0.1`). */
  static fromSystem(what: string, err: unknown): TransportError {
    const errno = (err as NodeJS.ErrnoException | undefined)?.code;
    if (errno === 'EADDRINUSE') return new TransportError('VNET_ERR_PORT_IN_USE', `${what} is already in use`, { cause: err });
    if (errno === 'EACCES' || errno === 'EPERM') {
      return new TransportError('VNET_ERR_PERMISSION', `not allowed to use ${what}`, { cause: err });
    }
    if (errno === 'EADDRNOTAVAIL') {
      return new TransportError('VNET_ERR_INVALID_VALUE', `${what}: no such local address`, { cause: err });
    }
    const detail = err instanceof Error ? err.message : String(err);
    return new TransportError('VNET_ERR_HOST', `cannot use ${what}: ${detail}`, { cause: err });
  }
}

/**
 * Splits a byte stream into length-prefixed frames.
 *
 * A frame handed to `onFrame` is a view into the pushed chunk or into one of
 * two buffers that split frames take turns in: a split frame is completed by
 * one `push` and the next one starts in the other buffer, so a view stays
 * valid until the microtasks of the call that pushed it have run (the
 * FrameTransport contract, types.ts).
 */
export class StreamDeframer {
  private readonly header = new Uint8Array(PREFIX_LENGTH);
  private headerFill = 0;
  /** Length of the frame being assembled in `scratch`, 0 while reading a prefix. */
  private frameLength = 0;
  private frameFill = 0;
  private scratch: Uint8Array | undefined;
  /** The other buffer, holding the split frame handed out last. */
  private spare: Uint8Array | undefined;
  private broken: string | undefined;

  constructor(private readonly onFrame: (frame: Uint8Array) => void) {}

  /** Why the stream stopped (`bad-length`, or `stopped`), if it did. */
  get error(): string | undefined {
    return this.broken;
  }

  /** Ignore everything from now on (the connection is going away). */
  stop(): void {
    this.broken ??= 'stopped';
  }

  /** Feed received bytes. Returns the error once the stream is broken, else undefined. */
  push(chunk: Uint8Array): string | undefined {
    let at = 0;
    const end = chunk.length;
    while (at < end && this.broken === undefined) {
      if (this.frameLength !== 0) {
        // Continue a frame split across chunks.
        const scratch = this.scratch!;
        const n = Math.min(this.frameLength - this.frameFill, end - at);
        scratch.set(chunk.subarray(at, at + n), this.frameFill);
        this.frameFill += n;
        at += n;
        if (this.frameFill === this.frameLength) {
          const length = this.frameLength;
          this.frameLength = 0;
          this.onFrame(scratch.subarray(0, length));
        }
        continue;
      }
      let length: number;
      if (this.headerFill === 0 && end - at >= PREFIX_LENGTH) {
        length = readLength(chunk, at);
        at += PREFIX_LENGTH;
      } else {
        const n = Math.min(PREFIX_LENGTH - this.headerFill, end - at);
        this.header.set(chunk.subarray(at, at + n), this.headerFill);
        this.headerFill += n;
        at += n;
        if (this.headerFill < PREFIX_LENGTH) break;
        this.headerFill = 0;
        length = readLength(this.header, 0);
      }
      if (length < MIN_FRAME || length > MAX_FRAME) {
        this.broken = 'bad-length';
        break;
      }
      if (end - at >= length) {
        this.onFrame(chunk.subarray(at, at + length));
        at += length;
      } else {
        [this.scratch, this.spare] = [this.spare ?? new Uint8Array(MAX_FRAME), this.scratch];
        this.frameLength = length;
        this.frameFill = 0;
      }
    }
    return this.broken;
  }
}

function readLength(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) >>> 0) + ((bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!);
}

/** A listening QEMU stream endpoint for one NIC. */
export class QemuStreamTransport implements FrameTransport {
  /** Frames leave finished: a stream or datagram peer has no offload header. */
  readonly acceptsOffload = false;
  readonly kind = 'qemu-stream';
  readonly stats: TransportStats = newTransportStats();
  onFrame: (frame: Uint8Array) => void = () => {};
  /** Only if the listener itself fails; a guest leaving calls `onDisconnect`. */
  onClose: (reason: string) => void = () => {};
  /** A guest connected (possibly replacing the previous one). */
  onConnect: () => void = () => {};
  /** The guest's connection ended; frames to it are dropped until the next `onConnect`. */
  onDisconnect: (reason: string) => void = () => {};
  private accepted = 0;
  private socket: Socket | undefined;
  private deframer: StreamDeframer | undefined;
  private started = false;
  private closed = false;

  private constructor(
    private readonly server: Server,
    /** `unix:PATH` or `tcp:HOST:PORT` (with the port actually bound). */
    readonly address: string,
    /** The bound TCP port, or undefined for a unix socket. */
    readonly port: number | undefined,
  ) {
    server.on('connection', (socket) => this.accept(socket));
    server.on('error', (err) => {
      // Accept errors (EMFILE…) leave the server listening; only a closed listener ends us.
      if (!server.listening && !this.closed) {
        this.close();
        this.onClose(`listener failed: ${err.message}`);
      }
    });
  }

  /**
   * Listen for QEMU. A unix `path` gets mode 0600; an existing socket file
   * there is removed first, anything else there is an error.
   * @throws TransportError when the address cannot be used.
   */
  static async listen(address: StreamAddress): Promise<QemuStreamTransport> {
    const server = createServer({ noDelay: true });
    if ('path' in address) {
      removeStaleSocket(address.path);
      await listenOwnerOnly(server, address.path);
      return new QemuStreamTransport(server, `unix:${address.path}`, undefined);
    }
    const what = `TCP port ${address.port} on ${address.host}`;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(TransportError.fromSystem(what, err)));
      server.listen({ host: address.host, port: address.port, exclusive: true }, () => resolve());
    });
    server.removeAllListeners('error');
    const bound = (server.address() as AddressInfo).port;
    return new QemuStreamTransport(server, `tcp:${address.host}:${bound}`, bound);
  }

  /** Connections accepted so far. */
  get connections(): number {
    return this.accepted;
  }

  /** Is a guest connected now? */
  get connected(): boolean {
    return this.socket !== undefined;
  }

  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    this.socket?.resume();
  }

  /** Queue one frame to the guest; copies it. Dropped if no guest or its queue is full. */
  send(frame: Uint8Array): void {
    const socket = this.socket;
    const length = frame.length;
    if (socket === undefined || length < MIN_FRAME || length > MAX_FRAME || socket.writableLength > MAX_QUEUED_BYTES) {
      this.stats.dropsOut++;
      return;
    }
    const out = Buffer.allocUnsafe(PREFIX_LENGTH + length);
    out.writeUInt32BE(length, 0);
    out.set(frame, PREFIX_LENGTH);
    socket.write(out);
    this.stats.framesOut++;
    this.stats.bytesOut += length;
  }

  /** Stop listening and drop the guest. Calls neither `onClose` nor `onDisconnect`. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.dropGuest();
    // Closing a listening unix socket also unlinks its path (libuv).
    this.server.close();
  }

  private accept(socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.accepted++;
    if (this.socket !== undefined) {
      this.dropGuest();
      this.onDisconnect('replaced by a new connection');
    }
    const deframer = new StreamDeframer((frame) => {
      this.stats.framesIn++;
      this.stats.bytesIn += frame.length;
      this.onFrame(frame);
    });
    this.socket = socket;
    this.deframer = deframer;
    if (!this.started) socket.pause();
    socket.on('data', (chunk: Buffer) => {
      if (deframer.push(chunk) === 'bad-length') {
        this.stats.dropsIn++;
        this.guestGone(socket, 'bad length prefix');
      }
    });
    socket.on('error', () => {}); // 'close' follows and says it all
    socket.on('close', () => this.guestGone(socket, 'guest disconnected'));
    this.onConnect();
  }

  /** End `socket` if it is still the guest's, and tell `onDisconnect`. */
  private guestGone(socket: Socket, reason: string): void {
    if (this.socket !== socket) return;
    this.dropGuest();
    this.onDisconnect(reason);
  }

  private dropGuest(): void {
    this.deframer?.stop();
    this.socket?.destroy();
    this.socket = undefined;
    this.deframer = undefined;
  }
}

/** Remove a leftover socket at `path`; refuse to remove anything that is not a socket. */
function removeStaleSocket(path: string): void {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw TransportError.fromSystem(`socket path ${path}`, err);
  }
  if (!isSocket) {
    throw new TransportError('VNET_ERR_INVALID_VALUE', `${path} exists and is not a socket; not removing it`);
  }
  try {
    unlinkSync(path);
  } catch (err) {
    throw TransportError.fromSystem(`socket path ${path}`, err);
  }
}

/** Listen on a unix socket that only its owner can connect to. */
async function listenOwnerOnly(server: Server, path: string): Promise<void> {
  const what = `socket path ${path}`;
  const listening = new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(TransportError.fromSystem(what, err)));
    server.once('listening', () => resolve());
  });
  // bind(2) creates the file with mode 0777 & ~umask, synchronously inside
  // listen(); a tight umask around that call leaves no window where another
  // user could connect. The umask is process-wide but nothing else runs
  // during this synchronous call. Worker threads cannot set it: chmod below.
  let previous: number | undefined;
  try {
    previous = process.umask(0o177);
  } catch {
    previous = undefined;
  }
  try {
    server.listen({ path, exclusive: true });
  } finally {
    if (previous !== undefined) process.umask(previous);
  }
  await listening;
  server.removeAllListeners('error');
  try {
    chmodSync(path, 0o600);
  } catch (err) {
    server.close();
    throw TransportError.fromSystem(what, err);
  }
}
