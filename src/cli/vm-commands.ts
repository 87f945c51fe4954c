/**
 * QEMU VM commands: media (`createmedium`, `closemedium`, `medium
 * check|repair`, `list hdds`), storage (`storagectl`, `storageattach`),
 * `clonevm`, `export`, `import`, `console`, `showvminfo --qemu-args`, and
 * modifyvm's hardware options (`--memory`, `--cpus`, `--boot<1-4>`,
 * `--kernel`, `--initrd`, `--append`).
 *
 * Paths are made absolute here, against the CLI's working directory, since
 * the daemon has its own. `export` runs in the CLI: it is the process with
 * the terminal that shows the progress bar, and it streams the disks itself.
 */
import { createReadStream, statSync, watch } from 'node:fs';
import { resolve } from 'node:path';
import type { VmView } from '../daemon/daemon.js';
import type { BootDevice, MediumConfig, VmConfig } from '../model/types.js';
import type { VmChange } from '../model/vm.js';
import { exportVm } from '../model/archive.js';
import { hasFlag, parseArgs, single, usageError, type ParsedArgs, type ParsedOption } from './argv.js';
import type { Command } from './commands.js';

const vmPath = (name: string): string => `/v1/vms/${encodeURIComponent(name)}`;
const absolute = (path: string): string => resolve(process.cwd(), path);

function onlyKnown(parsed: ParsedArgs, known: readonly string[], command: string): void {
  const unknown = parsed.options.find((o) => !known.includes(o.key));
  if (unknown) throw usageError(`${command}: unknown option ${unknown.spelling}`);
}

function required(parsed: ParsedArgs, key: string, command: string, spelling = `--${key}`): string {
  const value = single(parsed, key);
  if (value === undefined) throw usageError(`${command}: ${spelling} is required`);
  return value;
}

function oneVm(parsed: ParsedArgs, command: string): string {
  const [vm, ...extra] = parsed.positionals;
  if (!vm) throw usageError(`${command}: missing VM name`);
  if (extra.length) throw usageError(`${command}: unexpected argument '${extra[0]}'`);
  return vm;
}

/** modifyvm's hardware options; true if `option` was one. */
export function addHardwareOption(change: VmChange, option: ParsedOption): boolean {
  const value = option.values[0];
  switch (option.key) {
    case 'memory':
      change.memoryMb = Number(value);
      return true;
    case 'cpus':
      change.cpus = Number(value);
      return true;
    case 'boot':
      if (option.slot === undefined) throw usageError(`option ${option.spelling} needs a boot position, e.g. --boot1`);
      change.boot = { ...change.boot, [option.slot]: value as BootDevice };
      return true;
    case 'kernel':
      change.kernel = value ? absolute(value) : '';
      return true;
    case 'initrd':
      change.initrd = value ? absolute(value) : '';
      return true;
    case 'append':
      change.kernelArgs = value ?? '';
      return true;
    default:
      return false;
  }
}

/** `createmedium [disk] --filename F --size MB [--format VDI|QCOW2|RAW]` (also `createhd`). */
const createmedium: Command = async (args, { api, print }) => {
  const parsed = parseArgs(args, { flags: ['json'] });
  onlyKnown(parsed, ['filename', 'size', 'format', 'variant', 'json'], 'createmedium');
  const [kind, ...extra] = parsed.positionals;
  if (kind !== undefined && kind !== 'disk') throw usageError(`createmedium: only 'disk' media can be created, not '${kind}'`);
  if (extra.length) throw usageError(`createmedium: unexpected argument '${extra[0]}'`);
  const size = Number(required(parsed, 'size', 'createmedium'));
  const medium = await api.post<MediumConfig>('/v1/media', { filename: absolute(required(parsed, 'filename', 'createmedium')), size, format: single(parsed, 'format') });
  if (hasFlag(parsed, 'json')) return print(JSON.stringify(medium, null, 2));
  print(`Medium created. UUID: ${medium.uuid}`);
};

function formatMedia(media: (MediumConfig & { usedBy: string[] })[]): string {
  return media
    .map((m) =>
      [
        `UUID:           ${m.uuid}`,
        'Parent UUID:    base',
        `State:          ${m.usedBy.length ? 'locked' : 'created'}`,
        'Type:           normal (base)',
        `Location:       ${m.location}`,
        `Storage format: ${m.format}`,
        `Capacity:       ${m.sizeMb} MBytes`,
        'Encryption:     disabled',
        ...(m.usedBy.length ? [`In use by VMs:  ${m.usedBy.join(', ')}`] : []),
      ].join('\n'),
    )
    .join('\n\n');
}

/** `list hdds|dvds` (called from `list`). */
export async function listMedia(api: Parameters<Command>[1]['api'], what: 'hdds' | 'dvds', json: boolean): Promise<string> {
  const media = await api.get<(MediumConfig & { usedBy: string[] })[]>(`/v1/media?kind=${what === 'hdds' ? 'hdd' : 'dvd'}`);
  return json ? JSON.stringify(media, null, 2) : formatMedia(media);
}

