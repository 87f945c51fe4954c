/**
 * Port forwards: host listeners whose connections and datagrams are relayed
 * to a guest, as VirtualBox's NAT `--nat-pf` rules.
 *
 * - TCP: a listener per rule; each accepted socket goes to the TCP NAT, which
 *   opens the connection to the guest.
 * - UDP: a socket per rule; each client (address, port) is a mapping that the
 *   guest's replies find their way back through. Mappings idle for
 *   MAPPING_IDLE_MS go; at most MAX_UDP_MAPPINGS per rule.
 * - The guest sees the client's real address, except for clients on the
 *   host's loopback, which appear as the gateway (the guest cannot route
 *   127.0.0.0/8 back).
 * - `apply(rules)` opens what is new before closing what went: if one
 *   listener cannot bind (port in use), everything it opened is closed again
 *   and the error says which port — no rule is half-applied.
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import { VnetError } from '../errors.js';
import { parseIpv4 } from '../wire/address.js';
import type { Ipv4View } from '../wire/ipv4.js';
import type { UdpView } from '../wire/udp.js';
import { UDP_SOCKET_BUFFER, type NatLink } from './udp-nat.js';

/** A forward rule (the model's PortForward has this shape). Empty hostIp = 127.0.0.1; empty guestIp = the default guest. */
export interface PortForward {
  name: string;
  protocol: 'tcp' | 'udp';
  hostIp: string;
  hostPort: number;
  guestIp: string;
  guestPort: number;
}

export const MAX_UDP_MAPPINGS = 1024;
export const MAPPING_IDLE_MS = 5 * 60_000;

/** Where accepted TCP connections go (the TCP NAT). */
export interface TcpForwardTarget {
  forward(socket: Socket, guestIp: number, guestPort: number, sourceIp: number, sourcePort: number): void;
}

export interface PortForwarderOptions {
  link: NatLink;
  tcp: TcpForwardTarget;
  /** The gateway's address: what loopback clients look like to the guest. */
  gatewayIp: number;
  /** The guest address a rule with an empty guest IP forwards to. */
  defaultGuestIp: () => number;
}

interface UdpMapping {
  client: RemoteInfo;
  lastUsed: number;
}

interface Listener {
  rule: PortForward;
  key: string;
  close(): void;
  /** UDP only: client mappings by the guest-visible `ip:port`. */
  mappings?: Map<string, UdpMapping>;
  socket?: UdpSocket;
}

const listenerKey = (r: PortForward): string => `${r.protocol}:${r.hostIp || '127.0.0.1'}:${r.hostPort}:${r.guestIp}:${r.guestPort}`;

export class PortForwarder {
  readonly counters = { accepted: 0, udpToGuest: 0, udpToHost: 0 };
  private listeners = new Map<string, Listener>();
  /** UDP rules among `listeners` (the guest-side fast path checks it). */
  private udpListeners = 0;

  constructor(private readonly options: PortForwarderOptions) {}

  /** Make the open listeners match `rules` (all or nothing). */
  async apply(rules: PortForward[]): Promise<void> {
    const wanted = new Map(rules.map((r) => [listenerKey(r), r]));
    const opened: Listener[] = [];
    try {
      for (const [key, rule] of wanted) {
        if (!this.listeners.has(key)) opened.push(await this.open(rule, key));
      }
    } catch (err) {
      for (const l of opened) l.close();
      throw err;
    }
    for (const [key, listener] of this.listeners) {
      if (!wanted.has(key)) {
        listener.close();
        this.listeners.delete(key);
      }
    }
    for (const l of opened) this.listeners.set(l.key, l);
    this.udpListeners = [...this.listeners.values()].filter((l) => l.rule.protocol === 'udp').length;
  }

  get rules(): PortForward[] {
    return [...this.listeners.values()].map((l) => l.rule);
  }

