/**
 * Named limits and timeouts of the TCP NAT, with their defaults. Every table
 * and buffer it keeps is bounded by one of these.
 */

export interface TcpLimits {
  /** Connections in the table, any state. */
  maxFlows: number;
  /** Host connects in progress at once (each holds a socket); SYNs beyond it are dropped for the guest to retry. */
  maxConnecting: number;
  /** Bytes read from a host socket and not yet acknowledged by the guest before the socket is paused. */
  sendBuffer: number;
  /**
   * Bytes read from host sockets and not yet acknowledged by the guests, all
   * connections of the NAT together. Past it no host socket is read until
   * guests acknowledge: per-connection limits times the flow table would
   * let a guest that never acknowledges hold gigabytes.
   */
  maxQueuedBytes: number;
  /** Bytes from a guest buffered toward a host socket; the window advertised to the guest is what is left of it. */
  receiveBuffer: number;
  /**
   * Guest bytes buffered toward host sockets plus the windows still open to
   * guests, all connections of the NAT together. Windows never promise more:
   * a guest cannot make the NAT hold more than this for hosts that do not
   * read, however many connections it opens.
   */
  maxHeldForHosts: number;
  /** Out-of-order segments kept per connection. */
  maxOutOfOrder: number;
  /** Window-scale shift offered to guests (RFC 7323 §2.3: at most 14). */
  windowShift: number;
  /** Host connect gives up after this long and the guest gets ICMP host unreachable. */
  connectTimeoutMs: number;
  /** Idle established connection is dropped after this (RFC 5382 REQ-5: at least 2 h 4 min). */
  establishedIdleMs: number;
  /** Idle opening or closing connection is dropped after this (RFC 5382 REQ-5: transitory, 4 min). */
  transitoryIdleMs: number;
  /** Both sides closed, ours first (or both at once): how long the flow lingers in TIME-WAIT to re-acknowledge a repeated FIN. */
  timeWaitMs: number;
  /** RFC 6298 §2.4 says 1 s; on a virtual link the RTT is microseconds, so we use Linux's 200 ms (a deviation). */
  minRtoMs: number;
  /** RFC 6298 §2.5: "A maximum value MAY be placed on RTO provided it is at least 60 seconds." */
  maxRtoMs: number;
  /** Retransmissions of the same data (or SYN) without progress before the connection is reset. */
  maxRetransmits: number;
  /** Retransmissions of a SYN or SYN-ACK before giving up. */
  maxSynRetransmits: number;
}

export const DEFAULT_TCP_LIMITS: Readonly<TcpLimits> = {
  maxFlows: 16384,
  maxConnecting: 1024,
  sendBuffer: 4 << 20,
  maxQueuedBytes: 256 << 20,
  receiveBuffer: 2 << 20,
  maxHeldForHosts: 256 << 20,
  maxOutOfOrder: 64,
  windowShift: 7,
  connectTimeoutMs: 20_000,
  establishedIdleMs: 7_440_000,
  transitoryIdleMs: 240_000,
  timeWaitMs: 1_000,
  minRtoMs: 200,
  maxRtoMs: 60_000,
  maxRetransmits: 10,
  maxSynRetransmits: 5,
};

/** Event counters, exposed by `TcpNat.stats()`. */
export interface TcpCounters {
  opened: number;
  closed: number;
  refused: number;
  unreachable: number;
  resets: number;
  retransmits: number;
  fastRetransmits: number;
  timeouts: number;
  /** `tcp:<reason>` → dropped guest segments. */
  drops: Record<string, number>;
}
