/**
 * VM and NIC construction and change application. Every change is applied to
 * a copy and validated whole before it replaces the original, so a bad value
 * leaves nothing half-applied.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { invalid, notFound } from '../errors.js';
import { addRule, deleteRule, parseNatRule } from './port-forward.js';
import { ipv4Text } from './host-only.js';
import {
  ATTACHMENT_MODES,
  BOOT_DEVICES,
  BOOT_POSITIONS,
  GENERIC_DRIVERS,
  NIC_SLOTS,
  PROMISC_POLICIES,
  type AttachmentMode,
  type BootDevice,
  type NicConfig,
  type VmConfig,
} from './types.js';

/** VirtualBox's OUI (Oracle/innotek); auto MACs use it as VirtualBox does. */
const VIRTUALBOX_OUI = [0x08, 0x00, 0x27];

/** A fresh MAC under VirtualBox's 08:00:27 prefix. */
export function generateMac(): string {
  return formatMacBytes([...VIRTUALBOX_OUI, ...randomBytes(3)]);
}

function formatMacBytes(bytes: ArrayLike<number>): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(':');
}

/**
 * Normalise a user-given MAC: `080027AABBCC` (VirtualBox), `08:00:27:aa:bb:cc`
 * or `08-00-27-aa-bb-cc`. Rejects multicast addresses, which no NIC may own.
 */
