/**
 * Talking to upstream DNS servers on the host's network: one UDP socket per
 * address family shared by every query, and one short TCP connection per
 * query retried over TCP (RFC 1035 §4.2.2: each message is preceded by "a two
 * byte length field").
 */

import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { connect, isIPv6 } from 'node:net';
import { DNS_TCP_MAX_SIZE } from './message.js';
import type { DnsUpstream } from './resolv-conf.js';

/** True when a datagram's source is the upstream (IPv6 zones and case ignored). */
export function isFrom(upstream: DnsUpstream, from: RemoteInfo): boolean {
  const strip = (host: string): string => host.replace(/%.*$/, '').toLowerCase();
  return from.port === upstream.port && strip(from.address) === strip(upstream.host);
}

/** The UDP sockets toward upstreams, opened on first use (random local port) and unref'd. */
export class UpstreamSockets {
  private v4: UdpSocket | undefined;
  private v6: UdpSocket | undefined;
  private closed = false;

  constructor(
    private readonly onMessage: (message: Buffer, from: RemoteInfo) => void,
    private readonly onError: (err: Error) => void,
  ) {}

  /** Sends one datagram; `done` gets the send error, if any. */
  send(bytes: Uint8Array, upstream: DnsUpstream, done: (err: Error | null) => void): void {
    if (this.closed) return done(new Error('DNS proxy closed'));
    this.socket(isIPv6(upstream.host.replace(/%.*$/, '')) ? 'udp6' : 'udp4').send(bytes, upstream.port, upstream.host, (err) =>
      done(err ?? null),
    );
  }

  close(): void {
    this.closed = true;
    this.v4?.close();
    this.v6?.close();
    this.v4 = this.v6 = undefined;
  }

  private socket(type: 'udp4' | 'udp6'): UdpSocket {
    const existing = type === 'udp4' ? this.v4 : this.v6;
    if (existing !== undefined) return existing;
    const socket = createSocket(type);
    socket.on('message', this.onMessage);
    socket.on('error', this.onError);
    socket.unref();
    if (type === 'udp4') this.v4 = socket;
    else this.v6 = socket;
    return socket;
  }
}

/**
 * Sends `query` over a new TCP connection and reads one length-prefixed
 * response; `done` is called exactly once, with the response or an error
 * (refused, closed early, timed out). Returns a function that cancels it
 * (then `done` is not called).
 */
export function tcpExchange(
  upstream: DnsUpstream,
  query: Uint8Array,
  timeoutMs: number,
  done: (err: Error | null, response?: Uint8Array) => void,
): () => void {
  let finished = false;
  const chunks: Buffer[] = [];
  let received = 0;
  const socket = connect({ host: upstream.host, port: upstream.port });
  const finish = (err: Error | null, response?: Uint8Array): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    socket.destroy();
    done(err, response);
  };
  const timer = setTimeout(() => finish(new Error(`no TCP answer from ${upstream.host}:${upstream.port} in ${timeoutMs} ms`)), timeoutMs);
  timer.unref();
  socket.setNoDelay(true);
  const framed = Buffer.allocUnsafe(2 + query.length);
  framed.writeUInt16BE(query.length, 0);
  framed.set(query, 2);
  socket.write(framed);
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    received += chunk.length;
    if (received > 2 + DNS_TCP_MAX_SIZE) return finish(new Error('oversized TCP answer'));
    if (received < 2) return;
    const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received);
    chunks.length = 0;
    chunks.push(all);
    const length = all.readUInt16BE(0);
    if (received >= 2 + length) finish(null, all.subarray(2, 2 + length));
  });
  socket.on('error', (err) => finish(err));
  socket.on('close', () => finish(new Error(`TCP connection to ${upstream.host}:${upstream.port} closed before the answer`)));
  return () => {
    finished = true;
    clearTimeout(timer);
    socket.destroy();
  };
}
