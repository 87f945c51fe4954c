/**
 * Bridged NICs: the guest appears on a host LAN with its own MAC. Two ways,
 * chosen by what the adapter (`--bridge-adapter<N> IF`, in the daemon's
 * network namespace) is:
 *
 * - IF is a Linux bridge: a persistent TAP `vb<hash><N>` is made in the
 *   daemon's namespace and enslaved to it (`ip link set TAP master IF up`).
 *   The bridge forwards to it like to any port.
 * - IF is an ordinary interface (Ethernet, veth, bond, …): a macvtap device
 *   `vm<hash><N>` in bridge mode on IF, with the guest's MAC; its character
 *   device `/dev/tap<ifindex>` carries the frames (with a 10-byte virtio-net
 *   header, IFF_VNET_HDR being macvtap's default). We chose macvtap over an
 *   AF_PACKET socket: it needs no promiscuous mode on IF, the kernel filters
 *   by the guest's MAC, and it reuses the TAP-style fd path.
 *
 * Either way the uplink and the guest's NIC meet on a two-port switch:
 *
 *   guest ─transport─► NIC port ─► switch ─► uplink port ─► TAP/macvtap ─► LAN
 *   LAN ─► TAP/macvtap ─► [address snoop] ─► uplink port ─► switch ─► guest
 *
 * The uplink port has no MAC of its own (it stands for the whole LAN) and sees
 * every frame of the guest; frames from the LAN to other MACs do not reach
 * the guest (its port's promiscuous policy decides, as on any switch).
 */
import { createHash } from 'node:crypto';
import { constants, existsSync, openSync } from 'node:fs';
import { VnetError, notFound } from '../errors.js';
import { ip } from '../host/netns.js';
import type { NicConfig } from '../model/types.js';
import { Switch } from '../switch/switch.js';
import { FdTransport } from '../transport/fd-transport.js';
import { TapTransport } from '../transport/tap.js';
import type { FrameTransport } from '../transport/types.js';
import type { AddressSnoop } from './address-snoop.js';
import type { NetworkLink } from './dhcp-servers.js';
import { hostLinkExists } from './host-only.js';

/** Size of `struct virtio_net_hdr`, which macvtap puts before every frame by default. */
const VIRTIO_NET_HDR_LENGTH = 10;
/** How long we wait for devtmpfs to publish a new macvtap's /dev/tapN. */
const DEVICE_WAIT_MS = 2000;

/** A candidate for `--bridge-adapter`, as `list bridgedifs` shows it. */
export interface BridgedIfView {
  name: string;
  kind: 'bridge' | 'ethernet';
  mac: string;
  status: 'Up' | 'Down';
  addresses: string[];
  mtu: number;
}

