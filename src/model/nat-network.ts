/** NAT Networks (`vnet natnetwork …`): creation and validated changes. */
import { invalid } from '../errors.js';
import { addRule, deleteRule, parseNatNetworkRule } from './port-forward.js';
import type { NatNetworkConfig } from './types.js';
import { natCidr, networkName } from './vm.js';

export interface NatNetworkChange {
  network?: string;
  enabled?: boolean;
  dhcp?: boolean;
  localhostReachable?: boolean;
  /** Rules in VirtualBox's NAT Network spelling, `name:tcp:[hostip]:hostport:[guestip]:guestport`. */
  addForwards?: string[];
  deleteForwards?: string[];
}

export function createNatNetwork(name: string, change: NatNetworkChange): NatNetworkConfig {
  const base: NatNetworkConfig = {
    name: networkName(name, 'NAT network name'),
    network: '10.0.2.0/24',
    enabled: true,
    dhcp: true,
    localhostReachable: false,
    portForwards: [],
  };
  if (change.network === undefined) throw invalid('natnetwork add: --network CIDR is required');
  return applyNatNetworkChange(base, change);
}

/** Apply to a copy; throws without touching `config`. */
export function applyNatNetworkChange(config: NatNetworkConfig, change: NatNetworkChange): NatNetworkConfig {
  const next: NatNetworkConfig = structuredClone(config);
  const where = `NAT network '${config.name}'`;
  if (change.network !== undefined) next.network = natCidr(change.network, `${where} network`);
  if (change.enabled !== undefined) next.enabled = Boolean(change.enabled);
  if (change.dhcp !== undefined) next.dhcp = Boolean(change.dhcp);
  if (change.localhostReachable !== undefined) next.localhostReachable = Boolean(change.localhostReachable);
  for (const name of change.deleteForwards ?? []) next.portForwards = deleteRule(next.portForwards, String(name), where);
  for (const text of change.addForwards ?? []) {
    const rule = parseNatNetworkRule(String(text));
    // A NAT Network has many guests: the rule must say which.
    if (!rule.guestIp) throw invalid(`${where}: port-forward rule '${text}' needs a guest IP`);
    next.portForwards = addRule(next.portForwards, rule, where);
  }
  return next;
}
