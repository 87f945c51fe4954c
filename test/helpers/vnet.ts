/**
 * A vnet daemon under test, running inside a namespace of the lab, with its
 * own home folder; and a CLI runner pointed at it.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, waitFor, type Lab, type RunResult } from './lab.js';

/** The repository root (tests run from dist/test/helpers). */
export const REPO = resolve(fileURLToPath(import.meta.url), '../../../..');
export const VNET_BIN = join(REPO, 'bin', 'vnet');

export class VnetDaemon {
  private process: ChildProcess | null = null;
  log = '';

  constructor(
    private readonly lab: Lab,
    readonly netns: string,
    readonly home: string,
    private readonly env: NodeJS.ProcessEnv = {},
  ) {}

  /** Start a daemon in `netns` (a new one if not given) with a fresh home. */
  static async start(lab: Lab, netns?: string, home?: string, env?: NodeJS.ProcessEnv): Promise<VnetDaemon> {
    const daemon = new VnetDaemon(lab, netns ?? (await lab.netns('host')), home ?? lab.tempDir('home'), env);
    await daemon.restart();
    return daemon;
  }

  async restart(): Promise<void> {
    const child = this.lab.spawnNsenter(this.netns, process.execPath, [VNET_BIN, 'daemon', '--home', this.home], this.env);
    child.stdout!.on('data', (c: Buffer) => (this.log += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (this.log += c.toString()));
    this.process = child;
    await waitFor('the daemon to answer', async () => {
      if (child.exitCode !== null) throw new Error(`daemon exited ${child.exitCode}: ${this.log}`);
      return existsSync(join(this.home, 'vnet.sock')) && (await this.cli(['list', 'vms'])).code === 0;
    }, 15_000);
  }

  get pid(): number {
    return this.process!.pid!;
  }

  get alive(): boolean {
    return !!this.process && this.process.exitCode === null && this.process.signalCode === null;
  }

  /** `kill -9` the daemon and wait until it is gone. */
  async kill9(): Promise<void> {
    const child = this.process!;
    child.kill('SIGKILL');
    await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r)));
    this.lab.forget(child);
    this.process = null;
  }

  /** Run `vnet ARGS` against this daemon (from outside its namespace: the socket is a file). */
  cli(args: string[], timeoutMs = 30_000): Promise<RunResult> {
    return run(process.execPath, [VNET_BIN, '--home', this.home, ...args], { timeoutMs });
  }

  async must(args: string[]): Promise<string> {
    const result = await this.cli(args);
    if (result.code !== 0) throw new Error(`vnet ${args.join(' ')} exited ${result.code}: ${result.stderr.trim()}`);
    return result.stdout;
  }

  async stats(): Promise<Record<string, any>> {
    return JSON.parse(await this.must(['stats']));
  }
}
