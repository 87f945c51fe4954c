/**
 * One TCP connection of the NAT: the guest's TCP on one side, a host
 * stream (host-stream.ts: the addon's socket, or a net.Socket) on the other.
 * Toward the guest we are a TCP endpoint (RFC 9293) speaking for the remote
 * address; toward the host the kernel does TCP for us.
 *
 * Theory of operation
 *
 * - Opening. A guest SYN creates the connection in `connecting` and starts a
 *   host connect; only when it succeeds do we answer SYN-ACK (`synReceived`),
 *   so a closed port is refused with RST, an unreachable one with ICMP. A port
 *   forward hands us an accepted host socket: we send the SYN (`synSent`) and
 *   keep the socket paused until the guest's SYN-ACK; then what the client
 *   sent meanwhile is read at once and its segment carries our ACK.
 * - Host → guest. The socket reads into blocks of the NAT's pool
 *   (block-pool.ts); chunks are queued as read (`ByteQueue`, no
 *   copy; short reads are copied out so they do not pin a block) and cut into
 *   segments of at most the guest's MSS, up to the guest's window;
 *   each segment is built straight into its frame (the one copy). After a
 *   full 64 KiB read a sub-MSS tail waits for the rest of the I/O round
 *   (setImmediate) so large MTUs don't emit a runt per read. Chunks stay
 *   queued until acknowledged, for retransmission. When the queue reaches
 *   twice the guest's window (within `[128 KiB, limits.sendBuffer]`), or
 *   the NAT's queues together reach `limits.maxQueuedBytes`, the socket is
 *   paused; an ACK that drains it resumes the socket (the NAT wakes the
 *   connections that waited for its budget once it is three quarters full).
 * - Guest → host. In-order payload is copied once into a staging buffer (a
 *   pooled block once the connection moves bulk data) and
 *   written to the socket at the end of the batch (one write per batch, not
 *   per segment), or sooner when it fills. Large segments are not copied:
 *   they are gathered as views into their frames and written together in
 *   one sendmsg at the end of the batch (DIRECT_WRITE_MIN). The window we advertise is what is
 *   left of `limits.receiveBuffer` after the socket's unsent bytes: it shrinks
 *   while the host is slow and reopens on 'drain' with a window update. We
 *   never move the right edge back (RFC 9293 §3.8.6.2.2 SWS avoidance too).
 *   Nor does it promise more than the NAT has left under
 *   `limits.maxHeldForHosts` (buffers toward hosts plus open windows, all
 *   connections); windows held by it reopen when the NAT wakes them.
 *   Out-of-order segments are copied and kept (bounded), with an immediate
 *   duplicate ACK so the guest fast-retransmits; its SACK blocks (RFC 2018,
 *   sack.ts) tell a guest that offered SACK which holes to resend.
 * - ACKs toward the guest are coalesced: data segments carry them; otherwise
 *   one ACK per batch (the NAT's microtask), immediately for out-of-order
 *   or repeated data, FIN, probes, or when a quarter of the buffer is
 *   unacknowledged.
 *   (A delayed ACK that a reply could carry was tried three times:
 *   request/response got slower — p99 ~0.5 → 2–4 ms the first time; with the
 *   addon's sockets and a 1 ms timer, p50 +20–40 µs and more CPU per round
 *   trip; owed to the next batch or a 1 ms timer not moved per ACK, 1.1
 *   frames per round trip instead of 2 but no gain in CPU or rate in five
 *   A/B pairs; a fourth time with busy polling, the ACK of one sub-MSS
 *   segment waiting up to 1 ms, no gain in three pairs either; again with
 *   the ACK owed to the loop's idle time, half the frames toward the guest
 *   and no gain in 12 + 16 pairs — so ACKs are not delayed. See
 *   docs/performance.md.)
 * - Loss toward the guest: RTO per RFC 6298 (backoff, min 200 ms), its RTT
 *   from the echo of our timestamp on every ACK of new data when timestamps
 *   are on (RFC 7323 §4, Appendix G's gains), else from one timed segment
 *   per round trip under Karn's rule;
 *   fast retransmit on the third duplicate ACK with NewReno-style partial-ACK
 *   retransmission (RFC 6582), zero-window probes (an ACK at SND.UNA−1, as
 *   Linux's). No congestion window: the
 *   link to the guest is a local queue, so the guest's window is the limit.
 *   The guest's own SACK blocks are not acted on (sack.ts).
 * - SACK toward the guest (RFC 2018, sack.ts): blocks of the out-of-order
 *   data we hold on every pure ACK, and a repeated segment's bytes as the
 *   first block of the ACK it gets at once (D-SACK, RFC 2883).
 * - Timestamps (RFC 7323, timestamps.ts): when the guest's SYN (or its
 *   SYN-ACK to a forward's SYN, which offers them) carried the option, every
 *   segment but a RST carries ours and echoes TS.Recent; PAWS drops older
 *   ones; the guest's echoes of ours time the round trips. What a guest
 *   gains: its kernel can reuse ports in TIME-WAIT.
 * - Closing. Guest FIN → `socket.end()`; host 'end' → FIN after the queued
 *   data. Guest RST → host socket reset; host error/reset → RST to the guest.
 *   The side that closed first lingers (RFC 9293 §3.6): when the host closed
 *   first, the flow stays `timeWaitMs` after both FINs to re-ACK a
 *   repeated FIN (once its host socket is closed, as a TimeWait record of
 *   ~100 bytes in the Connection's place: time-wait.ts); when the guest
 *   did, the guest's kernel keeps TIME-WAIT and the connection leaves the
 *   table as soon as the guest acknowledges our FIN (LAST-ACK → CLOSED),
 *   unless the host socket still holds some of the guest's bytes: then it
 *   lingers until they are written.
 * - Time. One deadline per connection in the NAT's timer heap: the earlier of
 *   the protocol timer (`rtoAt`: connect timeout, SYN/data retransmission,
 *   probe, linger) and the idle deadline (`lastActivity` + timeout for the
 *   state). Deadlines moving later are not re-queued; the heap entry fires
 *   and the connection re-arms (see timer-heap.ts).
 *
 * States and transitions (our side of the conversation with the guest):
 *
 *   state        event                                   → next          action
 *   connecting   host connected                          → synReceived   SYN-ACK
 *   connecting   host refused / other error              → closed        RST to guest
 *   connecting   host unreachable, connect timeout       → closed        ICMP unreachable
 *   connecting   guest RST                               → closed        destroy socket
 *   synSent      guest SYN-ACK                           → established   ACK, resume socket
 *   synSent      guest RST, SYN retries exhausted        → closed        reset socket
 *   synReceived  guest ACK of our SYN                    → established   (finWait if host ended already)
 *   synReceived  SYN-ACK retries exhausted               → closed        RST both ways
 *   established  guest FIN                               → closeWait     socket.end()
 *   established  host 'end'                              → finWait       FIN after queued data
 *   closeWait    host 'end'                              → lastAck       FIN after queued data
 *   finWait      guest FIN, our FIN acked                → timeWait      socket.end()
 *   finWait      guest FIN, our FIN not acked            → closing       socket.end()
 *   closing      guest ACKs our FIN                      → timeWait
 *   lastAck      guest ACKs our FIN, socket flushed      → closed
 *   lastAck      guest ACKs our FIN, bytes still queued  → timeWait
 *   timeWait     host socket closed                      → a TimeWait record
 *   timeWait     linger over (socket flushed)            → closed
 *   any          guest RST (exact sequence)              → closed        reset socket
 *   any          host error or unexpected close          → closed        RST to guest
 *   any          idle timeout, retransmissions exhausted → closed        RST both ways
 */

import type { GuestLink } from '../../stack/guest-link.js';
import { pseudoHeaderSum } from '../../wire/checksum.js';
import { IpProtocol } from '../../wire/ipv4.js';
import { emitTcpOptions, type SackBlock, TCP_HEADER_LENGTH, TcpFlags, tcpOptionsLength, type TcpOptions, type TcpView } from '../../wire/tcp.js';
import { ByteQueue } from './byte-queue.js';
import type { TcpCounters, TcpLimits } from './limits.js';
import { READ_BLOCK_SIZE, SHORT_READ, STAGING_BLOCK_SIZE, type BlockPool } from './block-pool.js';
import { fillTcpChecksum, MAX_OFFLOAD_PAYLOAD, offloadSegment, SEGMENT_HEADROOM, sharedSegmentFrame, TCP_AT, writeSegmentHeaders } from './segment.js';
import {
  optionTsecr,
  optionTsval,
  PAWS_IDLE_MS,
  TIMESTAMP_OPTION_LENGTH,
  timestampAt,
  timestampOffset,
  timestampOptionAt,
  writeTimestampOption,
} from './timestamps.js';
import { ackBlocks, type HeldSegment, maxSackBlocks } from './sack.js';
import type { SharedBudget } from './shared-budget.js';
import { seqAdd, seqFromWire, seqGeq, seqGt, seqInWindow, seqLeq, seqLt, seqMax, seqSub } from './seq.js';
import type { TimerItem } from './timer-heap.js';
import type { Flow, LingerState } from './time-wait.js';
import type { HostStream, HostStreamEvents } from './host-stream.js';

