/**
 * The TCP half of the NAT: guests' TCP connections relayed through host
 * sockets (RFC 9293 toward the guest, a host stream toward the host:
 * host-stream.ts), and port forwards from host sockets into guests.
 *
 * Theory of operation
 *
 * - Flows: one `Connection` per guest ip:port ↔ remote ip:port. The table is
 *   a Map keyed by a number made of both ports and the addresses
 *   (`flowKey`: no string building per segment); the rare flows sharing a
 *   key are chained. (Keyed by the guest's endpoint alone, as it once was,
 *   every connection through one port forward landed in one chain, walked
 *   per segment: 9 % of the daemon's time at 4,000 connections/s.) The
 *   remote address the guest sees is the destination of its SYN (for port
 *   forwards, the source the lead chose), never the host address we dial.
 * - Guest segment path (`fromGuest`): checksum, lookup, then the connection's
 *   state machine (connection.ts). A SYN for an unknown flow starts a host
 *   connect; any other segment for an unknown flow gets a RST (RFC 9293
 *   §3.10.7.1), a RST gets nothing.
 * - Batching: connections touched during a batch of guest frames are flushed
 *   once at its end (one promise job, src/after-call.ts): staged guest bytes
 *   go to the host socket in one write and one ACK goes back.
 * - Flows: one table by flowKey (flow-table.ts: a Map that does not
 *   reallocate itself at every close), collisions chained through `next`.
 * - Time: one timer heap and one `setTimeout` per NAT, armed for the
 *   earliest deadline (timer-heap.ts). `runTimers` is public for fake clocks.
 * - Limits (limits.ts): `maxFlows` (a SYN beyond it gets RST), `maxConnecting`
 *   host connects in flight (a SYN beyond it is dropped; the guest retries),
 *   per-flow send/receive buffers and out-of-order queue.
 * - Drops are counted as `tcp:<reason>`; malformed input never throws.
 */

import { afterCall } from '../../after-call.js';
import { formatIpv4 } from '../../wire/address.js';
import type { Clock, GuestLink } from '../../stack/guest-link.js';
import { fold, pseudoHeaderSum, sum } from '../../wire/checksum.js';
import { WireError } from '../../wire/errors.js';
import { IpProtocol, type Ipv4View } from '../../wire/ipv4.js';
import { parseTcpOptions, TCP_HEADER_LENGTH, TcpFlags, type TcpOptions, type TcpView } from '../../wire/tcp.js';
import { Connection, flowKey, type ConnectionHost, type TcpState } from './connection.js';
import { openNetHostStream, type AcceptedHostSocket, type HostStreamEvents, type OpenHostStream, type OpenLocalStream } from './host-stream.js';
import { FlowTable } from './flow-table.js';
import { DEFAULT_TCP_LIMITS, type TcpCounters, type TcpLimits } from './limits.js';
import { BlockPool, READ_BLOCK_SIZE, STAGING_BLOCK_SIZE } from './block-pool.js';
import { fillTcpChecksum, sharedSegmentFrame, writeSegmentHeaders } from './segment.js';
import { seqAdd, seqFromWire } from './seq.js';
import { SharedBudget } from './shared-budget.js';
import { TimerHeap } from './timer-heap.js';
import { TimeWait, type Flow, type TimeWaitHost } from './time-wait.js';
import { segmentTimestamp } from './timestamps.js';

export type { TcpLimits } from './limits.js';
export type { TcpState } from './connection.js';

export interface TcpNatOptions {
  /** To the guests. */
  link: GuestLink;
  /** Milliseconds; default `Date.now`. */
  clock?: Clock;
  /** Opens host connections; default `openNetHostStream` (a net.Socket each; the daemon passes the addon's). */
  connect?: OpenHostStream;
  /** Emits ICMP destination unreachable (`code`) quoting the guest's IPv4 packet. Without it the guest gets RST instead. */
  sendIcmpUnreachable?: (original: Uint8Array, code: number) => void;
  /** Overrides of `DEFAULT_TCP_LIMITS`. */
  limits?: Partial<TcpLimits>;
  /** Verify the TCP checksum of guest segments (default true); off when the transport vouches for it. */
  verifyChecksum?: boolean;
}

