/**
 * The host side of a NAT'd TCP connection, as a Connection sees it: a byte
 * stream that reports to one `HostStreamEvents`; and the host listeners of
 * port forwards, whose connections become such streams. Two kinds exist:
 * the addon's sockets (src/transport/tcp-socket.ts, what the daemon uses: no
 * net.Socket per connection) and net.Socket-based ones below (the defaults,
 * and what tests use to play odd hosts).
 */
import net from 'node:net';
import { parseIpv4 } from '../../wire/address.js';

/** What a stream reports; each connection is its own receiver. */
export interface HostStreamEvents {
  /** The connect completed. */
  onHostConnect(): void;
  /** Where the next read goes (a block of the NAT's pool, see block-pool.ts). */
  nextReadBlock(): Buffer;
  /** `length` bytes arrived in `block` (the one nextReadBlock gave). */
  onHostRead(length: number, block: Buffer): void;
  /** Bytes in a buffer of the stream's own (streams that cannot read into blocks). */
  onHostData(chunk: Uint8Array): void;
  /** End of file: the host sent FIN, or a reset with data still queued (`wasReset` tells). */
  onHostEnd(): void;
  /** Everything written is with the kernel now. */
  onHostDrain(): void;
  /** The connect failed or the connection broke; `code` is the errno name when known. */
  onHostError(code: string | undefined): void;
  /** Closed (after onHostError too, or without a word). */
  onHostClose(): void;
}

export interface HostStream {
  /** Bytes written and not yet taken by the kernel. */
  readonly writableLength: number;
  /** True once destroyed (by us, or after an error). */
  readonly destroyed: boolean;
  /** `end()` was called. */
  readonly writableEnded: boolean;
  /** Queues `data` after what is queued; `written` runs once the kernel has all of it. */
  write(data: Uint8Array, written?: () => void): void;
  /**
   * Writes what the kernel takes of `data` now, if nothing is queued before
   * it; returns the bytes taken. The rest stays the caller's: the stream keeps
   * no reference. A stream that cannot returns 0.
   */
  tryWrite(data: Uint8Array): number;
  /** tryWrite for 2 to 16 chunks in order, in one call: the bytes taken from their start. */
  tryWriteGathered(chunks: readonly Uint8Array[]): number;
  /** FIN once the queued bytes are written. */
  end(): void;
  /** Stop and restart reading (backpressure toward the host). */
  pause(): void;
  resume(): void;
  /**
   * Reads at once what the kernel already holds, as a readable event would
   * (nothing when paused). A stream that cannot does nothing: its next event
   * brings the data.
   */
  readNow(): void;
  /** Close now, quietly. */
  destroy(): void;
  /** Close now with a RST. */
  reset(): void;
  /** After onHostEnd: true if that end of file was a reset, not a FIN. */
  wasReset(): boolean;
}

/** Opens a stream to host:port (an IP address) reporting to `events`. */
export type OpenHostStream = (host: string, port: number, events: HostStreamEvents) => HostStream;

/** Opens a stream served in the daemon itself (a service of the gateway's), reporting to `events`. */
export type OpenLocalStream = (events: HostStreamEvents) => HostStream;

/** A connection a host listener accepted (a port forward's), not yet anyone's stream. */
export interface AcceptedHostSocket {
  /** The client: IPv4 address (0 for an IPv6 client) and port. */
  readonly peerIp: number;
  readonly peerPort: number;
  /** Becomes the stream of a connection, reporting to `events`. */
  open(events: HostStreamEvents): HostStream;
  /** Turned away: closed at once. */
  close(): void;
  /**
   * Joins the connection in the kernel to a new one to host:port made in the
   * network namespace `netnsFd` (src/transport/tcp-socket.ts). True: it is
   * the kernel's now (or was refused there and reset), and `ended` hears
   * how it ends; false: nothing changed, as when the address is not local
   * in that namespace — open() it as usual. Absent where it cannot be done.
   */
  splice?(host: string, port: number, netnsFd: number, ended: (error: string | undefined) => void): boolean;
}

export interface HostTcpListener {
  /** The port it listens on (the one asked for, or the kernel's pick for 0). */
  readonly port: number;
  close(): void;
}

