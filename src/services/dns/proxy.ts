/**
 * DNS proxy for the guests of one network (VirtualBox NAT's 10.0.2.3).
 *
 * Theory of operation
 * - A query from a guest is decoded once with `dns-packet` to check it and
 *   read its question. Undecodable queries get FORMERR when their header is
 *   readable, else are dropped; responses and non-QUERY opcodes are refused.
 * - Local names (VMs on the network, from DHCP leases) are answered here,
 *   authoritatively, A only, with `LOCAL_NAME_TTL_SEC`.
 * - Host-resolver mode (`--nat-dns-host-resolver`): A and AAAA go through the
 *   host's own resolver (`dns.lookup`: /etc/hosts, nsswitch); NXDOMAIN when
 *   the name has no address at all, an empty answer when it has only the other
 *   family. Other types go upstream.
 * - Everything else is proxied: the query's bytes go unchanged to the first
 *   upstream over UDP, except the ID, which is replaced by a random one free in
 *   the pending table (guests choose IDs independently) and put back in the
 *   answer. No answer in `timeoutMs`, a send error, SERVFAIL or REFUSED: the
 *   next upstream. None left: SERVFAIL to the guest.
 * - A truncated UDP answer (TC) is asked again over TCP to the same upstream
 *   (RFC 7766 §5); the full answer goes to the guest when it fits what the
 *   guest takes over UDP (512, or its EDNS size, RFC 6891 §6.2.5), else a
 *   truncated one with TC set, so the guest retries over TCP: its connection
 *   to port 53 is served by the TCP NAT with a `DnsTcpSession` as the host
 *   stream (`openTcp`), whose messages come here (`handleTcp`).
 * - Answers are accepted only from the upstream asked, with the pending ID
 *   and the same question.
 *
 * Limits: `maxPending` queries in flight (upstream and host lookups; more are
 * dropped and counted), each held at most `timeoutMs` per upstream tried.
 */

import { lookup as dnsLookup } from 'node:dns/promises';
import { randomInt } from 'node:crypto';
import type { RemoteInfo } from 'node:dgram';
import * as dnsPacket from 'dns-packet';
import {
  DNS_HEADER_LENGTH,
  DNS_TCP_MAX_SIZE,
  DNS_UDP_DEFAULT_SIZE,
  copyOf,
  errorResponse,
  getId,
  getOpcode,
  getQuestionCount,
  getRcode,
  isResponse,
  isTruncated,
  Rcode,
  sameQuestion,
  setId,
  truncated,
} from './message.js';
import type { DnsUpstream } from './resolv-conf.js';
import { isFrom, tcpExchange, UpstreamSockets } from './upstream.js';
import { DnsTcpSession, type DnsTcpCounters } from './tcp-session.js';
import type { HostStream, HostStreamEvents } from '../../nat/tcp/host-stream.js';

/** TTL of answers for the network's own VMs: short, as leases move. */
export const LOCAL_NAME_TTL_SEC = 30;
/** TTL of answers from the host's resolver, which gives none of its own. */
export const HOST_RESOLVER_TTL_SEC = 60;
/** Wait for one upstream before trying the next. */
export const DEFAULT_TIMEOUT_MS = 2000;
/** Queries in flight when the caller sets no `maxPending`. */
export const DEFAULT_MAX_PENDING = 1024;
/** Half the ID space: beyond it, finding a free random ID gets slow. */
const MAX_PENDING_LIMIT = 0x8000;
const ID_TRIES = 64;
const OPCODE_QUERY = 0;

/**
 * Addresses of `name` in one family from the host's resolver: empty when the
 * name has none of that family (or does not exist); rejects when the resolver
 * fails.
 */
export type HostLookup = (name: string, family: 4 | 6) => Promise<string[]>;

export interface DnsProxyOptions {
  /** Tried in order (see `readResolvConf`). */
  upstreams: DnsUpstream[];
  /** Answer A/AAAA through the host's resolver instead of the upstreams. */
  useHostResolver?: boolean;
  /** The host's resolver; `dns.lookup` unless a test replaces it. */
  lookup?: HostLookup;
  /** Addresses of a VM of this network by name, or undefined when no VM has it (e.g. `DhcpServer.resolveName`). */
  localNames?: (name: string) => number[] | undefined;
  /** Per upstream tried; DEFAULT_TIMEOUT_MS. */
  timeoutMs?: number;
  /** DEFAULT_MAX_PENDING, at most 32768. */
  maxPending?: number;
}

