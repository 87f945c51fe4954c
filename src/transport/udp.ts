/**
 * Ethernet frames in UDP datagrams, one frame per datagram: VirtualBox's
 * UDPTunnel generic driver (`dest`, `sport`, `dport`) and QEMU
 * `-netdev dgram,local.type=inet,…,remote.type=inet,…`.
 *
 * Theory of operation:
 * - Bound to `localAddress:sport` (default loopback: VirtualBox binds all
 *   addresses, which a caller must ask for explicitly with `0.0.0.0`/`::`).
 * - Sends every frame to `dest:dport`. Accepts datagrams only from
 *   `dest:dport`, as a connected socket would, so a port open on a LAN
 *   address cannot be used to inject frames from elsewhere (counted in
 *   `dropsIn`, like datagrams too short or too long to be a frame, and
 *   datagrams that arrive before `start()`).
 * - `send` copies the frame (Node sends after a DNS-lookup tick and would
 *   otherwise keep the caller's buffer) and drops it, counted in `dropsOut`,
 *   while more than `MAX_QUEUED_BYTES` wait in the socket's send queue.
 *   Send errors (no one listening at the peer: ICMP port unreachable) count
 *   in `dropsOut` too; the tunnel stays up, as VirtualBox's does.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { MAX_FRAME, MIN_FRAME, newTransportStats, type FrameTransport, type TransportStats } from './types.js';
import { MAX_QUEUED_BYTES, TransportError } from './qemu-stream.js';

export interface UdpTunnelOptions {
  /** Local address to bind. Default `127.0.0.1`, or `::1` when `dest` is IPv6. */
  localAddress?: string;
  /** Local UDP port (VirtualBox `sport`). */
  sport: number;
  /** Peer host (VirtualBox `dest`): an IPv4/IPv6 address, or a name resolved once at open. */
  dest: string;
  /** Peer UDP port (VirtualBox `dport`). */
  dport: number;
}

/** One UDP tunnel endpoint. */
export class UdpTunnelTransport implements FrameTransport {
  /** Frames leave finished: a stream or datagram peer has no offload header. */
  readonly acceptsOffload = false;
  readonly kind = 'udp';
  readonly stats: TransportStats = newTransportStats();
  onFrame: (frame: Uint8Array) => void = () => {};
  onClose: (reason: string) => void = () => {};
  private started = false;
  private closed = false;
  private readonly onSent = (err: Error | null): void => {
    if (err) this.stats.dropsOut++;
  };

  private constructor(
    private readonly socket: Socket,
    /** The peer's address, as resolved. */
    readonly dest: string,
    readonly dport: number,
    /** The bound local port (useful when `sport` was 0). */
    readonly sport: number,
  ) {
    socket.on('message', (msg, rinfo) => this.receive(msg, rinfo));
    // Errors after bind (ICMP reports on receive, send failures without a
    // callback) do not end a UDP socket.
    socket.on('error', () => {});
    socket.on('close', () => {
      if (this.closed) return;
      this.closed = true;
      this.onClose('socket closed');
    });
  }

  /**
   * Bind `localAddress:sport` and aim at `dest:dport`.
   * @throws TransportError naming the port when it cannot be bound (`VNET_ERR_PORT_IN_USE`…)
   */
  static async open(options: UdpTunnelOptions): Promise<UdpTunnelTransport> {
    checkPort('sport', options.sport, true);
    checkPort('dport', options.dport, false);
    const dest = await resolve(options.dest);
    const family = isIP(dest) === 6 ? 6 : 4;
    const localAddress = options.localAddress ?? (family === 6 ? '::1' : '127.0.0.1');
    if (isIP(localAddress) !== family) {
      throw new TransportError(
        'VNET_ERR_INVALID_VALUE',
        `UDP tunnel: local address ${localAddress} and dest ${options.dest} are not the same IP version`,
      );
    }
    const socket = createSocket({ type: family === 6 ? 'udp6' : 'udp4', ipv6Only: family === 6 });
    const what = `UDP port ${options.sport} on ${localAddress}`;
    await new Promise<void>((resolvePromise, reject) => {
      socket.once('error', (err) => {
        socket.close();
        reject(TransportError.fromSystem(what, err));
      });
      socket.bind({ address: localAddress, port: options.sport, exclusive: true }, () => resolvePromise());
    });
    socket.removeAllListeners('error');
    return new UdpTunnelTransport(socket, dest, options.dport, socket.address().port);
  }

  start(): void {
    this.started = true;
  }

  /** Send one frame to the peer; copies it. */
  send(frame: Uint8Array): void {
    if (this.closed || frame.length < MIN_FRAME || frame.length > MAX_FRAME || this.socket.getSendQueueSize() > MAX_QUEUED_BYTES) {
      this.stats.dropsOut++;
      return;
    }
    this.socket.send(Buffer.from(frame), this.dport, this.dest, this.onSent);
    this.stats.framesOut++;
    this.stats.bytesOut += frame.length;
  }

  /** Close the socket. Does not call `onClose`. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close();
  }

  private receive(msg: Buffer, rinfo: RemoteInfo): void {
    if (this.closed) return;
    if (!this.started || rinfo.port !== this.dport || rinfo.address !== this.dest || msg.length < MIN_FRAME || msg.length > MAX_FRAME) {
      this.stats.dropsIn++;
      return;
    }
    this.stats.framesIn++;
    this.stats.bytesIn += msg.length;
    this.onFrame(msg);
  }
}

function checkPort(name: string, port: number, zeroAllowed: boolean): void {
  if (!Number.isInteger(port) || port < (zeroAllowed ? 0 : 1) || port > 65535) {
    throw new TransportError('VNET_ERR_INVALID_VALUE', `UDP tunnel: ${name} must be a port number 1–65535, got ${port}`);
  }
}

/** An IP literal as is; a name through the system resolver, once. */
async function resolve(dest: string): Promise<string> {
  if (isIP(dest) !== 0) return dest;
  try {
    return (await lookup(dest)).address;
  } catch (err) {
    throw new TransportError('VNET_ERR_INVALID_VALUE', `UDP tunnel: cannot resolve dest ${dest}`, { cause: err });
  }
}
