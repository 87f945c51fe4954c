/**
 * The API server: HTTP/1.1 on a unix socket under the daemon's home (mode
 * 0600, so only its owner can drive the daemon).
 */
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { VnetError } from '../errors.js';
import { toErrorResponse } from './errors.js';
import { readJsonBody, type Router } from './router.js';

export async function listenUnix(router: Router, path: string): Promise<Server> {
  await removeStaleSocket(path);
  const server = createServer((req, res) => {
    void (async () => {
      let status = 200;
      let body: unknown;
      try {
        const url = new URL(req.url ?? '/', 'http://vnet');
        const { handler, params } = router.match(req.method ?? 'GET', url.pathname);
        const requestBody = req.method === 'GET' || req.method === 'DELETE' ? {} : await readJsonBody(req);
        body = await handler({ method: req.method ?? 'GET', params, query: url.searchParams, body: requestBody });
      } catch (err) {
        ({ status, body } = toErrorResponse(err));
      }
      const text = JSON.stringify(body ?? null);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  return server;
}

/** A socket file left by a dead daemon is removed; one with a live daemon behind it is an error. */
async function removeStaleSocket(path: string): Promise<void> {
  if (!existsSync(path)) return;
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
