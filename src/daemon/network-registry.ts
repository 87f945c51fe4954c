/**
 * The virtual networks that exist right now: one learning switch per network,
 * created when the first NIC attaches and dropped when the last one leaves
 * (VirtualBox's internal networks are implied by name in the same way).
 */
import { Switch } from '../switch/switch.js';

export type NetworkKind = 'intnet' | 'generic';

export interface Network {
  key: string;
  kind: NetworkKind;
  name: string;
  switch: Switch;
}

/** Upper bound on live networks; each costs a switch and its MAC table. */
export const MAX_NETWORKS = 1024;

export class NetworkRegistry {
  private readonly networks = new Map<string, Network>();

  static key(kind: NetworkKind, name: string): string {
    return `${kind}:${name}`;
  }

  /** The network named so, created on first use. */
  acquire(kind: NetworkKind, name: string): Network {
    const key = NetworkRegistry.key(kind, name);
    let network = this.networks.get(key);
    if (!network) {
      if (this.networks.size >= MAX_NETWORKS) throw new Error(`too many networks (limit ${MAX_NETWORKS})`);
      network = { key, kind, name, switch: new Switch(key) };
      this.networks.set(key, network);
    }
    return network;
  }

  /** Forget the network once nothing is attached to it. */
  release(network: Network): void {
    if (network.switch.attached.length === 0) this.networks.delete(network.key);
  }

  get(key: string): Network | undefined {
    return this.networks.get(key);
  }

  list(kind?: NetworkKind): Network[] {
    return [...this.networks.values()].filter((n) => kind === undefined || n.kind === kind);
  }
}
