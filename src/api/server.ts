/**
 * The API server: HTTP/1.1 on a unix socket under the daemon's home (mode
 * 0600, so only its owner can drive the daemon), and optionally on TCP:
 *
 * - `--listen tcp:HOST:PORT`: the API, every request with
 *   `Authorization: Bearer <token>` (the token is `$VNET_HOME/token`, 0600).
 * - `--ui HOST:PORT`: the same API plus the dashboard's files. A browser
 *   signs in once with `/?token=…` (the daemon prints that URL); the answer
 *   sets an HttpOnly, SameSite=Strict cookie that later requests carry.
 *
 * Anything else on TCP is a 401 with the one error shape.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { VnetError } from '../errors.js';
import { toErrorResponse } from './errors.js';
import { readJsonBody, readTextBody, Reply, Stream, type Router } from './router.js';
import { serveWebFile } from './web-files.js';

export const TOKEN_FILE = 'token';
/** The dashboard's sign-in cookie, per port: cookies ignore ports, and two daemons may serve one host. */
export const tokenCookie = (port: number): string => `vnet_token_${port}`;

/** Answer one request through `router`: JSON in and out, or the handler's own Reply or Stream. */
export async function handle(router: Router, req: IncomingMessage, res: ServerResponse): Promise<void> {
  let status = 200;
  let body: unknown;
  try {
    const url = new URL(req.url ?? '/', 'http://vnet');
    const method = req.method ?? 'GET';
    const { handler, params, options } = router.match(method, url.pathname);
    const requestBody = options.rawBody ? await readTextBody(req) : method === 'GET' || method === 'DELETE' ? {} : await readJsonBody(req);
    body = await handler({ method, params, query: url.searchParams, body: requestBody, headers: req.headers });
  } catch (err) {
    ({ status, body } = toErrorResponse(err));
  }
  if (body instanceof Stream) return body.start(res);
  if (body instanceof Reply) {
    res.writeHead(body.status, { ...body.headers, 'content-length': Buffer.byteLength(body.body) });
    res.end(body.body);
    return;
  }
  sendJson(res, status, body ?? null);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export async function listenUnix(router: Router, path: string): Promise<Server> {
  await removeStaleSocket(path);
  const server = createServer((req, res) => void handle(router, req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  return server;
}

/** The API token of `home`, created (32 random bytes, hex, mode 0600) if missing. */
export function ensureToken(home: string): string {
  const path = join(home, TOKEN_FILE);
  if (existsSync(path)) {
    const token = readFileSync(path, 'utf8').trim();
    if (token.length >= 16) {
      if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
      return token;
    }
  }
  const token = randomBytes(32).toString('hex');
  writeFileSync(path, token + '\n', { mode: 0o600 });
  chmodSync(path, 0o600);
  return token;
}

export interface TcpOptions {
  host: string;
  port: number;
  token: string;
  /** Serve the dashboard (and accept its cookie) as well as the API. */
  ui: boolean;
}

/** Listen on TCP; resolves with the server once bound. @throws VnetError when the address is taken. */
export async function listenTcp(router: Router, options: TcpOptions): Promise<Server> {
  const server = createServer((req, res) => void serveTcp(router, options, req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE'
          ? new VnetError('VNET_ERR_PORT_IN_USE', `${options.host}:${options.port} is in use: choose another port`, { cause: err })
          : new VnetError('VNET_ERR_HOST', `cannot listen on ${options.host}:${options.port}: ${err.message}`, { cause: err }),
      ),
    );
    server.listen(options.port, options.host, () => resolve());
  });
  return server;
}

/** The port a TCP server is bound to (for `--ui HOST:0`). */
export const boundPort = (server: Server): number => (server.address() as AddressInfo).port;

async function serveTcp(router: Router, options: TcpOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://vnet');
  const cookieName = tokenCookie(req.socket.localPort ?? options.port);
  if (options.ui && req.method === 'GET' && url.pathname === '/' && url.searchParams.has('token')) {
    // Sign-in: a right token sets the cookie and drops the token from the address bar.
    if (!sameToken(url.searchParams.get('token') ?? '', options.token)) return unauthorized(res, options.ui, 'wrong token');
    res.writeHead(303, { location: '/', 'set-cookie': `${cookieName}=${options.token}; HttpOnly; SameSite=Strict; Path=/`, 'content-length': 0 });
    res.end();
    return;
  }
  const presented = bearer(req) ?? (options.ui ? cookie(req, cookieName) : undefined);
  if (presented === undefined) return unauthorized(res, options.ui, 'missing token: send Authorization: Bearer <token> (the token is in $VNET_HOME/token)', url.pathname);
  if (!sameToken(presented, options.token)) return unauthorized(res, options.ui, 'wrong token: use the one in $VNET_HOME/token', url.pathname);
  if (options.ui && req.method === 'GET' && serveWebFile(url.pathname, res)) return;
  await handle(router, req, res);
}

function unauthorized(res: ServerResponse, ui: boolean, message: string, path = '/'): void {
  res.setHeader('www-authenticate', 'Bearer realm="vnet"');
  // A browser asking for a page gets the sign-in form; API clients get the error shape.
  const api = path.startsWith('/v1/') || path.startsWith('/services/');
  if (ui && !api && serveWebFile('/signin.html', res, 401)) return;
  sendJson(res, 401, { error: { code: 'VNET_ERR_UNAUTHORIZED', message } });
}

function bearer(req: IncomingMessage): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  return match?.[1];
}

function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function sameToken(presented: string, token: string): boolean {
  const a = Buffer.from(presented);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** A socket file left by a dead daemon is removed; one with a live daemon behind it is an error. */
async function removeStaleSocket(path: string): Promise<void> {
  if (!existsSync(path)) return;
  // Only a socket is ours to remove: a path given by mistake must not cost someone a file.
  if (!lstatSync(path).isSocket()) throw new VnetError('VNET_ERR_EXISTS', `${path} exists and is not a socket`);
  const alive = await new Promise<boolean>((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
  if (alive) throw new VnetError('VNET_ERR_EXISTS', `a vnet daemon is already serving ${path}`);
  unlinkSync(path);
}
