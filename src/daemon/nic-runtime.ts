/**
 * One running NIC: its transport (the guest side) plugged into a port of the
 * network its attachment mode names, with optional packet capture.
 *
 *   guest ──transport──► onFrame ──► [capture] ──► port.send ──► switch
 *   switch ──► deliver ──► [capture] ──► transport.send ──► guest
 *
 * Attachment `null` keeps the NIC but plugs it into nothing (VirtualBox's
 * "not attached"): the guest sees no carrier, and frames it sends are dropped.
 */
import { join } from 'node:path';
import type { NicConfig } from '../model/types.js';
import { VnetError } from '../errors.js';
import type { Switch, SwitchPort } from '../switch/switch.js';
import { PcapWriter } from '../transport/pcap.js';
import type { FrameTransport } from '../transport/types.js';
import { finishOffload } from '../wire/gso.js';
import { isUdpSegmentation, type FrameOffload } from '../wire/virtio-net.js';
import { UdpTunnelTransport } from '../transport/udp.js';
import type { Network, NetworkRegistry } from './network-registry.js';
import type { NatLan } from './nat-lan.js';
import type { NetworkLink } from './dhcp-servers.js';

/** A guest-side transport; TAPs can also show the cable state as carrier. */
export type GuestTransport = FrameTransport & { setCarrier?(on: boolean): void };

export interface NicRuntimeContext {
  vmName: string;
  vmFolder: string;
  registry: NetworkRegistry;
  /** A namespace guest's network namespace (a path): where spliced forwards connect (`--nat-splice<N>`). */
  guestNetns?: string;
  /** A NIC's own NAT LAN (`nat` mode); the NIC owns and closes it. */
  createNat(nic: NicConfig): Promise<NatLan>;
  /** The shared LAN of a NAT Network, started if needed; `release` when the NIC leaves. */
  natNetwork(name: string): Promise<NatLan>;
  releaseNatNetwork(name: string): void;
  /** `hostonly`: the switch of host-only interface `name` (throws if it does not exist). */
  hostOnly?(name: string): NetworkLink;
  /** `bridged`: an uplink onto the NIC's bridge adapter, on a switch of its own. */
  bridged?(nic: NicConfig): NetworkLink;
  /** `intnet`: a NIC joined the intnet on `sw` (its DHCP server, if any, serves it); `close` when it leaves. */
  joinIntnet?(name: string, sw: Switch): NetworkLink;
}

export interface NicStats {
  slot: number;
  mode: string;
  network: string | null;
  transport: FrameTransport['stats'];
  port: ReturnType<SwitchPort['snapshot']> | null;
  droppedUnattached: number;
}

export class NicRuntime {
  private network: Network | null = null;
  /** `nat`: the NIC's own LAN; `natnetwork`: the shared one (not ours to close). */
  private nat: NatLan | null = null;
  /** `hostonly`, `bridged`: the network we joined; `intnet`: our membership (for its DHCP server). */
  private link: NetworkLink | null = null;
  private port: SwitchPort | null = null;
  /** For UDPTunnel: the peer's side of the per-NIC network. */
  private uplink: { port: SwitchPort; transport: FrameTransport } | null = null;
  private capture: PcapWriter | null = null;
  private droppedUnattached = 0;

  private constructor(
    private nic: NicConfig,
    readonly transport: GuestTransport,
    private readonly context: NicRuntimeContext,
  ) {}

  /** Plug `transport` into the network `nic` names. Closes the transport if that fails. */
  static async start(nic: NicConfig, transport: GuestTransport, context: NicRuntimeContext): Promise<NicRuntime> {
    const runtime = new NicRuntime(nic, transport, context);
    try {
      await runtime.plug();
    } catch (err) {
      runtime.close();
      throw err;
    }
    return runtime;
  }

  get config(): NicConfig {
    return this.nic;
  }

