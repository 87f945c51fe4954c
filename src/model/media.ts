/**
 * Media and storage in VirtualBox's terms: the registry of disk images
 * (`createmedium`, `list hdds`, `closemedium`), storage controllers
 * (`storagectl`) and what is attached where (`storageattach`). Plain
 * functions over the model; each returns a changed copy or throws, so the
 * caller applies a change whole or not at all.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, extname, isAbsolute } from 'node:path';
import { VnetError, invalid, notFound } from '../errors.js';
import {
  MEDIUM_FORMATS,
  STORAGE_BUSES,
  type DeviceType,
  type MediumConfig,
  type MediumFormat,
  type StorageBus,
  type VmConfig,
} from './types.js';

/** How many ports and devices per port each bus has (VirtualBox's limits). */
export const BUS_LIMITS: Record<StorageBus, { ports: number; devices: number }> = {
  ide: { ports: 2, devices: 2 },
  sata: { ports: 30, devices: 1 },
  scsi: { ports: 16, devices: 1 },
  virtio: { ports: 30, devices: 1 },
};

/** `--format VDI|QCOW2|RAW` (any case; VirtualBox also says VMDK/VHD, which we do not create). */
export function parseMediumFormat(text: string | undefined, path: string): MediumFormat {
  if (text === undefined) return formatFromPath(path);
  const upper = text.toUpperCase();
  if ((MEDIUM_FORMATS as readonly string[]).includes(upper)) return upper as MediumFormat;
  throw invalid(`invalid medium format '${text}': expected one of ${MEDIUM_FORMATS.join(', ')}`);
}

/** A format from the file name: .vdi, .qcow2; anything else (.img, .iso, .raw) is raw. */
export function formatFromPath(path: string): MediumFormat {
  const ext = extname(path).toLowerCase();
  if (ext === '.vdi') return 'VDI';
  if (ext === '.qcow2' || ext === '.qcow') return 'QCOW2';
  return 'RAW';
}

/**
 * A path where a new image may be created: absolute, its folder exists, and
 * nothing is there yet (VirtualBox refuses to overwrite: VERR_ALREADY_EXISTS).
 */
export function checkNewMediumPath(path: string): void {
  if (!isAbsolute(path)) throw invalid(`medium path '${path}' must be absolute`);
  if (existsSync(path)) {
    if (statSync(path).isDirectory()) throw invalid(`medium '${path}' is a directory, not an image file (VERR_IS_A_DIRECTORY)`);
    throw new VnetError('VNET_ERR_EXISTS', `medium '${path}' already exists (VERR_ALREADY_EXISTS); pick another --filename`);
  }
  const folder = dirname(path);
  if (!existsSync(folder) || !statSync(folder).isDirectory()) throw notFound(`folder '${folder}' for medium '${basename(path)}' does not exist`);
}

export function sizeMb(value: unknown): number {
  const n = Number(value);
  // 2 TiB is VDI's practical ceiling with 1 MiB blocks and 32-bit block numbers.
  if (!Number.isInteger(n) || n < 1 || n > 2 * 1024 * 1024) throw invalid(`invalid medium size '${String(value)}': expected 1-2097152 MB`);
  return n;
}

export function newMedium(location: string, format: MediumFormat, kind: 'hdd' | 'dvd', size: number): MediumConfig {
  return { uuid: randomUUID(), location, format, kind, sizeMb: size };
}

/** A registered medium by path or UUID. */
export function findMedium(media: readonly MediumConfig[], pathOrUuid: string): MediumConfig | undefined {
  return media.find((m) => m.location === pathOrUuid || m.uuid === pathOrUuid);
}

/** VMs that have `path` attached. */
export function vmsUsing(vms: readonly VmConfig[], path: string): string[] {
  return vms.filter((vm) => vm.storage.some((a) => a.medium === path)).map((vm) => vm.name);
}

export interface StorageCtlRequest {
  name: string;
  /** `--add ide|sata|scsi|virtio`. */
  add?: string;
  /** `--remove`: detach everything on it and remove it. */
  remove?: boolean;
}

