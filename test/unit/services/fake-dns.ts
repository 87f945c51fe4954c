/**
 * A fake upstream DNS server on 127.0.0.1 (UDP and TCP on one random port),
 * built with dns-packet, for the DNS proxy tests. Never a real resolver.
 */

import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import * as dnsPacket from 'dns-packet';

/** Names the fake server knows. `big.test` TXT does not fit 512 bytes: over UDP it answers TC. */
const ZONE: Record<string, dnsPacket.Answer[]> = {
  'example.test/A': [{ type: 'A', name: 'example.test', ttl: 300, data: '192.0.2.10' }],
  'example.test/AAAA': [{ type: 'AAAA', name: 'example.test', ttl: 300, data: '2001:db8::10' }],
  'example.test/MX': [{ type: 'MX', name: 'example.test', ttl: 300, data: { preference: 10, exchange: 'mail.example.test' } }],
  'example.test/TXT': [{ type: 'TXT', name: 'example.test', ttl: 300, data: ['v=spf1 -all'] }],
  'a.test/A': [{ type: 'A', name: 'a.test', ttl: 300, data: '192.0.2.1' }],
  'b.test/A': [{ type: 'A', name: 'b.test', ttl: 300, data: '192.0.2.2' }],
  'big.test/TXT': Array.from({ length: 12 }, (_, i) => ({
    type: 'TXT' as const,
    name: 'big.test',
    ttl: 300,
    data: [`record ${i} `.padEnd(80, 'x')],
  })),
};

export interface FakeDnsOptions {
  /** Never answer (a dead upstream). */
  silent?: boolean;
  /** Answer every query with this rcode (e.g. SERVFAIL). */
  rcode?: number;
  /** Delay in ms per name before answering over UDP. */
  delays?: Record<string, number>;
}

export class FakeDns {
  readonly udpQueries: dnsPacket.DecodedPacket[] = [];
  tcpQueries = 0;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly connections = new Set<Socket>();

  private constructor(
    private readonly udp: UdpSocket,
    private readonly tcp: Server,
    readonly port: number,
    private readonly options: FakeDnsOptions,
  ) {}

  /** Starts UDP and TCP on 127.0.0.1, on one free port. */
  static async start(options: FakeDnsOptions = {}): Promise<FakeDns> {
    for (let tries = 0; tries < 10; tries++) {
      const udp = createSocket('udp4');
      udp.bind(0, '127.0.0.1');
      await once(udp, 'listening');
      const port = udp.address().port;
      const tcp = createServer();
      const listening = new Promise<boolean>((resolve) => {
        tcp.once('error', () => resolve(false));
        tcp.listen(port, '127.0.0.1', () => resolve(true));
      });
      if (await listening) {
        const server = new FakeDns(udp, tcp, port, options);
        server.serve();
        return server;
      }
      udp.close();
    }
    throw new Error('no free port on 127.0.0.1 for the fake DNS server');
  }

  get upstream(): { host: string; port: number } {
    return { host: '127.0.0.1', port: this.port };
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    for (const c of this.connections) c.destroy();
    this.udp.close();
    await new Promise<void>((resolve) => this.tcp.close(() => resolve()));
  }

  private serve(): void {
    this.udp.on('message', (message, from) => {
      const query = dnsPacket.decode(message);
      this.udpQueries.push(query);
      if (this.options.silent) return;
      const response = this.answer(query, 'udp');
      const delay = this.options.delays?.[query.questions?.[0]?.name ?? ''] ?? 0;
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.udp.send(response, from.port, from.address);
      }, delay);
      this.timers.add(timer);
    });
    this.tcp.on('connection', (socket) => {
      this.connections.add(socket);
      socket.on('close', () => this.connections.delete(socket));
      let buffered = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
          const length = buffered.readUInt16BE(0);
          const query = dnsPacket.decode(buffered.subarray(2, 2 + length));
          buffered = buffered.subarray(2 + length);
          this.tcpQueries++;
          if (this.options.silent) continue;
          const response = this.answer(query, 'tcp');
          const framed = Buffer.alloc(2 + response.length);
          framed.writeUInt16BE(response.length, 0);
          response.copy(framed, 2);
          socket.write(framed);
        }
      });
    });
  }

  private answer(query: dnsPacket.DecodedPacket, transport: 'udp' | 'tcp'): Buffer {
    const question = query.questions![0]!;
    const answers = ZONE[`${question.name.toLowerCase()}/${question.type}`];
    const base = { type: 'response' as const, id: query.id, questions: query.questions };
    const flags = dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE;
    if (this.options.rcode !== undefined) return dnsPacket.encode({ ...base, flags: flags | this.options.rcode });
    if (answers === undefined) return dnsPacket.encode({ ...base, flags: flags | 3 });
    const full = dnsPacket.encode({ ...base, flags, answers });
    if (transport === 'udp' && full.length > 512) {
      return dnsPacket.encode({ ...base, flags: flags | dnsPacket.TRUNCATED_RESPONSE });
    }
    return full;
  }
}
