/**
 * VirtualBox's `dhcpserver` objects: a DHCP server for an internal network,
 * a host-only interface or a NAT Network, with its pool, lease time, options
 * and fixed addresses (per MAC, or per VM NIC). Creation and validated
 * changes; every change is applied to a copy and checked whole.
 */
import { invalid } from '../errors.js';
import { fromNumber, hostOnlyNetworkName, ipv4Text, netmaskText, toNumber } from './host-only.js';
import type { DhcpFixedAddress, DhcpServerKind, DhcpServerSettings, HostOnlyIfConfig } from './types.js';
import { normaliseMac, networkName, parseSlot } from './vm.js';

/** VirtualBox's default lease time for its DHCP servers: one day (as NAT). */
export const DEFAULT_DHCP_LEASE_SEC = 86400;
/** Fixed addresses per server. */
export const MAX_FIXED_ADDRESSES = 1024;
/** Options a server may carry (`--set-opt`). */
export const MAX_DHCP_OPTIONS = 64;

/** Options the server always fills itself (message type, server id, lease times, mask, …): `--set-opt` may not override them. */
const RESERVED_OPTIONS = new Set([0, 1, 50, 51, 52, 53, 54, 55, 58, 59, 61, 255]);

/** `--network N` or `--interface IF`: which network a server serves. */
export interface DhcpTarget {
  network?: string;
  interface?: string;
}

export interface DhcpServerChange {
  serverIp?: string;
  netmask?: string;
  lowerIp?: string;
  upperIp?: string;
  enabled?: boolean;
  leaseTimeSec?: number;
  /** Option code → value (`--set-opt N V`); `hex:0a0b` for raw bytes (`--set-opt-hex`). */
  setOptions?: Record<string, string>;
  /** Option codes to remove (`--unset-opt N`). */
  unsetOptions?: string[];
  /** Fixed addresses to add or replace, keyed by MAC or by VM NIC; an empty `ip` removes the entry. */
  fixed?: DhcpFixedAddress[];
}

/** Resolve `--network`/`--interface` to the server's network name and kind. */
export function resolveDhcpTarget(target: DhcpTarget, natNetworkNames: readonly string[]): { network: string; kind: DhcpServerKind; ifname?: string } {
  if (target.interface !== undefined && target.network !== undefined) throw invalid('dhcpserver: give --network or --interface, not both');
  if (target.interface !== undefined) {
    const ifname = String(target.interface);
    return { network: hostOnlyNetworkName(ifname), kind: 'hostonly', ifname };
  }
  if (target.network === undefined || target.network === '') throw invalid('dhcpserver: --network NAME or --interface IF is required');
  const network = networkName(target.network, 'DHCP server network');
  const hostOnly = /^HostInterfaceNetworking-(.+)$/.exec(network);
  if (hostOnly) return { network, kind: 'hostonly', ifname: hostOnly[1]! };
  return { network, kind: natNetworkNames.includes(network) ? 'natnet' : 'intnet' };
}

/** VirtualBox's default server for a host-only interface: .100, pool .101-.254 (on a /24). */
export function defaultHostOnlyDhcp(iface: HostOnlyIfConfig): DhcpServerSettings {
  const mask = toNumber(iface.netmask);
  const network = (toNumber(iface.ip) & mask) >>> 0;
  const broadcast = (network | ~mask) >>> 0;
  const size = broadcast - network;
  // On a /24: .100 and .101-.254; on other sizes the same proportions, clamped into the network.
  const at = (host: number) => fromNumber((network + Math.max(1, Math.min(host, size - 1))) >>> 0);
  const server = size >= 255 ? 100 : Math.max(2, Math.floor(size / 2));
  return {
    network: hostOnlyNetworkName(iface.name),
    kind: 'hostonly',
    serverIp: at(server),
    netmask: iface.netmask,
    lowerIp: at(server + 1),
    upperIp: at(size - 1),
    enabled: true,
    leaseTimeSec: DEFAULT_DHCP_LEASE_SEC,
    options: {},
    fixed: [],
  };
}

/** A new server; `--server-ip`, `--netmask`, `--lower-ip` and `--upper-ip` are required (as VBoxManage). */
export function createDhcpServer(network: string, kind: DhcpServerKind, change: DhcpServerChange): DhcpServerSettings {
  for (const field of ['serverIp', 'netmask', 'lowerIp', 'upperIp'] as const) {
    if (change[field] === undefined) throw invalid(`dhcpserver add: --${field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} is required`);
  }
  const base: DhcpServerSettings = {
    network,
    kind,
    serverIp: '',
    netmask: '',
    lowerIp: '',
    upperIp: '',
    enabled: true,
    leaseTimeSec: DEFAULT_DHCP_LEASE_SEC,
    options: {},
    fixed: [],
  };
  return applyDhcpServerChange(base, change);
}

