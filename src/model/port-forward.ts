/**
 * Port-forward rules in VirtualBox's two spellings, validated:
 *   NAT:         `[name],tcp|udp,[hostip],hostport,[guestip],guestport`
 *   NAT Network: `name:tcp|udp:[hostip]:hostport:[guestip]:guestport`
 *                (IPv6 addresses in brackets: `[::1]`)
 */
import { isIPv4, isIPv6 } from 'node:net';
import { invalid } from '../errors.js';
import type { PortForward } from './types.js';

export function parseNatRule(text: string): PortForward {
  const fields = text.split(',');
  if (fields.length !== 6) {
    throw invalid(`invalid port-forward rule '${text}': expected [name],tcp|udp,[hostip],hostport,[guestip],guestport`);
  }
  return validateRule(fields, text);
}

export function parseNatNetworkRule(text: string): PortForward {
  // Split on ':' outside brackets, so `[::1]` stays one field.
  const parts = splitOutsideBrackets(text);
  if (parts.length !== 6 || !parts[0]) {
    throw invalid(`invalid port-forward rule '${text}': expected name:tcp|udp:[hostip]:hostport:[guestip]:guestport`);
  }
  return validateRule(parts.map((p) => p.replace(/^\[(.*)\]$/, '$1')), text);
}

function splitOutsideBrackets(text: string): string[] {
  const parts: string[] = [];
  let current = '';
  let depth = 0;
  for (const ch of text) {
    if (ch === '[') depth++;
    if (ch === ']') depth--;
    if (ch === ':' && depth === 0) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  parts.push(current);
  return parts;
}

function validateRule([name, protocol, hostIp, hostPort, guestIp, guestPort]: string[], text: string): PortForward {
  const proto = protocol!.toLowerCase();
  if (proto !== 'tcp' && proto !== 'udp') throw invalid(`invalid port-forward rule '${text}': protocol must be tcp or udp, not '${protocol}'`);
  for (const [what, ip] of [['host IP', hostIp!], ['guest IP', guestIp!]] as const) {
    if (ip !== '' && !isIPv4(ip) && !(what === 'host IP' && isIPv6(ip))) throw invalid(`invalid port-forward rule '${text}': ${what} '${ip}' is not an address`);
  }
  const rule: PortForward = {
    name: name || `${proto}_${hostPort}_${guestPort}`,
    protocol: proto,
    hostIp: hostIp!,
    hostPort: port(hostPort!, 'host port', text),
    guestIp: guestIp!,
    guestPort: port(guestPort!, 'guest port', text),
  };
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(rule.name)) throw invalid(`invalid port-forward rule '${text}': name '${rule.name}' must be letters, digits, '.', '_' or '-'`);
  return rule;
}

function port(text: string, what: string, rule: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 65535) throw invalid(`invalid port-forward rule '${rule}': ${what} '${text}' must be 1-65535`);
  return n;
}

/** VirtualBox's NAT spelling of a rule, for showvminfo. */
export const formatNatRule = (r: PortForward): string =>
  `${r.name},${r.protocol},${r.hostIp},${r.hostPort},${r.guestIp},${r.guestPort}`;

/** Add `rule` to `rules`; names and host endpoints must be unique. */
export function addRule(rules: PortForward[], rule: PortForward, where: string): PortForward[] {
  if (rules.some((r) => r.name === rule.name)) throw invalid(`${where} already has a port-forward rule named '${rule.name}'`);
  const clash = rules.find((r) => r.protocol === rule.protocol && r.hostPort === rule.hostPort && (r.hostIp || '127.0.0.1') === (rule.hostIp || '127.0.0.1'));
  if (clash) throw invalid(`${where}: ${rule.protocol} host port ${rule.hostPort} is already forwarded by rule '${clash.name}'`);
  return [...rules, rule];
}

export function deleteRule(rules: PortForward[], name: string, where: string): PortForward[] {
  if (!rules.some((r) => r.name === name)) throw invalid(`${where} has no port-forward rule named '${name}'`);
  return rules.filter((r) => r.name !== name);
}
