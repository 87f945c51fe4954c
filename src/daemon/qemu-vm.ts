/**
 * A VM realised as a QEMU process (`startvm --type headless`), or as sockets
 * waiting for a QEMU the user starts by hand (`--type external`).
 *
 * Theory of operation:
 * - Per attached NIC the daemon has a socket at `<vm folder>/nic<N>.sock`
 *   and plugs it in with `NicRuntime.start`, as netns-vm.ts does with TAPs.
 *   Two kinds (`nicLinkFor`), both made before QEMU starts:
 *   - QEMU 8.0 and later: a stream socket QEMU connects to (`-netdev
 *     stream,server=off,reconnect=1`; `QemuStreamTransport`, 4-byte
 *     length-prefixed frames). After a daemon restart QEMU connects again.
 *   - QEMU 7.2: `-netdev dgram`, one frame per datagram between our socket
 *     and QEMU's own at `nic<N>.qemu` (`UnixDgramTransport`). 7.2's stream
 *     cannot reconnect, but a datagram needs no connection: after a daemon
 *     restart QEMU's next frame reaches the new socket at the same path.
 * - QEMU runs detached (its own process group) so that it outlives a daemon
 *   restart; the serial console goes to `console.log`, QEMU's own messages
 *   to `qemu.log`, control is QMP on `qmp.sock`.
 * - Exit is noticed two ways: the child's `exit` (we spawned it) and the QMP
 *   socket closing (a QEMU found again after a restart is not our child).
 *   An exit we did not ask for, and that the guest did not ask for (a guest
 *   `poweroff` is an ACPI shutdown, reported by QMP's SHUTDOWN event), makes
 *   the VM `aborted`, with the last lines of qemu.log as the reason.
 * - After a daemon restart (`resume`), QMP is reconnected and the NIC sockets
 *   are made again, of the kind the running QEMU was started with.
 * - A NIC's attachment cannot change while QEMU runs (QEMU would need a
 *   hot-plug); cable, forwards, promiscuous mode and traces change live, and
 *   the cable is QMP `set_link`, so the guest sees carrier come and go.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { VnetError, invalidState } from '../errors.js';
import { QmpClient, QMP_ACTIONS, type QmpAction } from '../host/qmp.js';
import type { BootDevice, NicConfig, QemuNicLink, QemuRunningState, StorageAttachment, VmConfig } from '../model/types.js';
import { formatFromPath } from '../model/media.js';
import { QemuStreamTransport } from '../transport/qemu-stream.js';
import { UnixDgramTransport } from '../transport/unix-dgram.js';
import { NicRuntime, type GuestTransport, type NicRuntimeContext, wiringKey } from './nic-runtime.js';

export const QEMU_BINARY = 'qemu-system-x86_64';
/** How long QEMU gets to open its QMP socket before the start counts as failed (TCG is slow to start). */
const START_TIMEOUT_MS = 30_000;
/** After QMP `quit`, how long before SIGKILL. */
const QUIT_GRACE_MS = 3_000;
/** sun_path holds 108 bytes including the NUL. */
const MAX_SOCKET_PATH = 107;
/** Lines of qemu.log quoted as an abort reason. */
const REASON_LINES = 3;

/** Files of a QEMU VM in its folder. */
export function qemuPaths(vmFolder: string) {
  return {
    qmp: join(vmFolder, 'qmp.sock'),
    log: join(vmFolder, 'qemu.log'),
    console: join(vmFolder, 'console.log'),
    pid: join(vmFolder, 'qemu.pid'),
    nic: (slot: number) => join(vmFolder, `nic${slot}.sock`),
    /** QEMU's end of a `-netdev dgram` NIC. */
    nicQemu: (slot: number) => join(vmFolder, `nic${slot}.qemu`),
  };
}

/** QEMU's option syntax: a ',' inside a value is written ',,'. */
const q = (value: string): string => value.replace(/,/g, ',,');

/**
 * Can this process use KVM? `VNET_QEMU_ACCEL=tcg|kvm` decides; otherwise
 * yes when /dev/kvm opens read-write. (A nested host can offer a /dev/kvm
 * that opens but does not run a guest; set VNET_QEMU_ACCEL=tcg there.)
 */