export interface TcpNatStats extends Omit<TcpCounters, 'drops'> {
  flows: number;
  connecting: number;
  /** Host bytes held for guests, all flows (limits.maxQueuedBytes). */
  queuedToGuests: number;
  /** Flows whose host socket waits for room under limits.maxQueuedBytes. */
  waitingForRoom: number;
  /** Guest bytes not yet taken by host sockets plus windows open to guests, all flows (limits.maxHeldForHosts). */
  heldForHosts: number;
  /** Flows whose window waits for room under limits.maxHeldForHosts. */
  waitingForWindowRoom: number;
  /** Flows per state. */
  states: Partial<Record<TcpState, number>>;
  drops: Record<string, number>;
}

export interface TcpConnectionInfo {
  guestIp: number;
  guestPort: number;
  remoteIp: number;
  remotePort: number;
  state: TcpState;
  /** Host bytes held for the guest (unacknowledged or not yet sent). */
  queued: number;
  /** Sequence space sent and not yet acknowledged. */
  inFlight: number;
  /** The guest's window, bytes. */
  sendWindow: number;
  /** Guest bytes not yet taken by the host socket. */
  buffered: number;
  rto: number;
}

/** Largest delay `setTimeout` takes. */
const MAX_TIMEOUT_MS = 0x7fffffff;

export class TcpNat implements ConnectionHost, TimeWaitHost {
  readonly link: GuestLink;
  readonly limits: Readonly<TcpLimits>;
  readonly readBlocks = new BlockPool(READ_BLOCK_SIZE, 128);
  readonly stagingBlocks = new BlockPool(STAGING_BLOCK_SIZE, 32);
  readonly counters: TcpCounters = {
    opened: 0,
    closed: 0,
    refused: 0,
    unreachable: 0,
    resets: 0,
    retransmits: 0,
    fastRetransmits: 0,
    timeouts: 0,
    drops: {},
  };

  private readonly clock: Clock;
  private readonly openHost: OpenHostStream;
  private readonly sendIcmp: ((original: Uint8Array, code: number) => void) | undefined;
  private readonly verifyChecksum: boolean;

  private readonly table = new FlowTable<Flow>();
  private count = 0;
  private connecting = 0;
  private ipId = 0;

  private readonly timers = new TimerHeap<Flow>();
  private timeout: NodeJS.Timeout | undefined;
  private wakeAt = Infinity;

  /** Host bytes queued toward guests, all flows (limits.maxQueuedBytes); a waiting connection's host socket is paused. */
  readonly toGuests: SharedBudget<Connection>;
  /** Guest bytes held or promised toward hosts, all flows (limits.maxHeldForHosts); a waiting connection's window is held back. */
  readonly forHosts: SharedBudget<Connection>;
  private tails: Connection[] = [];
  private tailsQueued = false;
  private dirty: Connection[] = [];
  private spare: Connection[] = [];
  private flushQueued = false;
  private closed = false;

  constructor(options: TcpNatOptions) {
    this.link = options.link;
    this.clock = options.clock ?? Date.now;
    this.openHost = options.connect ?? openNetHostStream;
    this.sendIcmp = options.sendIcmpUnreachable;
    this.limits = { ...DEFAULT_TCP_LIMITS, ...options.limits };
    this.toGuests = new SharedBudget(this.limits.maxQueuedBytes, (c) => c.budgetFreed());
    this.forHosts = new SharedBudget(this.limits.maxHeldForHosts, (c) => c.windowRoomFreed());
    this.verifyChecksum = options.verifyChecksum ?? true;
  }

