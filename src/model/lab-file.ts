/**
 * Lab files (`vnet apply -f lab.yaml`, `vnet export-config`): the networks,
 * DHCP servers, VMs, NICs and forwards a lab should have, as plain data.
 *
 * - `checkLabShape` turns parsed YAML/JSON into a LabSpec, refusing unknown
 *   keys and wrong types; every refusal is a LabError naming the path
 *   (`vms[0].nics.1.mode`), which the CLI turns into a line of the file.
 * - `planLab` compares a spec with the current state and returns the steps
 *   that make the state match — none when it already does (idempotent). It
 *   validates every value with the model's own functions on a simulated
 *   copy of the state, so a spec that plans cleanly applies cleanly (host
 *   failures such as a busy port aside). Things the file does not mention
 *   are left alone: apply creates and updates, it never deletes.
 * - `exportLab` writes the state as a spec; applying it changes nothing.
 */
import { VnetError } from '../errors.js';
import {
  applyDhcpServerChange,
  createDhcpServer,
  defaultHostOnlyDhcp,
  resolveDhcpTarget,
  type DhcpServerChange,
} from './dhcp-server.js';
import { applyHostOnlyIpconfig, ipv4Text, netmaskText, nextHostOnlyIf } from './host-only.js';
import { applyNatNetworkChange, createNatNetwork, type NatNetworkChange } from './nat-network.js';
import { formatNatRule, parseNatNetworkRule, parseNatRule } from './port-forward.js';
import type { DhcpFixedAddress, DhcpServerSettings, HostOnlyIfConfig, NatNetworkConfig, NicConfig, PortForward, VmConfig } from './types.js';
import { applyVmChange, createVm, defaultNic, type NicChange, type VmChange } from './vm.js';

export interface LabNatNetwork {
  name: string;
  network?: string;
  enabled?: boolean;
  dhcp?: boolean;
  localhostReachable?: boolean;
  /** NAT Network rules: `name:tcp:[hostip]:hostport:[guestip]:guestport`. */
  portForwards?: string[];
}

export interface LabHostOnlyIf {
  name: string;
  ip?: string;
  netmask?: string;
}

export interface LabDhcpServer {
  network?: string;
  interface?: string;
  serverIp?: string;
  netmask?: string;
  lowerIp?: string;
  upperIp?: string;
  enabled?: boolean;
  leaseTime?: number;
  options?: Record<string, string>;
  fixed?: DhcpFixedAddress[];
}

/** A NIC as the file gives it: NicConfig's fields, forwards in VirtualBox's NAT spelling. */
export type LabNic = Partial<Omit<NicConfig, 'slot' | 'portForwards'>> & { portForwards?: string[] };

export interface LabVm {
  name: string;
  ostype?: string;
  /** Slot number → NIC. */
  nics?: Record<string, LabNic>;
}

export interface LabSpec {
  version?: number;
  natnetworks?: LabNatNetwork[];
  hostonlyifs?: LabHostOnlyIf[];
  dhcpservers?: LabDhcpServer[];
  vms?: LabVm[];
}

/** What a lab is compared with. */
export interface LabState {
  vms: VmConfig[];
  natNetworks: NatNetworkConfig[];
  hostOnlyIfs: HostOnlyIfConfig[];
  dhcpServers: DhcpServerSettings[];
}

export type LabStep =
  | { op: 'natnetwork.add'; name: string; change: NatNetworkChange; summary: string }
  | { op: 'natnetwork.modify'; name: string; change: NatNetworkChange; summary: string }
  | { op: 'hostonlyif.create'; name: string; summary: string }
  | { op: 'hostonlyif.ipconfig'; name: string; ip: string; netmask: string; summary: string }
  | { op: 'dhcpserver.add'; network: string; change: DhcpServerChange; summary: string }
  | { op: 'dhcpserver.modify'; network: string; change: DhcpServerChange; summary: string }
  | { op: 'vm.create'; name: string; ostype?: string; summary: string }
  | { op: 'vm.modify'; name: string; change: VmChange; summary: string };

