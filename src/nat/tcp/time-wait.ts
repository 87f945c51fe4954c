/**
 * What stays of a connection in TIME-WAIT once its host socket is closed
 * (RFC 9293 §3.6, §3.10.7.4): the 4-tuple, the numbers its ACKs carry and
 * its deadline, in about a hundred bytes, where the Connection with its
 * stream, queues and buffers was ~1.5 KB. Linux does the same with its
 * timewait sockets.
 *
 * Why: we linger `timeWaitMs` whenever we closed first, which is what a
 * port forward's host client makes us do on every connection it ends. At
 * thousands of connections a second, that many lingering flows outlive the
 * young generation's collections: each Connection was copied there, then
 * promoted, then left for a full collection (docs/performance.md, "Lingering
 * connections, in a hundred bytes").
 *
 * What it does, as TIME-WAIT must: a segment that is not a stray ACK at
 * RCV.NXT (most often the guest's FIN again, its ACK of ours lost) is
 * answered with an ACK, and a FIN restarts the linger; a RST at exactly
 * RCV.NXT ends it, another gets a challenge ACK (RFC 5961 §3.2); PAWS drops
 * older timestamps (RFC 7323 §5.3); a SYN that opens a newer connection
 * ends it (`makeWayFor`, RFC 6191).
 */
import type { GuestLink } from '../../stack/guest-link.js';
import { TCP_HEADER_LENGTH, TcpFlags, type TcpView } from '../../wire/tcp.js';
import type { Connection } from './connection.js';
import type { TcpCounters, TcpLimits } from './limits.js';
import { fillTcpChecksum, sharedSegmentFrame, TCP_AT, writeSegmentHeaders } from './segment.js';
import { seqFromWire, seqGt, seqLt } from './seq.js';
import type { TimerItem } from './timer-heap.js';
import { optionTsval, TIMESTAMP_OPTION_LENGTH, timestampAt, timestampOptionAt, writeTimestampOption } from './timestamps.js';

/** A flow in the NAT's table. */
export type Flow = Connection | TimeWait;

/** What a TimeWait needs of its NAT. */
export interface TimeWaitHost {
  readonly link: GuestLink;
  readonly limits: Readonly<TcpLimits>;
  readonly counters: TcpCounters;
  now(): number;
  armTimer(flow: Flow, at: number): void;
  /** Takes the flow out of the table and the timer heap. */
  unlink(flow: Flow): void;
  nextIpId(): number;
  drop(reason: string): void;
}

/** The numbers a connection's TIME-WAIT answers with (Connection.lingerState). */
export interface LingerState {
  /** Our next sequence number: past our FIN. */
  sndNxt: number;
  /** The guest's: past its FIN. */
  rcvNxt: number;
  /** The window field of our last ACK. */
  window: number;
  /** Timestamps on (RFC 7323): our clock's offset and TS.Recent; else NaN both. */
  tsOffset: number;
  tsRecent: number;
  /** The pseudo-header sum of segments toward the guest (fillTcpChecksum). */
  pseudoBase: number;
  /** When the linger ends (ms). */
  until: number;
}

export class TimeWait implements TimerItem {
  timerAt = Infinity;
  timerIndex = -1;
  /** Next flow with the same table key. */
  next: Flow | undefined = undefined;
  readonly state = 'timeWait';
  // LingerState's numbers, copied: the record is one object (LingerState dies young).
  private readonly sndNxt: number;
  private readonly rcvNxt: number;
  private readonly window: number;
  private readonly tsOffset: number;
  private readonly tsRecent: number;
  private readonly pseudoBase: number;
  private until: number;
  private ended = false;

  constructor(
    private readonly host: TimeWaitHost,
    readonly key: number,
    readonly guestIp: number,
    readonly guestPort: number,
    readonly remoteIp: number,
    readonly remotePort: number,
    linger: Readonly<LingerState>,
  ) {
    this.sndNxt = linger.sndNxt;
    this.rcvNxt = linger.rcvNxt;
    this.window = linger.window;
    this.tsOffset = linger.tsOffset;
    this.tsRecent = linger.tsRecent;
    this.pseudoBase = linger.pseudoBase;
    this.until = linger.until;
  }

  /** Puts the linger's deadline in the NAT's timer heap (once linked into its table). */
  start(): void {
    this.host.armTimer(this, this.until);
  }

  /** A guest SYN for this 4-tuple: true (and the record gone) when it opens a newer connection (RFC 6191 §2). */
  makeWayFor(seq: number, tsval: number): boolean {
    const { tsOffset, tsRecent, rcvNxt } = this;
    const newer = !Number.isNaN(tsOffset) && !Number.isNaN(tsval) ? seqGt(tsval, tsRecent) : seqGt(seq, rcvNxt);
    if (newer) this.end();
    return newer;
  }

  fromGuest(tcp: TcpView, now: number): void {
    if (this.ended) return;
    const flags = tcp.flags;
    const seq = seqFromWire(tcp.sequenceNumber);
    const { tsOffset, tsRecent, rcvNxt } = this;
    const isRst = (flags & TcpFlags.RST) !== 0;
    if (!Number.isNaN(tsOffset) && !isRst) {
      const at = timestampOptionAt(tcp.bytes, tcp.headerLength);
      if (at >= 0 && seqLt(optionTsval(tcp.bytes, at), tsRecent)) {
        this.host.drop('tcp:paws');
        this.sendAck(now);
        return;
      }
    }
    if (isRst) {
      if (seq !== rcvNxt) return this.sendAck(now);
      this.host.counters.resets++;
      this.end();
      return;
    }
    const fin = (flags & TcpFlags.FIN) !== 0;
    if (seq === rcvNxt && tcp.payload.length === 0 && !fin && (flags & TcpFlags.SYN) === 0) return; // a stray ACK
    this.sendAck(now);
    if (fin) {
      this.until = now + this.host.limits.timeWaitMs;
      this.host.armTimer(this, this.until);
    }
  }

  onTimer(now: number): void {
    if (this.until <= now) this.end();
    else this.host.armTimer(this, this.until);
  }

  /** Ends the linger at once (the guest left, the NAT closes): the guest's side closed long ago, so no RST. */
  abort(): void {
    this.end();
  }

  describe(): { state: 'timeWait'; queued: number; inFlight: number; sendWindow: number; buffered: number; rto: number } {
    return { state: 'timeWait', queued: 0, inFlight: 0, sendWindow: 0, buffered: 0, rto: 0 };
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.host.unlink(this);
  }

  private sendAck(now: number): void {
    const { sndNxt, rcvNxt, window, tsOffset, tsRecent, pseudoBase } = this;
    const timestamps = !Number.isNaN(tsOffset);
    const headerLength = timestamps ? TCP_HEADER_LENGTH + TIMESTAMP_OPTION_LENGTH : TCP_HEADER_LENGTH;
    const frame = sharedSegmentFrame(headerLength);
    writeSegmentHeaders(frame, this.host.nextIpId(), this.remoteIp, this.guestIp, this.remotePort, this.guestPort, sndNxt, rcvNxt, TcpFlags.ACK, window, headerLength);
    if (timestamps) writeTimestampOption(frame, TCP_AT + TCP_HEADER_LENGTH, timestampAt(tsOffset, now), tsRecent);
    fillTcpChecksum(frame, pseudoBase);
    this.host.link.sendIpv4(frame, this.guestIp);
  }
}
