/** Where vnet keeps its state: `--home`, else `$VNET_HOME`, else `~/.vnet`. */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export function resolveHome(flag?: string): string {
  return resolve(flag ?? process.env.VNET_HOME ?? join(homedir(), '.vnet'));
}

export const SOCKET_NAME = 'vnet.sock';
export const socketPath = (home: string): string => join(home, SOCKET_NAME);