export type LabPath = (string | number)[];

/** A problem at one place of a lab file. */
export class LabError extends VnetError {
  constructor(
    readonly path: LabPath,
    readonly reason: string,
  ) {
    super('VNET_ERR_INVALID_VALUE', `${formatLabPath(path)}: ${reason}`);
  }
}

/** `vms[0].nics.1.mode`. */
export function formatLabPath(path: LabPath): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('') || '(top)';
}

/** The inverse of formatLabPath, for messages that come back from the daemon. */
export function parseLabPath(text: string): LabPath {
  const out: LabPath = [];
  for (const match of text.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) out.push(match[2] !== undefined ? Number(match[2]) : match[1]!);
  return out;
}

/** Run `fn`; a VnetError it throws becomes a LabError at `path`. */
function at<T>(path: LabPath, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof LabError) throw err;
    if (err instanceof VnetError) throw new LabError(path, err.message);
    throw err;
  }
}

// --- Shape ----------------------------------------------------------------------

type Kind = 'string' | 'boolean' | 'integer' | 'string[]' | 'map' | 'list';

const NIC_KEYS: Record<string, Kind> = {
  mode: 'string', mac: 'string', cableConnected: 'boolean', promisc: 'string', trace: 'boolean', traceFile: 'string',
  intnet: 'string', genericDriver: 'string', genericProperties: 'map', mtu: 'integer', natNet: 'string',
  natLocalhostReachable: 'boolean', natDnsHostResolver: 'boolean', natDnsPassDomain: 'boolean', natSplice: 'boolean',
  natTftpPrefix: 'string', natTftpFile: 'string', natTftpServer: 'string', natBindIp: 'string', portForwards: 'string[]', natNetwork: 'string',
  hostOnlyAdapter: 'string', bridgeAdapter: 'string',
};
const SECTIONS: Record<string, Record<string, Kind>> = {
  natnetworks: { name: 'string', network: 'string', enabled: 'boolean', dhcp: 'boolean', localhostReachable: 'boolean', portForwards: 'string[]' },
  hostonlyifs: { name: 'string', ip: 'string', netmask: 'string' },
  dhcpservers: {
    network: 'string', interface: 'string', serverIp: 'string', netmask: 'string', lowerIp: 'string', upperIp: 'string',
    enabled: 'boolean', leaseTime: 'integer', options: 'map', fixed: 'list',
  },
  vms: { name: 'string', ostype: 'string', nics: 'map' },
};
const FIXED_KEYS: Record<string, Kind> = { mac: 'string', vm: 'string', nic: 'integer', ip: 'string' };
/** Most entries per section; a lab is made by hand. */
export const MAX_LAB_ENTRIES = 1024;

const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function checkKind(value: unknown, kind: Kind, path: LabPath): unknown {
  const fail = (what: string) => {
    throw new LabError(path, `expected ${what}, not ${JSON.stringify(value)}`);
  };
  switch (kind) {
    case 'string':
      // YAML reads `08002712345` or `1500` as numbers: a scalar is fine where text is expected.
      if (typeof value === 'number' && Number.isFinite(value)) return String(value);
      if (typeof value !== 'string') fail('text');
      return value;
    case 'boolean':
      if (typeof value !== 'boolean') fail('true or false');
      return value;
    case 'integer':
      if (typeof value !== 'number' || !Number.isInteger(value)) fail('a whole number');
      return value;
    case 'string[]':
      if (!Array.isArray(value)) fail('a list of text');
      return (value as unknown[]).map((v, i) => checkKind(v, 'string', [...path, i]));
    case 'map':
      if (!isMap(value)) fail('a mapping');
      return value;
    case 'list':
      if (!Array.isArray(value)) fail('a list');
      return value;
  }
}

