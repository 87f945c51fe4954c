/**
 * `clonevm`: a new VM from an existing one. The clone gets a new UUID and,
 * unless told to keep them, new MACs on every NIC (two VMs with one MAC on a
 * network break each other's ARP and DHCP). Disks are copied into the
 * clone's folder; DVD images are shared, as VirtualBox does.
 */
import { randomUUID } from 'node:crypto';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { invalid } from '../errors.js';
import type { VmConfig } from './types.js';
import { generateMac, validateVmName } from './vm.js';

/** `--options` VirtualBox accepts for MACs; others (Link, KeepDiskNames…) are refused. */
export const CLONE_OPTIONS = ['keepallmacs', 'keepnatmacs', 'keepdisknames'] as const;

export interface ClonePlan {
  config: VmConfig;
  /** Disk images to copy: source → destination (in the clone's folder). */
  copies: { from: string; to: string }[];
}

/** Parse `--options KeepAllMACs,KeepNATMACs` (any case, comma-separated, repeatable). */
export function parseCloneOptions(values: readonly string[]): Set<string> {
  const options = new Set<string>();
  for (const word of values.flatMap((v) => v.split(',')).map((v) => v.trim().toLowerCase()).filter(Boolean)) {
    if (!(CLONE_OPTIONS as readonly string[]).includes(word)) throw invalid(`clonevm: unknown option '${word}'; known: KeepAllMACs, KeepNATMACs, KeepDiskNames`);
    options.add(word);
  }
  return options;
}

/** The clone's configuration and the disk copies it needs; touches nothing. */
export function planClone(vm: VmConfig, name: string, folder: string, options: ReadonlySet<string>): ClonePlan {
  validateVmName(name);
  const config: VmConfig = structuredClone(vm);
  config.name = name;
  config.uuid = randomUUID();
  for (const nic of config.nics) {
    const keep = options.has('keepallmacs') || (options.has('keepnatmacs') && nic.mode === 'nat');
    if (!keep) nic.mac = generateMac();
    // A capture file named after the original would be shared by both VMs.
    if (nic.traceFile) nic.traceFile = '';
  }
  const copies: ClonePlan['copies'] = [];
  const used = new Set<string>();
  for (const attachment of config.storage) {
    if (attachment.type !== 'hdd' || !attachment.medium) continue;
    const base = options.has('keepdisknames') ? basename(attachment.medium) : cloneDiskName(basename(attachment.medium), vm.name, name);
    let target = base;
    for (let i = 1; used.has(target); i++) target = `${i}-${base}`;
    used.add(target);
    const to = join(folder, target);
    copies.push({ from: attachment.medium, to });
    attachment.medium = to;
  }
  return { config, copies };
}

/** `web.vdi` of VM `web` becomes `web2.vdi` for clone `web2`; other names get the clone's name in front. */
function cloneDiskName(base: string, from: string, to: string): string {
  return base.startsWith(from) ? to + base.slice(from.length) : `${to}-${base}`;
}

/**
 * Copy the disks (the kernel copies, in chunks or by reflink; nothing whole
 * in memory). On failure removes what it copied and rethrows.
 */
export async function copyDisks(plan: ClonePlan, folder: string): Promise<void> {
  await mkdir(folder, { recursive: true, mode: 0o700 });
  const done: string[] = [];
  try {
    for (const { from, to } of plan.copies) {
      // COPYFILE_EXCL: never overwrite an image that is already there.
      await copyFile(from, to, 1);
      done.push(to);
    }
  } catch (err) {
    await Promise.all(done.map((f) => rm(f, { force: true })));
    throw err;
  }
}
