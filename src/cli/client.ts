/** The CLI's only way to the daemon: JSON over HTTP on the daemon's unix socket. */
import { request } from 'node:http';
import { VnetError } from '../errors.js';

export class ApiClient {
  constructor(private readonly socketPath: string) {}

  get<T>(path: string): Promise<T> {
    return this.call<T>('GET', path);
  }
  post<T>(path: string, body: unknown = {}): Promise<T> {
    return this.call<T>('POST', path, body);
  }
  patch<T>(path: string, body: unknown): Promise<T> {
    return this.call<T>('PATCH', path, body);
  }
  delete<T>(path: string): Promise<T> {
    return this.call<T>('DELETE', path);
  }

  /**
   * GET a Server-Sent Events stream and call `onEvent` with each event's
   * `data` parsed; resolves when the stream ends or `onEvent` returns false.
   */
  events(path: string, onEvent: (data: unknown) => boolean | void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const req = request({ socketPath: this.socketPath, path, method: 'GET', headers: { accept: 'text/event-stream' } }, (res) => {
        if ((res.statusCode ?? 500) >= 400) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const error = (JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null') as { error?: { code?: string; message?: string } } | null)?.error;
            reject(new ApiError(error?.code ?? 'VNET_ERR_INTERNAL', error?.message ?? `HTTP ${res.statusCode}`));
          });
          return;
        }
        let buffered = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buffered += chunk;
          let end: number;
          while ((end = buffered.indexOf('\n\n')) >= 0) {
            const frame = buffered.slice(0, end);
            buffered = buffered.slice(end + 2);
            const data = frame.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
            if (data && onEvent(JSON.parse(data)) === false) {
              req.destroy();
              resolve();
              return;
            }
          }
        });
        res.on('end', () => resolve());
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
          reject(new VnetError('VNET_ERR_HOST', `no vnet daemon at ${this.socketPath}: start one with 'vnet daemon' (or set --home / VNET_HOME)`));
        } else reject(err);
      });
      req.end();
    });
  }

  /** One request; an error body becomes a thrown ApiError with the daemon's message. */
  call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise<T>((resolve, reject) => {
      const req = request(
        {
          socketPath: this.socketPath,
          path,
          method,
          headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown;
            try {
              parsed = text ? JSON.parse(text) : null;
            } catch {
              reject(new ApiError('VNET_ERR_INTERNAL', `daemon answered ${res.statusCode} with non-JSON`));
              return;
            }
            if ((res.statusCode ?? 500) >= 400) {
              const error = (parsed as { error?: { code?: string; message?: string } })?.error;
              reject(new ApiError(error?.code ?? 'VNET_ERR_INTERNAL', error?.message ?? `HTTP ${res.statusCode}`));
            } else resolve(parsed as T);
          });
        },
      );
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
          reject(new VnetError('VNET_ERR_HOST', `no vnet daemon at ${this.socketPath}: start one with 'vnet daemon' (or set --home / VNET_HOME)`));
        } else reject(err);
      });
      req.end(payload);
    });
  }
}

export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
