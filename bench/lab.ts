/**
 * What a benchmark run owns: network namespaces, child processes, temp
 * folders, and teardown steps. `cleanup()` removes all of it — in `finally`,
 * and from the SIGINT/SIGTERM handler — and may be called more than once.
 *
 * Namespace names are `vnb-<label>-<id>` with a random id per run, so they
 * never collide with the machine's own namespaces or another run's. Nothing
 * here touches the root namespace's links, routes or firewall: every link is
 * created inside a namespace of this lab (`ip -n NS ...`).
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

/** Every command is killed after this long unless the caller says otherwise. */
export const DEFAULT_TIMEOUT_MS = 30_000;

/** How long a teardown step or a stopping process may take before we move on. */
const TEARDOWN_STEP_TIMEOUT_MS = 10_000;

/** Commands of run() still going: cleanup() kills them (an interrupted iperf3 client, say). */
const running = new Set<ChildProcess>();

/** Run a command to completion (bounded); never throws, the code says how it went. */
export function run(cmd: string, args: string[], options: { timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      { timeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 64 << 20, encoding: 'utf8' },
      (err, stdout, stderr) => {
        running.delete(child);
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
    running.add(child);
  });
}

/** Run and insist on success; the error names the command and what it printed. */
export async function must(cmd: string, args: string[], options?: { timeoutMs?: number }): Promise<string> {
  const result = await run(cmd, args, options);
  if (result.code !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${result.code}: ${(result.stderr || result.stdout).trim()}`);
  }
  return result.stdout;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Poll `check` every `everyMs` until it returns true; throws after `timeoutMs`. */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  everyMs = 100,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

const exited = (child: ChildProcess): boolean => child.exitCode !== null || child.signalCode !== null;

/** Resolve when `child` has exited, or after `timeoutMs` (false then). */
function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (exited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

export class Lab {
  readonly id = randomBytes(3).toString('hex');
  private readonly namespaces = new Set<string>();
  private readonly processes = new Set<ChildProcess>();
  private readonly folders = new Set<string>();
  private readonly teardowns: { what: string; step: () => Promise<void> }[] = [];
  /** True once cleanup() has begun: whatever is still running should stop. */
  closing = false;

  /** Create a namespace `vnb-<label>-<id>` with `lo` up; deleted by cleanup(). */
  async netns(label: string): Promise<string> {
    if (this.closing) throw new Error('interrupted');
    const name = `vnb-${label}-${this.id}`;
    if (existsSync(`/var/run/netns/${name}`)) throw new Error(`namespace ${name} already exists; refusing to reuse it`);
    this.namespaces.add(name);
    await must('ip', ['netns', 'add', name]);
    if (this.closing) {
      // cleanup() began while `ip netns add` ran and may have looked before it existed.
      await run('ip', ['netns', 'delete', name]);
      this.namespaces.delete(name);
      throw new Error('interrupted');
    }
    await must('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }

  /** Delete one of this lab's namespaces now (its links go with it). */
  async deleteNetns(name: string): Promise<void> {
    if (!this.namespaces.has(name)) throw new Error(`namespace ${name} is not this lab's`);
    if (existsSync(`/var/run/netns/${name}`)) await run('ip', ['netns', 'delete', name]);
    this.namespaces.delete(name);
  }

  exec(netns: string, cmd: string, args: string[], options?: { timeoutMs?: number }): Promise<RunResult> {
    return run('ip', ['netns', 'exec', netns, cmd, ...args], options);
  }

  mustExec(netns: string, cmd: string, args: string[], options?: { timeoutMs?: number }): Promise<string> {
    return must('ip', ['netns', 'exec', netns, cmd, ...args], options);
  }

  /**
   * Start a long-running process in `netns`. `ip netns exec` execs the command,
   * so the child's pid is the command's own (what CPU accounting needs).
   * Killed by cleanup() unless stopped earlier with `stop()`.
   */
  spawn(netns: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', netns, cmd, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    this.processes.add(child);
    child.once('exit', () => this.processes.delete(child));
    return child;
  }

  /** SIGTERM `child`, then SIGKILL if it is still there after `graceMs`. */
  async stop(child: ChildProcess, graceMs = 5_000): Promise<void> {
    if (!exited(child)) {
      child.kill('SIGTERM');
      if (!(await waitExit(child, graceMs))) {
        child.kill('SIGKILL');
        await waitExit(child, graceMs);
      }
    }
    this.processes.delete(child);
  }

  tempDir(label: string): string {
    const dir = mkdtempSync(join(tmpdir(), `vnb-${label}-`));
    this.folders.add(dir);
    return dir;
  }

  /** Register a teardown step; steps run newest first, before processes are killed. */
  defer(what: string, step: () => Promise<void>): () => Promise<void> {
    const entry = { what, step };
    this.teardowns.push(entry);
    return async () => {
      const i = this.teardowns.indexOf(entry);
      if (i < 0) return;
      this.teardowns.splice(i, 1);
      await step();
    };
  }

  private cleaning: Promise<void> | null = null;

  /** Undo everything this lab made. Best effort and bounded: every step is tried. A second call joins the first. */
  cleanup(): Promise<void> {
    this.cleaning ??= this.undoAll();
    return this.cleaning;
  }

  private async undoAll(): Promise<void> {
    this.closing = true;
    for (const child of running) child.kill('SIGKILL');
    while (this.teardowns.length) {
      const { what, step } = this.teardowns.pop()!;
      try {
        await Promise.race([step(), sleep(TEARDOWN_STEP_TIMEOUT_MS).then(() => Promise.reject(new Error('timed out')))]);
      } catch (err) {
        console.error(`bench: teardown "${what}" failed: ${(err as Error).message}`);
      }
    }
    await Promise.all([...this.processes].map((child) => this.stop(child, 2_000)));
    for (const name of [...this.namespaces]) {
      if (existsSync(`/var/run/netns/${name}`)) {
        const result = await run('ip', ['netns', 'delete', name]);
        if (result.code !== 0) console.error(`bench: could not delete namespace ${name}: ${result.stderr.trim()}`);
      }
      this.namespaces.delete(name);
    }
    for (const dir of this.folders) rmSync(dir, { recursive: true, force: true });
    this.folders.clear();
  }
}
