/**
 * One TFTP read transfer (RFC 1350 §2, lock-step): the server sends block n,
 * the client acknowledges it, the server sends block n+1; a block shorter
 * than the block size is the last. The transfer runs from its own port (the
 * server's TID) to the client's.
 *
 * - What is sent waits for its ACK; with none in `retransmitMs` it is sent
 *   again, up to `maxRetries` times, then the transfer is given up.
 * - Only the ACK of the block last sent moves it on. An ACK of an earlier
 *   block is ignored, not answered: answering duplicates doubles every packet
 *   from then on (the Sorcerer's Apprentice bug, RFC 1123 §4.2.3.1).
 * - Block numbers are 16 bits and wrap to 0 after 65535 (what PXE ROMs,
 *   tftp-hpa and curl do for files beyond 65535 blocks).
 * - The next block is read while the client acknowledges this one.
 * - netascii (RFC 764): LF goes out as CR LF and CR as CR NUL.
 */
import type { FileHandle } from 'node:fs/promises';
import { TftpError, tftpData, tftpError } from '../../wire/tftp.js';

export interface TransferEnds {
  /** Sends a datagram from this transfer's port to the client. */
  send(payload: Uint8Array): void;
  /** The transfer is over (`error` undefined: the last block was acknowledged). */
  finished(transfer: Transfer, error?: 'timeout' | 'client-error' | 'read-error'): void;
}

export interface TransferSettings {
  blockSize: number;
  netascii: boolean;
  retransmitMs: number;
  maxRetries: number;
}

export class Transfer {
  /** The block last sent (counting past 65535; 0 is the OACK's). */
  private block = 0;
  private lastSent: Uint8Array | undefined;
  private lastWasFinal = false;
  private retries = 0;
  private timer: NodeJS.Timeout | undefined;
  private next: Promise<Uint8Array> | undefined;
  private readonly source: BlockSource;
  private closed = false;
  bytesSent = 0;

  constructor(
    private readonly file: FileHandle,
    private readonly settings: TransferSettings,
    private readonly ends: TransferEnds,
  ) {
    this.source = settings.netascii ? new NetasciiSource(file) : new OctetSource(file);
  }

  /** Begins with an OACK (RFC 2347: the client answers ACK 0), or with block 1. */
  start(oack: Uint8Array | undefined): void {
    if (oack !== undefined) {
      this.transmit(oack);
      this.readAhead();
    } else {
      this.advance();
    }
  }

  /** An ACK from the client (its 16-bit block number). */
  onAck(block: number): void {
    if (this.closed || this.lastSent === undefined || block !== (this.block & 0xffff)) return;
    if (this.lastWasFinal) return this.finish();
    this.advance();
  }

  /** The client sent ERROR, or is gone: it gives up, and so do we (nothing is answered to an ERROR). */
  onClientError(): void {
    this.finish('client-error');
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    void this.file.close().catch(() => undefined);
  }

  /** Sends the block after the one acknowledged, once read. */
  private advance(): void {
    this.block++;
    this.lastSent = undefined;
    this.readAhead();
    const block = this.block;
    this.next!.then(
      (data) => {
        if (this.closed || block !== this.block) return;
        this.next = undefined;
        this.lastWasFinal = data.length < this.settings.blockSize;
        this.bytesSent += data.length;
        this.transmit(tftpData(block, data));
        if (!this.lastWasFinal) this.readAhead();
      },
      () => {
        if (this.closed) return;
        this.ends.send(tftpError(TftpError.NotDefined, 'read error'));
        this.finish('read-error');
      },
    );
  }

  private readAhead(): void {
    this.next ??= this.source.read(this.settings.blockSize);
    this.next.catch(() => undefined); // handled where it is awaited
  }

  private transmit(packet: Uint8Array): void {
    this.lastSent = packet;
    this.retries = 0;
    this.ends.send(packet);
    this.arm();
  }

  private arm(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(this.onTimeout, this.settings.retransmitMs);
    this.timer.unref();
  }

  private readonly onTimeout = (): void => {
    if (this.closed || this.lastSent === undefined) return;
    if (this.retries >= this.settings.maxRetries) return this.finish('timeout');
    this.retries++;
    this.ends.send(this.lastSent);
    this.arm();
  };

  private finish(error?: 'timeout' | 'client-error' | 'read-error'): void {
    if (this.closed) return;
    this.close();
    this.ends.finished(this, error);
  }
}

/** The file's bytes, block after block. */
interface BlockSource {
  read(size: number): Promise<Uint8Array>;
}

class OctetSource implements BlockSource {
  private position = 0;
  constructor(private readonly file: FileHandle) {}

  async read(size: number): Promise<Uint8Array> {
    const buffer = Buffer.allocUnsafe(size);
    const { bytesRead } = await this.file.read(buffer, 0, size, this.position);
    this.position += bytesRead;
    return buffer.subarray(0, bytesRead);
  }
}

const CR = 0x0d;
const LF = 0x0a;
const RAW_CHUNK = 16 * 1024;

class NetasciiSource implements BlockSource {
  private position = 0;
  private converted = Buffer.alloc(0);
  private atEnd = false;
  constructor(private readonly file: FileHandle) {}

  async read(size: number): Promise<Uint8Array> {
    while (this.converted.length < size && !this.atEnd) {
      const raw = Buffer.allocUnsafe(RAW_CHUNK);
      const { bytesRead } = await this.file.read(raw, 0, RAW_CHUNK, this.position);
      this.position += bytesRead;
      if (bytesRead === 0) this.atEnd = true;
      else this.converted = Buffer.concat([this.converted, toNetascii(raw.subarray(0, bytesRead))]);
    }
    const block = this.converted.subarray(0, size);
    this.converted = this.converted.subarray(block.length);
    return block;
  }
}

/** RFC 764: end of line as CR LF, a bare CR as CR NUL. */
export function toNetascii(raw: Uint8Array): Buffer {
  let extra = 0;
  for (const byte of raw) if (byte === CR || byte === LF) extra++;
  const out = Buffer.allocUnsafe(raw.length + extra);
  let at = 0;
  for (const byte of raw) {
    if (byte === LF) {
      out[at++] = CR;
      out[at++] = LF;
    } else if (byte === CR) {
      out[at++] = CR;
      out[at++] = 0;
    } else {
      out[at++] = byte;
    }
  }
  return out;
}
