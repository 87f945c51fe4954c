/**
 * `export` and `import`: one gzip-compressed tar archive per VM.
 *
 *     <vm>/vm.json           the configuration (first entry: import reads it first)
 *     <vm>/disks/<file>      every attached hard disk image
 *
 * Theory of operation:
 * - Both directions stream: disks go file → tar → gzip → file (and back) in
 *   chunks with backpressure; nothing is ever loaded whole. A 200 GB disk
 *   needs as little memory as a 2 MB one.
 * - Export writes `FILE.tmp-<pid>` and renames it into place at the end, so a
 *   failed export leaves no half archive under the name asked for.
 * - Import first reads only `vm.json` (stopping the stream there) to learn
 *   the name and refuse an existing one early; then extracts into a staging
 *   folder next to the VM folders and renames it into place: a VM folder
 *   appears whole or not at all. Only regular files and folders are taken
 *   from the archive, never links, and no path may leave the staging folder.
 * - DVD images are not archived (they are installation media, shared, as in
 *   VirtualBox's clones); their paths are kept as they are.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, rmSync, renameSync, statSync, symlinkSync, writeFileSync, mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip, constants as zlibConstants } from 'node:zlib';
import { create, extract, Parser, type ReadEntry } from 'tar';
import { VnetError, invalid } from '../errors.js';
import type { VmConfig } from './types.js';

export const CONFIG_ENTRY = 'vm.json';
export const DISKS_FOLDER = 'disks';
/** The configuration is a few kB; anything bigger is not ours. */
const MAX_CONFIG_BYTES = 1 << 20;
/** Fast compression: disk images are big and mostly zeros or already-dense data. */
const GZIP_LEVEL = 3;

export type Progress = (done: number, total: number) => void;

/** The configuration as stored in an archive: disks named relative to the VM folder. */
function archivedConfig(vm: VmConfig): { config: VmConfig; disks: { from: string; name: string }[] } {
  const config = structuredClone(vm);
  const disks: { from: string; name: string }[] = [];
  for (const attachment of config.storage) {
    if (attachment.type !== 'hdd' || !attachment.medium) continue;
    let name = basename(attachment.medium);
    for (let i = 1; disks.some((d) => d.name === name); i++) name = `${i}-${basename(attachment.medium)}`;
    disks.push({ from: attachment.medium, name });
    attachment.medium = `${DISKS_FOLDER}/${name}`;
  }
  // Keep only the configuration's own fields (a VM view carries runtime state too).
  const { name, uuid, ostype, nics, memoryMb, cpus, bootOrder, storageControllers, storage, kernel, initrd, kernelArgs } = config;
  return { config: { name, uuid, ostype, nics, memoryMb, cpus, bootOrder, storageControllers, storage, kernel, initrd, kernelArgs }, disks };
}

/**
 * Write `vm` and its disks to `file` (gzip'd tar). Refuses to overwrite.
 * `onProgress` gets uncompressed bytes done and the total.
 */