export type TcpState =
  | 'connecting'
  | 'synSent'
  | 'synReceived'
  | 'established'
  | 'closeWait'
  | 'finWait'
  | 'lastAck'
  | 'closing'
  | 'timeWait'
  | 'closed';

/** What a connection needs from its NAT. */
export interface ConnectionHost {
  readonly link: GuestLink;
  readonly limits: Readonly<TcpLimits>;
  readonly counters: TcpCounters;
  /** Blocks host sockets read into, and blocks guest bytes are staged in (block-pool.ts). */
  readonly readBlocks: BlockPool;
  readonly stagingBlocks: BlockPool;
  now(): number;
  /** Makes sure the connection's timer fires no later than `at`. */
  armTimer(connection: Connection, at: number): void;
  /** Host bytes queued toward guests, all connections (limits.maxQueuedBytes); wakes waiters with `budgetFreed()`. */
  readonly toGuests: SharedBudget<Connection>;
  /**
   * What the NAT holds or has promised toward hosts: guest bytes not yet
   * taken by a host socket, and windows still open to guests
   * (limits.maxHeldForHosts); wakes waiters with `windowRoomFreed()`.
   */
  readonly forHosts: SharedBudget<Connection>;
  /** Calls `connection.flush()` at the end of the current batch. */
  markDirty(connection: Connection): void;
  /** Calls `connection.sendHeldTail()` once the current I/O round is over (setImmediate). */
  deferTail(connection: Connection): void;
  /** Takes the connection out of the table and the timer heap. */
  remove(connection: Connection): void;
  /** The connection lingers in TIME-WAIT with its socket closed: a TimeWait record (time-wait.ts) takes its place. */
  settleTimeWait(connection: Connection): void;
  /** The connection left `connecting` (for the connect limit). */
  connectFinished(): void;
  nextIpId(): number;
  drop(reason: string): void;
  /** Decodes a SYN's options; undefined (and counted) when they are malformed. */
  readOptions(tcp: TcpView): TcpOptions | undefined;
  /** Emits ICMP destination unreachable quoting `original`; false when the NAT has no ICMP sender. */
  icmpUnreachable(original: Uint8Array, code: number): boolean;
}

/** RFC 9293 §3.7.1: MSS assumed when the SYN carries none. */
const DEFAULT_MSS = 536;
/** Smallest MSS we honor; a guest asking for less gets this (keeps segments from degenerating). */
const MIN_MSS = 64;
/** Largest MSS that fits a 65535-byte IPv4 packet. */
const MAX_MSS = 0xffff - 40;
/** RFC 7323 §2.3: shifts above 14 are used as 14. */
const MAX_SHIFT = 14;
/** RFC 6298 §2.1: RTO before any RTT sample. */
const INITIAL_RTO_MS = 1000;
/** RFC 6298 clock granularity G. */
const CLOCK_GRANULARITY_MS = 1;
/** RFC 5681 §3.2: fast retransmit on the third duplicate ACK. */
const DUPACK_THRESHOLD = 3;
/**
 * First staging buffer of a connection: small (from Node's shared pool), then
 * doubling per allocation up to a whole staging block while the guest keeps
 * sending. A request/response connection never costs 256 KiB.
 */
const STAGING_FIRST = 2048;
/**
 * A staging tail that may not hold the next segment (up to 64 KiB) is not
 * kept: the write of the piece before it is the buffer's last, so a staging
 * block goes back to its pool when that write completes.
 */
const STAGING_MIN_TAIL = 0xffff;
/**
 * A guest segment from this length on is not copied when nothing is staged
 * before it: it is gathered as the view into the frame it came in, and the
 * segments of one batch go to the host socket in one call at its end (the
 * frames are valid until then, src/transport/types.ts); the kernel copies
 * them from the transport's read buffer. Staging would only add a copy of
 * its own (docs/performance.md, "Copies"). Shorter ones are staged and
 * coalesced.
 */
const DIRECT_WRITE_MIN = 8192;
/** Segments gathered for one write at most (the addon's writev takes 16). */
const GATHER_MAX = 16;
/**
 * Segments from this length on are built around their payload in its read
 * block rather than copied into the shared segment buffer; reads are cut to
 * the segment size when segments are at least this large.
 */
const IN_PLACE_MIN = 8192;
/** A host read this long probably has more behind it in the same I/O round. */
const FULL_READ = 64 * 1024;
/** Lower bound of the host → guest queue before the socket is paused. */
const MIN_SEND_TARGET = 128 * 1024;

/** ICMP destination unreachable codes (RFC 792, RFC 1812 §5.2.7.1). */
const ICMP_NET_UNREACHABLE = 0;
const ICMP_HOST_UNREACHABLE = 1;
const ICMP_ADMIN_PROHIBITED = 13;

const EMPTY = Buffer.alloc(0);

/**
 * The NAT's table key for a flow: both ports whole and 21 bits of the two
 * addresses, within a safe integer (2^53), built without strings. Every
 * forwarded connection to one guest server shares the guest's address and
 * port, and every guest connection to one host service the remote's, so
 * both ports are in; flows that still collide (same ports, addresses equal
 * in their low 21 bits after XOR) are chained and told apart by `lookup`.
 */
export function flowKey(guestIp: number, guestPort: number, remoteIp: number, remotePort: number): number {
  return ((guestIp ^ remoteIp) & 0x1fffff) * 0x1_0000_0000 + guestPort * 65536 + remotePort;
}

export class Connection implements TimerItem, HostStreamEvents {
  timerAt = Infinity;
  timerIndex = -1;
  /** Next flow with the same table key (rare: see flowKey). */
  next: Flow | undefined = undefined;
  /** Set while queued for `flush` at the end of the batch. */
  dirty = false;
  state: TcpState;
  /** The NAT's table key (flowKey). */
  readonly key: number;

  // Toward the guest (RFC 9293 §3.3.1 send sequence variables).
  private readonly iss: number;
  private sndUna: number;
  private sndNxt: number;
  /** Highest sequence sent so far (sndNxt goes back after an RTO). */
  private sndMax: number;
  private sndWnd = 0;
  private sndWl1 = 0;
  private sndWl2 = 0;
  private sndScale = 0;
  private sndMss = DEFAULT_MSS;
  private readonly sendQueue: ByteQueue;
  /** The block the host socket reads into next (our own connects and re-wrapped accepted sockets; see block-pool.ts). */
  private readBlock: Buffer | undefined;
  /** `readBlock` went into the send queue: the next read needs a new one. */
  private readBlockQueued = false;
  /** The host ended: a FIN follows the queued bytes. */
  private finQueued = false;
  private ourFinAcked = false;
  private hostPaused = false;
  /** A sub-MSS tail is held back until this I/O round's other socket reads are in (see transmit). */
  private holdTail = false;
  private tailDeferred = false;
  // Times and RTT estimates start as NaN, not 0. An object field keeps the
  // representation of the first number stored in it: a 0 (small integer)
  // later replaced by a clock reading or a fraction changes the hidden class
  // of every Connection made after, and the optimized code built for the old
  // one is thrown away (see seq.ts). The RTO is whole milliseconds for the
  // same reason.
  /** When our SYN or SYN-ACK went out, for a first RTT sample. */
  private synSentAt = NaN;
  /** Our SYN-ACK went again because the guest repeated its SYN: the handshake's RTT is ambiguous. */
  private synRepeated = false;
  private dupAcks = 0;
  private inRecovery = false;
  /** Since a timeout, until everything sent before it is acknowledged (RFC 6582 §3.2 step 1). */
  private afterTimeout = false;
  /** SND.MAX when fast recovery began, or when the last timeout fired. */
  private recover = 0;
  private srtt = NaN;
  private rttvar = NaN;
  private hasRtt = false;
  private rto = INITIAL_RTO_MS;
  private rttActive = false;
  private rttSeq = 0;
  private rttStart = NaN;
  private retries = 0;
  /** Protocol deadline (ms): connect timeout, retransmission, probe or linger; Infinity when none. */
  private rtoAt = Infinity;
  private lastActivity: number;