  /**
   * A TCP segment from a guest to somewhere outside. `ip` and `tcp` are
   * checked views valid only during the call (whatever is kept is copied).
   * `target` is where a new flow goes: a host address its socket connects to
   * (absent: the packet's own destination, formatted only for a new flow),
   * or a local service that opens the flow's stream itself (the DNS proxy's
   * TCP); null refuses new flows (RST) but still serves existing ones. `checksumPending`: the
   * guest left the checksum to offload (it is not filled in). Never throws
   * for bad input: drops are counted in `stats().drops`.
   */
  fromGuest(ip: Ipv4View, tcp: TcpView, target?: string | OpenLocalStream | null, checksumPending = false): void {
    if (this.closed) return;
    const bytes = tcp.bytes;
    if (ip.isFragment) return this.drop('tcp:fragment');
    if (bytes.length < TCP_HEADER_LENGTH || tcp.headerLength < TCP_HEADER_LENGTH || tcp.headerLength > bytes.length) {
      return this.drop('tcp:bad-length');
    }
    const guestIp = ip.source;
    const remoteIp = ip.destination;
    if (
      this.verifyChecksum &&
      !checksumPending &&
      fold(sum(bytes, pseudoHeaderSum(guestIp, remoteIp, IpProtocol.TCP, bytes.length))) !== 0
    ) {
      return this.drop('tcp:bad-checksum');
    }
    const guestPort = tcp.sourcePort;
    const remotePort = tcp.destinationPort;
    let connection = this.lookup(guestIp, guestPort, remoteIp, remotePort);
    const flags = tcp.flags;
    if (connection !== undefined) {
      const newSyn = (flags & (TcpFlags.SYN | TcpFlags.ACK | TcpFlags.RST)) === TcpFlags.SYN;
      if (!(newSyn && connection.makeWayFor(seqFromWire(tcp.sequenceNumber), segmentTimestamp(bytes, tcp.headerLength)))) {
        connection.fromGuest(tcp, this.clock());
        return;
      }
      connection = undefined;
    }
    if ((flags & TcpFlags.RST) !== 0) return this.drop('tcp:no-flow');
    if ((flags & (TcpFlags.SYN | TcpFlags.ACK)) !== TcpFlags.SYN) {
      this.replyReset(ip, tcp);
      return this.drop('tcp:no-flow');
    }
    if (target === null) {
      this.replyReset(ip, tcp);
      this.counters.refused++;
      return;
    }
    this.open(ip, tcp, target ?? formatIpv4(ip.destination));
  }

  /**
   * Port forward: relays a connection a host listener accepted to
   * guestIp:guestPort; the guest sees it come from sourceIp:sourcePort. The
   * NAT owns it from now on (closes it when the guest refuses or vanishes).
   */
  forward(accepted: AcceptedHostSocket, guestIp: number, guestPort: number, sourceIp: number, sourcePort: number): void {
    if (this.closed || this.count >= this.limits.maxFlows) {
      this.drop('tcp:table-full');
      accepted.close();
      return;
    }
    if (this.lookup(guestIp, guestPort, sourceIp, sourcePort) !== undefined) {
      this.drop('tcp:forward-in-use');
      accepted.close();
      return;
    }
    const open = (events: HostStreamEvents) => accepted.open(events);
    const connection = new Connection(this, guestIp >>> 0, guestPort, sourceIp >>> 0, sourcePort, open, 'synSent');
    this.insert(connection);
    connection.startForward();
  }

  get flowCount(): number {
    return this.count;
  }

  stats(): TcpNatStats {
    const states: Partial<Record<TcpState, number>> = {};
    for (const head of this.table.values()) {
      for (let c: Flow | undefined = head; c !== undefined; c = c.next) states[c.state] = (states[c.state] ?? 0) + 1;
    }
    return {
      ...this.counters,
      flows: this.count,
      connecting: this.connecting,
      queuedToGuests: this.toGuests.bytes,
      waitingForRoom: this.toGuests.waiters,
      heldForHosts: this.forHosts.bytes,
      waitingForWindowRoom: this.forHosts.waiters,
      states,
      drops: { ...this.counters.drops },
    };
  }

  /** A snapshot of every flow, for status output and tests. */
  connections(): TcpConnectionInfo[] {
    const out: TcpConnectionInfo[] = [];
    for (const head of this.table.values()) {
      for (let c: Flow | undefined = head; c !== undefined; c = c.next) {
        out.push({ guestIp: c.guestIp, guestPort: c.guestPort, remoteIp: c.remoteIp, remotePort: c.remotePort, ...c.describe() });
      }
    }
    return out;
  }

