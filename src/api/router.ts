/** A small path router: `GET /v1/vms/:vm` style patterns, JSON in and out. */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { VnetError } from '../errors.js';

export interface Request {
  method: string;
  params: Record<string, string>;
  query: URLSearchParams;
  body: unknown;
  headers: IncomingHttpHeaders;
}

/** A response that is not JSON: a file, a pcap, text for a gvisor-tap-vsock client. */
export class Reply {
  constructor(
    readonly status: number,
    readonly headers: Record<string, string>,
    readonly body: string | Buffer,
  ) {}
}

/** A response the handler writes itself, for as long as it likes (Server-Sent Events). */
export class Stream {
  constructor(readonly start: (res: ServerResponse) => void) {}
}

/** Routes whose request body is not JSON or not read by the server (the handler reads nothing). */
export interface RouteOptions {
  /** Send the body unparsed as text (gvisor-tap-vsock routes parse their own). */
  rawBody?: boolean;
}

export type Handler = (request: Request) => unknown | Promise<unknown>;

interface Route {
  method: string;
  pattern: string;
  parts: string[];
  handler: Handler;
  options: RouteOptions;
}

/** Request bodies larger than this are refused; ours are a few hundred bytes. */
export const MAX_BODY_BYTES = 1 << 20;

export class Router {
  private readonly routes: Route[] = [];

  on(method: string, pattern: string, handler: Handler, options: RouteOptions = {}): this {
    this.routes.push({ method, pattern, parts: pattern.split('/').filter(Boolean), handler, options });
    return this;
  }

  /** The handler and path parameters for a request, or a 404/405 VnetError. */
  match(method: string, path: string): { handler: Handler; params: Record<string, string>; options: RouteOptions } {
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    let pathMatched = false;
    for (const route of this.routes) {
      const params = matchParts(route.parts, parts);
      if (!params) continue;
      pathMatched = true;
      if (route.method === method) return { handler: route.handler, params, options: route.options };
    }
    if (pathMatched) throw new VnetError('VNET_ERR_BAD_REQUEST', `method ${method} is not allowed on ${path}`);
    throw new VnetError('VNET_ERR_NOT_FOUND', `no such resource: ${path}`);
  }

  /** Every route, in the order added; `pattern` in the router's `:param` spelling. */
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

/** Read a body as text, refusing more than MAX_BODY_BYTES. */
export async function readTextBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new VnetError('VNET_ERR_BAD_REQUEST', `request body larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Read and parse a JSON body; empty = `{}`. */
export async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const text = await readTextBody(req);
  if (text.length === 0) return {};
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new VnetError('VNET_ERR_BAD_REQUEST', `request body is not valid JSON: ${(err as Error).message}`);
  }
}