  // From the guest (receive sequence variables).
  private irs = 0;
  /** Sequence number the guest will send next; public for the NAT's TIME-WAIT reuse check. */
  rcvNxt = 0;
  /** Right edge of the window we last advertised; never moves back. */
  private rcvAdvEnd = 0;
  private rcvScale = 0;
  private windowScaling = false;
  /** The window our SYN or SYN-ACK advertised (unscaled). */
  private synWindow = 0;
  /** What this connection counts in the NAT's `heldForHosts`: guest bytes not taken by the host yet, plus the window still open. */
  private heldCharge = 0;
  private readonly ourMss: number;
  private guestFin = false;
  private staging: Buffer = EMPTY;
  private stagingUsed = 0;
  /** Size of the next staging buffer (see STAGING_FIRST). */
  private stagingNext = STAGING_FIRST;
  /** Large in-order guest segments of this batch, not yet written (see DIRECT_WRITE_MIN). */
  private gathered: Uint8Array[] = [];
  private gatheredBytes = 0;
  /** The other list, swapped in while one is written. */
  private spareGathered: Uint8Array[] = [];
  private ackPending = false;
  private unackedBytes = 0;
  // RFC 7323 timestamps (timestamps.ts): on when the guest's SYN or SYN-ACK
  // carried the option; then every segment but a RST carries ours.
  private tsOn = false;
  private readonly tsOffset = timestampOffset();
  /** TS.Recent: the guest's timestamp we echo (§4.3). */
  private tsRecent = 0;
  /** When TS.Recent was taken (the NAT's clock), for PAWS's 24-day limit (§5.5). */
  private tsRecentAt = NaN;
  /** Last.ACK.sent (§4.3): the acknowledgment number of our last segment with ACK set. */
  private lastAckSent = 0;
  /** Guest segments beyond a hole, by sequence number. */
  private outOfOrder: HeldSegment[] = [];
  /** RFC 2018: the guest's SYN or SYN-ACK carried SACK-permitted, so our ACKs may carry blocks (sack.ts). */
  private sackOn = false;
  /** Sequence number of the out-of-order segment kept last: its block goes first. */
  private latestOutOfOrder = 0;
  /** RFC 2883: bytes a guest segment repeated, for the first block of the next ACK (sent at once). */
  private duplicate: SackBlock | null = null;
  /** Copy of the guest's SYN packet, kept while connecting for an ICMP error. */
  private synPacket: Uint8Array | undefined;

  private readonly pseudoBase: number;
  readonly socket: HostStream;

  constructor(
    private readonly host: ConnectionHost,
    readonly guestIp: number,
    readonly guestPort: number,
    readonly remoteIp: number,
    readonly remotePort: number,
    /** Opens (or adopts) the host stream that reports to this connection. */
    open: (events: HostStreamEvents) => HostStream,
    initialState: 'connecting' | 'synSent',
  ) {
    this.sendQueue = new ByteQueue(host.readBlocks.give);
    this.key = flowKey(guestIp, guestPort, remoteIp, remotePort);
    this.state = initialState;
    this.pseudoBase = pseudoHeaderSum(remoteIp, guestIp, IpProtocol.TCP, 0);
    this.iss = (Math.random() * 0x1_0000_0000) | 0;
    this.sndUna = this.sndNxt = this.sndMax = this.iss;
    this.ourMss = Math.max(MIN_MSS, Math.min(MAX_MSS, host.link.mtu - 40));
    this.lastActivity = host.now();
    // Last: the stream may report from here on.
    this.socket = open(this);
  }

  /**
   * A guest SYN (no ACK) with sequence number `seq` came for this
   * connection's 4-tuple: closes the connection and returns true when that
   * SYN opens a new one. In TIME-WAIT, a SYN above the old sequence space,
   * or with timestamps a later timestamp (RFC 9293 §3.10.7.4, RFC 6191);
   * `tsval` is the SYN's (NaN: none). Before the guest completed its
   * handshake, a SYN with another ISN — the guest started over, and a
   * passive open "returns to LISTEN" (RFC 9293 §3.10.7.4, fourth): the host
   * connection made for the old SYN is reset.
   */
  makeWayFor(seq: number, tsval: number): boolean {
    if (this.state === 'timeWait' && this.newerThanTimeWait(seq, tsval)) this.close('destroy');
    else if ((this.state === 'connecting' || this.state === 'synReceived') && seq !== this.irs) this.close('reset');
    else return false;
    return true;
  }

  /** RFC 6191 §2: with timestamps on both, a later timestamp; else a sequence number past the old connection's. */
  private newerThanTimeWait(seq: number, tsval: number): boolean {
    return this.tsOn && !Number.isNaN(tsval) ? seqGt(tsval, this.tsRecent) : seqGt(seq, this.rcvNxt);
  }

  /** Starts a guest-initiated connection from its SYN; `synPacket` is a copy of the guest's IPv4 packet. */
  startFromGuest(tcp: TcpView, options: TcpOptions, synPacket: Uint8Array): void {
    this.irs = seqFromWire(tcp.sequenceNumber);
    this.rcvNxt = seqAdd(this.irs, 1);
    this.takeSynOptions(options, tcp);
    this.synPacket = synPacket;
    this.setRto(this.host.now() + this.host.limits.connectTimeoutMs);
    this.armIdle();
  }

  /** Starts a port-forwarded connection: SYN to the guest, host socket paused until the handshake completes. */
  startForward(): void {
    this.socket.pause();
    this.hostPaused = true;
    this.rcvScale = this.host.limits.windowShift;
    this.sendSyn(TcpFlags.SYN);
    this.setRto(this.host.now() + this.rto);
    this.armIdle();
  }

  /** A segment from the guest for this connection. `tcp` is valid only during the call. */
  fromGuest(tcp: TcpView, now: number): void {
    this.lastActivity = now;
    switch (this.state) {
      case 'closed':
        return;
      case 'connecting':
        // RFC 9293 §3.10.7.3 (LISTEN/SYN-RECEIVED): a RST for our pending
        // connection aborts it; a repeated SYN waits for the host connect.
        if (tcp.rst && seqFromWire(tcp.sequenceNumber) === this.rcvNxt) this.close('destroy');
        return;
      case 'synSent':
        this.segmentInSynSent(tcp, now);
        return;
      default:
        this.segmentSynchronized(tcp, now);
    }
  }

  /** End of batch: write staged bytes to the host, then send a pending ACK. */
  flush(): void {
    this.dirty = false;
    if (this.state === 'closed') return;
    this.flushStaging();
    if (this.ackPending) this.sendBare(TcpFlags.ACK, this.sndNxt);
  }

  /** The connection's timer fired (called by the NAT with the heap entry removed). */
  onTimer(now: number): void {
    if (this.rtoAt <= now) {
      this.rtoAt = Infinity;
      this.onRetransmitTimer(now);
      if (this.state === 'closed') return;
    }
    const idleAt = this.lastActivity + this.idleTimeout();
    if (idleAt <= now) {
      this.host.counters.timeouts++;
      this.abort();
      return;
    }
    this.host.armTimer(this, Math.max(now + 1, Math.min(this.rtoAt, idleAt)));
  }

  /** RST to the guest (when synchronized) and reset the host socket; the connection leaves the table. */
  abort(): void {
    if (this.state === 'closed') return;
    // SND.MAX, not SND.NXT: after a timeout SND.NXT went back, and the guest may hold bytes past it.
    if (this.state !== 'connecting' && this.state !== 'synSent') this.sendBare(TcpFlags.RST | TcpFlags.ACK, this.sndMax);
    this.close('reset');
  }

  /** Takes the connection out of the table and releases its socket, buffers and timer. */
  close(host: 'reset' | 'destroy'): void {
    if (this.state === 'closed') return;
    if (this.state === 'connecting') this.host.connectFinished();
    this.state = 'closed';
    this.host.remove(this);
    this.host.toGuests.charge(-this.sendQueue.length);
    this.host.forHosts.charge(-this.heldCharge);
    this.heldCharge = 0;
    this.sendQueue.clear();
    this.outOfOrder = [];
    this.staging = EMPTY;
    this.stagingUsed = 0;
    this.gathered.length = 0;
    this.gatheredBytes = 0;
    this.synPacket = undefined;
    const socket = this.socket;
    if (!socket.destroyed) {
      if (host === 'reset') socket.reset();
      else socket.destroy();
    }
    this.releaseReadBlock();
  }

  /** The socket reads no more (end of file, or its handle is closed): its read block can serve another connection. */
  private releaseReadBlock(): void {
    if (this.readBlock !== undefined && !this.readBlockQueued) this.host.readBlocks.give(this.readBlock);
    this.readBlock = undefined;
  }

  /** What the TimeWait record that takes this connection's place answers with (time-wait.ts). */
  lingerState(): LingerState {
    const window = Math.max(0, seqSub(this.rcvAdvEnd, this.rcvNxt));
    return {
      sndNxt: this.sndNxt,
      rcvNxt: this.rcvNxt,
      window: Math.min(0xffff, Math.ceil(window / (1 << this.rcvScale))),
      tsOffset: this.tsOn ? this.tsOffset : NaN,
      tsRecent: this.tsOn ? this.tsRecent : NaN,
      pseudoBase: this.pseudoBase,
      until: this.rtoAt,
    };
  }

  /** A snapshot for stats and debugging. */
  describe(): { state: TcpState; queued: number; inFlight: number; sendWindow: number; buffered: number; rto: number } {
    return {
      state: this.state,
      queued: this.sendQueue.length,
      inFlight: seqSub(this.sndMax, this.sndUna),
      sendWindow: this.sndWnd,
      buffered: (this.socket.destroyed ? 0 : this.socket.writableLength) + this.stagingUsed + this.gatheredBytes,
      rto: this.rto,
    };
  }

