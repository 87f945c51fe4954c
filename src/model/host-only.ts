/**
 * Host-only interfaces (`vnet hostonlyif`): a real interface `vboxnetN` on the
 * host (in the daemon's network namespace) that shares a switch with the VMs
 * attached to it. VirtualBox's defaults: the first is vboxnet0 with
 * 192.168.56.1/24, the next ones count up the third octet.
 */
import { invalid } from '../errors.js';
import type { HostOnlyIfConfig } from './types.js';

/** VirtualBox names them vboxnet0, vboxnet1, … */
export const HOSTONLY_PREFIX = 'vboxnet';
/** Upper bound on host-only interfaces (VirtualBox has no documented limit; each costs a TAP and a switch). */
export const MAX_HOSTONLY_IFS = 128;
/** The first interface's address; interface N gets 192.168.(56+N).1. */
const FIRST_THIRD_OCTET = 56;

/** VirtualBox's network name for a host-only interface's DHCP server. */
export const hostOnlyNetworkName = (ifname: string): string => `HostInterfaceNetworking-${ifname}`;

/** Interface names Linux accepts: 1-15 bytes, no '/', no spaces. */
export function hostOnlyIfName(value: unknown): string {
  const name = String(value);
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,14}$/.test(name)) {
    throw invalid(`invalid host-only interface name '${name}': use 1-15 letters, digits, '.', '_' or '-', e.g. vboxnet0`);
  }
  return name;
}

/** The next free `vboxnetN` with VirtualBox's default address for it. */
export function nextHostOnlyIf(existing: readonly HostOnlyIfConfig[], name?: string): HostOnlyIfConfig {
  if (existing.length >= MAX_HOSTONLY_IFS) throw invalid(`too many host-only interfaces (limit ${MAX_HOSTONLY_IFS})`);
  const taken = new Set(existing.map((i) => i.name));
  let index = 0;
  if (name === undefined) {
    while (taken.has(`${HOSTONLY_PREFIX}${index}`)) index++;
    name = `${HOSTONLY_PREFIX}${index}`;
  } else {
    hostOnlyIfName(name);
    if (taken.has(name)) throw invalid(`a host-only interface named '${name}' already exists`);
    const match = new RegExp(`^${HOSTONLY_PREFIX}(\\d+)$`).exec(name);
    index = match ? Number(match[1]) : existing.length;
  }
  const third = FIRST_THIRD_OCTET + index;
  return { name, ip: third <= 255 ? `192.168.${third}.1` : '192.168.56.1', netmask: '255.255.255.0' };
}

/** `hostonlyif ipconfig IF --ip A [--netmask M]`, applied to a copy. */
export function applyHostOnlyIpconfig(config: HostOnlyIfConfig, ip: unknown, netmask: unknown = '255.255.255.0'): HostOnlyIfConfig {
  const address = ipv4Text(ip, `host-only interface '${config.name}' address`);
  const mask = netmaskText(netmask, `host-only interface '${config.name}' netmask`);
  const n = toNumber(address);
  const m = toNumber(mask);
  if (m === 0xffffffff || m === 0xfffffffe) throw invalid(`netmask ${mask} leaves no room for guests on '${config.name}'`);
  if ((n & ~m) >>> 0 === 0 || (n | m) >>> 0 === 0xffffffff) {
    throw invalid(`invalid host-only interface '${config.name}' address ${address}/${mask}: that is the network or broadcast address`);
  }
  return { ...config, ip: address, netmask: mask };
}

// --- IPv4 text helpers shared by the DHCP server model -------------------

/** A dotted-quad IPv4 address, normalised (`010.0.0.1` is refused: ambiguous). */
export function ipv4Text(value: unknown, what: string): string {
  const text = String(value ?? '').trim();
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!match || match.slice(1).some((o) => Number(o) > 255 || (o.length > 1 && o.startsWith('0')))) {
    throw invalid(`invalid ${what} '${text}': expected an IPv4 address such as 192.168.56.1`);
  }
  return match.slice(1).map(Number).join('.');
}

/** A contiguous netmask in dotted form (`255.255.255.0`) or as a prefix length (`24`). */
export function netmaskText(value: unknown, what: string): string {
  const text = String(value ?? '').trim();
  let mask: number;
  if (/^\d{1,2}$/.test(text) && Number(text) <= 32) mask = Number(text) === 0 ? 0 : (0xffffffff << (32 - Number(text))) >>> 0;
  else mask = toNumber(ipv4Text(text, what));
  const inverted = ~mask >>> 0;
  if ((inverted & (inverted + 1)) !== 0) throw invalid(`invalid ${what} '${text}': the mask's one bits must be contiguous, e.g. 255.255.255.0`);
  return fromNumber(mask);
}

export const toNumber = (ip: string): number => ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0) >>> 0;
export const fromNumber = (n: number): string => [24, 16, 8, 0].map((s) => (n >>> s) & 0xff).join('.');
