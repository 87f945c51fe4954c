/**
 * The daemon's file-side VM operations: the media registry (`createmedium`,
 * `list hdds`, `closemedium`, `medium check|repair`), storage
 * (`storagectl`, `storageattach`), `clonevm` and `import`. Each validates
 * whole, does its file work, and only then changes and saves the state.
 */
import { rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { VnetError, invalid, invalidState, notFound } from '../errors.js';
import { checkImage, createImage, imageInfo } from '../host/qemu-img.js';
import { extractVm, readArchiveConfig } from '../model/archive.js';
import { copyDisks, parseCloneOptions, planClone } from '../model/clone.js';
import {
  applyStorageAttach,
  applyStorageCtl,
  checkNewMediumPath,
  findMedium,
  formatFromPath,
  newMedium,
  parseMediumFormat,
  sizeMb,
  vmsUsing,
  type StorageAttachRequest,
  type StorageCtlRequest,
} from '../model/media.js';
import type { MediumConfig, VmConfig, VnetState } from '../model/types.js';
import { checkVdi, repairVdi, requireFile, type VdiCheck } from '../model/vdi.js';
import { findVm, generateMac, validateVmName } from '../model/vm.js';
import { randomUUID } from 'node:crypto';

export interface VmFilesAccess {
  state(): VnetState;
  save(): void;
  vmFolder(name: string): string;
  isRunning(name: string): boolean;
}

export interface CreateMediumRequest {
  filename: string;
  size: number;
  format?: string;
}

export interface CloneRequest {
  name: string;
  options?: string[];
  register?: boolean;
}

export interface MediumCheckView extends VdiCheck {
  /** `qemu-img check`'s verdict, when the pre-header let it open the image. */
  qemuImg: { ok: boolean; output: string } | null;
}

export class VmFiles {
  constructor(private readonly access: VmFilesAccess) {}

  private get state(): VnetState {
    return this.access.state();
  }

  private media(): MediumConfig[] {
    return (this.state.media ??= []);
  }

  private findVm(name: string): VmConfig {
    return findVm(this.state.vms, name);
  }

  private replaceVm(next: VmConfig): void {
    this.state.vms = this.state.vms.map((v) => (v.uuid === next.uuid ? next : v));
  }

  /** `createmedium disk --filename F --size MB --format VDI|QCOW2|RAW` through qemu-img; registers it. */
  async createMedium(request: CreateMediumRequest): Promise<MediumConfig> {
    const path = String(request.filename ?? '');
    checkNewMediumPath(path);
    const format = parseMediumFormat(request.format, path);
    const size = sizeMb(request.size);
    await createImage(path, format, size);
    const medium = newMedium(path, format, 'hdd', size);
    this.media().push(medium);
    this.access.save();
    return medium;
  }

  listMedia(kind?: 'hdd' | 'dvd'): (MediumConfig & { usedBy: string[] })[] {
    return this.media().filter((m) => !kind || m.kind === kind).map((m) => ({ ...m, usedBy: vmsUsing(this.state.vms, m.location) }));
  }

  /** `closemedium [disk|dvd] F|UUID [--delete]`: unregister (and delete) a medium no VM uses. */
  async closeMedium(pathOrUuid: string, deleteFile: boolean): Promise<MediumConfig> {
    const medium = findMedium(this.media(), pathOrUuid);
    if (!medium) throw notFound(`no registered medium '${pathOrUuid}'`);
    const users = vmsUsing(this.state.vms, medium.location);
    if (users.length) throw invalidState(`medium '${medium.location}' is attached to ${users.map((u) => `'${u}'`).join(', ')}; detach it first (storageattach … --medium none)`);
    if (deleteFile) await rm(medium.location, { force: true });
    this.state.media = this.media().filter((m) => m !== medium);
    this.access.save();
    return medium;
  }

  /** `medium check F`: the VDI pre-header's faults (and qemu-img's view when it can open the file). */
  async checkMedium(path: string): Promise<MediumCheckView> {
    requireFile(path);
    if (formatOf(this.media(), path) !== 'VDI') throw new VnetError('VNET_ERR_NOT_SUPPORTED', `${path} is not a VDI image; medium check reads VDI pre-headers only (try qemu-img check)`);
    const check = checkVdi(path);
    if (!check.ok) return { ...check, qemuImg: null };
    const result = await checkImage(path, 'VDI');
    return { ...check, ok: result.code === 0, qemuImg: { ok: result.code === 0, output: (result.stdout + result.stderr).trim() } };
  }

  /** `medium repair F`: save the original bytes, rewrite the pre-header. */
  async repairMedium(path: string): Promise<{ repaired: boolean; faults: string[]; backup: string | null; qemuImgOk: boolean }> {
    const vm = this.state.vms.find((v) => v.storage.some((a) => a.medium === path) && this.access.isRunning(v.name));
    if (vm) throw invalidState(`medium '${path}' is in use by running VM '${vm.name}'; power it off first`);
    const { check, backup } = repairVdi(path);
    const after = await checkImage(path, 'VDI');
    return { repaired: backup !== null, faults: check.faults.map((f) => f.message), backup, qemuImgOk: after.code === 0 };
  }

  /** `storagectl VM --name N --add BUS | --remove`. */
  storageCtl(name: string, request: StorageCtlRequest): VmConfig {
    const vm = this.findVm(name);
    this.refuseRunning(vm);
    const next = applyStorageCtl(vm, request);
    this.replaceVm(next);
    this.access.save();
    return next;
  }

  /** `storageattach VM …`: attaching an image registers it if it is not yet. */
  async storageAttach(name: string, request: StorageAttachRequest): Promise<VmConfig> {
    const vm = this.findVm(name);
    this.refuseRunning(vm);
    const medium = String(request.medium ?? '');
    const isFile = medium !== '' && medium !== 'none' && medium !== 'emptydrive';
    let registered: MediumConfig | undefined;
    if (isFile) {
      const known = findMedium(this.media(), medium);
      request = { ...request, medium: known?.location ?? medium };
      requireFile(request.medium, 'medium');
      if (!known) {
        const kind = request.type === 'dvddrive' ? 'dvd' : 'hdd';
        const info = kind === 'hdd' ? await imageInfo(request.medium).catch(() => null) : null;
        const format = info ? parseMediumFormat(info.format === 'vdi' || info.format === 'qcow2' || info.format === 'raw' ? info.format : 'raw', request.medium) : formatFromPath(request.medium);
        registered = newMedium(request.medium, kind === 'dvd' ? 'RAW' : format, kind, info ? Math.round(info.virtualSize / (1 << 20)) : 0);
      }
    }
    const next = applyStorageAttach(vm, request);
    if (registered) this.media().push(registered);
    this.replaceVm(next);
    this.access.save();
    return next;
  }

  /** `clonevm VM --name NEW [--options KeepAllMACs] --register`: config and disks copied, new UUID and MACs. */
  async clone(name: string, request: CloneRequest): Promise<VmConfig> {
    const vm = this.findVm(name);
    const newName = String(request.name ?? '');
    if (!newName) throw invalid('clonevm: --name is required');
    validateVmName(newName);
    if (this.state.vms.some((v) => v.name === newName)) throw new VnetError('VNET_ERR_EXISTS', `a VM named '${newName}' already exists`);
    if (this.access.isRunning(vm.name) && vm.storage.some((a) => a.type === 'hdd')) {
      throw invalidState(`VM '${vm.name}' is running: power it off before cloning its disks`);
    }
    const folder = this.access.vmFolder(newName);
    if (existsSync(folder)) throw new VnetError('VNET_ERR_EXISTS', `folder ${folder} already exists; not overwriting it`);
    const plan = planClone(vm, newName, folder, parseCloneOptions(request.options ?? []));
    await copyDisks(plan, folder);
    for (const copy of plan.copies) {
      const source = findMedium(this.media(), copy.from);
      this.media().push(newMedium(copy.to, source?.format ?? formatFromPath(copy.to), 'hdd', source?.sizeMb ?? 0));
    }
    this.state.vms.push(plan.config);
    this.access.save();
    return plan.config;
  }

  /** The configuration an export archives; the VM must be powered off so its disks are consistent. */
  exportSource(name: string): VmConfig {
    const vm = this.findVm(name);
    this.refuseRunning(vm);
    return structuredClone(vm);
  }

  /** `import FILE [--vsys-name NEW]`: extract, register; never overwrites a VM or a folder. */
  async importVm(file: string, vsysName?: string): Promise<VmConfig> {
    const archived = await readArchiveConfig(file);
    const name = vsysName ?? archived.name;
    validateVmName(name);
    if (this.state.vms.some((v) => v.name === name)) {
      throw new VnetError('VNET_ERR_EXISTS', `a VM named '${name}' already exists; not overwriting it (use --vsys-name NEW)`);
    }
    const config = await extractVm(file, archived, { name, vmsFolder: join(this.access.vmFolder(name), '..') });
    // A second copy of a registered VM must not share its identity: new UUID and MACs.
    if (this.state.vms.some((v) => v.uuid === config.uuid)) {
      config.uuid = randomUUID();
      for (const nic of config.nics) nic.mac = generateMac();
    }
    for (const a of config.storage) {
      if (a.type === 'hdd' && a.medium && !findMedium(this.media(), a.medium)) {
        this.media().push(newMedium(a.medium, formatFromPath(a.medium), 'hdd', 0));
      }
    }
    this.state.vms.push(config);
    this.access.save();
    return config;
  }

  private refuseRunning(vm: VmConfig): void {
    if (this.access.isRunning(vm.name)) throw invalidState(`VM '${vm.name}' is running: power it off first`);
  }
}

/** A medium's format: the registry's, else from its name. */
export function formatOf(media: readonly MediumConfig[], path: string): string {
  return findMedium(media, path)?.format ?? formatFromPath(path);
}