export async function exportVm(vm: VmConfig, file: string, onProgress: Progress = () => {}): Promise<{ bytes: number }> {
  if (existsSync(file)) throw new VnetError('VNET_ERR_EXISTS', `${file} already exists; not overwriting it`);
  const { config, disks } = archivedConfig(vm);
  for (const disk of disks) {
    if (!existsSync(disk.from)) throw new VnetError('VNET_ERR_NOT_FOUND', `disk image '${disk.from}' of VM '${vm.name}' does not exist`);
    if (statSync(disk.from).isDirectory()) throw invalid(`disk '${disk.from}' is a directory, not an image file (VERR_IS_A_DIRECTORY)`);
  }
  // A staging folder of links lets tar name entries as we want while reading the disks where they are.
  const staging = mkdtempSync(join(tmpdir(), 'vnet-export-'));
  const temp = `${file}.tmp-${process.pid}`;
  try {
    const root = join(staging, vm.name);
    mkdirSync(join(root, DISKS_FOLDER), { recursive: true });
    writeFileSync(join(root, CONFIG_ENTRY), JSON.stringify(config, null, 2) + '\n');
    for (const disk of disks) symlinkSync(disk.from, join(root, DISKS_FOLDER, disk.name));
    // Tar adds a 512-byte header per entry and pads to 512; the total is near enough for a progress bar.
    const total = disks.reduce((sum, d) => sum + statSync(d.from).size, 0) + 4096;
    let done = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        done += chunk.length;
        onProgress(Math.min(done, total), total);
        callback(null, chunk);
      },
    });
    const pack = create({ cwd: staging, follow: true, portable: true, noDirRecurse: false }, [`${vm.name}/${CONFIG_ENTRY}`, `${vm.name}/${DISKS_FOLDER}`]);
    await pipeline(Readable.from(pack), counter, createGzip({ level: GZIP_LEVEL }), createWriteStream(temp, { mode: 0o600, flags: 'wx' }));
    renameSync(temp, file);
    onProgress(total, total);
    return { bytes: statSync(file).size };
  } catch (err) {
    rmSync(temp, { force: true });
    if (err instanceof VnetError) throw err;
    throw new VnetError('VNET_ERR_HOST', `export to ${file} failed: ${(err as Error).message}`, { cause: err });
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** Read only the configuration from an archive (stops decompressing after it). */
export async function readArchiveConfig(file: string): Promise<VmConfig> {
  if (!existsSync(file)) throw new VnetError('VNET_ERR_NOT_FOUND', `${file} does not exist`);
  if (statSync(file).isDirectory()) throw invalid(`${file} is a directory, not an archive (VERR_IS_A_DIRECTORY)`);
  const input = createReadStream(file);
  const gunzip = createGunzip();
  return new Promise<VmConfig>((resolve, reject) => {
    let settled = false;
    const finish = (err: Error | null, config?: VmConfig) => {
      if (settled) return;
      settled = true;
      input.destroy();
      gunzip.destroy();
      if (err) reject(new VnetError('VNET_ERR_INVALID_VALUE', `${file} is not a vnet VM archive: ${err.message}`, { cause: err }));
      else resolve(config!);
    };
    const parser = new Parser({
      onReadEntry: (entry: ReadEntry) => {
        const parts = entry.path.split('/').filter(Boolean);
        if (parts.length !== 2 || parts[1] !== CONFIG_ENTRY) {
          entry.resume();
          if (!settled) finish(new Error(`first entry is '${entry.path}', expected <vm>/${CONFIG_ENTRY}`));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        entry.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_CONFIG_BYTES) finish(new Error(`${CONFIG_ENTRY} is larger than ${MAX_CONFIG_BYTES} bytes`));
          else chunks.push(c);
        });
        entry.on('end', () => {
          try {
            finish(null, JSON.parse(Buffer.concat(chunks).toString('utf8')) as VmConfig);
          } catch (err) {
            finish(err as Error);
          }
        });
      },
    });
    parser.on('error', (err: Error) => finish(err));
    parser.on('end', () => finish(new Error('no configuration in it')));
    input.on('error', (err) => finish(err));
    gunzip.on('error', (err) => finish(err));
    input.pipe(gunzip).pipe(parser as unknown as NodeJS.WritableStream);
  });
}

export interface ImportOptions {
  /** `--vsys-name NEW`: register under this name instead of the archived one. */
  name?: string;
  /** Folder that holds the VM folders (`$VNET_HOME/vms`). */
  vmsFolder: string;
}

/**
 * Extract `file` into `<vmsFolder>/<name>` and return the VM's configuration
 * with its disk paths made absolute there. The caller has checked that the
 * name is free (see `readArchiveConfig`); an existing folder is refused here too.
 */
export async function extractVm(file: string, archived: VmConfig, options: ImportOptions): Promise<VmConfig> {
  const name = options.name ?? archived.name;
  const folder = join(options.vmsFolder, name);
  if (existsSync(folder)) throw new VnetError('VNET_ERR_EXISTS', `folder ${folder} already exists; not overwriting it`);
  mkdirSync(options.vmsFolder, { recursive: true, mode: 0o700 });
  const staging = join(options.vmsFolder, `.import-${randomBytes(4).toString('hex')}`);
  mkdirSync(staging, { mode: 0o700 });
  try {
    const unpack = extract({
      cwd: staging,
      strip: 1,
      strict: true,
      preservePaths: false,
      filter: (_path, entry) => ('type' in entry ? entry.type === 'File' || entry.type === 'Directory' : false),
    });
    await new Promise<void>((resolve, reject) => {
      const input = createReadStream(file);
      const gunzip = createGunzip({ finishFlush: zlibConstants.Z_SYNC_FLUSH });
      const fail = (err: Error) => {
        input.destroy();
        gunzip.destroy();
        reject(err);
      };
      input.on('error', fail);
      gunzip.on('error', fail);
      unpack.on('error', fail);
      unpack.on('close', () => resolve());
      input.pipe(gunzip).pipe(unpack as unknown as NodeJS.WritableStream);
    });
    const config: VmConfig = structuredClone(archived);
    config.name = name;
    for (const attachment of config.storage) {
      if (attachment.type !== 'hdd' || !attachment.medium) continue;
      const relative = attachment.medium;
      if (!relative.startsWith(`${DISKS_FOLDER}/`) || relative.includes('..')) throw new Error(`disk path '${relative}' is not inside the archive`);
      if (!existsSync(join(staging, relative))) throw new Error(`disk '${relative}' is missing from the archive`);
      attachment.medium = join(folder, relative);
    }
    renameSync(staging, folder);
    return config;
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    if (err instanceof VnetError) throw err;
    throw new VnetError('VNET_ERR_INVALID_VALUE', `cannot import ${file}: ${(err as Error).message}`, { cause: err });
  }
}