export function kvmUsable(): boolean {
  const forced = process.env.VNET_QEMU_ACCEL;
  if (forced === 'tcg' || forced === 'kvm') return forced === 'kvm';
  try {
    closeSync(openSync('/dev/kvm', 'r+'));
    return true;
  } catch {
    return false;
  }
}

let qemuVersionCache: [number, number] | undefined;
/** QEMU's major.minor version, or [0, 0] if it cannot be run. */
export function qemuVersion(): [number, number] {
  if (qemuVersionCache) return qemuVersionCache;
  try {
    const out = execFileSync(QEMU_BINARY, ['--version'], { encoding: 'utf8', timeout: 10_000 });
    const m = /version (\d+)\.(\d+)/.exec(out);
    qemuVersionCache = m ? [Number(m[1]), Number(m[2])] : [0, 0];
  } catch {
    qemuVersionCache = [0, 0];
  }
  return qemuVersionCache;
}

/**
 * The NIC link for a QEMU version: `-netdev stream` with `reconnect=1` where
 * QEMU has it (8.0+), else `-netdev dgram` (7.2, which has both backends but
 * cannot reconnect a stream), else stream.
 */
export function nicLinkFor([major, minor]: [number, number]): QemuNicLink {
  return major === 7 && minor >= 2 ? 'dgram' : 'stream';
}

export interface QemuArgsOptions {
  accel: 'kvm' | 'tcg';
  nicLink: QemuNicLink;
  /** Pass `reconnect=1` on `-netdev stream` (QEMU 8.0+). */
  reconnect: boolean;
  /** Format of an image, by path (the media registry's, else from its name). */
  formatOf?: (path: string) => string;
}

/** `-netdev` + `-device` arguments of each attached NIC: what a hand-started QEMU needs. */
export function netdevArgs(vm: VmConfig, vmFolder: string, link: QemuNicLink, reconnect: boolean): string[] {
  const paths = qemuPaths(vmFolder);
  const netdev = (slot: number): string =>
    link === 'dgram'
      ? `dgram,id=n${slot},local.type=unix,local.path=${q(paths.nicQemu(slot))},remote.type=unix,remote.path=${q(paths.nic(slot))}`
      : `stream,id=n${slot},server=off,addr.type=unix,addr.path=${q(paths.nic(slot))}${reconnect ? ',reconnect=1' : ''}`;
  return vm.nics
    .filter((nic) => nic.mode !== 'none')
    .flatMap((nic) => [
      '-netdev',
      netdev(nic.slot),
      '-device',
      `virtio-net-pci,netdev=n${nic.slot},id=vnic${nic.slot},mac=${nic.mac}`,
    ]);
}

/** The whole QEMU command line (without the binary) for `vm`. */
export function qemuArgs(vm: VmConfig, vmFolder: string, options: QemuArgsOptions): string[] {
  const paths = qemuPaths(vmFolder);
  const args = [
    '-name', `${q(vm.name)},process=vnet-${q(vm.name)}`,
    '-uuid', vm.uuid,
    '-accel', options.accel,
    '-m', String(vm.memoryMb),
    '-smp', String(vm.cpus),
    '-nodefaults',
    '-display', 'none',
    '-serial', `file:${paths.console}`,
    '-qmp', `unix:${q(paths.qmp)},server=on,wait=off`,
    '-pidfile', paths.pid,
  ];
  const order = bootLetters(vm);
  if (order && !vm.kernel) args.push('-boot', `order=${order}`);
  if (vm.kernel) args.push('-kernel', vm.kernel);
  if (vm.initrd) args.push('-initrd', vm.initrd);
  if (vm.kernelArgs) args.push('-append', vm.kernelArgs);
  args.push(...storageArgs(vm, options.formatOf ?? formatFromPath));
  args.push(...netdevArgs(vm, vmFolder, options.nicLink, options.reconnect));
  return args;
}

/** QEMU's ends of the attached NICs' `-netdev dgram` links. */
function qemuEnds(vm: VmConfig, paths: ReturnType<typeof qemuPaths>): string[] {
  return vm.nics.filter((nic) => nic.mode !== 'none').map((nic) => paths.nicQemu(nic.slot));
}

/** QEMU's (SeaBIOS's) letters for the boot order: a floppy, d DVD, c disk, n the first NIC's ROM. */
function bootLetters(vm: VmConfig): string {
  const letters: Record<BootDevice, string> = { none: '', floppy: 'a', dvd: 'd', disk: 'c', net: 'n' };
  return [...new Set(vm.bootOrder.map((device) => letters[device]))].join('');
}