export function normaliseMac(text: string): string {
  const trimmed = text.trim();
  if (!/^[0-9a-f]{12}$/i.test(trimmed) && !/^([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$/i.test(trimmed)) {
    throw invalid(`invalid MAC address '${text}': expected 12 hex digits, e.g. 080027AABBCC`);
  }
  const hex = trimmed.replace(/[:-]/g, '');
  const bytes = hex.match(/../g)!.map((pair) => parseInt(pair, 16));
  if (bytes[0]! & 1) throw invalid(`invalid MAC address '${text}': a multicast address cannot belong to a NIC`);
  return formatMacBytes(bytes);
}

/** VirtualBox's spelling of a MAC: 12 uppercase hex digits. */
export const virtualBoxMac = (mac: string): string => mac.replace(/:/g, '').toUpperCase();

export function defaultNic(slot: number): NicConfig {
  return {
    slot,
    // A new VirtualBox VM has NIC 1 on NAT and the rest disabled.
    mode: slot === 1 ? 'nat' : 'none',
    mac: generateMac(),
    cableConnected: true,
    promisc: 'deny',
    trace: false,
    traceFile: '',
    intnet: 'intnet',
    genericDriver: '',
    genericProperties: {},
    mtu: 0,
    natNet: '',
    natLocalhostReachable: false,
    natDnsHostResolver: false,
    natDnsPassDomain: true,
    natSplice: false,
    natTftpPrefix: '',
    natTftpFile: '',
    natTftpServer: '',
    natBindIp: '',
    portForwards: [],
    natNetwork: 'NatNetwork',
    hostOnlyAdapter: '',
    bridgeAdapter: '',
  };
}

const VM_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function createVm(name: string, ostype = 'Other'): VmConfig {
  validateVmName(name);
  const nics = Array.from({ length: NIC_SLOTS }, (_, i) => defaultNic(i + 1));
  return { name, uuid: randomUUID(), ostype, nics, ...vmHardwareDefaults() };
}

/** Hardware settings of a new VM (and of VMs saved before they existed). */
export function vmHardwareDefaults(): Pick<VmConfig, 'memoryMb' | 'cpus' | 'bootOrder' | 'storageControllers' | 'storage' | 'kernel' | 'initrd' | 'kernelArgs'> {
  // VirtualBox's "Other" OS type: 64 MB would not boot a modern kernel; 128 is QEMU's own default.
  return { memoryMb: 128, cpus: 1, bootOrder: ['floppy', 'dvd', 'disk', 'none'], storageControllers: [], storage: [], kernel: '', initrd: '', kernelArgs: '' };
}

export function validateVmName(name: string): void {
  // The name becomes a folder and, for netns guests, a namespace name.
  if (!VM_NAME.test(name)) {
    throw invalid(`invalid VM name '${name}': use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`);
  }
}

/** A partial NIC change as sent by `modifyvm`/`controlvm`; fields are validated on apply. */
export type NicChange = Partial<Omit<NicConfig, 'slot' | 'genericProperties' | 'portForwards'>> & {
  /** Merged into the existing properties; an empty value removes the key. */
  genericProperties?: Record<string, string>;
  /** NAT rules to add, in VirtualBox's spelling (`name,tcp,,8080,,80`). */
  addForwards?: string[];
  /** NAT rule names to delete. */
  deleteForwards?: string[];
};

export interface VmChange {
  ostype?: string;
  /** `--memory MB`. */
  memoryMb?: number;
  /** `--cpus N`. */
  cpus?: number;
  /** `--boot<P> DEVICE`: boot position (1-4) → device. */
  boot?: Record<string, BootDevice>;
  /** Direct kernel boot for QEMU: `--kernel F`, `--initrd F`, `--append ARGS` (empty clears). */
  kernel?: string;
  initrd?: string;
  kernelArgs?: string;
  nics?: Record<string, NicChange>;
}

/** The VM called `name` (or with that UUID); VNET_ERR_NOT_FOUND otherwise. */
export function findVm(vms: readonly VmConfig[], name: string): VmConfig {
  const vm = vms.find((v) => v.name === name || v.uuid === name);
  if (!vm) throw notFound(`no VM named '${name}'`);
  return vm;
}

/** Slot number from a user's `--nic<N>`; 1..8. */
export function parseSlot(text: string | number): number {
  const slot = typeof text === 'number' ? text : Number(text);
  if (!Number.isInteger(slot) || slot < 1 || slot > NIC_SLOTS) {
    throw invalid(`invalid NIC number '${text}': VMs have NICs 1 to ${NIC_SLOTS}`);
  }
  return slot;
}

/** Apply `change` to a copy of `vm`; throws VnetError without touching `vm`. */
export function applyVmChange(vm: VmConfig, change: VmChange): VmConfig {
  const next: VmConfig = structuredClone(vm);
  if (change.ostype !== undefined) next.ostype = String(change.ostype);
  if (change.memoryMb !== undefined) next.memoryMb = boundedInt(change.memoryMb, 4, 1 << 20, 'memory size (MB)');
  if (change.cpus !== undefined) next.cpus = boundedInt(change.cpus, 1, 64, 'CPU count');
  for (const [position, device] of Object.entries(change.boot ?? {})) {
    const at = boundedInt(position, 1, BOOT_POSITIONS, 'boot position');
    next.bootOrder[at - 1] = oneOf(device, BOOT_DEVICES, `boot device ${at}`);
  }
  for (const key of ['kernel', 'initrd', 'kernelArgs'] as const) {
    if (change[key] !== undefined) next[key] = String(change[key]);
  }
  for (const [slotText, nicChange] of Object.entries(change.nics ?? {})) {
    const slot = parseSlot(slotText);
    next.nics[slot - 1] = applyNicChange(next.nics[slot - 1]!, nicChange);
  }
  return next;
}

const NIC_FIELDS = new Set([
  'mode', 'mac', 'cableConnected', 'promisc', 'trace', 'traceFile', 'intnet', 'genericDriver', 'genericProperties', 'mtu',
  'natNet', 'natLocalhostReachable', 'natDnsHostResolver', 'natDnsPassDomain', 'natSplice', 'natTftpPrefix', 'natTftpFile', 'natTftpServer', 'natBindIp',
  'natNetwork', 'addForwards', 'deleteForwards',
  'hostOnlyAdapter', 'bridgeAdapter',
]);

function applyNicChange(nic: NicConfig, change: NicChange): NicConfig {
  const next = { ...nic, genericProperties: { ...nic.genericProperties } };
  for (const key of Object.keys(change)) {
    if (!NIC_FIELDS.has(key)) throw invalid(`unknown NIC setting '${key}'`);
  }
  const n = nic.slot;
  if (change.mode !== undefined) next.mode = oneOf(change.mode, ATTACHMENT_MODES, `NIC ${n} mode`) as AttachmentMode;
  if (change.mac !== undefined) next.mac = change.mac === 'auto' ? generateMac() : normaliseMac(String(change.mac));
  if (change.cableConnected !== undefined) next.cableConnected = bool(change.cableConnected, `NIC ${n} cable`);
  if (change.promisc !== undefined) next.promisc = oneOf(change.promisc, PROMISC_POLICIES, `NIC ${n} promiscuous policy`);
  if (change.trace !== undefined) next.trace = bool(change.trace, `NIC ${n} trace`);
  if (change.traceFile !== undefined) next.traceFile = String(change.traceFile);
  if (change.intnet !== undefined) next.intnet = networkName(change.intnet, `NIC ${n} internal network`);
  if (change.genericDriver !== undefined) {
    next.genericDriver = change.genericDriver === '' ? '' : oneOf(change.genericDriver, GENERIC_DRIVERS, `NIC ${n} generic driver`);
  }
  for (const [key, value] of Object.entries(change.genericProperties ?? {})) {
    if (value === '') delete next.genericProperties[key];
    else next.genericProperties[key] = String(value);
  }
  if (change.mtu !== undefined) next.mtu = mtu(change.mtu, n);
  if (change.natNet !== undefined) next.natNet = change.natNet === '' ? '' : natCidr(change.natNet, `NIC ${n} NAT network`);
  if (change.natLocalhostReachable !== undefined) next.natLocalhostReachable = bool(change.natLocalhostReachable, `NIC ${n} localhost-reachable`);
  if (change.natDnsHostResolver !== undefined) next.natDnsHostResolver = bool(change.natDnsHostResolver, `NIC ${n} DNS host resolver`);
  if (change.natDnsPassDomain !== undefined) next.natDnsPassDomain = bool(change.natDnsPassDomain, `NIC ${n} DNS pass-domain`);
  if (change.natSplice !== undefined) next.natSplice = bool(change.natSplice, `NIC ${n} splice`);
  if (change.natTftpPrefix !== undefined) next.natTftpPrefix = absolutePath(change.natTftpPrefix, `NIC ${n} TFTP prefix`);
  if (change.natTftpFile !== undefined) next.natTftpFile = bootFileName(change.natTftpFile, `NIC ${n} TFTP boot file`);
  if (change.natTftpServer !== undefined) next.natTftpServer = ipv4OrEmpty(change.natTftpServer, `NIC ${n} TFTP server`);
  if (change.natBindIp !== undefined) next.natBindIp = ipv4OrEmpty(change.natBindIp, `NIC ${n} NAT bind address`);
  if (change.natNetwork !== undefined) next.natNetwork = networkName(change.natNetwork, `NIC ${n} NAT network name`);
  if (change.hostOnlyAdapter !== undefined) next.hostOnlyAdapter = interfaceName(change.hostOnlyAdapter, `NIC ${n} host-only adapter`);
  if (change.bridgeAdapter !== undefined) next.bridgeAdapter = interfaceName(change.bridgeAdapter, `NIC ${n} bridge adapter`);
  for (const name of change.deleteForwards ?? []) next.portForwards = deleteRule(next.portForwards, String(name), `NIC ${n}`);
  for (const text of change.addForwards ?? []) next.portForwards = addRule(next.portForwards, parseNatRule(String(text)), `NIC ${n}`);
  validateNic(next);
  return next;
}

/** Whole-NIC consistency checks that single fields cannot make. */
export function validateNic(nic: NicConfig): void {
  if (nic.mode === 'generic' && nic.genericDriver === 'UDPTunnel') {
    const { dest, sport, dport } = nic.genericProperties;
    for (const [key, value] of Object.entries({ sport, dport })) {
      if (value !== undefined && !isPort(value)) throw invalid(`NIC ${nic.slot} property ${key}='${value}': expected a port number 1-65535`);
    }
    if (dest !== undefined && !/^[A-Za-z0-9.:_-]+$/.test(dest)) throw invalid(`NIC ${nic.slot} property dest='${dest}': expected a host name or address`);
  }
}

function boundedInt(value: unknown, min: number, max: number, what: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw invalid(`invalid ${what} '${String(value)}': expected ${min}-${max}`);
  return n;
}

const isPort = (text: string): boolean => /^\d+$/.test(text) && Number(text) >= 1 && Number(text) <= 65535;

function oneOf<T extends string>(value: unknown, allowed: readonly T[], what: string): T {
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
  throw invalid(`invalid ${what} '${String(value)}': expected one of ${allowed.join(', ')}`);
}

function bool(value: unknown, what: string): boolean {
  if (typeof value === 'boolean') return value;
  throw invalid(`invalid ${what} '${String(value)}': expected on or off`);
}

/** Names of networks (intnet, natnetwork): printable, no slashes, as VirtualBox allows. */
export function networkName(value: unknown, what: string): string {
  const name = String(value);
  if (!/^[^\s/\\][^/\\]{0,63}$/.test(name) || /\s$/.test(name)) {
    throw invalid(`invalid ${what} '${name}': use 1-64 characters without '/' or leading/trailing spaces`);
  }
  return name;
}

/** A host interface name as Linux takes it (1-15 bytes, no '/' or spaces); empty = none chosen yet. */
function interfaceName(value: unknown, what: string): string {
  const name = String(value);
  if (name !== '' && !/^[A-Za-z0-9][A-Za-z0-9._@-]{0,14}$/.test(name)) {
    throw invalid(`invalid ${what} '${name}': expected an interface name of 1-15 letters, digits, '.', '_' or '-'`);
  }
  return name;
}

/** An IPv4 address as text, or empty for the default. */
function ipv4OrEmpty(value: unknown, what: string): string {
  return value === '' ? '' : ipv4Text(value, what);
}

/** A directory or file on the host, absolute (the daemon's working directory is nobody's); empty = the default. */
function absolutePath(value: unknown, what: string): string {
  const path = String(value);
  if (path !== '' && (!path.startsWith('/') || path.includes('\0'))) throw invalid(`invalid ${what} '${path}': expected an absolute path`);
  return path;
}

/** What fits BOOTP's 128-byte file field with its NUL; empty = the default. */
function bootFileName(value: unknown, what: string): string {
  const name = String(value);
  if (name.length > 127 || !/^[\x21-\x7e]*$/.test(name)) throw invalid(`invalid ${what} '${name}': expected up to 127 printable characters without spaces`);
  return name;
}

function mtu(value: unknown, slot: number): number {
  const n = Number(value);
  // 68 is IPv4's minimum (RFC 791); 65520 is the largest a Linux TAP takes with room for the header.
  if (!Number.isInteger(n) || (n !== 0 && (n < 68 || n > 65520))) {
    throw invalid(`invalid NIC ${slot} MTU '${String(value)}': expected 68-65520`);
  }
  return n;
}

/**
 * A NAT guest network: IPv4, prefix 8-29 (room for gateway .2, DNS .3, TFTP .4
 * and a guest at .15), given as its network address.
 */
export function natCidr(value: unknown, what: string): string {
  const text = String(value);
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(text);
  const octets = match?.slice(1, 5).map(Number) ?? [];
  const prefix = Number(match?.[5]);
  if (!match || octets.some((o) => o > 255) || prefix < 8 || prefix > 27) {
    throw invalid(`invalid ${what} '${text}': expected an IPv4 network such as 10.0.2.0/24 (prefix 8-27)`);
  }
  const address = octets.reduce((acc, o) => acc * 256 + o, 0);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  if (((address & mask) >>> 0) !== address) throw invalid(`invalid ${what} '${text}': host bits are set; did you mean ${formatAddress((address & mask) >>> 0)}/${prefix}?`);
  return text;
}

const formatAddress = (n: number): string => [24, 16, 8, 0].map((s) => (n >>> s) & 0xff).join('.');
