/**
 * DNS over TCP from a guest (RFC 7766, RFC 1035 §4.2.2): the server side of
 * one guest connection to the proxy's port 53, as the TCP NAT's host stream.
 *
 * Why: a guest whose answer does not fit its UDP size gets TC set and must
 * ask again over TCP (RFC 7766 §5: every DNS server MUST serve TCP). The
 * guest's TCP is the NAT's own (src/nat/tcp/): this stream stands where a
 * host socket would, so flow control, retransmission and closing are the
 * connection's, and the stream only frames messages.
 *
 * Theory of operation
 * - Bytes from the guest are copied into `inbox`. Each whole message (a
 *   2-byte length, then the message) goes to `DnsTcpSession.ask`, and its
 *   answer comes back framed the same way, in whatever order answers arrive
 *   (pipelining, RFC 7766 §6.2.1.1: the ID pairs them).
 * - At most MAX_IN_FLIGHT queries are out at once, and none is taken while
 *   answers wait for the connection (`pause()`): the rest stays in `inbox`,
 *   which counts as `writableLength`, so the connection shrinks the guest's
 *   window and memory stays bounded.
 * - The guest's FIN (`end()`): queries already whole are still answered,
 *   then our FIN follows. A message shorter than a DNS header is a broken
 *   stream: it is reset.
 * - Idle for IDLE_MS (nothing from the guest, no answer): our FIN (RFC 7766
 *   §6.2.3: servers close idle connections). Queries the proxy dropped
 *   without an answer are given up then.
 * - Events reach the connection only after the call that caused them (as a
 *   socket's would), never inside `write()` or `end()`.
 */
import { afterCall } from '../../after-call.js';
import type { HostStream, HostStreamEvents } from '../../nat/tcp/host-stream.js';
import { DNS_HEADER_LENGTH } from './message.js';

/** Answers one message; `reply` runs at most once, now or later. */
export type AskDns = (query: Uint8Array, reply: (answer: Uint8Array) => void) => void;

/** Queries of one connection out at once; more wait in the stream. */
export const MAX_IN_FLIGHT = 16;
/** A connection with no traffic either way this long is closed (BIND and Unbound: 30 s). */
export const IDLE_MS = 30_000;

const LENGTH_PREFIX = 2;

export interface DnsTcpCounters {
  /** Connections from guests. */
  sessions: number;
  /** Messages taken from them. */
  messages: number;
  /** Streams reset for a message shorter than a DNS header. */
  broken: number;
  /** Connections closed for idleness. */
  idleClosed: number;
}

export class DnsTcpSession implements HostStream {
  private inbox = new Uint8Array(0);
  private inFlight = 0;
  private outbox: Uint8Array[] = [];
  private paused = false;
  private guestEnded = false;
  private ourEnd = false;
  private closed = false;
  private readonly idle: NodeJS.Timeout;

  constructor(
    private readonly events: HostStreamEvents,
    private readonly ask: AskDns,
    private readonly counters: DnsTcpCounters,
    idleMs = IDLE_MS,
  ) {
    counters.sessions++;
    this.idle = setTimeout(this.onIdle, idleMs);
    this.idle.unref();
    afterCall(() => this.closed || events.onHostConnect());
  }

  get writableLength(): number {
    return this.inbox.length;
  }

  get destroyed(): boolean {
    return this.closed;
  }

  get writableEnded(): boolean {
    return this.guestEnded;
  }

  write(data: Uint8Array, written?: () => void): void {
    this.tryWrite(data);
    if (written !== undefined) afterCall(written); // copied: the buffer is free
  }

  tryWriteGathered(): number {
    return 0; // the connection copies them, and they come through write()
  }

  tryWrite(data: Uint8Array): number {
    if (this.closed || this.guestEnded) return 0;
    if (this.ourEnd) return data.length; // closed for idleness: nothing more is answered
    if (this.inbox.length === 0) {
      this.inbox = data.slice();
    } else {
      const inbox = new Uint8Array(this.inbox.length + data.length);
      inbox.set(this.inbox);
      inbox.set(data, this.inbox.length);
      this.inbox = inbox;
    }
    this.idle.refresh();
    afterCall(this.takeQueries);
    return data.length;
  }

