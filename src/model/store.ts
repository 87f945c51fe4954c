/**
 * Persistence of vnet's state under $VNET_HOME: one JSON document written
 * atomically (temp file, fsync, rename, fsync of the folder), so a `kill -9`
 * at any moment leaves either the old or the new state, never a torn one.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { VnetError } from '../errors.js';
import { emptyState, type VnetState } from './types.js';
import { defaultNic, vmHardwareDefaults } from './vm.js';

export const STATE_FILE = 'vnet.json';

/** Write `data` to `path` so that readers see the old or the new content, whole. */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): void {
  const temp = `${path}.tmp-${process.pid}`;
  const fd = openSync(temp, 'w', mode);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, path);
  // The rename itself is durable only once the folder is synced.
  const dirFd = openSync(dirname(path), 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}

export class StateStore {
  readonly path: string;

  constructor(readonly home: string) {
    mkdirSync(home, { recursive: true, mode: 0o700 });
    this.path = join(home, STATE_FILE);
  }

  load(): VnetState {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
      throw new VnetError('VNET_ERR_HOST', `cannot read ${this.path}: ${(err as Error).message}`, { cause: err });
    }
    try {
      const state = JSON.parse(text) as VnetState;
      if (state.version !== 1 || !Array.isArray(state.vms)) throw new Error('unknown format');
      state.running ??= {};
      state.natNetworks ??= [];
      // NICs saved before a setting existed get its default.
      for (const vm of state.vms) vm.nics = vm.nics.map((nic) => ({ ...defaultNic(nic.slot), ...nic }));
      for (const vm of state.vms) Object.assign(vm, { ...vmHardwareDefaults(), ...vm });
      return state;
    } catch (err) {
      throw new VnetError('VNET_ERR_HOST', `${this.path} is not a vnet state file (${(err as Error).message})`, { cause: err });
    }
  }

  save(state: VnetState): void {
    writeFileAtomic(this.path, JSON.stringify(state, null, 2) + '\n');
  }
}