  private async plug(): Promise<void> {
    const { nic, context } = this;
    switch (nic.mode) {
      case 'null':
        break;
      case 'intnet':
        this.network = context.registry.acquire('intnet', nic.intnet);
        this.link = context.joinIntnet?.(nic.intnet, this.network.switch) ?? null;
        break;
      case 'generic':
        this.network = context.registry.acquire('generic', `${context.vmName}/nic${nic.slot}`);
        await this.plugUdpTunnel(this.network.switch);
        break;
      case 'nat':
        this.nat = await context.createNat(nic);
        break;
      case 'hostonly':
        if (!context.hostOnly) throw new VnetError('VNET_ERR_NOT_SUPPORTED', `NIC ${nic.slot}: host-only networking is not available here`);
        this.link = context.hostOnly(nic.hostOnlyAdapter);
        break;
      case 'bridged':
        if (!context.bridged) throw new VnetError('VNET_ERR_NOT_SUPPORTED', `NIC ${nic.slot}: bridged networking is not available here`);
        this.link = context.bridged(nic);
        break;
      case 'natnetwork':
        this.nat = await context.natNetwork(nic.natNetwork);
        break;
      default:
        throw new VnetError('VNET_ERR_NOT_SUPPORTED', `NIC ${nic.slot}: attachment '${nic.mode}' is not implemented yet`);
    }
    const sw = this.network?.switch ?? this.nat?.switch ?? this.link?.switch;
    if (sw) {
      this.port = sw.attach({
        name: `${context.vmName}/nic${nic.slot}`,
        mac: macBytes(nic.mac),
        promisc: nic.promisc,
        kind: 'vm',
        takesUdpSegmentation: this.transport.acceptsUdpSegmentation === true,
        deliver: (frame, offload) => {
          this.capture?.write(frame);
          sendTo(this.transport, frame, offload);
        },
      });
    }
    this.transport.onFrame = (frame, offload) => {
      this.capture?.write(frame);
      if (this.port) this.port.send(frame, offload);
      else this.droppedUnattached++;
    };
    await this.applyLive(nic);
    this.transport.start();
  }

  private async plugUdpTunnel(sw: Switch): Promise<void> {
    const { nic } = this;
    if (nic.genericDriver !== 'UDPTunnel') {
      throw new VnetError('VNET_ERR_NOT_SUPPORTED', `NIC ${nic.slot}: generic driver '${nic.genericDriver || '(none)'}' is not supported; use UDPTunnel`);
    }
    const props = nic.genericProperties;
    // VirtualBox's UDPTunnel defaults: dest 127.0.0.1, sport and dport 4444.
    const tunnel = await UdpTunnelTransport.open({
      dest: props.dest ?? '127.0.0.1',
      sport: Number(props.sport ?? 4444),
      dport: Number(props.dport ?? 4444),
    });
    // The tunnel is a trunk to the peer's segment: it must see every frame.
    const port = sw.attach({ name: `${this.context.vmName}/nic${nic.slot}/udp`, promisc: 'allow-all', kind: 'host', deliver: (f, offload) => sendTo(tunnel, f, offload) });
    tunnel.onFrame = (frame) => port.send(frame);
    tunnel.start();
    this.uplink = { port, transport: tunnel };
  }

  /**
   * Settings that change without re-plugging: cable, promiscuous policy,
   * capture, a NAT NIC's splicing, forwards and host-loopback access. Forwards are
   * bound first: if a host port is taken, this throws and nothing changed.
   */
  async applyLive(nic: NicConfig): Promise<void> {
    if (this.nat) this.setSplice(nic.natSplice);
    if (nic.mode === 'nat' && this.nat) {
      try {
        await this.nat.setForwards(nic.portForwards);
      } catch (err) {
        this.setSplice(this.nic.natSplice);
        throw err;
      }
      this.nat.setLocalhostReachable(nic.natLocalhostReachable);
    }
    this.nic = nic;
    if (this.port) {
      this.port.linkUp = nic.cableConnected;
      this.port.promisc = nic.promisc;
    }
    this.transport.setCarrier?.(nic.cableConnected && nic.mode !== 'null');
    if (nic.trace && !this.capture) this.capture = PcapWriter.open(this.tracePath());
    if (!nic.trace && this.capture) {
      void this.capture.close();
      this.capture = null;
    }
  }

