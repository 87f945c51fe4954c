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
  /**
   * NAT: DHCP passes the host's DNS domain and search list (resolv.conf's
   * `search`/`domain`) to the guest as options 15 and 119
   * (`--nat-dns-pass-domain<N>`, on by default as VirtualBox's
   * `--natdnspassdomain<N>`).
   */
  natDnsPassDomain: boolean;
  /**
   * NAT, namespace guests: TCP forwards from host loopback clients are joined
   * in the kernel inside the guest's namespace instead of crossing the NIC
   * (`--nat-splice<N>`; src/nat/port-forwarder.ts).
   */
  natSplice: boolean;
  /** NAT: the directory the TFTP server (.4) serves (`--nat-tftp-prefix<N>`); empty = `<home>/TFTP`. */
  natTftpPrefix: string;
  /** NAT: the boot file DHCP names (`--nat-tftp-file<N>`); empty = `<VM name>.pxe`, as VirtualBox. */
  natTftpFile: string;
  /** NAT: the TFTP server DHCP names (`--nat-tftp-server<N>`); empty = the NAT's own (.4). */
  natTftpServer: string;
  /**
   * NAT: the host address the NAT's connections, UDP flows and pings to other
   * hosts leave from (`--nat-bind-ip<N>`, VirtualBox's `--natbindip<N>`); empty =
   * the host's routing picks. Loopback destinations are not bound.
   */
  natBindIp: string;
  /** NAT: port forwards (`--nat-pf<N>`). */
  portForwards: PortForward[];
  /** NAT Network name (`--nat-network<N>`), VirtualBox's default `NatNetwork`. */
  natNetwork: string;
  /** Host-only interface (`--host-only-adapter<N>`), e.g. `vboxnet0`. */
  hostOnlyAdapter: string;
  /** Host interface or Linux bridge of a bridged NIC (`--bridge-adapter<N>`). */
  bridgeAdapter: string;
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
  /** Guest RAM (`--memory`), MiB. */
  memoryMb: number;
  /** Virtual CPUs (`--cpus`). */
  cpus: number;
  /** Storage controllers (`storagectl`), in the order they were added. */
  storageControllers: StorageController[];
  /** Disks and DVD drives on the controllers (`storageattach`). */
  storage: StorageAttachment[];
  /** Boot devices in order (`--boot1` … `--boot4`); VirtualBox's default floppy, dvd, disk, none. */
  bootOrder: BootDevice[];
  /** Direct kernel boot for QEMU (`--kernel`, `--initrd`, `--append`); empty = boot from the disks. */
  kernel: string;
  initrd: string;
  kernelArgs: string;
}

/** VirtualBox's boot devices (`--boot<1-4>`). */
export const BOOT_DEVICES = ['none', 'floppy', 'dvd', 'disk', 'net'] as const;
export type BootDevice = (typeof BOOT_DEVICES)[number];
/** VirtualBox has four boot positions. */
export const BOOT_POSITIONS = 4;

/** VirtualBox's storage buses (`storagectl --add`). */
export const STORAGE_BUSES = ['ide', 'sata', 'scsi', 'virtio'] as const;
export type StorageBus = (typeof STORAGE_BUSES)[number];

export interface StorageController {
  /** `--name`, e.g. `SATA`. */
  name: string;
  bus: StorageBus;
}

export type DeviceType = 'hdd' | 'dvddrive';

/** One device on a controller: a disk, or a DVD drive (`medium` empty = no disc). */
export interface StorageAttachment {
  controller: string;
  port: number;
  device: number;
  type: DeviceType;
  /** Absolute path of the image; empty for an empty DVD drive. */
  medium: string;
}

export const MEDIUM_FORMATS = ['VDI', 'QCOW2', 'RAW'] as const;
export type MediumFormat = (typeof MEDIUM_FORMATS)[number];

/** A registered medium (`createmedium`, `list hdds`, `closemedium`). */
export interface MediumConfig {
  uuid: string;
  /** Absolute path. */
  location: string;
  format: MediumFormat;
  kind: 'hdd' | 'dvd';
  /** Virtual size in MiB (0 if unknown, e.g. an ISO registered by attaching it). */
  sizeMb: number;
}

/** How a running VM is realised. */
export type RunningState = NetnsRunningState | QemuRunningState;

/** `startvm --type netns`: the VM's NICs are TAPs in a network namespace. */
export interface NetnsRunningState {
  type: 'netns';
  /** Network namespace the VM's NICs live in. */
  netns: string;
  /** vnet created the namespace, so poweroff deletes it. */
  createdNetns: boolean;
  startedAt: string;
}

/** `startvm --type headless` (vnet runs QEMU) or `--type external` (the user does; vnet only listens). */
export interface QemuRunningState {
  type: 'headless' | 'external';
  /** QEMU's process id; 0 for `external`. */
  pid: number;
  /** QMP control socket; empty for `external`. */
  qmpSocket: string;
  /** The daemon's socket of each attached NIC, by slot (see `nicLink`). */
  nicSockets: Record<string, string>;
  /**
   * How QEMU's NICs reach those sockets: `-netdev stream` (absent: state
   * saved before there was a choice) or `-netdev dgram` (src/daemon/qemu-vm.ts).
   */
  nicLink?: QemuNicLink;
  startedAt: string;
}

/** `stream`: QEMU connects to the daemon's socket; `dgram`: QEMU sends datagrams to it from a socket of its own. */
export type QemuNicLink = 'stream' | 'dgram';

/** Everything vnet persists under $VNET_HOME/vnet.json. */
export interface VnetState {
  version: 1;
  vms: VmConfig[];
  running: Record<string, RunningState>;
  natNetworks: NatNetworkConfig[];
  /** Registered media (`createmedium`, `list hdds`). */
  media?: MediumConfig[];
  /** VMs whose QEMU died on its own, with the reason from its log. */
  aborted?: Record<string, { reason: string; at: string }>;
  /** Host-only interfaces (`hostonlyif create`). */
  hostOnlyIfs?: HostOnlyIfConfig[];
  /** DHCP servers of internal networks, host-only interfaces and NAT Networks (`dhcpserver add`). */
  dhcpServers?: DhcpServerSettings[];
}

/** A host-only interface: `vboxnetN` on the host, with its address. */
export interface HostOnlyIfConfig {
  name: string;
  ip: string;
  netmask: string;
}

/** Which kind of network a `dhcpserver` serves. */
export type DhcpServerKind = 'intnet' | 'hostonly' | 'natnet';

/** A fixed address, for a MAC or for a VM's NIC (resolved to its MAC when the server starts). */
export interface DhcpFixedAddress {
  mac?: string;
  vm?: string;
  nic?: number;
  ip: string;
}

/** A `dhcpserver` object, in VirtualBox's terms. */
export interface DhcpServerSettings {
  /** VirtualBox's network name: the intnet or NAT Network name, or `HostInterfaceNetworking-vboxnetN`. */
  network: string;
  kind: DhcpServerKind;
  serverIp: string;
  netmask: string;
  lowerIp: string;
  upperIp: string;
  enabled: boolean;
  leaseTimeSec: number;
  /** `--set-opt`: option code → text value, or `hex:…` for raw bytes. */
  options: Record<string, string>;
  fixed: DhcpFixedAddress[];
}

export const emptyState = (): VnetState => ({ version: 1, vms: [], running: {}, natNetworks: [] });