/**
 * Listens on host:port; `onAccept` gets each connection and must open or
 * close it. Rejects with an Error whose `code` is the errno name (EADDRINUSE).
 */
export type ListenHostTcp = (host: string, port: number, onAccept: (socket: AcceptedHostSocket) => void) => Promise<HostTcpListener>;

/** A net.Socket as a HostStream: reads into the NAT's blocks when `socket` is made here, else through 'data'. */
class NetHostStream implements HostStream {
  constructor(readonly socket: net.Socket, events: HostStreamEvents) {
    socket.allowHalfOpen = true;
    socket.setNoDelay(true); // as the addon's sockets: a relay must not hold back small writes
    socket.once('connect', () => events.onHostConnect());
    socket.on('data', (chunk: Buffer) => events.onHostData(chunk));
    socket.on('end', () => events.onHostEnd());
    socket.on('drain', () => events.onHostDrain());
    socket.on('error', (err: NodeJS.ErrnoException) => events.onHostError(err.code));
    socket.on('close', () => events.onHostClose());
  }

  get writableLength(): number {
    return this.socket.writableLength;
  }

  get destroyed(): boolean {
    return this.socket.destroyed;
  }

  get writableEnded(): boolean {
    return this.socket.writableEnded;
  }

  write(data: Uint8Array, written?: () => void): void {
    this.socket.write(data, written);
  }

  tryWrite(): number {
    return 0; // net.Socket keeps what it is given
  }

  tryWriteGathered(): number {
    return 0;
  }

  end(): void {
    this.socket.end();
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  readNow(): void {
    // net.Socket reads on its own once resumed.
  }

  destroy(): void {
    this.socket.destroy();
  }

  reset(): void {
    // After end(): libuv cannot reset a handle with a shutdown under way
    // (uv_tcp_close_reset says EINVAL), and Node 20 then marks the handle
    // closing without closing it — the process never finishes exiting (the
    // fuzz test hung ~1 run in 20). Still connecting: nothing to reset, and
    // resetAndDestroy() would wait for 'connect'. A plain close in both.
    if (this.socket.connecting || this.socket.writableEnded) return void this.socket.destroy();
    try {
      this.socket.resetAndDestroy();
    } catch {
      // Not a TCP handle (a unix socket in a test): a plain close.
      this.socket.destroy();
    }
  }

  wasReset(): boolean {
    return false; // Node cannot tell.
  }
}

/** `socket` (connecting or accepted) as a HostStream. */
export function netHostStream(socket: net.Socket, events: HostStreamEvents): HostStream {
  return new NetHostStream(socket, events);
}

/** A client address as Node writes it (`1.2.3.4`, `::ffff:1.2.3.4`, `::1`): IPv4 as a number, else 0. */
function ipv4Of(address: string | undefined): number {
  const v4 = address?.startsWith('::ffff:') ? address.slice(7) : address;
  return v4 !== undefined && net.isIPv4(v4) ? parseIpv4(v4) : 0;
}

/** An accepted net.Socket as an AcceptedHostSocket. */
export function acceptedNetSocket(socket: net.Socket): AcceptedHostSocket {
  return {
    peerIp: ipv4Of(socket.remoteAddress),
    peerPort: socket.remotePort ?? 0,
    open: (events) => netHostStream(socket, events),
    close: () => socket.destroy(),
  };
}

/** The default listener: a net.Server (a net.Socket per connection). */
export const listenNetHostTcp: ListenHostTcp = (host, port, onAccept) =>
  new Promise((resolve, reject) => {
    const server = net.createServer({ allowHalfOpen: true }, (socket) => onAccept(acceptedNetSocket(socket)));
    server.once('error', reject);
    server.listen({ host, port, exclusive: true }, () => {
      server.removeListener('error', reject);
      server.on('error', () => {});
      resolve({ port: (server.address() as net.AddressInfo).port, close: () => server.close() });
    });
  });

/** The default opener: net.connect, reading into the NAT's blocks. */
export const openNetHostStream: OpenHostStream = (host, port, events) =>
  netHostStream(
    net.connect({
      host,
      port,
      allowHalfOpen: true,
      noDelay: true,
      onread: {
        buffer: () => events.nextReadBlock(),
        callback: (length, block) => {
          events.onHostRead(length, block as Buffer);
          return true;
        },
      },
    }),
    events,
  );