/** `closemedium [disk|dvd] F|UUID [--delete]`. */
const closemedium: Command = async (args, { api, print }) => {
  const parsed = parseArgs(args, { flags: ['delete'] });
  onlyKnown(parsed, ['delete'], 'closemedium');
  const words = parsed.positionals.filter((p, i) => !(i === 0 && ['disk', 'dvd', 'floppy'].includes(p)));
  if (words.length !== 1) throw usageError('closemedium: name one medium (path or UUID)');
  const target = /^[0-9a-f-]{36}$/i.test(words[0]!) ? words[0]! : absolute(words[0]!);
  const medium = await api.post<MediumConfig>('/v1/media/close', { medium: target, delete: hasFlag(parsed, 'delete') });
  print(`Medium ${medium.location} closed${hasFlag(parsed, 'delete') ? ' and deleted' : ''}.`);
};

/** `medium check F` | `medium repair F`. */
const medium: Command = async (args, { api, print }) => {
  const parsed = parseArgs(args, { flags: ['json'] });
  onlyKnown(parsed, ['json'], 'medium');
  const [action, file, ...extra] = parsed.positionals;
  if ((action !== 'check' && action !== 'repair') || !file) throw usageError('usage: vnet medium check|repair FILE');
  if (extra.length) throw usageError(`medium: unexpected argument '${extra[0]}'`);
  const path = absolute(file);
  if (action === 'check') {
    const result = await api.post<{ ok: boolean; faults: { message: string }[]; qemuImg: { ok: boolean; output: string } | null }>('/v1/media/check', { path });
    if (hasFlag(parsed, 'json')) return print(JSON.stringify(result, null, 2));
    if (result.ok) return print(`${path}: VDI pre-header OK (text, signature 0xBEDA107F, version 1.1, header size 384)${result.qemuImg ? '; qemu-img check: no errors' : ''}`);
    const lines = result.faults.map((f) => `  ${f.message}`);
    if (result.qemuImg && !result.qemuImg.ok) lines.push(`  qemu-img check: ${result.qemuImg.output.split('\n')[0]}`);
    // A damaged image is an error: one line to stderr and exit 1, the details above it.
    print(`${path}: damaged VDI\n${lines.join('\n')}`);
    throw usageError(`${path} is damaged; 'vnet medium repair ${file}' rewrites its pre-header`);
  }
  const result = await api.post<{ repaired: boolean; faults: string[]; backup: string | null; qemuImgOk: boolean }>('/v1/media/repair', { path });
  if (hasFlag(parsed, 'json')) return print(JSON.stringify(result, null, 2));
  if (!result.repaired) return print(`${path}: pre-header is fine; nothing to repair`);
  print(`${path}: repaired ${result.faults.length} fault(s):\n${result.faults.map((f) => `  ${f}`).join('\n')}\noriginal bytes saved in ${result.backup}\nqemu-img check: ${result.qemuImgOk ? 'no errors' : 'still reports errors'}`);
};

/** `storagectl VM --name N --add ide|sata|scsi|virtio | --remove`. */
const storagectl: Command = async (args, { api }) => {
  const parsed = parseArgs(args, { flags: ['remove'] });
  onlyKnown(parsed, ['name', 'add', 'controller', 'portcount', 'bootable', 'hostiocache', 'remove'], 'storagectl');
  const vm = oneVm(parsed, 'storagectl');
  await api.post(`${vmPath(vm)}/storagectl`, { name: required(parsed, 'name', 'storagectl'), add: single(parsed, 'add'), remove: hasFlag(parsed, 'remove') || undefined });
};

/** `storageattach VM --storagectl N --port P --device D --type hdd|dvddrive --medium F|none|emptydrive`. */
const storageattach: Command = async (args, { api }) => {
  const parsed = parseArgs(args);
  onlyKnown(parsed, ['storagectl', 'port', 'device', 'type', 'medium'], 'storageattach');
  const vm = oneVm(parsed, 'storageattach');
  const mediumArg = required(parsed, 'medium', 'storageattach');
  const special = ['none', 'emptydrive', 'additions'].includes(mediumArg.toLowerCase());
  await api.post(`${vmPath(vm)}/storageattach`, {
    storagectl: required(parsed, 'storagectl', 'storageattach'),
    port: Number(required(parsed, 'port', 'storageattach')),
    device: Number(single(parsed, 'device') ?? 0),
    type: single(parsed, 'type'),
    medium: special ? mediumArg.toLowerCase() : /^[0-9a-f-]{36}$/i.test(mediumArg) ? mediumArg : absolute(mediumArg),
  });
};

/** `clonevm VM --name NEW [--options KeepAllMACs,…] [--register]`. */
const clonevm: Command = async (args, { api, print }) => {
  const parsed = parseArgs(args, { flags: ['register'] });
  onlyKnown(parsed, ['name', 'options', 'register', 'mode', 'basefolder'], 'clonevm');
  const vm = oneVm(parsed, 'clonevm');
  const options = parsed.options.filter((o) => o.key === 'options').flatMap((o) => o.values);
  const clone = await api.post<VmConfig>(`${vmPath(vm)}/clone`, { name: required(parsed, 'name', 'clonevm'), options });
  print(`Machine has been successfully cloned as "${clone.name}"\nUUID: ${clone.uuid}`);
};

