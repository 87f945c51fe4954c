/**
 * The one error a codec throws for malformed input. Exactly one place (where a
 * frame enters the engine) catches it and counts `drops[protocol:reason]`.
 */
export class WireError extends Error {
  constructor(
    readonly protocol: string,
    readonly reason: string,
  ) {
    super(`${protocol}: ${reason}`);
    this.name = 'WireError';
  }

  /** The drop-counter key, e.g. `ipv4:bad-checksum`. */
  get key(): string {
    return `${this.protocol}:${this.reason}`;
  }
}
