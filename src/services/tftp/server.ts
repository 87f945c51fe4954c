/**
 * The NAT's TFTP server (VirtualBox NAT's 10.0.2.4; QEMU's `tftp=`): a
 * read-only TFTP server (RFC 1350) on the guest network, serving one host
 * directory, so that guests boot from the network (PXE: DHCP names the
 * server and the boot file, src/services/dhcp/server.ts).
 *
 * Theory of operation
 * - A read request (RRQ) to port 69 names a file under the root. It is
 *   resolved there and must stay there: `..` is refused, and so is a symbolic
 *   link that leads outside (access violation); a missing file is "file not
 *   found". Write requests are refused: the server is read-only.
 * - Options (RFC 2347): blksize (RFC 2348; at most what one datagram carries
 *   on the link, so nothing is fragmented), tsize (RFC 2349; octet mode), and
 *   timeout (RFC 2349, the retransmission interval). Others are left out of
 *   the OACK, which RFC 2347 allows; with none accepted, no OACK is sent.
 * - Each transfer gets its own server port (its TID, RFC 1350 §4) from the
 *   dynamic range, and runs lock-step (transfer.ts). A packet to a transfer's
 *   port from anyone but its client gets ERROR 5 (unknown transfer ID) and
 *   leaves the transfer alone.
 * - A request repeated while its file is being opened is ignored (the client
 *   retransmits its RRQ when the first answer is slow).
 * - Limits: `maxTransfers` at once (more are refused with ERROR 0). Malformed
 *   packets are counted and dropped.
 */
import { open, realpath, stat, type FileHandle } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { WireError } from '../../wire/errors.js';
import { parseTftp, TFTP_PORT, TftpError, TftpOpcode, tftpError, tftpOack } from '../../wire/tftp.js';
import { Transfer, type TransferSettings } from './transfer.js';

/** RFC 1350's block size, used unless the client asks for another. */
export const DEFAULT_BLOCK_SIZE = 512;
/** RFC 2348's bounds. */
const MIN_BLOCK_SIZE = 8;
const MAX_BLOCK_SIZE = 65464;
const TFTP_HEADER = 4;
export const DEFAULT_RETRANSMIT_MS = 1000;
export const DEFAULT_MAX_RETRIES = 5;
export const DEFAULT_MAX_TRANSFERS = 64;
/** Server TIDs come from the dynamic port range (RFC 6335). */
const FIRST_TID = 49152;
const TID_COUNT = 65536 - FIRST_TID;

export interface TftpServerOptions {
  /** The directory served; looked up at each request (it may appear later). */
  root: string;
  /** Sends a datagram from the server's address and `sourcePort`. */
  send: (sourcePort: number, destination: number, destinationPort: number, payload: Uint8Array) => void;
  /** The largest UDP payload the link carries unfragmented: bounds blksize. */
  maxPayload: number;
  maxTransfers?: number;
  retransmitMs?: number;
  maxRetries?: number;
}

export interface TftpStats {
  requests: number;
  /** Transfers whose last block was acknowledged. */
  completed: number;
  bytesSent: number;
  active: number;
  notFound: number;
  /** Requests refused: outside the root, not a regular file, unreadable, a write. */
  refused: number;
  timeouts: number;
  /** Requests turned away while `maxTransfers` ran. */
  busy: number;
  /** Transfers the client ended with an ERROR, or by going away (ICMP port unreachable). */
  aborted: number;
  /** Datagrams dropped, by reason. */
  drops: Record<string, number>;
}

interface Client {
  ip: number;
  port: number;
}

export class TftpServer {
  private readonly transfers = new Map<number, { transfer: Transfer; client: Client }>();
  /** Requests whose file is being opened, by client ip:port. */
  private readonly opening = new Set<string>();
  private nextTid = 0;
  private closed = false;
  private readonly maxTransfers: number;
  private readonly retransmitMs: number;
  private readonly maxRetries: number;
  private readonly counters = { requests: 0, completed: 0, bytesSent: 0, notFound: 0, refused: 0, timeouts: 0, busy: 0, aborted: 0 };
  private readonly drops: Record<string, number> = {};

