/**
 * A QMP (QEMU Machine Protocol) client over QEMU's unix control socket
 * (`-qmp unix:PATH,server=on,wait=off`).
 *
 * Theory of operation:
 * - QEMU greets with `{"QMP": …}`; we answer `qmp_capabilities` and from then
 *   on send `{"execute", "arguments", "id"}` and match each `{"return"|"error",
 *   "id"}` by its id. Asynchronous `{"event"}` messages go to `onEvent`.
 * - Messages are JSON objects, one per line (QEMU ends them with CRLF).
 * - When QEMU exits the socket closes: pending commands fail and `onClose`
 *   runs once. That is how the daemon notices a QEMU it did not spawn dying.
 * - Every wait is bounded (`timeoutMs`); a line longer than `MAX_LINE` closes
 *   the connection (QEMU never sends one).
 */
import { connect, type Socket } from 'node:net';
import { VnetError } from '../errors.js';

/** Longest QMP message we accept, bytes. */
const MAX_LINE = 1 << 20;
/** Default bound on the greeting and on each command. */
export const QMP_TIMEOUT_MS = 10_000;

/** `controlvm` actions and the QMP command each one is. */
export const QMP_ACTIONS = {
  poweroff: 'quit',
  reset: 'system_reset',
  acpipowerbutton: 'system_powerdown',
  pause: 'stop',
  resume: 'cont',
} as const;
export type QmpAction = keyof typeof QMP_ACTIONS;

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class QmpClient {
  /** An event from QEMU (`STOP`, `RESUME`, `SHUTDOWN`, `RESET`, …). */
  onEvent: (event: string, data: unknown) => void = () => {};
  /** The connection ended (QEMU exited or closed it). Called once. */
  onClose: () => void = () => {};
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private buffered = '';
  private closed = false;
  private greeted: (() => void) | undefined;

  private constructor(
    private readonly socket: Socket,
    private readonly timeoutMs: number,
  ) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.receive(chunk));
    socket.on('error', () => {}); // 'close' follows
    socket.on('close', () => this.end('QMP connection closed'));
  }

  /**
   * Connect to QEMU's QMP socket at `path` and leave capabilities negotiation.
   * @throws VnetError VNET_ERR_HOST if QEMU does not answer in time.
   */
  static async connect(path: string, timeoutMs = QMP_TIMEOUT_MS): Promise<QmpClient> {
    const socket = connect(path);
    const client = new QmpClient(socket, timeoutMs);
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no greeting')), timeoutMs);
        client.greeted = () => {
          clearTimeout(timer);
          resolve();
        };
        socket.once('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
      });
      await client.execute('qmp_capabilities');
    } catch (err) {
      client.close();
      throw new VnetError('VNET_ERR_HOST', `cannot talk to QEMU at ${path}: ${(err as Error).message}`, { cause: err });
    }
    return client;
  }

  /** Run one QMP command; its `return` value. @throws VnetError with QEMU's error text. */
  execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    if (this.closed) return Promise.reject(new VnetError('VNET_ERR_INVALID_STATE', `QEMU is gone (QMP ${command})`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new VnetError('VNET_ERR_HOST', `QEMU did not answer ${command} within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.socket.write(JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id }) + '\n');
    });
  }

  /** QEMU's run state: `running`, `paused`, `shutdown`, … */
  async status(): Promise<string> {
    const result = (await this.execute('query-status')) as { status?: string };
    return result.status ?? 'unknown';
  }

  close(): void {
    this.socket.destroy();
    this.end('closed');
  }

  private receive(chunk: string): void {
    this.buffered += chunk;
    if (this.buffered.length > MAX_LINE) {
      this.close();
      return;
    }
    let newline: number;
    while ((newline = this.buffered.indexOf('\n')) >= 0) {
      const line = this.buffered.slice(0, newline).trim();
      this.buffered = this.buffered.slice(newline + 1);
      if (line) this.message(line);
    }
  }

  private message(line: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return; // not QMP; ignore
    }
    if ('QMP' in msg) {
      this.greeted?.();
      this.greeted = undefined;
      return;
    }
    if (typeof msg.event === 'string') {
      this.onEvent(msg.event, msg.data);
      return;
    }
    const pending = typeof msg.id === 'number' ? this.pending.get(msg.id) : undefined;
    if (!pending) return;
    this.pending.delete(msg.id as number);
    clearTimeout(pending.timer);
    if ('error' in msg) {
      const error = msg.error as { desc?: string; class?: string };
      pending.reject(new VnetError('VNET_ERR_INVALID_STATE', `QEMU: ${error.desc ?? error.class ?? 'error'}`));
    } else pending.resolve(msg.return);
  }

  private end(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new VnetError('VNET_ERR_HOST', reason));
    }
    this.pending.clear();
    this.onClose();
  }
}