/** Controllers and their devices in QEMU's words. */
function storageArgs(vm: VmConfig, formatOf: (path: string) => string): string[] {
  const args: string[] = [];
  vm.storageControllers.forEach((controller, index) => {
    const ctl = `ctl${index}`;
    if (controller.bus === 'sata') args.push('-device', `ahci,id=${ctl}`);
    if (controller.bus === 'scsi') args.push('-device', `virtio-scsi-pci,id=${ctl}`);
    for (const a of vm.storage.filter((s) => s.controller === controller.name)) {
      const id = `${ctl}p${a.port}d${a.device}`;
      const cd = a.type === 'dvddrive';
      const drive = drivePart(a, formatOf);
      switch (controller.bus) {
        case 'ide':
          args.push('-drive', `${drive}if=ide,bus=${a.port},unit=${a.device},media=${cd ? 'cdrom' : 'disk'}`);
          break;
        case 'sata':
          args.push('-drive', `${drive}if=none,id=${id}${cd ? ',media=cdrom' : ''}`, '-device', `${cd ? 'ide-cd' : 'ide-hd'},drive=${id},bus=${ctl}.${a.port}`);
          break;
        case 'scsi':
          args.push('-drive', `${drive}if=none,id=${id}${cd ? ',media=cdrom' : ''}`, '-device', `${cd ? 'scsi-cd' : 'scsi-hd'},drive=${id},bus=${ctl}.0,scsi-id=${a.port}`);
          break;
        case 'virtio':
          if (cd) throw new VnetError('VNET_ERR_NOT_SUPPORTED', `a DVD drive cannot sit on the virtio controller '${controller.name}'; use ide, sata or scsi`);
          args.push('-drive', `${drive}if=none,id=${id}`, '-device', `virtio-blk-pci,drive=${id}`);
          break;
      }
    }
  });
  return args;
}

function drivePart(a: StorageAttachment, formatOf: (path: string) => string): string {
  if (!a.medium) return '';
  return `file=${q(a.medium)},format=${formatOf(a.medium).toLowerCase()},`;
}

export interface QemuVmHooks {
  /** QEMU exited without `stop()`: `aborted` unless the guest powered itself off. */
  onExit(reason: string, aborted: boolean): void;
  formatOf?: (path: string) => string;
  log?: (line: string) => void;
}

export class QemuVm {
  private readonly nics = new Map<number, NicRuntime>();
  private readonly carrier = new Map<number, boolean>();
  private qmp: QmpClient | null = null;
  private child: ChildProcess | null = null;
  private stopping = false;
  private exited = false;
  private guestShutdown = false;
  /** Paused by `controlvm pause` (QMP STOP/RESUME events keep it true). */
  paused = false;

  private constructor(
    readonly running: QemuRunningState,
    private readonly vmFolder: string,
    private readonly context: NicRuntimeContext,
    private readonly hooks: QemuVmHooks,
  ) {}