export interface DnsProxyStats {
  queries: number;
  /** Answers relayed from an upstream. */
  forwarded: number;
  local: number;
  hostResolver: number;
  /** Answers cut to header and question for the guest's UDP size. */
  truncated: number;
  tcpRetries: number;
  timeouts: number;
  /** Queries moved to the next upstream. */
  failovers: number;
  servfails: number;
  formerrs: number;
  /** Opcodes other than QUERY, answered NOTIMP. */
  notimps: number;
  pending: number;
  /** Guests' TCP connections (RFC 7766). */
  tcp: DnsTcpCounters;
  /** Datagrams dropped without an answer, by reason. */
  drops: Record<string, number>;
}

type Reply = (response: Uint8Array) => void;

/** A query waiting for an upstream. */
interface Pending {
  readonly upstreamId: number;
  readonly guestId: number;
  /** The guest's query, copied, with `upstreamId`. */
  readonly query: Uint8Array;
  readonly reply: Reply;
  /** Largest answer the guest takes on its transport. */
  readonly guestLimit: number;
  /** Index of the upstream being asked. */
  attempt: number;
  timer: NodeJS.Timeout | undefined;
  cancelTcp: (() => void) | undefined;
}

type Counters = Omit<DnsProxyStats, 'pending' | 'tcp' | 'drops'>;

async function hostLookup(name: string, family: 4 | 6): Promise<string[]> {
  try {
    const found = await dnsLookup(name, { all: true, family, verbatim: true });
    return found.map((a) => a.address);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTFOUND' || code === 'ENODATA') return [];
    throw err;
  }
}

