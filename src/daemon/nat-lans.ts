/**
 * Builds NAT LANs from the model: a NIC's private NAT (VirtualBox defaults:
 * NIC N on 10.0.(N+1).0/24, gateway .2, DNS .3, TFTP .4, guest .15) and the shared
 * NAT Networks (gateway and DNS .1, DHCP server .3, pool .4 up). A NAT
 * Network runs while a NIC uses it or after `natnetwork start`.
 */
import { VnetError } from '../errors.js';
import { FileLeaseStore } from '../model/lease-store.js';
import type { NatNetworkConfig, NicConfig, VmConfig } from '../model/types.js';
import { join } from 'node:path';
import { parseCidr, parseIpv4 } from '../wire/address.js';
import { NatLan, type NatLanConfig } from './nat-lan.js';
import type { Lease, LeaseEvent } from '../services/dhcp/server.js';

/** Ethernet's MTU unless the NIC says otherwise. */
export const DEFAULT_MTU = 1500;

/** The last host number of a network (the one before its broadcast address). */
const lastHost = (cidr: string): number => 2 ** (32 - parseCidr(cidr).prefix) - 2;

export const defaultNatCidr = (slot: number): string => `10.0.${slot + 1}.0/24`;

interface RunningNatNetwork {
  lan: NatLan;
  users: number;
  started: boolean;
}

export class NatLans {
  private readonly natNetworks = new Map<string, RunningNatNetwork>();

  constructor(
    private readonly home: string,
    private readonly config: () => NatNetworkConfig[],
    private readonly vmNameForMac: (mac: string) => string | undefined,
    private readonly log: (line: string) => void,
    /** Told of every lease change on any NAT LAN, with the LAN's key. */
    private readonly onLease?: (network: string, lease: Lease, event: LeaseEvent) => void,
  ) {}

  /** A NIC's own NAT LAN. */
  createNat(vm: VmConfig, nic: NicConfig): Promise<NatLan> {
    const key = `nat:${vm.name}/nic${nic.slot}`;
    const cidr = nic.natNet || defaultNatCidr(nic.slot);
    return NatLan.create({
      key,
      cidr,
      gatewayHost: 2,
      dnsHost: 3,
      dhcp: { serverHost: 2, first: 15, last: lastHost(cidr) },
      tftp: {
        host: 4,
        root: nic.natTftpPrefix || join(this.home, 'TFTP'),
        bootFile: nic.natTftpFile || `${vm.name}.pxe`,
        ...(nic.natTftpServer ? { nextServer: parseIpv4(nic.natTftpServer) } : {}),
      },
      defaultGuestHost: 15,
      localhostReachable: nic.natLocalhostReachable,
      dnsHostResolver: nic.natDnsHostResolver,
      passDomain: nic.natDnsPassDomain,
      ...(nic.natBindIp ? { bindIp: nic.natBindIp } : {}),
      mtu: nic.mtu || DEFAULT_MTU,
      forwards: nic.portForwards,
      leaseStore: new FileLeaseStore(this.home, key),
      vmNameForMac: this.vmNameForMac,
      log: this.log,
      onLease: (lease, event) => this.onLease?.(key, lease, event),
    });
  }

  /** The running LAN of NAT Network `name`, started if needed; counts a user. */
  async acquire(name: string, explicitStart = false): Promise<NatLan> {
    let running = this.natNetworks.get(name);
    if (!running) {
      const config = this.find(name);
      if (!config.enabled) throw new VnetError('VNET_ERR_INVALID_STATE', `NAT network '${name}' is disabled; enable it with 'natnetwork modify --netname ${name} --enable'`);
      const key = `natnet:${name}`;
      const lan = await NatLan.create({
        key,
        cidr: config.network,
        gatewayHost: 1,
        dnsHost: 1,
        dhcp: this.natNetworkDhcp(name, config),
        defaultGuestHost: 4,
        localhostReachable: config.localhostReachable,
        dnsHostResolver: false,
        mtu: DEFAULT_MTU,
        forwards: config.portForwards,
        leaseStore: new FileLeaseStore(this.home, key),
        vmNameForMac: this.vmNameForMac,
        log: this.log,
        onLease: (lease, event) => this.onLease?.(key, lease, event),
      });
      running = { lan, users: 0, started: false };
      this.natNetworks.set(name, running);
      this.log(`NAT network ${name} (${config.network}) up`);
    }
    if (explicitStart) running.started = true;
    else running.users++;
    return running.lan;
  }

  /**
   * How a `dhcpserver` for NAT Network `name` shapes its DHCP server: null for
   * none, undefined for the defaults (server .3, pool .4 up). Set by the daemon.
   */
  dhcpFor?: (name: string, cidr: { network: number; mask: number }) => NatLanConfig['dhcp'] | undefined;

  private natNetworkDhcp(name: string, config: NatNetworkConfig): NatLanConfig['dhcp'] {
    if (!config.dhcp) return null;
    const override = this.dhcpFor?.(name, parseCidr(config.network));
    return override === undefined ? { serverHost: 3, first: 4, last: lastHost(config.network) } : override;
  }

  /** A NIC left NAT Network `name` (or `natnetwork stop` when `explicitStop`). */
  release(name: string, explicitStop = false): void {
    const running = this.natNetworks.get(name);
    if (!running) return;
    if (explicitStop) running.started = false;
    else running.users--;
    if (running.users <= 0 && !running.started) {
      running.lan.close();
      this.natNetworks.delete(name);
      this.log(`NAT network ${name} down`);
    }
  }

  running(name: string): NatLan | undefined {
    return this.natNetworks.get(name)?.lan;
  }

  isUsed(name: string): boolean {
    return (this.natNetworks.get(name)?.users ?? 0) > 0;
  }

  /** Apply a changed NAT Network to its running LAN (forwards, loopback access). */
  async update(config: NatNetworkConfig): Promise<void> {
    const lan = this.running(config.name);
    if (!lan) return;
    await lan.setForwards(config.portForwards);
    lan.setLocalhostReachable(config.localhostReachable);
  }

  list(): NatLan[] {
    return [...this.natNetworks.values()].map((r) => r.lan);
  }

  closeAll(): void {
    for (const running of this.natNetworks.values()) running.lan.close();
    this.natNetworks.clear();
  }

  private find(name: string): NatNetworkConfig {
    const config = this.config().find((n) => n.name === name);
    if (!config) throw new VnetError('VNET_ERR_NOT_FOUND', `no NAT network named '${name}'; create it with 'vnet natnetwork add --netname ${name} --network CIDR'`);
    return config;
  }
}