  /** RST every flow of the guest at `guestIp` (it left the network): nothing of it stays behind. */
  closeGuest(guestIp: number): void {
    const gone: Flow[] = [];
    for (const head of this.table.values()) {
      for (let c: Flow | undefined = head; c !== undefined; c = c.next) if (c.guestIp === guestIp >>> 0) gone.push(c);
    }
    for (const c of gone) c.abort();
  }

  /** RST every flow and release every socket and timer. The NAT takes no more segments. */
  close(): void {
    this.closed = true;
    const all: Flow[] = [];
    for (const head of this.table.values()) for (let c: Flow | undefined = head; c !== undefined; c = c.next) all.push(c);
    for (const c of all) c.abort();
    if (this.timeout !== undefined) clearTimeout(this.timeout);
    this.timeout = undefined;
    this.wakeAt = Infinity;
  }

  /**
   * Fires every timer due at `now`. The NAT calls it from its own timeout;
   * tests with a fake clock call it after moving the clock.
   */
  runTimers(now: number = this.clock()): void {
    for (let c = this.timers.popDue(now); c !== undefined; c = this.timers.popDue(now)) c.onTimer(now);
    const next = this.timers.peek();
    if (next !== undefined && next.timerAt < this.wakeAt) this.wake(next.timerAt);
  }

  // ---- ConnectionHost -------------------------------------------------------

  now(): number {
    return this.clock();
  }

  armTimer(flow: Flow, at: number): void {
    if (flow.state === 'closed') return;
    if (flow.timerIndex >= 0 && flow.timerAt <= at) return;
    this.timers.schedule(flow, at);
    if (at < this.wakeAt) this.wake(at);
  }

  markDirty(connection: Connection): void {
    if (connection.dirty) return;
    connection.dirty = true;
    this.dirty.push(connection);
    if (!this.flushQueued) {
      this.flushQueued = true;
      afterCall(this.flush);
    }
  }

  deferTail(connection: Connection): void {
    this.tails.push(connection);
    if (!this.tailsQueued) {
      this.tailsQueued = true;
      setImmediate(this.sendTails);
    }
  }

  remove(connection: Connection): void {
    this.toGuests.forget(connection);
    this.forHosts.forget(connection);
    this.unlink(connection);
    this.counters.closed++;
  }

  settleTimeWait(connection: Connection): void {
    const record = new TimeWait(this, connection.key, connection.guestIp, connection.guestPort, connection.remoteIp, connection.remotePort, connection.lingerState());
    connection.close('destroy');
    this.enter(record);
    record.start();
  }

  unlink(flow: Flow): void {
    this.timers.cancel(flow);
    const head = this.table.get(flow.key);
    if (head === flow) {
      if (flow.next === undefined) this.table.delete(flow.key);
      else this.table.set(flow.key, flow.next);
    } else {
      for (let f = head; f !== undefined; f = f.next) {
        if (f.next === flow) {
          f.next = flow.next;
          break;
        }
      }
    }
    flow.next = undefined;
    this.count--;
  }

  connectFinished(): void {
    this.connecting--;
  }

  nextIpId(): number {
    this.ipId = (this.ipId + 1) & 0xffff;
    return this.ipId;
  }

  drop(reason: string): void {
    const drops = this.counters.drops;
    drops[reason] = (drops[reason] ?? 0) + 1;
  }

  readOptions(tcp: TcpView): TcpOptions | undefined {
    try {
      return parseTcpOptions(tcp.options);
    } catch (err) {
      if (err instanceof WireError) {
        this.drop(err.key);
        return undefined;
      }
      throw err;
    }
  }

  icmpUnreachable(original: Uint8Array, code: number): boolean {
    if (this.sendIcmp === undefined) return false;
    this.sendIcmp(original, code);
    return true;
  }

  // ---- internals --------------------------------------------------------------