  /** A UDP datagram from a guest: if it answers a forwarded client, send it there and return true. */
  fromGuestUdp(ip: Ipv4View, udp: UdpView): boolean {
    // Every UDP datagram of every guest passes here: nothing to build without UDP forwards.
    if (this.udpListeners === 0) return false;
    const visible = `${ip.destination}:${udp.destinationPort}`;
    for (const listener of this.listeners.values()) {
      const mapping = listener.mappings?.get(visible);
      if (!mapping || udp.sourcePort !== listener.rule.guestPort || ip.source !== this.guestIp(listener.rule)) continue;
      mapping.lastUsed = Date.now();
      // Copy: the payload lives in the transport's reused buffer.
      listener.socket!.send(Buffer.from(udp.payload), mapping.client.port, mapping.client.address);
      this.counters.udpToHost++;
      return true;
    }
    return false;
  }

  close(): void {
    for (const l of this.listeners.values()) l.close();
    this.listeners.clear();
    this.udpListeners = 0;
  }

  private guestIp(rule: PortForward): number {
    return rule.guestIp ? parseIpv4(rule.guestIp) : this.options.defaultGuestIp();
  }

  /** What a client's address looks like to the guest. */
  private visibleSource(address: string): number {
    const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
    if (/^\d+\.\d+\.\d+\.\d+$/.test(v4) && !v4.startsWith('127.')) return parseIpv4(v4);
    return this.options.gatewayIp; // loopback, or IPv6 (the guest network is IPv4)
  }

  private open(rule: PortForward, key: string): Promise<Listener> {
    return rule.protocol === 'tcp' ? this.openTcp(rule, key) : this.openUdp(rule, key);
  }

  private openTcp(rule: PortForward, key: string): Promise<Listener> {
    const server: Server = createServer((socket) => {
      this.counters.accepted++;
      const source = this.visibleSource(socket.remoteAddress ?? '127.0.0.1');
      this.options.tcp.forward(socket, this.guestIp(rule), rule.guestPort, source, socket.remotePort ?? 0);
    });
    return new Promise((resolve, reject) => {
      server.once('error', (err) => reject(bindError(rule, err)));
      server.listen({ host: rule.hostIp || '127.0.0.1', port: rule.hostPort, exclusive: true }, () => {
        server.removeAllListeners('error');
        server.on('error', () => {});
        resolve({ rule, key, close: () => server.close() });
      });
    });
  }

  private openUdp(rule: PortForward, key: string): Promise<Listener> {
    const host = rule.hostIp || '127.0.0.1';
    const socket = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', recvBufferSize: UDP_SOCKET_BUFFER, sendBufferSize: UDP_SOCKET_BUFFER });
    const mappings = new Map<string, UdpMapping>();
    const sweeper = setInterval(() => {
      const now = Date.now();
      for (const [k, m] of mappings) if (now - m.lastUsed > MAPPING_IDLE_MS) mappings.delete(k);
    }, 30_000).unref();
    socket.on('message', (message, client) => {
      const source = this.visibleSource(client.address);
      const visible = `${source}:${client.port}`;
      if (!mappings.has(visible) && mappings.size >= MAX_UDP_MAPPINGS) return;
      mappings.set(visible, { client, lastUsed: Date.now() });
      if (this.options.link.sendUdp(source, client.port, this.guestIp(rule), rule.guestPort, message)) this.counters.udpToGuest++;
    });
    return new Promise((resolve, reject) => {
      socket.once('error', (err) => {
        clearInterval(sweeper);
        socket.close();
        reject(bindError(rule, err));
      });
      socket.bind({ address: host, port: rule.hostPort, exclusive: true }, () => {
        socket.removeAllListeners('error');
        socket.on('error', () => {});
        resolve({
          rule,
          key,
          mappings,
          socket,
          close: () => {
            clearInterval(sweeper);
            socket.close();
          },
        });
      });
    });
  }
}

function bindError(rule: PortForward, err: Error): VnetError {
  const code = (err as NodeJS.ErrnoException).code;
  const where = `${rule.protocol} ${rule.hostIp || '127.0.0.1'}:${rule.hostPort} (rule '${rule.name}')`;
  if (code === 'EADDRINUSE') return new VnetError('VNET_ERR_PORT_IN_USE', `host port ${where} is already in use`, { cause: err });
  if (code === 'EACCES') return new VnetError('VNET_ERR_PERMISSION', `not allowed to bind host port ${where}`, { cause: err });
  return new VnetError('VNET_ERR_HOST', `cannot bind host port ${where}: ${err.message}`, { cause: err });
}