  end(): void {
    if (this.closed || this.guestEnded) return;
    this.guestEnded = true;
    afterCall(this.finishIfDone);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.readNow();
  }

  /** Delivers the answers waiting, then takes the queries waiting. */
  readNow(): void {
    if (this.closed || this.paused) return;
    const answers = this.outbox;
    this.outbox = [];
    for (const answer of answers) {
      if (this.closed) return;
      this.events.onHostData(answer);
    }
    this.takeQueries();
  }

  destroy(): void {
    this.close();
  }

  reset(): void {
    this.close();
  }

  wasReset(): boolean {
    return false;
  }

  /** Takes whole messages from `inbox` while the in-flight limit and the connection allow. */
  private readonly takeQueries = (): void => {
    let offset = 0;
    while (!this.closed && !this.paused && this.outbox.length === 0 && this.inFlight < MAX_IN_FLIGHT) {
      if (this.inbox.length - offset < LENGTH_PREFIX) break;
      const length = (this.inbox[offset]! << 8) | this.inbox[offset + 1]!;
      if (length < DNS_HEADER_LENGTH) return this.broken();
      if (this.inbox.length - offset - LENGTH_PREFIX < length) break;
      const query = this.inbox.subarray(offset + LENGTH_PREFIX, offset + LENGTH_PREFIX + length);
      offset += LENGTH_PREFIX + length;
      this.inFlight++;
      this.counters.messages++;
      this.ask(query, this.answerOnce());
    }
    if (this.closed) return;
    if (offset > 0) {
      this.inbox = this.inbox.slice(offset);
      if (this.inbox.length === 0) this.events.onHostDrain();
    }
    this.finishIfDone();
  };

  /** A reply callback that counts once, however often the proxy calls it. */
  private answerOnce(): (answer: Uint8Array) => void {
    let answered = false;
    return (answer) => {
      if (answered || this.closed || this.ourEnd) return;
      answered = true;
      this.inFlight--;
      this.idle.refresh();
      const framed = new Uint8Array(LENGTH_PREFIX + answer.length);
      framed[0] = answer.length >>> 8;
      framed[1] = answer.length & 0xff;
      framed.set(answer, LENGTH_PREFIX);
      this.outbox.push(framed);
      // The proxy may answer inside `ask`: deliver after the call.
      afterCall(() => this.readNow());
    };
  }

  /** The guest ended and every whole query is answered: our FIN, then the stream is done. */
  private readonly finishIfDone = (): void => {
    if (this.closed || !this.guestEnded || this.inFlight > 0 || this.outbox.length > 0) return;
    if (this.hasWholeMessage()) return;
    this.finish();
  };

  private hasWholeMessage(): boolean {
    if (this.inbox.length < LENGTH_PREFIX) return false;
    return this.inbox.length - LENGTH_PREFIX >= ((this.inbox[0]! << 8) | this.inbox[1]!);
  }

  private readonly onIdle = (): void => {
    if (this.closed || this.ourEnd) return;
    this.counters.idleClosed++;
    this.inFlight = 0; // dropped by the proxy, or slower than any upstream's timeout
    this.outbox = [];
    this.sendFin();
    if (this.guestEnded) this.done();
  };

  private finish(): void {
    if (!this.ourEnd) this.sendFin();
    this.done();
  }

  private sendFin(): void {
    this.ourEnd = true;
    this.events.onHostEnd();
  }

  /** Both directions ended: closed, as a socket is, and said so after the call. */
  private done(): void {
    if (this.closed) return;
    this.close();
    afterCall(() => this.events.onHostClose());
  }

  private broken(): void {
    this.counters.broken++;
    this.close();
    afterCall(() => {
      this.events.onHostError('EPROTO');
      this.events.onHostClose();
    });
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.idle);
    this.inbox = new Uint8Array(0);
    this.outbox = [];
  }
}
