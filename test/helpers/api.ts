/**
 * The API under test: a daemon started with extra flags (`--listen`,
 * `--ui`), requests on its unix socket (from here: the socket is a file),
 * and on its TCP listeners (with curl inside its namespace: 127.0.0.1 there
 * is not ours). Also records which documented operations a test exercised.
 */
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { run, waitFor, type Lab } from './lab.js';
import { VNET_BIN } from './vnet.js';

export interface ApiResponse {
  status: number;
  headers: Record<string, string>;
  text: string;
  /** The body parsed as JSON, or undefined if it is not JSON. */
  json: any;
}

const parse = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
};

export class ApiDaemon {
  log = '';
  private child: ChildProcess | null = null;
  /** `METHOD /path/{param}` of every request made, matched against the OpenAPI paths. */
  readonly exercised = new Set<string>();
  private templates: { method: string; path: string; regex: RegExp; external: boolean }[] = [];

  constructor(
    private readonly lab: Lab,
    readonly netns: string,
    readonly home: string,
    readonly args: string[],
    private readonly env: NodeJS.ProcessEnv = {},
  ) {}

  static async start(lab: Lab, netns: string, home: string, args: string[], env?: NodeJS.ProcessEnv): Promise<ApiDaemon> {
    const daemon = new ApiDaemon(lab, netns, home, args, env);
    const child = lab.spawnNsenter(netns, process.execPath, [VNET_BIN, 'daemon', '--home', home, ...args], env);
    child.stdout!.on('data', (c: Buffer) => (daemon.log += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (daemon.log += c.toString()));
    daemon.child = child;
    await waitFor('the daemon to answer', async () => {
      if (child.exitCode !== null) throw new Error(`daemon exited ${child.exitCode}: ${daemon.log}`);
      return existsSync(join(home, 'vnet.sock')) && (await daemon.request('GET', '/v1/vms').catch(() => null))?.status === 200;
    }, 15_000);
    const doc = (await daemon.request('GET', '/v1/openapi.json')).json as { paths: Record<string, Record<string, Record<string, unknown>>> };
    daemon.templates = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.entries(ops).map(([method, op]) => ({
        method: method.toUpperCase(),
        path,
        regex: new RegExp(`^${path.replace(/\{[^}]+\}/g, '[^/]+')}$`),
        external: op['x-vnet-module'] !== undefined,
      })),
    );
    daemon.exercised.clear();
    return daemon;
  }

  get alive(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  get token(): string {
    return readFileSync(join(this.home, 'token'), 'utf8').trim();
  }

  private record(method: string, path: string): void {
    const pathname = path.split('?')[0]!;
    // The most specific template wins (fewest parameters).
    const match = this.templates
      .filter((t) => t.method === method && t.regex.test(pathname))
      .sort((a, b) => (a.path.match(/\{/g)?.length ?? 0) - (b.path.match(/\{/g)?.length ?? 0))[0];
    if (match) this.exercised.add(`${method} ${match.path}`);
  }

  /** Operations other modules document (`x-vnet-module`), as `METHOD /path`. */
  external(): string[] {
    return this.templates.filter((t) => t.external).map((t) => `${t.method} ${t.path}`);
  }

  /** Every documented operation no request has touched yet. */
  unexercised(): string[] {
    return this.templates.map((t) => `${t.method} ${t.path}`).filter((op) => !this.exercised.has(op));
  }

  /** One request on the unix socket; `body` a value (sent as JSON) or raw text. */
  request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse> {
    this.record(method, path);
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request(
        { socketPath: join(this.home, 'vnet.sock'), path, method, headers: { ...headers, ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}) }, timeout: 20_000 },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            resolve({ status: res.statusCode ?? 0, headers: res.headers as Record<string, string>, text, json: parse(text) });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in 20 s`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** One request to a TCP listener inside the daemon's namespace, with curl. */
  async tcp(method: string, url: string, options: { token?: string; body?: unknown; cookie?: string } = {}): Promise<ApiResponse> {
    this.record(method, new URL(url).pathname);
    const args = ['-sS', '--max-time', '10', '-X', method, '-o', '-', '-w', '\n%{http_code}', url];
    if (options.token !== undefined) args.push('-H', `Authorization: Bearer ${options.token}`);
    if (options.cookie !== undefined) args.push('-H', `Cookie: ${options.cookie}`);
    if (options.body !== undefined) args.push('-H', 'content-type: application/json', '--data-binary', typeof options.body === 'string' ? options.body : JSON.stringify(options.body));
    const result = await run('ip', ['netns', 'exec', this.netns, 'curl', ...args]);
    if (result.code !== 0) throw new Error(`curl ${url} failed: ${result.stderr}`);
    const cut = result.stdout.lastIndexOf('\n');
    const text = result.stdout.slice(0, cut);
    return { status: Number(result.stdout.slice(cut + 1)), headers: {}, text, json: parse(text) };
  }

  /** `vnet ARGS` against this daemon. */
  cli(args: string[], timeoutMs = 30_000) {
    return run(process.execPath, [VNET_BIN, '--home', this.home, ...args], { timeoutMs });
  }

  async must(args: string[]): Promise<string> {
    const result = await this.cli(args);
    if (result.code !== 0) throw new Error(`vnet ${args.join(' ')} exited ${result.code}: ${result.stderr.trim()}`);
    return result.stdout;
  }
}
