/**
 * A test lab: network namespaces, processes and temp folders that a test
 * creates, all removed by `cleanup()` even when the test failed. Namespace
 * names start with `vnt-` and carry a random suffix, so parallel runs and
 * leftovers from a killed run never collide with anything else.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Every command is bounded: it is killed after this long unless told otherwise. */
export const DEFAULT_TIMEOUT_MS = 30_000;

export function run(cmd: string, args: string[], options: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      { timeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS, maxBuffer: 64 << 20, encoding: 'utf8', env: options.env },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** Run and insist on success; the error names the command and its stderr. */
export async function must(cmd: string, args: string[], options?: { timeoutMs?: number; input?: string }): Promise<string> {
  const result = await run(cmd, args, options);
  if (result.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`);
  return result.stdout;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Poll `check` until it returns true or `timeoutMs` passes. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

export class Lab {
  readonly id = randomBytes(3).toString('hex');
  private readonly namespaces = new Set<string>();
  private readonly processes = new Set<ChildProcess>();
  private readonly folders = new Set<string>();

  /** A namespace name this lab owns (not yet created): `vnt-<label>-<id>`. */
  name(label: string): string {
    const name = `vnt-${label}-${this.id}`;
    this.namespaces.add(name);
    return name;
  }

  /** Create a namespace with `lo` up. */
  async netns(label: string): Promise<string> {
    const name = this.name(label);
    await must('ip', ['netns', 'add', name]);
    await must('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }

  /** Run a command inside a namespace. */
  exec(netns: string, cmd: string, args: string[], options?: { timeoutMs?: number; input?: string }): Promise<RunResult> {
    return run('ip', ['netns', 'exec', netns, cmd, ...args], options);
  }

  mustExec(netns: string, cmd: string, args: string[], options?: { timeoutMs?: number; input?: string }): Promise<string> {
    return must('ip', ['netns', 'exec', netns, cmd, ...args], options);
  }

  /** Wait until something listens on `port` (TCP, or UDP) inside `netns`. */
  async waitListening(netns: string, port: number, protocol: 'tcp' | 'udp' = 'tcp', timeoutMs = 10_000): Promise<void> {
    const flags = protocol === 'udp' ? '-lun' : '-ltn';
    await waitFor(`a ${protocol} listener on :${port} in ${netns}`, async () => (await this.exec(netns, 'ss', [flags, `sport = :${port}`])).stdout.includes(`:${port}`), timeoutMs);
  }

  /** Start a long-running process inside a namespace; killed by cleanup(). */
  spawn(netns: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', netns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    this.processes.add(child);
    child.once('exit', () => this.processes.delete(child));
    return child;
  }

  /**
   * Start a process in a namespace's network stack only, sharing our mount
   * namespace (`ip netns exec` would give it a private one, where the
   * namespaces it creates stay invisible to us).
   */
  spawnNsenter(netns: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
    const child = spawn('nsenter', [`--net=/var/run/netns/${netns}`, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    this.processes.add(child);
    child.once('exit', () => this.processes.delete(child));
    return child;
  }

  /** Forget a process that the test stopped itself. */
  forget(child: ChildProcess): void {
    this.processes.delete(child);
  }

  tempDir(label: string): string {
    const dir = mkdtempSync(join(tmpdir(), `vnt-${label}-`));
    this.folders.add(dir);
    return dir;
  }

  async cleanup(): Promise<void> {
    for (const child of this.processes) child.kill('SIGKILL');
    await Promise.all([...this.processes].map((c) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.once('exit', r)))));
    this.processes.clear();
    for (const name of this.namespaces) {
      if (existsSync(`/var/run/netns/${name}`)) await run('ip', ['netns', 'delete', name]);
    }
    for (const dir of this.folders) rmSync(dir, { recursive: true, force: true });
  }
}