  // ---- segments from the guest --------------------------------------------

  private takeSynOptions(options: TcpOptions, tcp: TcpView): void {
    // RFC 7323 §3.2: timestamps only when both SYNs carried the option (ours always offers them).
    const timestamp = options.timestamp;
    this.tsOn = timestamp !== undefined;
    if (timestamp !== undefined) {
      this.tsRecent = timestamp.value | 0;
      this.tsRecentAt = this.host.now();
    }
    this.sackOn = options.sackPermitted === true;
    // RFC 6691 §3: the options every data segment carries come out of the MSS.
    const mss = options.mss ?? DEFAULT_MSS;
    this.sndMss = Math.max(MIN_MSS, Math.min(mss, this.ourMss) - (this.tsOn ? TIMESTAMP_OPTION_LENGTH : 0));
    // RFC 7323 §2.2: scaling is in effect only when both SYNs carried the option.
    if (options.windowScale !== undefined) {
      this.windowScaling = true;
      this.sndScale = Math.min(options.windowScale, MAX_SHIFT);
      this.rcvScale = this.host.limits.windowShift;
    } else {
      this.windowScaling = false;
      this.sndScale = 0;
      this.rcvScale = 0;
    }
    // RFC 7323 §2.2: "The window field in a segment where the SYN bit is set MUST NOT be scaled."
    this.sndWnd = tcp.windowSize;
    this.sndWl1 = seqFromWire(tcp.sequenceNumber);
    this.sndWl2 = seqFromWire(tcp.acknowledgmentNumber);
  }

  private segmentInSynSent(tcp: TcpView, now: number): void {
    const flags = tcp.flags;
    // RFC 9293 §3.10.7.3 (SYN-SENT).
    if ((flags & TcpFlags.ACK) !== 0 && seqFromWire(tcp.acknowledgmentNumber) !== this.sndNxt) {
      if ((flags & TcpFlags.RST) === 0) this.sendReset(seqFromWire(tcp.acknowledgmentNumber));
      return;
    }
    if ((flags & TcpFlags.RST) !== 0) {
      if ((flags & TcpFlags.ACK) !== 0) {
        this.host.counters.refused++;
        this.close('reset');
      }
      return;
    }
    if ((flags & (TcpFlags.SYN | TcpFlags.ACK)) !== (TcpFlags.SYN | TcpFlags.ACK)) return;
    const options = this.host.readOptions(tcp);
    if (options === undefined) return;
    this.irs = seqFromWire(tcp.sequenceNumber);
    this.rcvNxt = seqAdd(this.irs, 1);
    // Our SYN advertised an unscaled window: that is the right edge so far.
    this.rcvAdvEnd = seqAdd(this.rcvNxt, this.synWindow);
    this.chargeHeld();
    const offeredShift = this.rcvScale;
    this.takeSynOptions(options, tcp);
    if (this.windowScaling) this.rcvScale = offeredShift;
    this.sndUna = seqFromWire(tcp.acknowledgmentNumber);
    this.state = 'established';
    this.handshakeDone(now, options.timestamp !== undefined ? options.timestamp.echoReply | 0 : NaN);
    // What the host's client sent while the guest answered (most clients
    // speak first) goes out at once, and its segment carries the ACK of the
    // guest's SYN: one frame and one event-loop turn less per connection.
    const sndNxt = this.sndNxt;
    this.resumeHost();
    this.socket.readNow();
    this.transmit(now);
    // (readNow may have ended the connection: an error, a reset.)
    if ((this.state as TcpState) !== 'closed' && this.sndNxt === sndNxt) this.sendBare(TcpFlags.ACK, this.sndNxt);
  }

  private segmentSynchronized(tcp: TcpView, now: number): void {
    const flags = tcp.flags;
    const seq = seqFromWire(tcp.sequenceNumber);
    if (this.state === 'synReceived' && (flags & (TcpFlags.SYN | TcpFlags.ACK | TcpFlags.RST)) === TcpFlags.SYN) {
      // The guest did not get our SYN-ACK: repeat it (and take no RTT sample from the handshake: Karn).
      if (seq === this.irs) {
        this.synRepeated = true;
        this.sendSyn(TcpFlags.SYN | TcpFlags.ACK);
      }
      return;
    }
    // RFC 7323 §5.3 R1 (PAWS): a timestamp older than TS.Recent marks an old duplicate.
    const tsAt = this.tsOn ? timestampOptionAt(tcp.bytes, tcp.headerLength) : -1;
    const tsval = tsAt < 0 ? NaN : optionTsval(tcp.bytes, tsAt);
    if (!Number.isNaN(tsval) && (flags & TcpFlags.RST) === 0 && seqLt(tsval, this.tsRecent) && now - this.tsRecentAt <= PAWS_IDLE_MS) {
      this.host.drop('tcp:paws');
      // As Linux's tcp_send_dupack: what of it lies below RCV.NXT is a duplicate.
      if (seqLt(seq, this.rcvNxt)) this.noteDuplicate(seq, Math.min(tcp.payload.length, seqSub(this.rcvNxt, seq)));
      this.ackNow();
      return;
    }
    let payload = tcp.payload;
    let fin = (flags & TcpFlags.FIN) !== 0;
    const window = Math.max(0, seqSub(this.rcvAdvEnd, this.rcvNxt));
    const segmentLength = payload.length + (fin ? 1 : 0) + ((flags & TcpFlags.SYN) !== 0 ? 1 : 0);

    // RFC 9293 §3.10.7.4, first: is the segment acceptable?
    let acceptable: boolean;
    if (segmentLength === 0) {
      acceptable = window === 0 ? seq === this.rcvNxt : seqInWindow(seq, this.rcvNxt, window);
    } else {
      acceptable =
        window > 0 &&
        (seqInWindow(seq, this.rcvNxt, window) || seqInWindow(seqAdd(seq, segmentLength - 1), this.rcvNxt, window));
    }
    if (!acceptable) {
      // "If an incoming segment is not acceptable, an acknowledgment should be
      // sent in reply (unless the RST bit is set ...)". This also answers
      // zero-window probes and repeated FINs.
      if ((flags & TcpFlags.RST) === 0) {
        if (seqLeq(seqAdd(seq, payload.length), this.rcvNxt)) this.noteDuplicate(seq, payload.length);
        this.ackNow();
      }
      if (this.state === 'timeWait' && fin) this.setRto(now + this.host.limits.timeWaitMs);
      return;
    }
    // R3 (§4.3): TS.Recent follows the guest's timestamps, from segments that begin at or before our last ACK.
    if (!Number.isNaN(tsval) && seqGeq(tsval, this.tsRecent) && seqLeq(seq, this.lastAckSent)) {
      this.tsRecent = tsval;
      this.tsRecentAt = now;
    }
    // Second: RST. RFC 5961 §3.2: reset only on an exact match, else a challenge ACK.
    if ((flags & TcpFlags.RST) !== 0) {
      if (seq === this.rcvNxt) {
        this.host.counters.resets++;
        this.close('reset');
      } else {
        this.ackNow();
      }
      return;
    }
    // Fourth: SYN in a synchronized state. RFC 5961 §4.2: challenge ACK.
    if ((flags & TcpFlags.SYN) !== 0) {
      this.ackNow();
      return;
    }
    // Fifth: "if the ACK bit is off, drop the segment and return".
    if ((flags & TcpFlags.ACK) === 0) return;
    const ack = seqFromWire(tcp.acknowledgmentNumber);
    const tsecr = tsAt < 0 ? NaN : optionTsecr(tcp.bytes, tsAt);
    if (this.state === 'synReceived') {
      if (ack !== this.sndMax) {
        // "If the segment acknowledgment is not acceptable, form a reset segment <SEQ=SEG.ACK><CTL=RST>".
        this.sendReset(ack);
        return;
      }
      this.state = this.finQueued ? 'finWait' : 'established';
      this.sndUna = ack;
      this.handshakeDone(now, tsecr);
      this.sndWnd = tcp.windowSize << this.sndScale;
      this.sndWl1 = seq;
      this.sndWl2 = ack;
    } else if (!this.processAck(tcp, seq, ack, payload.length, now, tsecr)) {
      return;
    }
    if (this.state === 'closed') return;

    // Seventh: segment text; eighth: FIN.
    if ((payload.length > 0 || fin) && (this.state === 'established' || this.state === 'finWait') && !this.guestFin) {
      let start = seq;
      const behind = seqSub(this.rcvNxt, start);
      if (behind > 0) {
        this.noteDuplicate(seq, Math.min(behind, payload.length));
        payload = payload.subarray(Math.min(behind, payload.length));
        start = this.rcvNxt;
      }
      const room = seqSub(this.rcvAdvEnd, start);
      if (payload.length > room) {
        payload = payload.subarray(0, Math.max(0, room));
        fin = false;
      }
      if (start === this.rcvNxt) {
        this.receiveInOrder(payload, fin);
        if (this.duplicate !== null) this.ackNow();
      } else {
        this.keepOutOfOrder(start, payload, fin);
        this.ackNow();
      }
    }
    this.transmit(now);
  }

