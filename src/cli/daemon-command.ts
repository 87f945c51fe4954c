/** `vnet daemon`: run the engine and its API until SIGINT/SIGTERM. */
import { resolveHome, socketPath } from '../model/home.js';
import { buildRoutes } from '../api/routes.js';
import { listenUnix } from '../api/server.js';
import { Daemon } from '../daemon/daemon.js';
import { parseArgs, single, usageError } from './argv.js';

/** `vnet daemon [--home DIR]`; `globalHome` is a `--home` given before the command. */
export async function runDaemon(args: string[], globalHome?: string): Promise<void> {
  const parsed = parseArgs(args);
  const unknown = parsed.options.find((o) => o.key !== 'home') ?? (parsed.positionals.length ? { spelling: parsed.positionals[0] } : null);
  if (unknown) throw usageError(`daemon: unexpected argument ${unknown.spelling}`);
  const home = resolveHome(single(parsed, 'home') ?? globalHome);
  const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  const daemon = new Daemon(home, log);
  const server = await listenUnix(buildRoutes(daemon), socketPath(home));
  await daemon.resume();
  log(`vnet daemon serving ${socketPath(home)}`);
  const stop = () => {
    log('shutting down; running guests keep their links for the next daemon');
    daemon.shutdown();
    server.close();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