  /** Where this NIC's capture goes: `--nic-trace-file<N>` or `<vm folder>/nic<N>.pcap`. */
  tracePath(): string {
    return this.nic.traceFile || join(this.context.vmFolder, `nic${this.nic.slot}.pcap`);
  }

  /** The capture running on this NIC (`trace` on), with its counters; null when none. */
  get captureInfo(): { path: string; frames: number; dropped: number; bytesWritten: number } | null {
    if (!this.capture) return null;
    const { frames, dropped, bytesWritten } = this.capture.stats;
    return { path: this.capture.path, frames, dropped, bytesWritten };
  }

  /** Forwards to this NIC's guest splice in its namespace, or not (only namespace guests have one). */
  private setSplice(on: boolean): void {
    this.nat?.spliceGuest(this.nic.mac, on && this.context.guestNetns !== undefined ? this.context.guestNetns : null);
  }

  /** The switch port's cable state, or the config's when the NIC is on no switch. */
  get linkUp(): boolean {
    return this.port?.linkUp ?? this.nic.cableConnected;
  }

  /** The NAT LAN this NIC is on, if any. */
  get natLan(): NatLan | null {
    return this.nat;
  }

  stats(): NicStats {
    return {
      slot: this.nic.slot,
      mode: this.nic.mode,
      network: this.network?.key ?? this.nat?.config.key ?? this.link?.switch.name ?? null,
      transport: { ...this.transport.stats },
      port: this.port?.snapshot() ?? null,
      droppedUnattached: this.droppedUnattached,
    };
  }

  close(): void {
    this.transport.close();
    if (this.capture) void this.capture.close();
    this.capture = null;
    if (this.uplink) {
      this.uplink.transport.close();
      this.network?.switch.detach(this.uplink.port);
      this.uplink = null;
    }
    const sw = this.network?.switch ?? this.nat?.switch ?? this.link?.switch;
    if (sw && this.port) sw.detach(this.port);
    this.link?.close();
    this.link = null;
    if (this.network) this.context.registry.release(this.network);
    if (this.nat && this.nic.mode === 'nat') this.nat.close();
    if (this.nat && this.nic.mode === 'natnetwork') {
      this.nat.spliceGuest(this.nic.mac, null);
      this.nat.guestLeft(macBytes(this.nic.mac));
      this.context.releaseNatNetwork(this.nic.natNetwork);
    }
    this.network = null;
    this.nat = null;
    this.port = null;
  }
}

/** What forces a NIC to be re-plugged when it changes (the rest changes live, see `applyLive`). */
export function wiringKey(nic: NicConfig): string {
  return JSON.stringify([
    nic.mode, nic.mac, nic.mtu, nic.intnet, nic.genericDriver, nic.genericProperties,
    nic.natNet, nic.natDnsHostResolver, nic.natDnsPassDomain, nic.natTftpPrefix, nic.natTftpFile, nic.natTftpServer, nic.natBindIp, nic.natNetwork, nic.hostOnlyAdapter, nic.bridgeAdapter,
  ]);
}

/** Hand a frame to a transport, finishing its offloads in software if the transport cannot take them. */
function sendTo(transport: FrameTransport, frame: Uint8Array, offload: FrameOffload | undefined): void {
  const takes = offload === undefined || (transport.acceptsOffload && (!isUdpSegmentation(offload) || transport.acceptsUdpSegmentation === true));
  if (takes) transport.send(frame, offload);
  else finishOffload(frame, offload, (finished) => transport.send(finished));
}

function macBytes(mac: string): Uint8Array {
  return Uint8Array.from(mac.split(':'), (pair) => parseInt(pair, 16));
}