/** Apply to a copy; throws without touching `config`. */
export function applyDhcpServerChange(config: DhcpServerSettings, change: DhcpServerChange): DhcpServerSettings {
  const next: DhcpServerSettings = structuredClone(config);
  const where = `DHCP server '${config.network}'`;
  if (change.serverIp !== undefined) next.serverIp = ipv4Text(change.serverIp, `${where} server address`);
  if (change.netmask !== undefined) next.netmask = netmaskText(change.netmask, `${where} netmask`);
  if (change.lowerIp !== undefined) next.lowerIp = ipv4Text(change.lowerIp, `${where} lower address`);
  if (change.upperIp !== undefined) next.upperIp = ipv4Text(change.upperIp, `${where} upper address`);
  if (change.enabled !== undefined) next.enabled = Boolean(change.enabled);
  if (change.leaseTimeSec !== undefined) {
    const seconds = Number(change.leaseTimeSec);
    if (!Number.isInteger(seconds) || seconds < 60 || seconds > 0x7fffffff) throw invalid(`invalid ${where} lease time '${change.leaseTimeSec}': expected 60 or more seconds`);
    next.leaseTimeSec = seconds;
  }
  for (const code of change.unsetOptions ?? []) delete next.options[optionCode(code, where)];
  for (const [code, value] of Object.entries(change.setOptions ?? {})) next.options[optionCode(code, where)] = optionValue(value, code, where);
  if (Object.keys(next.options).length > MAX_DHCP_OPTIONS) throw invalid(`${where}: too many options (limit ${MAX_DHCP_OPTIONS})`);
  for (const entry of change.fixed ?? []) next.fixed = setFixed(next.fixed, entry, where);
  validateDhcpServer(next);
  return next;
}

/** Whole-server checks: one network holds the server, the pool and every fixed address. */
export function validateDhcpServer(s: DhcpServerSettings): void {
  const where = `DHCP server '${s.network}'`;
  const mask = toNumber(s.netmask);
  const network = (toNumber(s.serverIp) & mask) >>> 0;
  const broadcast = (network | ~mask) >>> 0;
  const inside = (ip: string): boolean => {
    const n = toNumber(ip);
    return ((n & mask) >>> 0) === network && n !== network && n !== broadcast;
  };
  if (mask >>> 0 >= 0xfffffffe) throw invalid(`${where}: netmask ${s.netmask} leaves no room for clients`);
  if (!inside(s.serverIp)) throw invalid(`${where}: server address ${s.serverIp} is the network or broadcast address of ${fromNumber(network)}/${s.netmask}`);
  for (const [name, ip] of [['lower', s.lowerIp], ['upper', s.upperIp]] as const) {
    if (!inside(ip)) throw invalid(`${where}: ${name} address ${ip} is not a host address of ${fromNumber(network)}/${s.netmask}`);
  }
  if (toNumber(s.lowerIp) > toNumber(s.upperIp)) throw invalid(`${where}: lower address ${s.lowerIp} is above upper address ${s.upperIp}`);
  if (toNumber(s.lowerIp) === toNumber(s.serverIp) && toNumber(s.upperIp) === toNumber(s.serverIp)) throw invalid(`${where}: the pool holds only the server's own address`);
  for (const f of s.fixed) {
    if (!inside(f.ip)) throw invalid(`${where}: fixed address ${f.ip} is not on ${fromNumber(network)}/${s.netmask}`);
    if (f.ip === s.serverIp) throw invalid(`${where}: fixed address ${f.ip} is the server's own address`);
  }
  const ips = s.fixed.map((f) => f.ip);
  const twice = ips.find((ip, i) => ips.indexOf(ip) !== i);
  if (twice) throw invalid(`${where}: fixed address ${twice} is given to two clients`);
}