  /**
   * RFC 9293 §3.10.7.4 "fifth, check the ACK field" in synchronized states;
   * false when the segment is to be dropped. `tsecr`: the segment's echo of
   * one of our timestamps, NaN when it carries none.
   */
  private processAck(tcp: TcpView, seq: number, ack: number, payloadLength: number, now: number, tsecr: number): boolean {
    if (seqGt(ack, this.sndMax)) {
      // "If the ACK acks something not yet sent (SEG.ACK > SND.NXT), then send an ACK, drop the segment, and return."
      this.ackNow();
      return false;
    }
    const window = tcp.windowSize << this.sndScale;
    if (seqGt(ack, this.sndUna)) {
      const flightSize = seqSub(this.sndMax, this.sndUna);
      let acked = seqSub(ack, this.sndUna);
      const queued = this.sendQueue.length;
      const finAcked = acked > queued;
      if (finAcked) acked = queued;
      this.sendQueue.consume(acked);
      this.host.toGuests.charge(-acked);
      this.sndUna = ack;
      if (seqLt(this.sndNxt, ack)) this.sndNxt = ack;
      if (!Number.isNaN(tsecr)) {
        // RFC 7323 §4.1: every ACK of new data is a sample; Appendix G: a window brings about one per two segments, each weighing that much less.
        this.sampleEcho(now, tsecr, Math.max(1, Math.ceil(flightSize / (2 * this.sndMss))));
      } else if (this.rttActive && seqGeq(ack, this.rttSeq)) {
        this.rttActive = false;
        this.sampleRtt(now - this.rttStart, 1);
      }
      this.retries = 0;
      this.dupAcks = 0;
      if (this.inRecovery) {
        // RFC 6582 §3.2: a partial ACK retransmits the next hole at once.
        if (seqGeq(ack, this.recover)) this.inRecovery = false;
        else this.retransmitHead();
      } else if (this.afterTimeout && seqGeq(ack, this.recover)) {
        this.afterTimeout = false;
      }
      // RFC 6298 §5.2/5.3: stop the timer when all is acknowledged, else restart it.
      if (ack === this.sndMax) this.rtoAt = Infinity;
      else this.setRto(now + this.rto);
      this.resumeIfRoom();
      if (finAcked) {
        this.ourFinAcked = true;
        if (this.state === 'lastAck') {
          this.closeAfterLastAck(now);
          return false;
        }
        if (this.state === 'closing') {
          this.enterTimeWait(now);
          return false;
        }
      }
    } else if (
      ack === this.sndUna &&
      payloadLength === 0 &&
      (tcp.flags & (TcpFlags.SYN | TcpFlags.FIN)) === 0 &&
      this.sndMax !== this.sndUna &&
      window === this.sndWnd &&
      window !== 0
    ) {
      // RFC 5681 §2 "duplicate acknowledgment"; §3.2 fast retransmit. Not for data sent before
      // a timeout (RFC 6582 §3.2 step 1): the go-back-N resend draws duplicates of its own.
      if (++this.dupAcks === DUPACK_THRESHOLD && !this.inRecovery && !this.afterTimeout) {
        this.inRecovery = true;
        this.recover = this.sndMax;
        this.host.counters.fastRetransmits++;
        this.retransmitHead();
      }
    }
    // RFC 9293 §3.10.7.4: "If SND.UNA =< SEG.ACK =< SND.NXT, the send window should be
    // updated", and only from a newer segment.
    if (seqGeq(ack, this.sndUna) && (seqLt(this.sndWl1, seq) || (this.sndWl1 === seq && seqLeq(this.sndWl2, ack)))) {
      // The probes' backoff is not the path's: data after a zero window starts from the measured RTO.
      if (this.sndWnd === 0 && window > 0) this.rto = this.measuredRto();
      this.sndWnd = window;
      this.sndWl1 = seq;
      this.sndWl2 = ack;
    }
    // A guest answering our zero-window probes is alive (RFC 9293 §3.8.6.1: keep probing).
    if (this.sndWnd === 0) this.retries = 0;
    return true;
  }

  private receiveInOrder(payload: Uint8Array, fin: boolean): void {
    if (payload.length > 0) {
      this.stage(payload);
      this.rcvNxt = seqAdd(this.rcvNxt, payload.length);
      this.unackedBytes += payload.length;
    }
    if (this.outOfOrder.length > 0) fin = this.drainOutOfOrder() || fin;
    if (fin) {
      this.receiveFin();
      return;
    }
    if (this.outOfOrder.length > 0) {
      this.ackNow();
    } else if (payload.length > 0) {
      this.ackPending = true;
      this.host.markDirty(this);
      if (this.unackedBytes >= this.host.limits.receiveBuffer >>> 2) this.ackNow();
    }
  }

  /** Copies an out-of-order segment (bounded by count; its bytes are within our window). */
  private keepOutOfOrder(seq: number, payload: Uint8Array, fin: boolean): void {
    const list = this.outOfOrder;
    if (list.length >= this.host.limits.maxOutOfOrder) {
      this.host.drop('tcp:out-of-order-full');
      return;
    }
    if (payload.length === 0 && !fin) return;
    this.latestOutOfOrder = seq;
    let i = list.length;
    while (i > 0 && seqGt(list[i - 1]!.seq, seq)) i--;
    // A repeat of what an entry already holds is not copied again: repeats must not multiply the memory.
    const before = list[i - 1];
    if (before !== undefined && !fin && seqLeq(seqAdd(seq, payload.length), seqAdd(before.seq, before.data.length))) {
      this.noteDuplicate(seq, payload.length);
      return;
    }
    list.splice(i, 0, { seq, data: Buffer.from(payload), fin });
  }

  /** Delivers queued segments that now start at or before rcvNxt; returns true when a FIN became in order. */
  private drainOutOfOrder(): boolean {
    const list = this.outOfOrder;
    let used = 0;
    let fin = false;
    for (; used < list.length; used++) {
      const entry = list[used]!;
      const skip = seqSub(this.rcvNxt, entry.seq);
      if (skip < 0) break;
      if (skip < entry.data.length) {
        const data = entry.data.subarray(skip);
        this.stage(data);
        this.rcvNxt = seqAdd(this.rcvNxt, data.length);
        this.unackedBytes += data.length;
      }
      if (entry.fin && skip <= entry.data.length) {
        fin = true;
        used++;
        break;
      }
    }
    list.splice(0, used);
    if (fin) this.outOfOrder = [];
    return fin;
  }

  /** RFC 2883: `length` bytes from `seq` came again; the next ACK reports them (when SACK is on). */
  private noteDuplicate(seq: number, length: number): void {
    if (this.sackOn && length > 0) this.duplicate = { left: seq, right: seqAdd(seq, length) };
  }

  private receiveFin(): void {
    this.rcvNxt = seqAdd(this.rcvNxt, 1);
    this.guestFin = true;
    this.outOfOrder = [];
    this.flushStaging();
    this.chargeHeld(); // the window is closed for good
    if (!this.socket.destroyed) this.socket.end();
    if (this.state === 'established') this.state = 'closeWait';
    else if (this.state === 'finWait') {
      if (this.ourFinAcked) {
        this.ackNow();
        this.enterTimeWait(this.host.now());
        return;
      }
      this.state = 'closing';
    }
    this.ackNow();
  }

  /**
   * RFC 6298 §2.2: a first RTT sample from the handshake: from the echo of
   * our timestamp (`tsecr`) when there is one (RFC 7323 §4.1, whether or not
   * our SYN went twice), else unless it went twice (Karn); §5.7 otherwise.
   */
  private handshakeDone(now: number, tsecr: number): void {
    this.rto = INITIAL_RTO_MS;
    const echoed = !Number.isNaN(tsecr) && this.sampleEcho(now, tsecr, 1);
    if (!echoed && this.retries === 0 && !this.synRepeated) this.sampleRtt(now - this.synSentAt, 1);
    else if (!echoed && !this.hasRtt) this.rto = 3 * INITIAL_RTO_MS;
    this.retries = 0;
    this.rtoAt = Infinity;
  }

  /**
   * RFC 9293 §3.10.7.4, LAST-ACK: "If our FIN is now acknowledged, delete the
   * TCB". The guest closed first and keeps TIME-WAIT itself; we linger only
   * while the host socket has not yet taken all the guest's bytes.
   */
  private closeAfterLastAck(now: number): void {
    if (this.hostStillWriting()) this.enterTimeWait(now);
    else this.close('destroy');
  }

  /** The host socket has not yet taken all the guest's bytes: the flow must stay until it has. */
  private hostStillWriting(): boolean {
    return !this.socket.destroyed && this.socket.writableLength > 0;
  }

  private enterTimeWait(now: number): void {
    this.state = 'timeWait';
    this.hostPaused = false;
    this.setRto(now + this.host.limits.timeWaitMs);
  }

  // ---- host socket events --------------------------------------------------