/** `storagectl VM --name N --add BUS | --remove`. */
export function applyStorageCtl(vm: VmConfig, request: StorageCtlRequest): VmConfig {
  const next = structuredClone(vm);
  const name = String(request.name ?? '');
  if (!/^[A-Za-z0-9][A-Za-z0-9 ._-]{0,31}$/.test(name)) throw invalid(`invalid storage controller name '${name}': 1-32 letters, digits, spaces, '.', '_', '-'`);
  const existing = next.storageControllers.find((c) => c.name === name);
  if (request.remove) {
    if (!existing) throw notFound(`VM '${vm.name}' has no storage controller '${name}'`);
    next.storageControllers = next.storageControllers.filter((c) => c !== existing);
    next.storage = next.storage.filter((a) => a.controller !== name);
    return next;
  }
  if (request.add === undefined) throw invalid('storagectl: say --add ide|sata|scsi|virtio or --remove');
  const bus = String(request.add).toLowerCase();
  if (!(STORAGE_BUSES as readonly string[]).includes(bus)) throw invalid(`invalid storage bus '${request.add}': expected one of ${STORAGE_BUSES.join(', ')}`);
  if (existing) throw new VnetError('VNET_ERR_EXISTS', `VM '${vm.name}' already has a storage controller named '${name}'`);
  next.storageControllers.push({ name, bus: bus as StorageBus });
  return next;
}

export interface StorageAttachRequest {
  storagectl: string;
  port: number;
  device?: number;
  /** `hdd` or `dvddrive`; may be left out to detach (`--medium none`). */
  type?: string;
  /** Absolute path, `none` (detach), or `emptydrive` (a DVD drive with no disc). */
  medium: string;
}

/** `storageattach VM --storagectl N --port P --device D --type hdd|dvddrive --medium F|none|emptydrive`. */
export function applyStorageAttach(vm: VmConfig, request: StorageAttachRequest): VmConfig {
  const next = structuredClone(vm);
  const controller = next.storageControllers.find((c) => c.name === request.storagectl);
  if (!controller) throw notFound(`VM '${vm.name}' has no storage controller '${String(request.storagectl)}'; add one with storagectl`);
  const limits = BUS_LIMITS[controller.bus];
  const port = Number(request.port);
  const device = Number(request.device ?? 0);
  if (!Number.isInteger(port) || port < 0 || port >= limits.ports) throw invalid(`invalid port '${String(request.port)}' on ${controller.bus} controller '${controller.name}': expected 0-${limits.ports - 1}`);
  if (!Number.isInteger(device) || device < 0 || device >= limits.devices) throw invalid(`invalid device '${String(request.device)}' on ${controller.bus} controller '${controller.name}': expected 0-${limits.devices - 1}`);
  const at = (a: VmConfig['storage'][number]) => a.controller === controller.name && a.port === port && a.device === device;
  next.storage = next.storage.filter((a) => !at(a));
  const medium = String(request.medium ?? '');
  if (medium === 'none') return next;
  const type = String(request.type ?? '');
  if (type !== 'hdd' && type !== 'dvddrive') throw invalid(`invalid device type '${type}': expected hdd or dvddrive`);
  if (medium === 'emptydrive' || medium === '') {
    if (type !== 'dvddrive') throw invalid('only a dvddrive can be empty (--medium emptydrive)');
    next.storage.push({ controller: controller.name, port, device, type: type as DeviceType, medium: '' });
    return next;
  }
  if (!isAbsolute(medium)) throw invalid(`medium path '${medium}' must be absolute`);
  const owner = type === 'hdd' ? next.storage.find((a) => a.medium === medium && a.type === 'hdd') : undefined;
  if (owner) throw invalidState(`medium '${medium}' is already attached to ${owner.controller} port ${owner.port} device ${owner.device}`);
  next.storage.push({ controller: controller.name, port, device, type: type as DeviceType, medium });
  next.storage.sort((a, b) => a.controller.localeCompare(b.controller) || a.port - b.port || a.device - b.device);
  return next;
}

const invalidState = (message: string): VnetError => new VnetError('VNET_ERR_INVALID_STATE', message);
