/**
 * `vnet daemon`: run the engine and its API until SIGINT/SIGTERM.
 *
 *   --home DIR                  state folder (API on DIR/vnet.sock, mode 0600)
 *   --listen tcp:HOST:PORT      also serve the API on TCP, bearer token required
 *   --listen unix:PATH          also serve it on a unix socket at PATH (mode 0600, as DIR/vnet.sock)
 *   --ui HOST:PORT | off        the dashboard (default 127.0.0.1:8080; a busy
 *                               default port only logs a warning)
 *   --busy-poll-us N            after each fd event, poll instead of sleeping
 *                               for up to N µs (default 200, or VNET_BUSY_POLL_US;
 *                               0 = off): see native/src/busy_poll.c
 */
import type { Server } from 'node:http';
import { resolveHome, socketPath } from '../model/home.js';
import { buildRoutes } from '../api/routes.js';
import { boundPort, ensureToken, listenTcp, listenUnix } from '../api/server.js';
import { Daemon } from '../daemon/daemon.js';
import { YoungGenerationKeeper } from '../daemon/young-generation.js';
import { setBusyPoll } from '../transport/busy-poll.js';
import { parseArgs, single, usageError } from './argv.js';
import { restartWithNodeFlags } from './node-flags.js';

/** Where the dashboard listens unless `--ui` says otherwise. */
export const DEFAULT_UI = '127.0.0.1:8080';

/**
 * Busy-poll budget when neither `--busy-poll-us` nor VNET_BUSY_POLL_US says,
 * KVM's default halt_poll_ns. The window adapts below it (busy_poll.c): it
 * covers the daemon's idle gap in a request/response exchange (the peer's
 * turn, tens of µs) and shrinks away when traffic is sparse. With 50 µs the
 * guest's slower turns (p90 ~60 µs here) kept halving the window.
 */
export const DEFAULT_BUSY_POLL_US = 200;

/** `--busy-poll-us` / VNET_BUSY_POLL_US: whole microseconds, 0 to 10,000. */
export function parseBusyPoll(text: string, source: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 10000) throw usageError(`${source} ${text}: expected microseconds from 0 to 10000`);
  return Number(text);
}

/** `HOST:PORT`, `[V6]:PORT`, with an optional `tcp:` in front. */
export function parseListenAddress(text: string, option: string): { host: string; port: number } {
  const rest = text.replace(/^tcp:/, '');
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(rest);
  const port = Number(match?.[3]);
  if (!match || port > 65535) throw usageError(`${option} ${text}: expected ${option === '--listen' ? 'tcp:' : ''}HOST:PORT, e.g. ${option === '--listen' ? 'tcp:127.0.0.1:8081' : DEFAULT_UI}`);
  return { host: match[1] ?? match[2]!, port };
}

/** `vnet daemon [--home DIR] [--listen tcp:HOST:PORT|unix:PATH] [--ui HOST:PORT|off] [--busy-poll-us N]`; `globalHome` is a `--home` given before the command. */
export async function runDaemon(args: string[], globalHome?: string): Promise<void> {
  const parsed = parseArgs(args);
  const unknown = parsed.options.find((o) => !['home', 'listen', 'ui', 'busypollus'].includes(o.key)) ?? (parsed.positionals.length ? { spelling: parsed.positionals[0] } : null);
  if (unknown) throw usageError(`daemon: unexpected argument ${unknown.spelling}`);
  const home = resolveHome(single(parsed, 'home') ?? globalHome);
  const listen = single(parsed, 'listen');
  const uiText = single(parsed, 'ui');
  if (listen !== undefined && !listen.startsWith('tcp:') && !/^unix:\/./.test(listen)) throw usageError(`--listen ${listen}: expected tcp:HOST:PORT or unix:/ABSOLUTE/PATH`);
  const unixPath = listen?.startsWith('unix:') ? listen.slice('unix:'.length) : null;
  const api = listen?.startsWith('tcp:') ? parseListenAddress(listen, '--listen') : null;
  const busyPollText = single(parsed, 'busypollus');
  const busyPollUs = busyPollText !== undefined ? parseBusyPoll(busyPollText, '--busy-poll-us')
    : process.env.VNET_BUSY_POLL_US ? parseBusyPoll(process.env.VNET_BUSY_POLL_US, 'VNET_BUSY_POLL_US') : DEFAULT_BUSY_POLL_US;
  const ui = uiText === 'off' ? null : parseListenAddress(uiText ?? DEFAULT_UI, '--ui');
  const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  // Arguments are checked and nothing is open yet: the moment to restart in place with the V8 flags.
  const withoutFlags = restartWithNodeFlags();
  if (withoutFlags) log(withoutFlags);
  const daemon = new Daemon(home, log);
  setBusyPoll(busyPollUs);
  const router = buildRoutes(daemon);
  const servers: Server[] = [await listenUnix(router, socketPath(home))];
  if (unixPath !== null) {
    // Before anything starts: a path that cannot be served stops the daemon with nothing done.
    await listenUnix(router, unixPath).then(
      (server) => servers.push(server),
      (err) => {
        servers[0]!.close();
        throw err;
      },
    );
  }
  await daemon.resume();
  daemon.startSampling();
  const youngGeneration = new YoungGenerationKeeper();
  youngGeneration.start();
  log(`vnet daemon serving ${socketPath(home)}`);
  if (unixPath !== null) log(`API also on ${unixPath}`);
  try {
    if (api || ui) {
      const token = ensureToken(home);
      if (api) {
        servers.push(await listenTcp(router, { ...api, token, ui: false }));
        log(`API on http://${api.host}:${api.port}/v1/ (Authorization: Bearer <token in ${home}/token>)`);
      }
      if (ui) {
        try {
          const server = await listenTcp(router, { ...ui, token, ui: true });
          servers.push(server);
          log(`dashboard on http://${ui.host.includes(':') ? `[${ui.host}]` : ui.host}:${boundPort(server)}/?token=${token}`);
        } catch (err) {
          // The default address is a convenience: a busy port must not stop the engine.
          if (uiText !== undefined) throw err;
          log(`dashboard not started: ${(err as Error).message} (use --ui HOST:PORT or --ui off)`);
        }
      }
    }
  } catch (err) {
    // Nothing half-started: a TCP address that cannot be bound stops the daemon with a clear error.
    youngGeneration.stop();
    daemon.shutdown();
    for (const server of servers) server.close();
    throw err;
  }
  const stop = () => {
    log('shutting down; running guests keep their links for the next daemon');
    youngGeneration.stop();
    daemon.shutdown();
    for (const server of servers) server.close();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