  onHostConnect(): void {
    if (this.state !== 'connecting') return;
    this.host.connectFinished();
    this.state = 'synReceived';
    this.synPacket = undefined;
    this.retries = 0;
    this.sendSyn(TcpFlags.SYN | TcpFlags.ACK);
    this.setRto(this.host.now() + this.rto);
  }

  /**
   * Where the stream reads next: the block in use until the send queue took
   * it, after SEGMENT_HEADROOM bytes. When segments are large, a read is at
   * most one segment long, so each long read becomes a segment built around
   * it in the block (`sendData`), with no copy.
   */
  nextReadBlock(): Buffer {
    let block = this.readBlock;
    if (block === undefined || this.readBlockQueued) {
      block = this.readBlock = this.host.readBlocks.take();
      this.readBlockQueued = false;
    }
    const limit = this.segmentLimit();
    const room = READ_BLOCK_SIZE - SEGMENT_HEADROOM;
    return block.subarray(SEGMENT_HEADROOM, SEGMENT_HEADROOM + (limit >= IN_PLACE_MIN && limit < room ? limit : room));
  }

  /** `length` bytes arrived in `view` (what nextReadBlock gave). */
  onHostRead(length: number, view: Buffer): void {
    if (length < SHORT_READ) {
      this.onHostData(Buffer.from(view.subarray(0, length)));
    } else {
      this.readBlockQueued = true;
      // A read that filled what was offered probably has more behind it in this I/O round.
      this.onHostData(view.subarray(0, length), length === view.length);
    }
  }

  /** Host bytes for the guest; `full`: the read took all it could, so more is likely queued in the kernel. */
  onHostData(chunk: Uint8Array, full = chunk.length >= FULL_READ): void {
    if (this.state === 'closed' || this.state === 'timeWait') return;
    const now = this.host.now();
    this.lastActivity = now;
    this.sendQueue.push(chunk);
    const room = this.host.toGuests.charge(chunk.length) > 0;
    // More will likely be read in this same I/O round: don't cut a tiny segment from the end of this chunk.
    this.holdTail = full;
    if (!this.hostPaused && (this.sendQueue.length >= this.sendTarget() || !room)) {
      this.socket.pause();
      this.hostPaused = true;
      if (!room) this.host.toGuests.wait(this);
    }
    this.transmit(now);
  }

  onHostEnd(): void {
    this.releaseReadBlock();
    // A reset with data still queued reads as end-of-file; pass it on as a reset (RFC 9293 §3.10.7.4: "flush").
    // Only while our side is open: after our FIN (the guest's, passed on), a
    // FIN moves Linux's socket to TIME-WAIT, which it also reports as TCP_CLOSE.
    if (!this.guestFin && this.socket.wasReset()) {
      this.host.counters.resets++;
      this.abort();
      return;
    }
    if (this.finQueued) return;
    this.finQueued = true;
    if (this.state === 'established') this.state = 'finWait';
    else if (this.state === 'closeWait') this.state = 'lastAck';
    else return; // synReceived: finWait once the handshake completes.
    this.transmit(this.host.now());
  }

  onHostDrain(): void {
    if (this.state === 'closed') return;
    this.chargeHeld();
    if (this.guestFin) return;
    // Reopen a window that the full socket buffer had closed (RFC 9293 §3.8.6.2.2: only a big step).
    const limit = this.host.limits.receiveBuffer;
    if (seqSub(this.rcvAdvEnd, this.rcvNxt) < limit >>> 1) this.sendBare(TcpFlags.ACK, this.sndNxt);
  }

  onHostError(code: string | undefined): void {
    if (this.state === 'closed') return;
    if (this.state === 'connecting') {
      this.connectFailed(code);
      return;
    }
    this.host.counters.resets++;
    this.abort();
  }

  onHostClose(): void {
    switch (this.state) {
      case 'timeWait':
        this.host.settleTimeWait(this);
        return;
      case 'closed':
      case 'lastAck':
      case 'closing':
        return;
      case 'connecting':
        this.connectFailed(undefined);
        return;
      default:
        // Closed without an error while we still expected data: tell the guest.
        this.host.counters.resets++;
        this.abort();
    }
  }

  private connectFailed(code: string | undefined): void {
    const original = this.synPacket;
    let icmp = -1;
    switch (code) {
      case 'ENETUNREACH':
        icmp = ICMP_NET_UNREACHABLE;
        break;
      case 'EHOSTUNREACH':
      case 'EHOSTDOWN':
      case 'ETIMEDOUT':
        icmp = ICMP_HOST_UNREACHABLE;
        break;
      case 'EACCES':
      case 'EPERM':
        icmp = ICMP_ADMIN_PROHIBITED;
        break;
      case 'EMFILE':
      case 'ENFILE':
      case 'ENOBUFS':
      case 'EADDRNOTAVAIL':
        // Out of host resources: stay silent so the guest retries its SYN.
        this.host.drop('tcp:host-resources');
        this.close('destroy');
        return;
    }
    if (icmp >= 0 && original !== undefined && this.host.icmpUnreachable(original, icmp)) {
      this.host.counters.unreachable++;
    } else {
      // RFC 9293 §3.10.7.1: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
      this.host.counters.refused++;
      this.sendRaw(TcpFlags.RST | TcpFlags.ACK, 0, this.rcvNxt, 0);
    }
    this.close('destroy');
  }

  // ---- sending toward the guest --------------------------------------------

  /** Bytes of host data to hold before pausing the socket. */
  private sendTarget(): number {
    return Math.min(this.host.limits.sendBuffer, Math.max(MIN_SEND_TARGET, 2 * this.sndWnd));
  }

  private resumeHost(): void {
    if (!this.hostPaused) return;
    this.hostPaused = false;
    this.socket.resume();
  }

  /** Reads the host socket again if this queue is under its target and the NAT-wide one has room. */
  private resumeIfRoom(): void {
    if (!this.hostPaused || this.sendQueue.length >= this.sendTarget() || this.state === 'closed') return;
    if (this.host.toGuests.charge(0) === 0) return this.host.toGuests.wait(this);
    this.resumeHost();
  }

  /** The NAT-wide queue toward guests has room again (see `toGuests`). */
  budgetFreed(): void {
    this.resumeIfRoom();
  }

  /** There is room under limits.maxHeldForHosts again (see `forHosts`): a window update if the window can open. */
  windowRoomFreed(): void {
    if (this.state !== 'established' && this.state !== 'finWait') return;
    if (!this.guestFin && this.advanceWindow()) this.sendBare(TcpFlags.ACK, this.sndNxt);
  }

  /** Sends queued data (and the FIN) as far as the guest's window allows. */
  private transmit(now: number): void {
    const state = this.state;
    if (state !== 'established' && state !== 'closeWait' && state !== 'finWait' && state !== 'lastAck' && state !== 'closing') return;
    const queued = this.sendQueue.length;
    for (;;) {
      const offset = seqSub(this.sndNxt, this.sndUna);
      const unsent = queued - offset;
      if (unsent <= 0) {
        if (unsent === 0 && this.finQueued && !this.ourFinAcked) {
          this.sendRaw(TcpFlags.FIN | TcpFlags.ACK, this.sndNxt, this.rcvNxt, this.windowField());
          this.advanceSent(1);
        }
        break;
      }
      const room = this.sndWnd - offset;
      if (room <= 0) break;
      const length = Math.min(unsent, room, this.segmentLimit());
      // RFC 9293 §3.8.6.2.1 (sender SWS avoidance): no small window-limited segment while data is in flight.
      if (length < this.sndMss && length < unsent && offset > 0) break;
      if (length < this.sndMss && length === unsent && this.holdTail && !this.finQueued) {
        if (!this.tailDeferred) {
          this.tailDeferred = true;
          this.host.deferTail(this);
        }
        break;
      }
      const fin = this.finQueued && length === unsent;
      if (!this.tsOn && !this.rttActive && seqGeq(this.sndNxt, this.sndMax)) {
        this.rttActive = true;
        this.rttSeq = seqAdd(this.sndNxt, length);
        this.rttStart = now;
      }
      this.sendData(this.sndNxt, offset, length, fin);
      this.advanceSent(length + (fin ? 1 : 0));
    }
    if (this.rtoAt === Infinity && (this.sndMax !== this.sndUna || (queued > 0 && this.sndWnd === 0))) {
      this.setRto(now + this.rto);
    }
  }

  /** The I/O round is over: send a tail `transmit` held back. */
  sendHeldTail(): void {
    this.tailDeferred = false;
    if (this.state === 'closed') return;
    this.holdTail = false;
    this.transmit(this.host.now());
  }

  private advanceSent(n: number): void {
    this.sndNxt = seqAdd(this.sndNxt, n);
    if (seqGt(this.sndNxt, this.sndMax)) this.sndMax = this.sndNxt;
  }