function setFixed(list: DhcpFixedAddress[], entry: DhcpFixedAddress, where: string): DhcpFixedAddress[] {
  let key: DhcpFixedAddress;
  if (entry.mac !== undefined && entry.mac !== '') {
    if (entry.vm !== undefined) throw invalid(`${where}: a fixed address is for --mac-address or for --vm/--nic, not both`);
    key = { mac: normaliseMac(String(entry.mac)), ip: '' };
  } else if (entry.vm !== undefined && entry.vm !== '') {
    key = { vm: String(entry.vm), nic: parseSlot(entry.nic ?? 1), ip: '' };
  } else {
    throw invalid(`${where}: a fixed address needs --mac-address MAC or --vm VM --nic N`);
  }
  const same = (f: DhcpFixedAddress) => (key.mac !== undefined ? f.mac === key.mac : f.vm === key.vm && f.nic === key.nic);
  const rest = list.filter((f) => !same(f));
  if (entry.ip === undefined || entry.ip === '') return rest;
  if (rest.length >= MAX_FIXED_ADDRESSES) throw invalid(`${where}: too many fixed addresses (limit ${MAX_FIXED_ADDRESSES})`);
  return [...rest, { ...key, ip: ipv4Text(entry.ip, `${where} fixed address`) }];
}

function optionCode(code: unknown, where: string): string {
  const text = String(code).trim();
  const n = Number(text);
  if (!/^\d{1,3}$/.test(text) || n < 1 || n > 254) throw invalid(`${where}: invalid DHCP option '${text}': expected a number 1-254`);
  if (RESERVED_OPTIONS.has(n)) throw invalid(`${where}: DHCP option ${n} is set by the server itself (use --netmask, --lease-time, …)`);
  return String(n);
}

function optionValue(value: unknown, code: string, where: string): string {
  const text = String(value);
  if (text.startsWith('hex:')) {
    const hex = text.slice(4).replace(/[:\s]/g, '');
    if (!/^([0-9a-f]{2}){1,255}$/i.test(hex)) throw invalid(`${where}: option ${code} hex value '${text.slice(4)}' is not 1-255 bytes of hex`);
    return `hex:${hex.toLowerCase()}`;
  }
  if (text.length === 0 || Buffer.byteLength(text) > 255) throw invalid(`${where}: option ${code} value must be 1-255 bytes`);
  encodeDhcpOption(Number(code), text, where);
  return text;
}

/** Options whose value is a list of IPv4 addresses (RFC 2132), given as `A,B` or `A B`. */
const ADDRESS_OPTIONS = new Set([3, 4, 5, 6, 7, 8, 9, 10, 11, 16, 21, 28, 32, 41, 42, 44, 45, 48, 49, 65, 68, 69, 70, 71, 72, 73, 74, 75, 76]);
/** Options holding one unsigned number of 1, 2 or 4 bytes (RFC 2132). */
const NUMBER_OPTIONS = new Map<number, number>([
  [2, 4], [24, 4], [35, 4], [38, 4],
  [13, 2], [22, 2], [26, 2],
  [19, 1], [20, 1], [23, 1], [27, 1], [29, 1], [30, 1], [31, 1], [34, 1], [36, 1], [39, 1], [46, 1],
]);

/**
 * The bytes of option `code` from its text as `--set-opt` takes it: address
 * lists and numbers by RFC 2132's type of the option, `hex:…` as raw bytes,
 * anything else as a string.
 */
export function encodeDhcpOption(code: number, text: string, where = 'DHCP server'): Uint8Array {
  if (text.startsWith('hex:')) return Uint8Array.from(text.slice(4).match(/../g) ?? [], (h) => parseInt(h, 16));
  if (ADDRESS_OPTIONS.has(code)) {
    const parts = text.split(/[\s,]+/).filter(Boolean);
    if (parts.length === 0 || parts.length > 63) throw invalid(`${where}: option ${code} expects 1-63 IPv4 addresses, not '${text}'`);
    const out = new Uint8Array(parts.length * 4);
    parts.forEach((part, i) => {
      const n = toNumber(ipv4Text(part, `${where} option ${code} address`));
      out.set([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff], i * 4);
    });
    return out;
  }
  const width = NUMBER_OPTIONS.get(code);
  if (width !== undefined) {
    const n = Number(text);
    if (!/^\d+$/.test(text) || n >= 2 ** (8 * width)) throw invalid(`${where}: option ${code} expects a number below ${2 ** (8 * width)}, not '${text}'`);
    const out = new Uint8Array(width);
    for (let i = 0; i < width; i++) out[width - 1 - i] = Math.floor(n / 2 ** (8 * i)) & 0xff;
    return out;
  }
  return new TextEncoder().encode(text);
}

/** One line per server, the shape `list dhcpservers` prints. */
export function describeFixed(f: DhcpFixedAddress): string {
  return f.mac !== undefined ? `MAC ${f.mac}` : `VM ${f.vm} NIC ${f.nic}`;
}