interface LinkJson {
  ifname: string;
  ifindex: number;
  address?: string;
  mtu?: number;
  operstate?: string;
  flags?: string[];
  master?: string;
  link_type?: string;
  linkinfo?: { info_kind?: string; info_slave_kind?: string };
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

function links(args: string[] = []): LinkJson[] {
  return JSON.parse(ip(['-j', '-d', 'addr', 'show', ...args]) || '[]') as LinkJson[];
}

/** Interfaces vnet makes itself, never offered as bridge adapters. */
const OWN_DEVICE = /^(vb[0-9a-f]{8}\d+|vm[0-9a-f]{8}\d+)$/;
/** Kinds of devices that make no sense to bridge onto. */
const NOT_BRIDGEABLE = new Set(['tun', 'macvtap', 'ipip', 'gre', 'sit', 'vti', 'wireguard', 'dummy']);

/** Interfaces of the daemon's namespace a bridged NIC can use: bridges and Ethernet-like links that are not already a bridge's port. */
export function listBridgedIfs(): BridgedIfView[] {
  return links()
    .filter((l) => l.link_type === 'ether' && !l.master && !OWN_DEVICE.test(l.ifname) && !NOT_BRIDGEABLE.has(l.linkinfo?.info_kind ?? ''))
    .map((l) => ({
      name: l.ifname,
      kind: l.linkinfo?.info_kind === 'bridge' ? 'bridge' : 'ethernet',
      mac: l.address ?? '',
      status: (l.flags ?? []).includes('UP') ? 'Up' : 'Down',
      addresses: (l.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`),
      mtu: l.mtu ?? 1500,
    }));
}

/** Frames through a macvtap's character device. */
class MacvtapTransport extends FdTransport {
  readonly kind = 'macvtap';

  static open(path: string): MacvtapTransport {
    const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
    return new MacvtapTransport(fd, { headerLength: VIRTIO_NET_HDR_LENGTH });
  }
}

/** The uplink's device name: stable per VM and NIC, at most 15 bytes. */
function deviceName(prefix: 'vb' | 'vm', vmName: string, slot: number): string {
  return `${prefix}${createHash('sha256').update(vmName).digest('hex').slice(0, 8)}${slot}`;
}

export interface BridgedOptions {
  vmName: string;
  nic: NicConfig;
  snoop: AddressSnoop;
  log?: (line: string) => void;
}

/** Plug a bridged NIC's uplink onto its adapter; the NIC attaches to the returned switch. */
export function openBridged({ vmName, nic, snoop, log = () => {} }: BridgedOptions): NetworkLink {
  const adapter = nic.bridgeAdapter;
  if (!adapter) throw new VnetError('VNET_ERR_INVALID_VALUE', `NIC ${nic.slot}: a bridged NIC needs an adapter: --bridge-adapter${nic.slot} IF ('vnet list bridgedifs' shows candidates)`);
  const [link] = hostLinkExists(adapter) ? links(['dev', adapter]) : [];
  if (!link) throw notFound(`NIC ${nic.slot}: no interface '${adapter}' in the daemon's network namespace ('vnet list bridgedifs' shows candidates)`);
  const isBridge = link.linkinfo?.info_kind === 'bridge';
  const device = deviceName(isBridge ? 'vb' : 'vm', vmName, nic.slot);
  const network = `bridged:${adapter}`;
  const guestMac = Uint8Array.from(nic.mac.split(':'), (h) => parseInt(h, 16));
  if (hostLinkExists(device)) ip(['link', 'delete', 'dev', device]); // left by a daemon that was killed
  let uplink: FrameTransport;
  try {
    uplink = isBridge ? openBridgeTap(device, adapter) : openMacvtap(device, adapter, nic.mac);
  } catch (err) {
    if (hostLinkExists(device)) ip(['link', 'delete', 'dev', device]);
    if ((err as VnetError).code === 'VNET_ERR_PERMISSION') {
      throw new VnetError('VNET_ERR_PERMISSION', `NIC ${nic.slot}: bridging onto '${adapter}' needs CAP_NET_ADMIN in the daemon's network namespace (run 'vnet daemon' as root); ${(err as Error).message}`, { cause: err });
    }
    throw err;
  }
  const sw = new Switch(`${network}:${vmName}/nic${nic.slot}`);
  const port = sw.attach({
    name: `${device}/uplink`,
    kind: 'host',
    promisc: 'allow-all',
    deliver: (frame) => {
      snoop.fromGuest(network, guestMac, frame);
      uplink.send(frame);
    },
  });
  uplink.onFrame = (frame) => {
    snoop.toGuest(network, guestMac, frame);
    port.send(frame);
  };
  uplink.onClose = (reason) => log(`bridged uplink ${device} on ${adapter} went away: ${reason}`);
  uplink.start();
  log(`${vmName} NIC ${nic.slot} bridged onto ${adapter} through ${isBridge ? 'TAP' : 'macvtap'} ${device}`);
  let closed = false;
  return {
    switch: sw,
    close: () => {
      if (closed) return;
      closed = true;
      uplink.close();
      sw.detach(port);
      snoop.forget(network, nic.mac);
      try {
        if (hostLinkExists(device)) ip(['link', 'delete', 'dev', device]);
      } catch (err) {
        log(`could not delete ${device}: ${(err as Error).message}`);
      }
    },
  };
}

function openBridgeTap(device: string, bridge: string): FrameTransport {
  ip(['tuntap', 'add', 'dev', device, 'mode', 'tap']);
  ip(['link', 'set', 'dev', device, 'master', bridge]);
  ip(['link', 'set', 'dev', device, 'up']);
  return TapTransport.open({ ifname: device });
}

function openMacvtap(device: string, lower: string, mac: string): FrameTransport {
  ip(['link', 'add', 'link', lower, 'name', device, 'type', 'macvtap', 'mode', 'bridge']);
  ip(['link', 'set', 'dev', device, 'address', mac, 'up']);
  const [link] = links(['dev', device]);
  const path = `/dev/tap${link!.ifindex}`;
  const deadline = Date.now() + DEVICE_WAIT_MS;
  while (!existsSync(path)) {
    if (Date.now() > deadline) throw new VnetError('VNET_ERR_HOST', `macvtap ${device} has no character device ${path} (is devtmpfs mounted on /dev?)`);
    // devtmpfs publishes the node asynchronously; a short synchronous wait keeps plug() simple.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
  return MacvtapTransport.open(path);
}