  /** Resends the first unacknowledged segment (RFC 6298 §5.4, RFC 5681 §3.2). */
  private retransmitHead(): void {
    const queued = this.sendQueue.length;
    // Within the guest's window, but at least one byte (a zero-window probe).
    const length = Math.min(queued, this.sndMss, Math.max(this.sndWnd, 1));
    const fin = this.finQueued && !this.ourFinAcked && length === queued;
    if (length === 0 && !fin) return;
    this.host.counters.retransmits++;
    this.rttActive = false; // Karn's rule: no RTT sample from retransmitted data.
    if (length === 0) this.sendRaw(TcpFlags.FIN | TcpFlags.ACK, this.sndUna, this.rcvNxt, this.windowField());
    else this.sendData(this.sndUna, 0, length, fin);
    const end = seqAdd(this.sndUna, length + (fin ? 1 : 0));
    this.sndNxt = seqMax(this.sndNxt, end);
    this.sndMax = seqMax(this.sndMax, end);
  }

  private onRetransmitTimer(now: number): void {
    const limits = this.host.limits;
    switch (this.state) {
      case 'connecting':
        // The host connect took too long: RFC 1122 §4.2.3.9 lets us report it as unreachable.
        this.connectFailed('ETIMEDOUT');
        return;
      case 'synSent':
      case 'synReceived':
        if (++this.retries > limits.maxSynRetransmits) {
          this.host.counters.timeouts++;
          this.abort();
          return;
        }
        this.host.counters.retransmits++;
        this.sendSyn(this.state === 'synSent' ? TcpFlags.SYN : TcpFlags.SYN | TcpFlags.ACK);
        break;
      case 'timeWait':
        // Linger over; keep the flow while the host socket still flushes the guest's last bytes.
        if (this.hostStillWriting()) {
          this.setRto(now + Math.max(1, limits.timeWaitMs));
        } else {
          this.close('destroy');
        }
        return;
      default:
        if (this.sndMax !== this.sndUna) {
          if (++this.retries > limits.maxRetransmits) {
            this.host.counters.timeouts++;
            this.abort();
            return;
          }
          // RFC 6298 §5.4–5.6: retransmit the earliest segment, back off, restart the timer.
          this.sndNxt = this.sndUna;
          this.inRecovery = false;
          this.afterTimeout = true;
          this.recover = this.sndMax;
          this.dupAcks = 0;
          this.retransmitHead();
        } else if (this.sendQueue.length > 0 && this.sndWnd === 0) {
          // RFC 9293 §3.8.6.1: zero-window probe. As Linux's, an ACK at SND.UNA−1 with no data:
          // the guest answers an old sequence number with an ACK that carries its window, and
          // there is no byte a full receiver could drop (Linux does) and leave a hole at SND.UNA.
          if (++this.retries > limits.maxRetransmits) {
            this.host.counters.timeouts++;
            this.abort();
            return;
          }
          this.sendBare(TcpFlags.ACK, seqAdd(this.sndUna, -1));
        } else {
          return;
        }
    }
    this.rto = Math.min(this.rto * 2, limits.maxRtoMs);
    this.setRto(now + this.rto);
  }

  /**
   * RFC 6298 §2.2–2.3, with RFC 7323 Appendix G's gains when a round trip
   * brings `expectedSamples` samples: α and β divided by that many.
   */
  private sampleRtt(r: number, expectedSamples: number): void {
    if (!this.hasRtt) {
      this.hasRtt = true;
      this.srtt = r;
      this.rttvar = r / 2;
    } else {
      const beta = 0.25 / expectedSamples;
      const alpha = 0.125 / expectedSamples;
      this.rttvar = (1 - beta) * this.rttvar + beta * Math.abs(this.srtt - r);
      this.srtt = (1 - alpha) * this.srtt + alpha * r;
    }
    this.rto = this.measuredRto();
  }

  /**
   * An RTT sample from `tsecr`, the guest's echo of one of our timestamps
   * (RFC 7323 §4.1); false when the echo is from our future or older than
   * the longest RTO, which no honest guest sends: not a sample.
   */
  private sampleEcho(now: number, tsecr: number, expectedSamples: number): boolean {
    const rtt = seqSub(timestampAt(this.tsOffset, now), tsecr);
    if (rtt < 0 || rtt > this.host.limits.maxRtoMs) return false;
    this.sampleRtt(rtt, expectedSamples);
    return true;
  }

  /** RFC 6298 §2.3: SRTT + max(G, 4·RTTVAR) within the limits, rounded up to whole ms (the initial RTO before any sample). */
  private measuredRto(): number {
    if (!this.hasRtt) return INITIAL_RTO_MS;
    const limits = this.host.limits;
    return Math.min(limits.maxRtoMs, Math.max(limits.minRtoMs, Math.ceil(this.srtt + Math.max(CLOCK_GRANULARITY_MS, 4 * this.rttvar))));
  }

  private setRto(at: number): void {
    this.rtoAt = at;
    this.host.armTimer(this, at);
  }

  private armIdle(): void {
    this.host.armTimer(this, Math.min(this.rtoAt, this.lastActivity + this.idleTimeout()));
  }

  private idleTimeout(): number {
    const limits = this.host.limits;
    switch (this.state) {
      case 'established':
      case 'closeWait':
      case 'finWait':
        // Half-closed connections can idle legitimately (`ssh host cmd </dev/null`).
        return limits.establishedIdleMs;
      default:
        return limits.transitoryIdleMs;
    }
  }

  /** Sends an ACK now (dropping any pending coalesced one). */
  private ackNow(): void {
    this.flushStaging();
    this.sendBare(TcpFlags.ACK, this.sndNxt);
  }

  /**
   * Guest bytes for the host, written at the end of the batch: a large
   * segment with nothing staged before it is gathered (no copy), the rest is
   * copied into the staging buffer.
   */
  private stage(data: Uint8Array): void {
    if (data.length >= DIRECT_WRITE_MIN && this.stagingUsed === 0) {
      this.gathered.push(data);
      this.gatheredBytes += data.length;
      if (this.gathered.length === GATHER_MAX) this.writeGathered();
      else this.host.markDirty(this);
      return;
    }
    this.writeGathered();
    this.copyToStaging(data);
  }

  /**
   * Writes the gathered segments in one call, before anything staged after
   * them; what the kernel does not take now is copied to staging, since the
   * frames it lies in are reused after this batch.
   */
  private writeGathered(): void {
    const chunks = this.gathered;
    if (chunks.length === 0) return;
    this.gathered = this.spareGathered;
    this.spareGathered = chunks;
    this.gatheredBytes = 0;
    let taken = chunks.length === 1 ? this.socket.tryWrite(chunks[0]!) : this.socket.tryWriteGathered(chunks);
    for (const chunk of chunks) {
      if (taken >= chunk.length) taken -= chunk.length;
      else {
        this.copyToStaging(taken === 0 ? chunk : chunk.subarray(taken));
        taken = 0;
      }
    }
    chunks.length = 0;
  }

  private copyToStaging(data: Uint8Array): void {
    if (this.staging.length - this.stagingUsed < data.length) {
      this.flushStaging();
      if (this.staging.length < data.length) {
        const size = Math.max(this.stagingNext, data.length);
        this.staging = size === STAGING_BLOCK_SIZE ? this.host.stagingBlocks.take() : Buffer.allocUnsafe(size);
        this.stagingNext = Math.min(STAGING_BLOCK_SIZE, this.stagingNext * 2);
      }
    }
    this.staging.set(data, this.stagingUsed);
    this.stagingUsed += data.length;
    this.host.markDirty(this);
  }

  private flushStaging(): void {
    this.writeGathered();
    const used = this.stagingUsed;
    if (used === 0) return;
    const out = this.staging.subarray(0, used);
    // The rest is too short to keep: this is the buffer's last piece, and once written a block is free.
    const lastPiece = this.staging.length - used < STAGING_MIN_TAIL;
    this.staging = lastPiece ? EMPTY : this.staging.subarray(used);
    this.stagingUsed = 0;
    if (this.socket.destroyed || this.socket.writableEnded) return;
    if (lastPiece) this.socket.write(out, () => this.host.stagingBlocks.give(out));
    else this.socket.write(out);
  }

  /** Guest bytes not yet taken by the host socket (its queue, staging, gathered views). */
  private bufferedForHost(): number {
    return this.socket.writableLength + this.stagingUsed + this.gatheredBytes;
  }

  /**
   * Brings this connection's part of the NAT's `heldForHosts` up to date:
   * what it buffers plus the window still open to the guest (none after its
   * FIN). Returns the room left. Between calls the part only shrinks (the
   * kernel takes bytes; the guest's data turns window into buffer), so a
   * stale one errs high.
   */
  private chargeHeld(): number {
    const open = this.guestFin ? 0 : Math.max(0, seqSub(this.rcvAdvEnd, this.rcvNxt));
    const charge = this.bufferedForHost() + open;
    const room = this.host.forHosts.charge(charge - this.heldCharge);
    this.heldCharge = charge;
    return room;
  }

