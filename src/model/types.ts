/**
 * The configuration vnet keeps: VMs and their NICs, in VirtualBox's terms.
 * Plain data, JSON-serialisable; validation lives in validate.ts.
 */

/** VirtualBox's attachment types (`--nic<N>`). */
export const ATTACHMENT_MODES = ['none', 'null', 'nat', 'natnetwork', 'intnet', 'hostonly', 'bridged', 'generic'] as const;
export type AttachmentMode = (typeof ATTACHMENT_MODES)[number];

/** `--nic-promisc<N>`: which frames not addressed to the NIC it may see. */
export const PROMISC_POLICIES = ['deny', 'allow-vms', 'allow-all'] as const;
export type PromiscPolicy = (typeof PROMISC_POLICIES)[number];

/** Generic drivers we implement (`--nic-generic-drv<N>`). */
export const GENERIC_DRIVERS = ['UDPTunnel'] as const;
export type GenericDriver = (typeof GENERIC_DRIVERS)[number];

/** VirtualBox gives every VM 8 network adapters. */
export const NIC_SLOTS = 8;

export interface NicConfig {
  /** 1-based adapter number, as in `--nic1`. */
  slot: number;
  mode: AttachmentMode;
  /** Lowercase colon form, `08:00:27:12:34:56`. */
  mac: string;
  cableConnected: boolean;
  promisc: PromiscPolicy;
  trace: boolean;
  /** Capture file; empty = `<vm folder>/nic<N>.pcap`. */
  traceFile: string;
  /** Name of the internal network (`--intnet<N>`), VirtualBox's default `intnet`. */
  intnet: string;
  genericDriver: GenericDriver | '';
  /** `--nic-property<N> key=value` (UDPTunnel: dest, sport, dport). */
  genericProperties: Record<string, string>;
  /** Link MTU the guest is told about; 0 = the mode's default. */
  mtu: number;
  /** NAT: the guest network (`--nat-net<N>`); empty = VirtualBox's 10.0.(N+1).0/24. */
  natNet: string;
  /** NAT: the gateway address reaches the host's 127.0.0.1 (`--nat-localhostreachable<N>`). */
  natLocalhostReachable: boolean;
  /** NAT: DNS answered through the host's own resolver (`--nat-dns-host-resolver<N>`). */
  natDnsHostResolver: boolean;
  /** NAT: port forwards (`--nat-pf<N>`). */
  portForwards: PortForward[];
  /** NAT Network name (`--nat-network<N>`), VirtualBox's default `NatNetwork`. */
  natNetwork: string;
}

export type ForwardProtocol = 'tcp' | 'udp';

/** A port forward: host `hostIp:hostPort` → guest `guestIp:guestPort`. */
export interface PortForward {
  name: string;
  protocol: ForwardProtocol;
  /** Empty = 127.0.0.1 (VirtualBox binds every address; we bind loopback unless told). */
  hostIp: string;
  hostPort: number;
  /** Empty = the guest's DHCP address. */
  guestIp: string;
  guestPort: number;
}

/** A NAT Network (`natnetwork add`): one NAT router shared by the VMs on it. */
export interface NatNetworkConfig {
  name: string;
  /** IPv4 CIDR, e.g. 10.0.2.0/24. */
  network: string;
  enabled: boolean;
  dhcp: boolean;
  /** The gateway reaches the host's 127.0.0.1. */
  localhostReachable: boolean;
  portForwards: PortForward[];
}

export interface VmConfig {
  name: string;
  uuid: string;
  ostype: string;
  nics: NicConfig[];
}

/** How a running VM is realised. Only `netns` exists so far. */
export interface RunningState {
  type: 'netns';
  /** Network namespace the VM's NICs live in. */
  netns: string;
  /** vnet created the namespace, so poweroff deletes it. */
  createdNetns: boolean;
  startedAt: string;
}

/** Everything vnet persists under $VNET_HOME/vnet.json. */
export interface VnetState {
  version: 1;
  vms: VmConfig[];
  running: Record<string, RunningState>;
  natNetworks: NatNetworkConfig[];
}

export const emptyState = (): VnetState => ({ version: 1, vms: [], running: {}, natNetworks: [] });