/** A progress bar on a terminal (stderr), nothing otherwise. */
function progressBar(label: string): { update: (done: number, total: number) => void; end: () => void } {
  const tty = process.stderr.isTTY;
  let last = -1;
  return {
    update(done, total) {
      if (!tty) return;
      const pct = total ? Math.floor((done / total) * 100) : 100;
      if (pct === last) return;
      last = pct;
      const width = 40;
      const fill = Math.round((pct / 100) * width);
      process.stderr.write(`\r${label} [${'#'.repeat(fill)}${' '.repeat(width - fill)}] ${String(pct).padStart(3)}% ${(done / 1048576).toFixed(0)}/${(total / 1048576).toFixed(0)} MB`);
    },
    end() {
      if (tty && last >= 0) process.stderr.write('\n');
    },
  };
}

/** `export VM -o|--output FILE`: config and disks in one gzip'd tar, streamed. */
const exportCommand: Command = async (args, { api, print }) => {
  const parsed = parseArgs(args);
  onlyKnown(parsed, ['o', 'output'], 'export');
  const vm = oneVm(parsed, 'export');
  const file = single(parsed, 'output') ?? single(parsed, 'o');
  if (!file) throw usageError('export: -o FILE is required');
  const source = await api.get<VmConfig>(`${vmPath(vm)}/export-source`);
  const bar = progressBar(`Exporting ${source.name}`);
  try {
    const { bytes } = await exportVm(source, absolute(file), bar.update);
    bar.end();
    print(`Successfully exported 1 machine(s) to ${absolute(file)} (${(bytes / 1048576).toFixed(1)} MB).`);
  } catch (err) {
    bar.end();
    throw err;
  }
};

/** `import FILE [--vsys-name NEW]` (VBoxManage: `--vsys 0 --vmname NEW`; both spellings). */
const importCommand: Command = async (args, { api, print }) => {
  const parsed = parseArgs(args);
  onlyKnown(parsed, ['vsysname', 'vmname', 'vsys'], 'import');
  const [file, ...extra] = parsed.positionals;
  if (!file) throw usageError('import: missing archive file');
  if (extra.length) throw usageError(`import: unexpected argument '${extra[0]}'`);
  const vm = await api.post<VmConfig>('/v1/import', { file: absolute(file), vsysName: single(parsed, 'vsysname') ?? single(parsed, 'vmname') });
  print(`Successfully imported the appliance as "${vm.name}"\nUUID: ${vm.uuid}`);
};

/** `console VM [--no-follow]`: print the serial console log, then follow it until interrupted. */
const consoleCommand: Command = async (args, { api }) => {
  const parsed = parseArgs(args, { flags: ['nofollow', 'follow'] });
  onlyKnown(parsed, ['nofollow', 'follow'], 'console');
  const vm = oneVm(parsed, 'console');
  const { path } = await api.get<{ path: string }>(`${vmPath(vm)}/console`);
  let offset = 0;
  const drain = () =>
    new Promise<void>((done) => {
      let size = 0;
      try {
        size = statSync(path).size;
      } catch {
        return done();
      }
      if (size < offset) offset = 0; // a new boot truncated the log
      if (size === offset) return done();
      const stream = createReadStream(path, { start: offset, end: size - 1 });
      offset = size;
      stream.on('data', (chunk) => process.stdout.write(chunk));
      stream.on('end', () => done());
      stream.on('error', () => done());
    });
  await drain();
  if (hasFlag(parsed, 'nofollow')) return;
  let busy = Promise.resolve();
  const watcher = watch(path, () => (busy = busy.then(drain)));
  // Changes can be missed between events on some filesystems: poll too.
  const timer = setInterval(() => (busy = busy.then(drain)), 500);
  await new Promise<void>((stop) =>
    process.once('SIGINT', () => {
      watcher.close();
      clearInterval(timer);
      stop();
    }),
  );
};

/** `showvminfo VM --qemu-args`: the QEMU command vnet runs (or that you run with `startvm --type external`). */
export async function showQemuArgs(api: Parameters<Command>[1]['api'], vm: string, netdevOnly: boolean): Promise<string> {
  const command = await api.get<{ binary: string; args: string[]; netdev: string[] }>(`${vmPath(vm)}/qemu-command`);
  const quote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  return netdevOnly ? command.netdev.map(quote).join(' ') : [command.binary, ...command.args].map(quote).join(' ');
}

/** `controlvm` actions that go to QEMU through QMP. */
export const QEMU_CONTROL_ACTIONS = ['reset', 'acpipowerbutton', 'pause', 'resume'];

export async function qemuControl(api: Parameters<Command>[1]['api'], vm: string, action: string): Promise<VmView> {
  return api.post<VmView>(`${vmPath(vm)}/control`, { action });
}

export const VM_COMMANDS: Record<string, Command> = {
  createmedium,
  createhd: createmedium,
  closemedium,
  medium,
  storagectl,
  storageattach,
  clonevm,
  export: exportCommand,
  import: importCommand,
  console: consoleCommand,
};
