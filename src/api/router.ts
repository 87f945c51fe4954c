/** A small path router: `GET /v1/vms/:vm` style patterns, JSON in and out. */
import type { IncomingMessage } from 'node:http';
import { VnetError } from '../errors.js';

export interface Request {
  method: string;
  params: Record<string, string>;
  query: URLSearchParams;
  body: unknown;
}

export type Handler = (request: Request) => unknown | Promise<unknown>;

interface Route {
  method: string;
  pattern: string;
  parts: string[];
  handler: Handler;
}

/** Request bodies larger than this are refused; ours are a few hundred bytes. */
export const MAX_BODY_BYTES = 1 << 20;

export class Router {
  private readonly routes: Route[] = [];

  on(method: string, pattern: string, handler: Handler): this {
    this.routes.push({ method, pattern, parts: pattern.split('/').filter(Boolean), handler });
    return this;
  }

  /** The handler and path parameters for a request, or a 404/405 VnetError. */
  match(method: string, path: string): { handler: Handler; params: Record<string, string> } {
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    let pathMatched = false;
    for (const route of this.routes) {
      const params = matchParts(route.parts, parts);
      if (!params) continue;
      pathMatched = true;
      if (route.method === method) return { handler: route.handler, params };
    }
    if (pathMatched) throw new VnetError('VNET_ERR_BAD_REQUEST', `method ${method} is not allowed on ${path}`);
    throw new VnetError('VNET_ERR_NOT_FOUND', `no such resource: ${path}`);
  }

  list(): { method: string; pattern: string }[] {
    return this.routes.map(({ method, pattern }) => ({ method, pattern }));
  }
}

function matchParts(pattern: string[], parts: string[]): Record<string, string> | null {
  if (pattern.length !== parts.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    if (p.startsWith(':')) params[p.slice(1)] = parts[i]!;
    else if (p !== parts[i]) return null;
  }
  return params;
}

/** Read and parse a JSON body; empty = `{}`. */
export async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new VnetError('VNET_ERR_BAD_REQUEST', `request body larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new VnetError('VNET_ERR_BAD_REQUEST', `request body is not valid JSON: ${(err as Error).message}`);
  }
}