function ipv4Text(n: number): string {
  return `${(n >>> 24) & 0xff}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;
}

export class DnsProxy {
  private readonly upstreams: DnsUpstream[];
  private readonly useHostResolver: boolean;
  private readonly lookup: HostLookup;
  private readonly localNames: ((name: string) => number[] | undefined) | undefined;
  private readonly timeoutMs: number;
  private readonly maxPending: number;
  private readonly pending = new Map<number, Pending>();
  private hostLookups = 0;
  private readonly sockets: UpstreamSockets;
  private closed = false;
  private readonly counters: Counters = {
    queries: 0,
    forwarded: 0,
    local: 0,
    hostResolver: 0,
    truncated: 0,
    tcpRetries: 0,
    timeouts: 0,
    failovers: 0,
    servfails: 0,
    formerrs: 0,
    notimps: 0,
  };
  private readonly drops: Record<string, number> = {};
  private readonly tcpCounters: DnsTcpCounters = { sessions: 0, messages: 0, broken: 0, idleClosed: 0 };

  constructor(options: DnsProxyOptions) {
    this.upstreams = [...options.upstreams];
    this.useHostResolver = options.useHostResolver ?? false;
    this.lookup = options.lookup ?? hostLookup;
    this.localNames = options.localNames;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.maxPending = Math.min(options.maxPending ?? DEFAULT_MAX_PENDING, MAX_PENDING_LIMIT);
    this.sockets = new UpstreamSockets(
      (message, from) => this.fromHost(message, from),
      () => this.drop('dns:upstream-socket-error'),
    );
  }

  /**
   * One DNS query datagram from a guest; `reply` is called at most once, now
   * or later, with the response datagram. `query` is read before this returns
   * (what is kept is copied). Malformed queries are counted, then answered
   * FORMERR when the header is readable, else dropped. Never throws.
   */
  handle(query: Uint8Array, reply: Reply): void {
    this.query(query, reply, 'udp');
  }

  /**
   * One DNS message from a guest's TCP stream (without its 2-byte length
   * prefix); the answer is never truncated. The caller frames both ways.
   */
  handleTcp(query: Uint8Array, reply: Reply): void {
    this.query(query, reply, 'tcp');
  }

  /** A guest's TCP connection to the proxy, served as the TCP NAT's host stream (tcp-session.ts). */
  readonly openTcp = (events: HostStreamEvents): HostStream =>
    new DnsTcpSession(events, (query, reply) => this.handleTcp(query, reply), this.tcpCounters);

  stats(): DnsProxyStats {
    return { ...this.counters, pending: this.pending.size + this.hostLookups, tcp: { ...this.tcpCounters }, drops: { ...this.drops } };
  }

  /** Closes the upstream sockets and forgets pending queries (they get no answer). */
  close(): void {
    this.closed = true;
    for (const p of this.pending.values()) this.stop(p);
    this.pending.clear();
    this.sockets.close();
  }

  // ---- From the guest

  private query(query: Uint8Array, reply: Reply, transport: 'udp' | 'tcp'): void {
    if (this.closed) return;
    this.counters.queries++;
    if (query.length < DNS_HEADER_LENGTH) return this.drop('dns:truncated');
    if (isResponse(query)) return this.drop('dns:not-query');
    let decoded: dnsPacket.DecodedPacket;
    try {
      decoded = dnsPacket.decode(Buffer.from(query.buffer, query.byteOffset, query.byteLength));
    } catch {
      return this.fail(query, reply, Rcode.FormErr);
    }
    if (getOpcode(query) !== OPCODE_QUERY) return this.fail(query, reply, Rcode.NotImp);
    if (getQuestionCount(query) !== 1) return this.fail(query, reply, Rcode.FormErr);
    const question = decoded.questions![0]!;
    const inClass = question.class === undefined || question.class === 'IN';
    if (inClass && this.answerLocally(decoded, question, reply)) return;
    if (inClass && this.useHostResolver && (question.type === 'A' || question.type === 'AAAA')) {
      return this.answerFromHost(decoded, question, reply);
    }
    this.forward(query, reply, transport === 'tcp' ? DNS_TCP_MAX_SIZE : this.guestUdpSize(decoded));
  }

  /** RFC 6891 §6.2.5: the requestor's UDP payload size, never below 512. */
  private guestUdpSize(decoded: dnsPacket.DecodedPacket): number {
    const opt = decoded.additionals?.find((rr): rr is dnsPacket.OptAnswer => rr.type === 'OPT');
    return Math.max(DNS_UDP_DEFAULT_SIZE, Math.min(opt?.udpPayloadSize ?? 0, DNS_TCP_MAX_SIZE));
  }

  private answerLocally(decoded: dnsPacket.DecodedPacket, question: dnsPacket.Question, reply: Reply): boolean {
    const addresses = this.localNames?.(question.name);
    if (addresses === undefined || addresses.length === 0) return false;
    this.counters.local++;
    // A name of ours: A records for A; every other type exists with no data (RFC 2308 §2.2).
    const answers: dnsPacket.Answer[] =
      question.type === 'A'
        ? addresses.map((a) => ({ type: 'A', name: question.name, ttl: LOCAL_NAME_TTL_SEC, data: ipv4Text(a) }))
        : [];
    reply(this.respond(decoded, Rcode.NoError, answers, true));
    return true;
  }

  private answerFromHost(decoded: dnsPacket.DecodedPacket, question: dnsPacket.Question, reply: Reply): void {
    if (this.pending.size + this.hostLookups >= this.maxPending) return this.drop('dns:too-many-pending');
    this.hostLookups++;
    const family = question.type === 'A' ? 4 : 6;
    const resolve = async (): Promise<Uint8Array> => {
      const found = await this.lookup(question.name, family);
      if (found.length > 0) {
        const answers = found.map((data) => ({ type: question.type, name: question.name, ttl: HOST_RESOLVER_TTL_SEC, data }) as dnsPacket.StringAnswer);
        return this.respond(decoded, Rcode.NoError, answers, false);
      }
      // Only NXDOMAIN when the name has no address at all: NXDOMAIN means "no such name", for every type.
      const other = await this.lookup(question.name, family === 4 ? 6 : 4);
      return this.respond(decoded, other.length > 0 ? Rcode.NoError : Rcode.NxDomain, [], false);
    };
    resolve().then(
      (response) => {
        this.hostLookups--;
        if (this.closed) return;
        this.counters.hostResolver++;
        reply(response);
      },
      () => {
        this.hostLookups--;
        if (this.closed) return;
        this.counters.servfails++;
        reply(this.respond(decoded, Rcode.ServFail, [], false));
      },
    );
  }

  /** A response to a decoded query: same ID, question and RD; RA set. A new buffer. */
  private respond(decoded: dnsPacket.DecodedPacket, rcode: number, answers: dnsPacket.Answer[], authoritative: boolean): Uint8Array {
    let flags = dnsPacket.RECURSION_AVAILABLE | rcode;
    if (decoded.flag_rd) flags |= dnsPacket.RECURSION_DESIRED;
    if (authoritative) flags |= dnsPacket.AUTHORITATIVE_ANSWER;
    return dnsPacket.encode({ type: 'response', id: decoded.id ?? 0, flags, questions: decoded.questions ?? [], answers });
  }

  /** An error answer built from the query's bytes. */
  private fail(query: Uint8Array, reply: Reply, rcode: number): void {
    if (rcode === Rcode.FormErr) this.counters.formerrs++;
    if (rcode === Rcode.ServFail) this.counters.servfails++;
    if (rcode === Rcode.NotImp) this.counters.notimps++;
    reply(errorResponse(query, rcode));
  }

  // ---- To and from the upstreams (the host side)

  private forward(query: Uint8Array, reply: Reply, guestLimit: number): void {
    if (this.upstreams.length === 0) return this.fail(query, reply, Rcode.ServFail);
    if (this.pending.size + this.hostLookups >= this.maxPending) return this.drop('dns:too-many-pending');
    const upstreamId = this.freeId();
    if (upstreamId === undefined) return this.drop('dns:no-free-id');
    const copy = copyOf(query);
    setId(copy, upstreamId);
    const p: Pending = {
      upstreamId,
      guestId: getId(query),
      query: copy,
      reply,
      guestLimit,
      attempt: 0,
      timer: undefined,
      cancelTcp: undefined,
    };
    this.pending.set(upstreamId, p);
    this.sendUdp(p);
  }

  private freeId(): number | undefined {
    for (let i = 0; i < ID_TRIES; i++) {
      const id = randomInt(0, 0x10000);
      if (!this.pending.has(id)) return id;
    }
    return undefined;
  }

  private sendUdp(p: Pending): void {
    const attempt = p.attempt;
    const upstream = this.upstreams[attempt]!;
    p.timer = setTimeout(() => {
      this.counters.timeouts++;
      this.next(p);
    }, this.timeoutMs);
    p.timer.unref();
    this.sockets.send(p.query, upstream, (err) => {
      if (err !== null && this.pending.get(p.upstreamId) === p && p.attempt === attempt && p.cancelTcp === undefined) {
        this.drop('dns:upstream-send-error');
        this.next(p);
      }
    });
  }

  /** Moves to the next upstream, or answers SERVFAIL when none is left. */
  private next(p: Pending): void {
    this.stop(p);
    p.attempt++;
    if (p.attempt < this.upstreams.length) {
      this.counters.failovers++;
      this.sendUdp(p);
      return;
    }
    this.pending.delete(p.upstreamId);
    const response = errorResponse(p.query, Rcode.ServFail);
    setId(response, p.guestId);
    this.counters.servfails++;
    p.reply(response);
  }

  private stop(p: Pending): void {
    clearTimeout(p.timer);
    p.timer = undefined;
    p.cancelTcp?.();
    p.cancelTcp = undefined;
  }

  private fromHost(message: Buffer, from: RemoteInfo): void {
    if (message.length < DNS_HEADER_LENGTH || !isResponse(message)) return this.drop('dns:bad-upstream-answer');
    const p = this.pending.get(getId(message));
    if (p === undefined || p.cancelTcp !== undefined || !isFrom(this.upstreams[p.attempt]!, from)) {
      return this.drop('dns:unexpected-answer');
    }
    if (!sameQuestion(p.query, message)) return this.drop('dns:question-mismatch');
    if (isTruncated(message)) return this.retryOverTcp(p);
    const rcode = getRcode(message);
    if ((rcode === Rcode.ServFail || rcode === Rcode.Refused) && p.attempt + 1 < this.upstreams.length) return this.next(p);
    this.finish(p, message);
  }

  private retryOverTcp(p: Pending): void {
    clearTimeout(p.timer);
    p.timer = undefined;
    this.counters.tcpRetries++;
    p.cancelTcp = tcpExchange(this.upstreams[p.attempt]!, p.query, this.timeoutMs, (err, response) => {
      p.cancelTcp = undefined;
      if (err !== null || response === undefined || response.length < DNS_HEADER_LENGTH) {
        this.drop('dns:upstream-tcp-failed');
        return this.next(p);
      }
      if (getId(response) !== p.upstreamId || !sameQuestion(p.query, response)) {
        this.drop('dns:question-mismatch');
        return this.next(p);
      }
      this.finish(p, response);
    });
  }

  /** Relays an upstream's answer (ours to change: a socket's buffer) to the guest with its ID back. */
  private finish(p: Pending, response: Uint8Array): void {
    this.stop(p);
    this.pending.delete(p.upstreamId);
    setId(response, p.guestId);
    this.counters.forwarded++;
    if (response.length > p.guestLimit) {
      this.counters.truncated++;
      p.reply(truncated(response));
      return;
    }
    p.reply(response);
  }

  private drop(reason: string): void {
    this.drops[reason] = (this.drops[reason] ?? 0) + 1;
  }
}