  /**
   * Moves the advertised right edge forward if that is a worthwhile step
   * (RFC 9293 §3.8.6.2.2), never back; true if it moved. The window is what
   * is left of `limits.receiveBuffer`, and no more than the NAT-wide room
   * under `limits.maxHeldForHosts` (waiting for room when that is what holds it).
   * The moved edge counts in `forHosts` from the next chargeHeld (windowField's).
   */
  private advanceWindow(): boolean {
    const limit = this.host.limits.receiveBuffer;
    const room = this.chargeHeld();
    const buffered = this.bufferedForHost();
    const open = Math.max(0, seqSub(this.rcvAdvEnd, this.rcvNxt));
    // No more than the field can say: without window scaling (shift 0) that is 65,535.
    let available = Math.min(limit > buffered ? limit - buffered : 0, 0xffff * (1 << this.rcvScale));
    if (available > open + room) {
      available = open + room;
      this.host.forHosts.wait(this);
    }
    const candidate = seqAdd(this.rcvNxt, available);
    if (!seqGeq(candidate, seqAdd(this.rcvAdvEnd, Math.min(limit >>> 1, this.ourMss)))) return false;
    this.rcvAdvEnd = candidate;
    return true;
  }

  /** The window field for the next segment (see advanceWindow). */
  private windowField(): number {
    let moved = this.advanceWindow();
    const window = Math.max(0, seqSub(this.rcvAdvEnd, this.rcvNxt));
    const shift = this.rcvScale;
    const field = Math.min(0xffff, Math.ceil(window / (1 << shift)));
    const edge = seqAdd(this.rcvNxt, field * (1 << shift));
    if (seqGt(edge, this.rcvAdvEnd)) {
      // Rounded up to the scale's unit: fewer than 2^shift bytes more.
      this.rcvAdvEnd = edge;
      moved = true;
    }
    if (moved) this.chargeHeld();
    return field;
  }

  private sendSyn(flags: number): void {
    // The window counts in the NAT's heldForHosts once the guest's sequence is known (SYN-ACK here, else
    // its SYN-ACK). A repeated SYN-ACK offers no less than the first: the right edge never moves back.
    const room = Math.min(0xffff, this.host.limits.receiveBuffer, this.host.forHosts.charge(0));
    const window = (this.synWindow = Math.max(this.synWindow, room));
    if (window === 0) this.host.forHosts.wait(this);
    const ack = (flags & TcpFlags.ACK) !== 0 ? this.rcvNxt : 0;
    // Our SYN offers window scaling, timestamps and SACK; a SYN-ACK answers the guest's offers
    // (RFC 7323 §2.2, §3.2; RFC 2018 §2). emitTcpOptions lays them out as Linux does.
    const offers: TcpOptions = { mss: this.ourMss };
    if ((flags & TcpFlags.ACK) === 0 || this.windowScaling) offers.windowScale = this.rcvScale;
    if ((flags & TcpFlags.ACK) === 0 || this.tsOn) {
      offers.timestamp = { value: timestampAt(this.tsOffset, this.host.now()), echoReply: (flags & TcpFlags.ACK) !== 0 ? this.tsRecent : 0 };
    }
    if ((flags & TcpFlags.ACK) === 0 || this.sackOn) offers.sackPermitted = true;
    const frame = this.newFrame(this.iss, ack, flags, window, TCP_HEADER_LENGTH + tcpOptionsLength(offers), 0);
    emitTcpOptions(offers, frame, TCP_AT + TCP_HEADER_LENGTH);
    fillTcpChecksum(frame, this.pseudoBase);
    if ((flags & TcpFlags.ACK) !== 0) {
      this.rcvAdvEnd = seqAdd(this.rcvNxt, window);
      this.chargeHeld();
    }
    this.sndNxt = this.sndMax = seqAdd(this.iss, 1);
    this.synSentAt = this.host.now();
    this.host.link.sendIpv4(frame, this.guestIp);
  }

  /**
   * A data segment cut from the send queue at `offset`; carries our ACK and
   * window. A large one that is the front of one read block's chunk is built
   * around it, in the headroom the read left (nextReadBlock); any other is
   * copied into the shared segment buffer.
   */
  private sendData(seq: number, offset: number, length: number, fin: boolean): void {
    const last = offset + length === this.sendQueue.length;
    const flags = TcpFlags.ACK | (fin ? TcpFlags.FIN : 0) | (last ? TcpFlags.PSH : 0);
    const window = this.windowField();
    const chunk = length >= IN_PLACE_MIN ? this.sendQueue.chunkAt(offset, length) : undefined;
    const headerLength = this.headerLength(flags);
    let frame: Uint8Array;
    if (chunk !== undefined && chunk.byteOffset === SEGMENT_HEADROOM && chunk.buffer.byteLength === READ_BLOCK_SIZE) {
      const start = SEGMENT_HEADROOM - TCP_AT - headerLength;
      frame = this.writeHeaders(new Uint8Array(chunk.buffer, start, SEGMENT_HEADROOM - start + length), seq, this.rcvNxt, flags, window, headerLength);
    } else {
      frame = this.newFrame(seq, this.rcvNxt, flags, window, headerLength, length);
      this.sendQueue.copyTo(offset, length, frame, TCP_AT + headerLength);
    }
    this.ackPending = false;
    this.unackedBytes = 0;
    const link = this.host.link;
    if (link.offload) {
      // The guest's NIC (or the NIC runtime, in software) fills the checksum and cuts super-segments.
      link.sendIpv4(frame, this.guestIp, offloadSegment(frame, this.pseudoBase, this.sndMss));
      return;
    }
    fillTcpChecksum(frame, this.pseudoBase);
    link.sendIpv4(frame, this.guestIp);
  }

  /** Most payload bytes one data segment may carry: an MSS, or whole MSSs up to 64 KiB when the link offloads. */
  private segmentLimit(): number {
    if (!this.host.link.offload) return this.sndMss;
    const room = MAX_OFFLOAD_PAYLOAD - (this.tsOn ? TIMESTAMP_OPTION_LENGTH : 0);
    return Math.max(this.sndMss, Math.floor(room / this.sndMss) * this.sndMss);
  }

  /** TCP header length of a segment other than a SYN: with our timestamp when they are on, except on a RST. */
  private headerLength(flags: number): number {
    return this.tsOn && (flags & TcpFlags.RST) === 0 ? TCP_HEADER_LENGTH + TIMESTAMP_OPTION_LENGTH : TCP_HEADER_LENGTH;
  }

  /** The shared segment buffer with this connection's headers: from the remote end to the guest. */
  private newFrame(seq: number, ack: number, flags: number, window: number, tcpHeaderLength: number, payloadLength: number): Uint8Array {
    return this.writeHeaders(sharedSegmentFrame(tcpHeaderLength + payloadLength), seq, ack, flags, window, tcpHeaderLength);
  }

  /**
   * This connection's IPv4 and TCP headers, from the remote end to the guest,
   * at the front of `frame`; on a segment other than a SYN or RST, our
   * timestamp option when they are on (`headerLength` made room for it).
   */
  private writeHeaders(frame: Uint8Array, seq: number, ack: number, flags: number, window: number, tcpHeaderLength: number): Uint8Array {
    writeSegmentHeaders(frame, this.host.nextIpId(), this.remoteIp, this.guestIp, this.remotePort, this.guestPort, seq, ack, flags, window, tcpHeaderLength);
    if ((flags & TcpFlags.ACK) !== 0) this.lastAckSent = ack;
    if ((flags & (TcpFlags.SYN | TcpFlags.RST)) === 0 && this.tsOn) {
      writeTimestampOption(frame, TCP_AT + TCP_HEADER_LENGTH, timestampAt(this.tsOffset, this.host.now()), this.tsRecent);
    }
    return frame;
  }

  /** A segment without data: ACK, window update, RST. */
  private sendBare(flags: number, seq: number): void {
    this.sendRaw(flags, seq, this.rcvNxt, (flags & TcpFlags.RST) !== 0 ? 0 : this.windowField());
  }

  /** <SEQ=seq><CTL=RST> for an unacceptable ACK (RFC 9293 §3.10.7.3–4). */
  private sendReset(seq: number): void {
    this.sendRaw(TcpFlags.RST, seq, 0, 0);
  }

  private sendRaw(flags: number, seq: number, ack: number, window: number): void {
    const headerLength = this.headerLength(flags);
    const sack: TcpOptions | undefined =
      this.sackOn && (flags & (TcpFlags.ACK | TcpFlags.RST)) === TcpFlags.ACK && (this.outOfOrder.length > 0 || this.duplicate !== null)
        ? { sackBlocks: ackBlocks(this.duplicate, this.outOfOrder, this.latestOutOfOrder, maxSackBlocks(this.tsOn)) }
        : undefined;
    this.duplicate = null;
    const frame = this.newFrame(seq, ack, flags, window, headerLength + (sack === undefined ? 0 : tcpOptionsLength(sack)), 0);
    if (sack !== undefined) emitTcpOptions(sack, frame, TCP_AT + headerLength);
    fillTcpChecksum(frame, this.pseudoBase);
    if ((flags & TcpFlags.ACK) !== 0) {
      this.ackPending = false;
      this.unackedBytes = 0;
    }
    this.host.link.sendIpv4(frame, this.guestIp);
  }
}