function checkEntry(raw: unknown, keys: Record<string, Kind>, path: LabPath): Record<string, unknown> {
  if (!isMap(raw)) throw new LabError(path, 'expected a mapping of settings');
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    const kind = keys[key];
    if (!kind) throw new LabError([...path, key], `unknown setting '${key}'; expected one of ${Object.keys(keys).join(', ')}`);
    if (key === 'mac' && typeof value === 'number') throw new LabError([...path, key], "put the MAC address in quotes ('080027AABBCC') or write it with colons");
    out[key] = checkKind(value, kind, [...path, key]);
  }
  return out;
}

/** Parsed YAML/JSON → LabSpec; throws LabError at the first thing that is not a lab. */
export function checkLabShape(raw: unknown): LabSpec {
  if (raw === null || raw === undefined) return {};
  if (!isMap(raw)) throw new LabError([], 'a lab file is a mapping with natnetworks, hostonlyifs, dhcpservers and vms');
  const spec: LabSpec = {};
  for (const [section, value] of Object.entries(raw)) {
    if (section === 'version') {
      if (value !== 1) throw new LabError(['version'], `unsupported version ${JSON.stringify(value)}; this vnet reads version 1`);
      spec.version = 1;
      continue;
    }
    const keys = SECTIONS[section];
    if (!keys) throw new LabError([section], `unknown section '${section}'; expected ${['version', ...Object.keys(SECTIONS)].join(', ')}`);
    if (value === null) continue;
    if (!Array.isArray(value)) throw new LabError([section], 'expected a list');
    if (value.length > MAX_LAB_ENTRIES) throw new LabError([section], `too many entries (limit ${MAX_LAB_ENTRIES})`);
    const entries = value.map((entry, i) => {
      const path: LabPath = [section, i];
      const checked = checkEntry(entry, keys, path);
      if (section !== 'dhcpservers' && typeof checked.name !== 'string') throw new LabError(path, "missing 'name'");
      if (section === 'vms' && checked.nics !== undefined) {
        const nics: Record<string, LabNic> = {};
        for (const [slot, nic] of Object.entries(checked.nics as Record<string, unknown>)) {
          if (!/^[1-8]$/.test(slot)) throw new LabError([...path, 'nics', slot], `NIC numbers are 1 to 8, not '${slot}'`);
          nics[slot] = checkEntry(nic, NIC_KEYS, [...path, 'nics', slot]) as LabNic;
        }
        checked.nics = nics;
      }
      if (section === 'dhcpservers') {
        if (checked.options !== undefined) {
          for (const [code, v] of Object.entries(checked.options as Record<string, unknown>)) checkKind(v, 'string', [...path, 'options', code]);
          checked.options = Object.fromEntries(Object.entries(checked.options as Record<string, unknown>).map(([k, v]) => [k, String(v)]));
        }
        if (checked.fixed !== undefined) checked.fixed = (checked.fixed as unknown[]).map((f, j) => checkEntry(f, FIXED_KEYS, [...path, 'fixed', j]));
      }
      return checked;
    });
    (spec as Record<string, unknown>)[section] = entries;
  }
  return spec;
}

// --- Plan -----------------------------------------------------------------------

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);
const ruleKey = (r: PortForward): string => JSON.stringify([r.name, r.protocol, r.hostIp, r.hostPort, r.guestIp, r.guestPort]);

/** Rules to delete and add so that `current` becomes exactly `wanted`; none when equal. */
function forwardChange(current: PortForward[], wanted: string[], parse: (t: string) => PortForward, path: LabPath): { deleteForwards?: string[]; addForwards?: string[] } {
  const parsed = wanted.map((text, i) => at([...path, i], () => parse(text)));
  const a = current.map(ruleKey).sort();
  const b = parsed.map(ruleKey).sort();
  if (same(a, b)) return {};
  return { deleteForwards: current.map((r) => r.name), addForwards: wanted };
}