  private open(ip: Ipv4View, tcp: TcpView, target: string | OpenLocalStream): void {
    const remoteIp = ip.destination;
    const remotePort = tcp.destinationPort;
    if (remotePort === 0 || tcp.sourcePort === 0) return this.drop('tcp:bad-port');
    // No connections to 0.0.0.0, multicast, or broadcast (RFC 1122 §4.2.3.10).
    if (remoteIp === 0 || remoteIp >>> 28 >= 0xe) return this.drop('tcp:bad-address');
    if (this.count >= this.limits.maxFlows) {
      this.replyReset(ip, tcp);
      return this.drop('tcp:table-full');
    }
    if (this.connecting >= this.limits.maxConnecting) return this.drop('tcp:connect-limit');
    const options = this.readOptions(tcp);
    if (options === undefined) return;
    const open = typeof target === 'function' ? target : (events: HostStreamEvents) => this.openHost(target, remotePort, events);
    const connection = new Connection(this, ip.source, tcp.sourcePort, remoteIp, remotePort, open, 'connecting');
    this.insert(connection);
    this.connecting++;
    connection.startFromGuest(tcp, options, ip.bytes.slice(0, ip.totalLength));
  }

  private insert(connection: Connection): void {
    this.enter(connection);
    this.counters.opened++;
  }

  private enter(flow: Flow): void {
    flow.next = this.table.get(flow.key);
    this.table.set(flow.key, flow);
    this.count++;
  }

  private lookup(guestIp: number, guestPort: number, remoteIp: number, remotePort: number): Flow | undefined {
    let c = this.table.get(flowKey(guestIp, guestPort, remoteIp, remotePort));
    while (c !== undefined && (c.remoteIp !== remoteIp || c.remotePort !== remotePort || c.guestIp !== guestIp || c.guestPort !== guestPort)) c = c.next;
    return c;
  }

  /** RFC 9293 §3.10.7.1: the reply to a segment for no connection (never to a RST). */
  private replyReset(ip: Ipv4View, tcp: TcpView): void {
    const flags = tcp.flags;
    let seq = 0;
    let ack = 0;
    let replyFlags = TcpFlags.RST;
    if ((flags & TcpFlags.ACK) !== 0) {
      // "If the ACK bit is on, <SEQ=SEG.ACK><CTL=RST>"
      seq = seqFromWire(tcp.acknowledgmentNumber);
    } else {
      // "<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>"
      const length = tcp.payload.length + ((flags & TcpFlags.SYN) !== 0 ? 1 : 0) + ((flags & TcpFlags.FIN) !== 0 ? 1 : 0);
      ack = seqAdd(seqFromWire(tcp.sequenceNumber), length);
      replyFlags |= TcpFlags.ACK;
    }
    const source = ip.destination;
    const destination = ip.source;
    const frame = writeSegmentHeaders(
      sharedSegmentFrame(TCP_HEADER_LENGTH),
      this.nextIpId(),
      source,
      destination,
      tcp.destinationPort,
      tcp.sourcePort,
      seq,
      ack,
      replyFlags,
      0,
      TCP_HEADER_LENGTH,
    );
    fillTcpChecksum(frame, pseudoHeaderSum(source, destination, IpProtocol.TCP, 0));
    this.link.sendIpv4(frame, destination);
  }

  private wake(at: number): void {
    if (this.closed) return;
    if (this.timeout !== undefined) clearTimeout(this.timeout);
    this.wakeAt = at;
    const delay = Math.min(MAX_TIMEOUT_MS, Math.max(0, Math.ceil(at - this.clock())));
    this.timeout = setTimeout(this.onTimeout, delay);
    this.timeout.unref();
  }

  private readonly onTimeout = (): void => {
    this.timeout = undefined;
    this.wakeAt = Infinity;
    this.runTimers();
  };

  private readonly sendTails = (): void => {
    this.tailsQueued = false;
    const list = this.tails;
    this.tails = [];
    for (const c of list) c.sendHeldTail();
  };

  private readonly flush = (): void => {
    this.flushQueued = false;
    const list = this.dirty;
    this.dirty = this.spare;
    for (let i = 0; i < list.length; i++) list[i]!.flush();
    list.length = 0;
    this.spare = list;
  };
}