  /** The running state a start will record; sockets named, nothing made yet. */
  static prepare(vm: VmConfig, vmFolder: string, type: 'headless' | 'external'): QemuRunningState {
    const paths = qemuPaths(vmFolder);
    const nicSockets: Record<string, string> = {};
    for (const nic of vm.nics) if (nic.mode !== 'none') nicSockets[String(nic.slot)] = paths.nic(nic.slot);
    const nicLink = nicLinkFor(qemuVersion());
    for (const path of [paths.qmp, ...Object.values(nicSockets), ...(nicLink === 'dgram' ? qemuEnds(vm, paths) : [])]) {
      if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
        throw new VnetError('VNET_ERR_INVALID_VALUE', `socket path ${path} is longer than ${MAX_SOCKET_PATH} bytes; use a shorter --home`);
      }
    }
    return { type, pid: 0, qmpSocket: type === 'headless' ? paths.qmp : '', nicSockets, nicLink, startedAt: new Date().toISOString() };
  }

  /** Listen on the NIC sockets, then (headless) launch QEMU and connect QMP. On failure undoes it all. */
  static async start(vm: VmConfig, running: QemuRunningState, vmFolder: string, context: NicRuntimeContext, hooks: QemuVmHooks): Promise<QemuVm> {
    const guest = new QemuVm(running, vmFolder, context, hooks);
    try {
      await guest.plugAll(vm);
      if (running.type === 'headless') await guest.launch(vm);
    } catch (err) {
      guest.stop();
      throw err;
    }
    return guest;
  }

  /**
   * Find a QEMU that was running when the daemon stopped: re-listen on its
   * NIC sockets and reconnect QMP. Throws if the process is gone.
   */
  static async resume(vm: VmConfig, running: QemuRunningState, vmFolder: string, context: NicRuntimeContext, hooks: QemuVmHooks): Promise<QemuVm> {
    if (running.type === 'headless' && !processAlive(running.pid)) throw new Error(`QEMU (pid ${running.pid}) is no longer running; ${lastLogLines(qemuPaths(vmFolder).log)}`);
    const guest = new QemuVm(running, vmFolder, context, hooks);
    try {
      await guest.plugAll(vm);
      if (running.type === 'headless') await guest.connectQmp(START_TIMEOUT_MS);
    } catch (err) {
      guest.detach();
      throw err;
    }
    return guest;
  }

  private async plugAll(vm: VmConfig): Promise<void> {
    for (const nic of vm.nics) if (nic.mode !== 'none') this.nics.set(nic.slot, await this.plug(nic));
  }

  private async plug(nic: NicConfig): Promise<NicRuntime> {
    const path = this.running.nicSockets[String(nic.slot)] ?? qemuPaths(this.vmFolder).nic(nic.slot);
    let transport: GuestTransport;
    if (this.running.nicLink === 'dgram') {
      transport = UnixDgramTransport.open({ localPath: path, remotePath: qemuPaths(this.vmFolder).nicQemu(nic.slot) });
    } else {
      const stream = await QemuStreamTransport.listen({ path });
      stream.onConnect = () => this.hooks.log?.(`${this.context.vmName}: QEMU connected to NIC ${nic.slot}`);
      transport = stream;
    }
    transport.setCarrier = (on) => this.setLink(nic.slot, on);
    return NicRuntime.start(nic, transport, this.context);
  }

  private async launch(vm: VmConfig): Promise<void> {
    const paths = qemuPaths(this.vmFolder);
    // QEMU binds its end of a dgram NIC and fails if a file is in the way (one left by its last run).
    for (const file of [paths.qmp, paths.pid, ...qemuEnds(vm, paths)]) rmSync(file, { force: true });
    const [major] = qemuVersion();
    const args = qemuArgs(vm, this.vmFolder, { accel: kvmUsable() ? 'kvm' : 'tcg', nicLink: this.running.nicLink ?? 'stream', reconnect: major >= 8, formatOf: this.hooks.formatOf });
    const log = openSync(paths.log, 'w', 0o600);
    let child: ChildProcess;
    try {
      child = spawn(QEMU_BINARY, args, { detached: true, stdio: ['ignore', log, log] });
    } finally {
      closeSync(log);
    }
    this.child = child;
    const spawnError = new Promise<never>((_, reject) => child.once('error', (err) => reject(new VnetError('VNET_ERR_HOST', `cannot run ${QEMU_BINARY}: ${err.message} (Debian: apt-get install qemu-system-x86)`))));
    spawnError.catch(() => {});
    child.once('exit', (code, signal) => this.exitedWith(code === null ? `QEMU was killed by ${signal}` : `QEMU exited with code ${code}`));
    if (child.pid === undefined) await spawnError;
    this.running.pid = child.pid!;
    await Promise.race([spawnError, this.connectQmp(START_TIMEOUT_MS)]);
    for (const [slot, on] of this.carrier) if (!on) await this.setLink(slot, on);
  }

  /** Poll until QEMU's QMP socket answers (it appears once QEMU has parsed its options). */
  private async connectQmp(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let lastError: unknown;
    while (Date.now() < deadline) {
      if (this.exited) throw new VnetError('VNET_ERR_HOST', `QEMU did not start: ${lastLogLines(qemuPaths(this.vmFolder).log)}`);
      if (existsSync(this.running.qmpSocket)) {
        try {
          const qmp = await QmpClient.connect(this.running.qmpSocket);
          qmp.onEvent = (event, data) => this.event(event, data);
          qmp.onClose = () => this.qmpClosed();
          this.qmp = qmp;
          this.paused = (await qmp.status()) === 'paused';
          return;
        } catch (err) {
          lastError = err;
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new VnetError('VNET_ERR_HOST', `QEMU did not open its QMP socket within ${timeoutMs} ms${lastError ? ` (${(lastError as Error).message})` : ''}`);
  }

  private event(event: string, data: unknown): void {
    if (event === 'STOP') this.paused = true;
    if (event === 'RESUME') this.paused = false;
    // A guest `poweroff` ends in SHUTDOWN with guest: true; QEMU exits after it.
    if (event === 'SHUTDOWN' && (data as { guest?: boolean } | undefined)?.guest) this.guestShutdown = true;
  }

  private qmpClosed(): void {
    this.qmp = null;
    if (this.stopping || this.exited) return;
    // Not our child (resumed after a restart): QMP closing is our only sign. Give the process a moment to go.
    setTimeout(() => {
      if (!this.exited && !this.stopping && !processAlive(this.running.pid)) this.exitedWith('QEMU exited');
    }, 200);
  }

  private exitedWith(what: string): void {
    if (this.exited) return;
    this.exited = true;
    this.child = null;
    if (this.stopping) return;
    this.closeNics();
    const aborted = !this.guestShutdown;
    const reason = aborted ? `${what}: ${lastLogLines(qemuPaths(this.vmFolder).log)}` : 'the guest powered off';
    this.hooks.onExit(reason, aborted);
  }

  /** `controlvm VM poweroff|reset|acpipowerbutton|pause|resume` through QMP. */
  async control(action: QmpAction): Promise<void> {
    if (!this.qmp) throw invalidState(`VM '${this.context.vmName}' has no QEMU control connection (started by hand, or QEMU is gone)`);
    await this.qmp.execute(QMP_ACTIONS[action]);
    if (action === 'pause') this.paused = true;
    if (action === 'resume') this.paused = false;
  }

  private async setLink(slot: number, up: boolean): Promise<void> {
    this.carrier.set(slot, up);
    await this.qmp?.execute('set_link', { name: `vnic${slot}`, up }).catch(() => {});
  }

  /** Live NIC changes; a change of attachment needs the VM powered off. */
  async reconcile(vm: VmConfig): Promise<void> {
    for (const nic of vm.nics) {
      const current = this.nics.get(nic.slot);
      if (!current && nic.mode === 'none') continue;
      if (!current || nic.mode === 'none' || wiringKey(current.config) !== wiringKey(nic)) {
        throw invalidState(`VM '${vm.name}' runs in QEMU: power it off to change NIC ${nic.slot}'s attachment, MAC or network`);
      }
    }
    for (const nic of vm.nics) await this.nics.get(nic.slot)?.applyLive(nic);
  }

  nic(slot: number): NicRuntime | undefined {
    return this.nics.get(slot);
  }

  nicStats() {
    return [...this.nics.values()].map((nic) => nic.stats());
  }

  /** Power off: QMP `quit`, SIGKILL if QEMU lingers; close the NICs. Returns at once. */
  stop(): void {
    this.stopping = true;
    const pid = this.running.pid;
    const qmp = this.qmp;
    this.qmp = null;
    if (qmp) void qmp.execute('quit').catch(() => {}).finally(() => qmp.close());
    if (pid && processAlive(pid)) {
      setTimeout(() => {
        if (!this.exited && processAlive(pid)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone meanwhile
          }
        }
      }, qmp ? QUIT_GRACE_MS : 0).unref();
    }
    this.closeNics();
  }

  /** The daemon is going away: leave QEMU running, release our ends. */
  detach(): void {
    this.stopping = true;
    this.qmp?.close();
    this.qmp = null;
    this.child?.unref();
    this.closeNics();
  }

  private closeNics(): void {
    for (const nic of this.nics.values()) nic.close();
    this.nics.clear();
  }
}

/** Is `pid` a live process (not a zombie)? */
export function processAlive(pid: number): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** The last lines QEMU wrote to its log, for an error message. */
export function lastLogLines(path: string): string {
  try {
    if (!existsSync(path) || statSync(path).size === 0) return 'qemu.log is empty';
    const lines = readFileSync(path, 'utf8').trim().split('\n').filter(Boolean);
    return lines.slice(-REASON_LINES).join(' / ');
  } catch {
    return 'no qemu.log';
  }
}