/** The steps that make `state` match `spec`. Throws LabError for any bad value; `state` is not touched. */
export function planLab(state: LabState, spec: LabSpec): LabStep[] {
  const sim: LabState = structuredClone(state);
  const steps: LabStep[] = [];

  (spec.natnetworks ?? []).forEach((entry, i) => {
    const path: LabPath = ['natnetworks', i];
    const current = sim.natNetworks.find((n) => n.name === entry.name);
    const change: NatNetworkChange = {};
    if (entry.network !== undefined) change.network = entry.network;
    if (entry.enabled !== undefined) change.enabled = entry.enabled;
    if (entry.dhcp !== undefined) change.dhcp = entry.dhcp;
    if (entry.localhostReachable !== undefined) change.localhostReachable = entry.localhostReachable;
    if (entry.network !== undefined) at([...path, 'network'], () => applyNatNetworkChange(current ?? createNatNetwork(entry.name, { network: '10.0.2.0/24' }), { network: entry.network }));
    if (!current) {
      if (entry.network === undefined) throw new LabError(path, `NAT network '${entry.name}' needs 'network' (e.g. 10.0.2.0/24) to be created`);
      const created = at(path, () => createNatNetwork(entry.name, change));
      const withRules = entry.portForwards
        ? at([...path, 'portForwards'], () => applyNatNetworkChange(created, { addForwards: entry.portForwards }))
        : created;
      const full = { ...change, ...(entry.portForwards ? { addForwards: entry.portForwards } : {}) };
      sim.natNetworks.push(withRules);
      steps.push({ op: 'natnetwork.add', name: entry.name, change: full, summary: `create NAT network ${entry.name} (${withRules.network})` });
      return;
    }
    Object.assign(change, entry.portForwards ? forwardChange(current.portForwards, entry.portForwards, parseNatNetworkRule, [...path, 'portForwards']) : {});
    const next = at(path, () => applyNatNetworkChange(current, change));
    if (same(next, current)) return;
    sim.natNetworks = sim.natNetworks.map((n) => (n === current ? next : n));
    steps.push({ op: 'natnetwork.modify', name: entry.name, change, summary: `update NAT network ${entry.name}` });
  });

  (spec.hostonlyifs ?? []).forEach((entry, i) => {
    const path: LabPath = ['hostonlyifs', i];
    let current = sim.hostOnlyIfs.find((h) => h.name === entry.name);
    if (!current) {
      current = at([...path, 'name'], () => nextHostOnlyIf(sim.hostOnlyIfs, entry.name));
      sim.hostOnlyIfs.push(current);
      const dhcp = defaultHostOnlyDhcp(current);
      if (!sim.dhcpServers.some((s) => s.network === dhcp.network)) sim.dhcpServers.push(dhcp);
      steps.push({ op: 'hostonlyif.create', name: entry.name, summary: `create host-only interface ${entry.name}` });
    }
    if (entry.ip === undefined && entry.netmask === undefined) return;
    if (entry.netmask !== undefined) at([...path, 'netmask'], () => netmaskText(entry.netmask, 'netmask'));
    const next = at([...path, 'ip'], () => applyHostOnlyIpconfig(current!, entry.ip ?? current!.ip, entry.netmask ?? current!.netmask));
    if (same(next, current)) return;
    const before = current;
    sim.hostOnlyIfs = sim.hostOnlyIfs.map((h) => (h === before ? next : h));
    const oldDefault = defaultHostOnlyDhcp(before);
    const server = sim.dhcpServers.find((s) => s.network === oldDefault.network);
    if (server && server.serverIp === oldDefault.serverIp && server.lowerIp === oldDefault.lowerIp && server.upperIp === oldDefault.upperIp && server.netmask === oldDefault.netmask) {
      const moved = { ...defaultHostOnlyDhcp(next), enabled: server.enabled, leaseTimeSec: server.leaseTimeSec, options: server.options };
      sim.dhcpServers = sim.dhcpServers.map((s) => (s === server ? moved : s));
    }
    steps.push({ op: 'hostonlyif.ipconfig', name: entry.name, ip: next.ip, netmask: next.netmask, summary: `set ${entry.name} to ${next.ip}/${next.netmask}` });
  });

  (spec.dhcpservers ?? []).forEach((entry, i) => {
    const path: LabPath = ['dhcpservers', i];
    const target = at(path, () => resolveDhcpTarget({ network: entry.network, interface: entry.interface }, sim.natNetworks.map((n) => n.name)));
    if (target.kind === 'hostonly' && !sim.hostOnlyIfs.some((h) => h.name === target.ifname)) {
      throw new LabError([...path, entry.interface !== undefined ? 'interface' : 'network'], `no host-only interface '${target.ifname}' (add it under hostonlyifs)`);
    }
    for (const field of ['serverIp', 'lowerIp', 'upperIp'] as const) {
      if (entry[field] !== undefined) at([...path, field], () => ipv4Text(entry[field], field));
    }
    if (entry.netmask !== undefined) at([...path, 'netmask'], () => netmaskText(entry.netmask, 'netmask'));
    const current = sim.dhcpServers.find((s) => s.network === target.network);
    const change: DhcpServerChange = {};
    for (const field of ['serverIp', 'netmask', 'lowerIp', 'upperIp', 'enabled'] as const) {
      if (entry[field] !== undefined) (change as Record<string, unknown>)[field] = entry[field];
    }
    if (entry.leaseTime !== undefined) change.leaseTimeSec = entry.leaseTime;
    if (entry.options !== undefined) {
      change.setOptions = entry.options;
      change.unsetOptions = Object.keys(current?.options ?? {}).filter((code) => !(code in entry.options!));
      for (const [code, value] of Object.entries(entry.options)) {
        at([...path, 'options', code], () => applyDhcpServerChange(defaultHostOnlyDhcp({ name: 'x', ip: '192.168.56.1', netmask: '255.255.255.0' }), { setOptions: { [code]: value } }));
      }
    }
    if (entry.fixed !== undefined) {
      const key = (f: DhcpFixedAddress) => (f.mac !== undefined ? `mac:${f.mac}` : `vm:${f.vm}/${f.nic ?? 1}`);
      const wanted = new Set(entry.fixed.map(key));
      change.fixed = [...(current?.fixed ?? []).filter((f) => !wanted.has(key(f))).map((f) => ({ ...f, ip: '' })), ...entry.fixed];
    }
    if (!current) {
      const created = at(path, () => createDhcpServer(target.network, target.kind, change));
      sim.dhcpServers.push(created);
      steps.push({ op: 'dhcpserver.add', network: target.network, change, summary: `add DHCP server for ${target.network} (${created.serverIp}, pool ${created.lowerIp}-${created.upperIp})` });
      return;
    }
    const next = at(path, () => applyDhcpServerChange(current, change));
    if (same(next, current)) return;
    sim.dhcpServers = sim.dhcpServers.map((s) => (s === current ? next : s));
    steps.push({ op: 'dhcpserver.modify', network: target.network, change, summary: `update DHCP server for ${target.network}` });
  });

  (spec.vms ?? []).forEach((entry, i) => {
    const path: LabPath = ['vms', i];
    let current = sim.vms.find((v) => v.name === entry.name);
    if (!current) {
      current = at([...path, 'name'], () => createVm(entry.name, entry.ostype ?? 'Other'));
      sim.vms.push(current);
      steps.push({ op: 'vm.create', name: entry.name, ostype: entry.ostype, summary: `create VM ${entry.name}` });
    }
    const change: VmChange = {};
    if (entry.ostype !== undefined && entry.ostype !== current.ostype) change.ostype = entry.ostype;
    for (const [slot, nic] of Object.entries(entry.nics ?? {})) {
      const nicPath: LabPath = [...path, 'nics', slot];
      const existing = current.nics[Number(slot) - 1]!;
      const nicChange: NicChange = {};
      for (const [field, value] of Object.entries(nic)) {
        if (field === 'portForwards') continue;
        if (field === 'genericProperties') {
          const wanted = Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, String(v)]));
          for (const key of Object.keys(existing.genericProperties)) if (!(key in wanted)) wanted[key] = '';
          nicChange.genericProperties = wanted;
          continue;
        }
        if (field === 'mac' && String(value).toLowerCase() === 'auto') throw new LabError([...nicPath, 'mac'], "'auto' would change the MAC on every apply; give a MAC or leave it out");
        (nicChange as Record<string, unknown>)[field] = value;
        at([...nicPath, field], () => applyVmChange(current!, { nics: { [slot]: { [field]: value } } }));
      }
      if (nic.portForwards) Object.assign(nicChange, forwardChange(existing.portForwards, nic.portForwards, parseNatRule, [...nicPath, 'portForwards']));
      (change.nics ??= {})[slot] = nicChange;
    }
    const next = at(path, () => applyVmChange(current!, change));
    if (same(next, current)) return;
    const before = current;
    sim.vms = sim.vms.map((v) => (v === before ? next : v));
    steps.push({ op: 'vm.modify', name: entry.name, change, summary: `configure VM ${entry.name}` });
  });

  return steps;
}