  constructor(private readonly options: TftpServerOptions) {
    this.maxTransfers = options.maxTransfers ?? DEFAULT_MAX_TRANSFERS;
    this.retransmitMs = options.retransmitMs ?? DEFAULT_RETRANSMIT_MS;
    this.maxRetries = options.maxRetries ?? DEFAULT_MAX_RETRIES;
  }

  /** A UDP datagram from a guest to the server's address; false when no one listens on `port` (the caller sends port unreachable). */
  fromGuest(ip: number, sourcePort: number, port: number, payload: Uint8Array): boolean {
    if (this.closed) return false;
    const running = port === TFTP_PORT ? undefined : this.transfers.get(port);
    if (port !== TFTP_PORT && running === undefined) return false;
    let packet;
    try {
      packet = parseTftp(payload);
    } catch (err) {
      if (!(err instanceof WireError)) throw err;
      this.drop(err.key);
      return true;
    }
    const client = { ip, port: sourcePort };
    if (running === undefined) {
      this.request(client, packet);
      return true;
    }
    if (running.client.ip !== ip || running.client.port !== sourcePort) {
      // RFC 1350 §4: answer the stranger, do not disturb the transfer.
      this.options.send(port, ip, sourcePort, tftpError(TftpError.UnknownTransferId, 'unknown transfer ID'));
      this.drop('tftp:unknown-tid');
      return true;
    }
    if (packet.opcode === TftpOpcode.ACK) running.transfer.onAck(packet.block);
    else if (packet.opcode === TftpOpcode.ERROR) running.transfer.onClientError();
    else this.drop('tftp:unexpected-opcode');
    return true;
  }

  /**
   * The guest answered a datagram from transfer port `tid` to ip:port with
   * ICMP port unreachable: the client is gone, and so is its transfer.
   */
  clientGone(tid: number, ip: number, port: number): void {
    const running = this.transfers.get(tid);
    if (running !== undefined && running.client.ip === ip && running.client.port === port) running.transfer.onClientError();
  }

  stats(): TftpStats {
    return { ...this.counters, active: this.transfers.size, drops: { ...this.drops } };
  }

  close(): void {
    this.closed = true;
    for (const { transfer } of this.transfers.values()) transfer.close();
    this.transfers.clear();
  }

  private request(client: Client, packet: ReturnType<typeof parseTftp>): void {
    const reply = (code: number, message: string) => this.options.send(TFTP_PORT, client.ip, client.port, tftpError(code, message));
    if (packet.opcode === TftpOpcode.WRQ) {
      this.counters.refused++;
      return reply(TftpError.AccessViolation, 'read-only server');
    }
    if (packet.opcode !== TftpOpcode.RRQ) return this.drop('tftp:not-a-request');
    const key = `${client.ip}:${client.port}`;
    if (this.opening.has(key) || [...this.transfers.values()].some((t) => t.client.ip === client.ip && t.client.port === client.port)) {
      return this.drop('tftp:repeated-request');
    }
    this.counters.requests++;
    if (packet.mode !== 'octet' && packet.mode !== 'netascii') return reply(TftpError.IllegalOperation, `mode '${packet.mode}' is not supported`);
    if (this.transfers.size + this.opening.size >= this.maxTransfers) {
      this.counters.busy++;
      return reply(TftpError.NotDefined, 'too many transfers, try later');
    }
    this.opening.add(key);
    void this.openFile(packet.filename).then(
      (opened) => {
        this.opening.delete(key);
        if ('error' in opened) {
          if (opened.error === TftpError.FileNotFound) this.counters.notFound++;
          else this.counters.refused++;
          return reply(opened.error, opened.message);
        }
        if (this.closed) return void opened.file.close().catch(() => undefined);
        this.begin(client, opened.file, opened.size, packet.mode === 'netascii', packet.options);
      },
      () => this.opening.delete(key),
    );
  }

