/**
 * Network namespaces and TAP links, through iproute2 (`ip`). Used when a VM is
 * started as `--type netns`: its NICs become TAP devices `eth0`, `eth1`, … in
 * a namespace. TAPs are made persistent so that a daemon restart (even after
 * `kill -9`) finds them — with the guest's addresses — and re-attaches.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { VnetError } from '../errors.js';

export const NETNS_DIR = '/var/run/netns';

export const netnsPath = (name: string): string => `${NETNS_DIR}/${name}`;

/** Run `ip ARGS`; a failure becomes a VnetError carrying ip's own message. */
export function ip(args: string[]): string {
  return run('ip', args);
}

function run(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; code?: string; message: string };
    if (e.code === 'ENOENT') throw new VnetError('VNET_ERR_HOST', `${command} is not installed`, { cause: err });
    const detail = (e.stderr ?? e.message).trim().split('\n')[0];
    const code = /Operation not permitted|Permission denied/.test(detail ?? '') ? 'VNET_ERR_PERMISSION' : 'VNET_ERR_HOST';
    throw new VnetError(code, `${command} ${args.join(' ')}: ${detail}`, { cause: err });
  }
}

export const netnsExists = (name: string): boolean => existsSync(netnsPath(name));

/**
 * `ip netns add|delete` publish a namespace by bind-mounting it under
 * /var/run/netns, in the daemon's mount namespace. A daemon started with
 * `ip netns exec` has a private one, so namespaces it creates stay invisible
 * outside it: start it with `nsenter --net=/var/run/netns/NAME` instead, or
 * create the guest's namespace before `startvm`.
 */
export function addNetns(name: string): void {
  ip(['netns', 'add', name]);
  ip(['-n', name, 'link', 'set', 'lo', 'up']);
}

export function deleteNetns(name: string): void {
  if (netnsExists(name)) ip(['netns', 'delete', name]);
}

export function linkExists(netns: string, ifname: string): boolean {
  try {
    ip(['-n', netns, 'link', 'show', 'dev', ifname]);
    return true;
  } catch {
    return false;
  }
}

/** Create (if missing) a persistent TAP in `netns` with the NIC's MAC and MTU, link up. */
export function ensureTap(netns: string, ifname: string, mac: string, mtu: number): void {
  if (!linkExists(netns, ifname)) ip(['-n', netns, 'tuntap', 'add', 'dev', ifname, 'mode', 'tap']);
  ip(['-n', netns, 'link', 'set', 'dev', ifname, 'address', mac, 'mtu', String(mtu), 'up']);
}

export function deleteLink(netns: string, ifname: string): void {
  if (linkExists(netns, ifname)) ip(['-n', netns, 'link', 'delete', 'dev', ifname]);
}