// --- Export ---------------------------------------------------------------------

/** The state as a lab spec: applying it to the same state plans no steps. */
export function exportLab(state: LabState): LabSpec {
  const spec: LabSpec = { version: 1 };
  if (state.natNetworks.length) {
    spec.natnetworks = state.natNetworks.map((n) => ({
      name: n.name,
      network: n.network,
      enabled: n.enabled,
      dhcp: n.dhcp,
      localhostReachable: n.localhostReachable,
      ...(n.portForwards.length ? { portForwards: n.portForwards.map((r) => `${r.name}:${r.protocol}:[${r.hostIp}]:${r.hostPort}:[${r.guestIp}]:${r.guestPort}`) } : {}),
    }));
  }
  if (state.hostOnlyIfs.length) spec.hostonlyifs = state.hostOnlyIfs.map((h) => ({ name: h.name, ip: h.ip, netmask: h.netmask }));
  if (state.dhcpServers.length) {
    spec.dhcpservers = state.dhcpServers.map((s) => ({
      ...(s.kind === 'hostonly' ? { interface: s.network.replace(/^HostInterfaceNetworking-/, '') } : { network: s.network }),
      serverIp: s.serverIp,
      netmask: s.netmask,
      lowerIp: s.lowerIp,
      upperIp: s.upperIp,
      enabled: s.enabled,
      leaseTime: s.leaseTimeSec,
      ...(Object.keys(s.options).length ? { options: { ...s.options } } : {}),
      ...(s.fixed.length ? { fixed: s.fixed.map((f) => ({ ...f })) } : {}),
    }));
  }
  if (state.vms.length) {
    spec.vms = state.vms.map((vm) => {
      const nics: Record<string, LabNic> = {};
      for (const nic of vm.nics) {
        const defaults = defaultNic(nic.slot);
        const out: Record<string, unknown> = {};
        for (const key of Object.keys(NIC_KEYS) as (keyof NicConfig)[]) {
          if (key === 'mac' || key === 'portForwards') continue;
          if (!same(nic[key], defaults[key])) out[key] = structuredClone(nic[key]);
        }
        if (nic.portForwards.length) out.portForwards = nic.portForwards.map(formatNatRule);
        if (nic.mode === 'none' && Object.keys(out).length === 0) continue;
        out.mode = nic.mode;
        if (nic.mode !== 'none') out.mac = nic.mac;
        nics[String(nic.slot)] = out as LabNic;
      }
      return { name: vm.name, ostype: vm.ostype, ...(Object.keys(nics).length ? { nics } : {}) };
    });
  }
  return spec;
}