  /** Negotiates the options and starts the transfer on a fresh port. */
  private begin(client: Client, file: FileHandle, size: number, netascii: boolean, requested: Map<string, string>): void {
    const settings: TransferSettings = { blockSize: DEFAULT_BLOCK_SIZE, netascii, retransmitMs: this.retransmitMs, maxRetries: this.maxRetries };
    const accepted = new Map<string, string>();
    const blksize = integer(requested.get('blksize'));
    if (blksize !== undefined && blksize >= MIN_BLOCK_SIZE) {
      // RFC 2348: the server may answer with a smaller size, never a larger one.
      settings.blockSize = Math.min(blksize, MAX_BLOCK_SIZE, this.options.maxPayload - TFTP_HEADER);
      accepted.set('blksize', String(settings.blockSize));
    }
    const timeout = integer(requested.get('timeout'));
    if (timeout !== undefined && timeout >= 1 && timeout <= 255) {
      settings.retransmitMs = timeout * 1000;
      accepted.set('timeout', String(timeout));
    }
    // RFC 2349: a read request carries tsize 0 and the OACK the file's size (unknown ahead for netascii).
    if (requested.get('tsize') === '0' && !netascii) accepted.set('tsize', String(size));

    const tid = this.freeTid();
    const ends = {
      send: (payload: Uint8Array) => this.options.send(tid, client.ip, client.port, payload),
      finished: (transfer: Transfer, error?: string) => {
        this.transfers.delete(tid);
        this.counters.bytesSent += transfer.bytesSent;
        if (error === undefined) this.counters.completed++;
        else if (error === 'timeout') this.counters.timeouts++;
        else if (error === 'client-error') this.counters.aborted++;
      },
    };
    const transfer = new Transfer(file, settings, ends);
    this.transfers.set(tid, { transfer, client });
    transfer.start(accepted.size > 0 ? tftpOack(accepted) : undefined);
  }

  /** The file `name` names under the root, open, or the TFTP error to answer. */
  private async openFile(name: string): Promise<{ file: FileHandle; size: number } | { error: number; message: string }> {
    // PXE ROMs send DOS separators too; names are relative to the root whatever their leading slash.
    const parts = name.replace(/\\/g, '/').split('/').filter((p) => p !== '' && p !== '.');
    if (parts.length === 0) return { error: TftpError.FileNotFound, message: 'no file name' };
    if (parts.includes('..')) return { error: TftpError.AccessViolation, message: 'outside the TFTP root' };
    let root: string;
    let path: string;
    try {
      root = await realpath(this.options.root);
      path = await realpath(join(root, ...parts));
    } catch (err) {
      return fsError(err);
    }
    if (!path.startsWith(root + sep)) return { error: TftpError.AccessViolation, message: 'outside the TFTP root' };
    try {
      const info = await stat(path);
      if (!info.isFile()) return { error: TftpError.AccessViolation, message: 'not a file' };
      return { file: await open(path, 'r'), size: info.size };
    } catch (err) {
      return fsError(err);
    }
  }

  private freeTid(): number {
    for (;;) {
      const tid = FIRST_TID + (this.nextTid++ % TID_COUNT);
      if (!this.transfers.has(tid)) return tid; // at most maxTransfers are taken
    }
  }

  private drop(reason: string): void {
    this.drops[reason] = (this.drops[reason] ?? 0) + 1;
  }
}

function fsError(err: unknown): { error: number; message: string } {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return { error: TftpError.FileNotFound, message: 'file not found' };
  return { error: TftpError.AccessViolation, message: 'cannot read the file' };
}

/** A decimal option value, or undefined. */
function integer(text: string | undefined): number | undefined {
  return text !== undefined && /^\d{1,9}$/.test(text) ? Number(text) : undefined;
}
