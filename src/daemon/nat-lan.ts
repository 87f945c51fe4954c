/**
 * One NAT LAN: the guests' switch plus the router on it — a NIC's private NAT
 * network (`nat`, VirtualBox: one per NIC) or a NAT Network shared by VMs
 * (`natnetwork`).
 *
 *   guest ─► switch ─► gateway (ARP, ICMP echo, IPv4 checks)
 *                        ├─ local: DHCP :67, DNS .dns:53 (UDP and TCP), TFTP .4:69 (NAT),
 *                        │         forwarded-flow replies,
 *                        │         gateway → host 127.0.0.1 when localhost is reachable
 *                        └─ forward: TCP NAT, UDP NAT, ICMP echo NAT → host sockets
 *   host sockets / port-forward listeners ─► gateway.sendIpv4 ─► switch ─► guest
 */
import { closeSync, openSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { Switch } from '../switch/switch.js';
import { Gateway } from '../stack/gateway.js';
import { formatIpv4, formatMac, isLoopbackText, parseCidr, parseMac, BROADCAST_MAC } from '../wire/address.js';
import { DhcpView, emitDhcp, dhcpLength, parseDhcp, DHCP_SERVER_PORT, DHCP_CLIENT_PORT } from '../wire/dhcpv4.js';
import { Icmpv4Type, Icmpv4UnreachableCode, Icmpv4View } from '../wire/icmpv4.js';
import { IPV4_HEADER_LENGTH, IpProtocol, Ipv4View } from '../wire/ipv4.js';
import { TcpView } from '../wire/tcp.js';
import { UDP_HEADER_LENGTH, UdpView } from '../wire/udp.js';
import { WireError } from '../wire/errors.js';
import { get16 } from '../wire/bytes.js';
import { TcpNat } from '../nat/tcp/tcp-nat.js';
import type { OpenHostStream } from '../nat/tcp/host-stream.js';
import { UdpNat } from '../nat/udp-nat.js';
import { IcmpEchoNat } from '../nat/icmp-echo.js';
import { PortForwarder, type PortForward } from '../nat/port-forwarder.js';
import { DhcpServer, type Lease, type LeaseEvent, type LeaseStore } from '../services/dhcp/server.js';
import { DnsProxy } from '../services/dns/proxy.js';
import { readResolvConf } from '../services/dns/resolv-conf.js';
import { TftpServer } from '../services/tftp/server.js';
import { NativeHostStreams } from '../transport/tcp-socket.js';
import { openNativeIcmpSocket } from '../transport/icmp-socket.js';
import { openNativeUdpSockets } from '../transport/udp-socket.js';

export interface NatLanConfig {
  /** `nat:VM/nicN` or `natnet:NAME`. */
  key: string;
  /** Guest network, e.g. 10.0.2.0/24. */
  cidr: string;
  /** Host number of the gateway in the network (NAT .2, NAT Network .1). */
  gatewayHost: number;
  /** Host number of the DNS proxy (NAT .3, NAT Network: the gateway). */
  dnsHost: number;
  /** DHCP pool as host numbers, or null for no DHCP server. */
  dhcp: {
    serverHost: number;
    first: number;
    last: number;
    /** Default one day (VirtualBox NAT's). */
    leaseTimeSec?: number;
    /** Addresses tied to MACs (`dhcpserver --mac-address … --fixed-address …`). */
    fixed?: { mac: string; ip: number }[];
  } | null;
  /**
   * Network boot (NAT only): the TFTP server at host number `host` serving
   * `root`, and DHCP naming `nextServer` (an address; default the TFTP
   * server's) and `bootFile`.
   */
  tftp?: { host: number; root: string; bootFile: string; nextServer?: number };
  /** Where a forward without a guest IP goes when no lease says better (NAT: .15). */
  defaultGuestHost: number;
  localhostReachable: boolean;
  dnsHostResolver: boolean;
  /** DHCP hands out the host's DNS domain and search list (options 15 and 119; NAT `--nat-dns-pass-domain<N>`). */
  passDomain?: boolean;
  /** Host address the connections, UDP flows and pings to other hosts leave from (NAT `--nat-bind-ip<N>`). */
  bindIp?: string;
  mtu: number;
  forwards: PortForward[];
  leaseStore?: LeaseStore;
  /** Names of VMs by MAC, so DNS can answer for them. */
  vmNameForMac?: (mac: string) => string | undefined;
  log?: (line: string) => void;
  /** Told when the DHCP server grants, releases or expires a lease (for the event stream). */
  onLease?: (lease: Lease, event: LeaseEvent) => void;
  /** Opens the TCP NAT's host connections instead of the addon's sockets (bench/js-path.ts plays the host with it). */
  openHostStream?: OpenHostStream;
}

/** VirtualBox NAT's gateway MAC prefix (52:54:00:12:35:xx); the last byte is the gateway's host number. */
const GATEWAY_MAC_PREFIX = [0x52, 0x54, 0x00, 0x12, 0x35];
const LOOPBACK = '127.0.0.1';

/** True if one of this host's interfaces (in the daemon's namespace) has `ip`. */
function hostHasAddress(ip: string): boolean {
  return Object.values(networkInterfaces()).some((addresses) => addresses?.some((a) => a.address === ip));
}

/** Destinations a guest may never reach through the NAT (RFC 1122 §3.2.1.3, RFC 5735). */
function isMartian(ip: number): boolean {
  const first = ip >>> 24;
  return first === 0 || first === 127 || first >= 224;
}

export class NatLan {
  readonly switch: Switch;
  readonly gateway: Gateway;
  readonly tcp: TcpNat;
  /** The TCP NAT's host sockets and the port forwards' listeners (the addon's, no net.Socket each). */
  private readonly hostStreams = new NativeHostStreams();
  readonly udp: UdpNat;
  readonly icmp: IcmpEchoNat;
  readonly dhcp: DhcpServer | null;
  readonly dns: DnsProxy;
  readonly tftp: TftpServer | null;
  readonly forwarder: PortForwarder;
  private readonly gatewayIp: number;
  private readonly dnsIp: number;
  private readonly dhcpServerIp: number;
  private readonly tftpIp: number;
  private localhostReachable: boolean;
  /** Namespaces (open fds) of the guests whose forwards splice, by MAC (see spliceGuest). */
  private readonly spliceNetns = new Map<string, number>();

  private constructor(readonly config: NatLanConfig) {
    const cidr = parseCidr(config.cidr);
    const at = (host: number) => (cidr.network + host) >>> 0;
    this.gatewayIp = at(config.gatewayHost);
    this.dnsIp = at(config.dnsHost);
    this.dhcpServerIp = at(config.dhcp?.serverHost ?? config.gatewayHost);
    this.tftpIp = config.tftp ? at(config.tftp.host) : 0;
    this.localhostReachable = config.localhostReachable;
    this.switch = new Switch(config.key);
    this.gateway = new Gateway({
      mac: Uint8Array.from([...GATEWAY_MAC_PREFIX, config.gatewayHost & 0xff]),
      addresses: [...new Set([this.gatewayIp, this.dnsIp, ...(config.dhcp ? [at(config.dhcp.serverHost)] : []), ...(config.tftp ? [this.tftpIp] : [])])],
      network: cidr.network,
      mask: cidr.mask,
      mtu: config.mtu,
    });
    const port = this.switch.attach({ name: `${config.key}/gateway`, mac: this.gateway.mac, kind: 'service', deliver: (f, offload) => this.gateway.fromNetwork(f, offload) });
    this.gateway.output = (frame, offload) => port.send(frame, offload);
    this.gateway.reachesUdpSegmentation = (mac) => this.switch.takesUdpSegmentation(mac);
    this.gateway.handlers = {
      local: (ip, mac, pending) => this.local(ip, mac, pending),
      forward: (ip, _mac, pending) => this.forward(ip, pending),
      unreachable: (quoted, code) => this.unreachable(quoted, code),
    };
    // `--nat-bind-ip<N>` for flows to other hosts; the host's own loopback is reached as it always is.
    const bindIp = config.bindIp;
    const sourceFor = bindIp === undefined ? undefined : (host: string) => (isLoopbackText(host) ? undefined : bindIp);
    this.tcp = new TcpNat({
      link: this.gateway,
      sendIcmpUnreachable: (original, code) => this.gateway.sendIcmpError(original, Icmpv4Type.DestinationUnreachable, code),
      connect:
        config.openHostStream ??
        (sourceFor === undefined ? this.hostStreams.open : (host, port, events) => this.hostStreams.open(host, port, events, sourceFor(host))),
    });
    this.udp = new UdpNat({ link: this.gateway, openSockets: openNativeUdpSockets, ...(sourceFor !== undefined ? { sourceAddress: sourceFor } : {}) });
    // The ICMP socket opens on the first echo request; stats() says if it could not.
    this.icmp = new IcmpEchoNat({ link: this.gateway, openSocket: (handlers) => openNativeIcmpSocket(handlers, undefined, config.bindIp) });
    const resolv = readResolvConf(process.env.VNET_RESOLV_CONF);
    // As VirtualBox's NAT: the host's domain is the first of its search list (resolv.conf(5)).
    const domain = config.passDomain && resolv.search.length > 0 ? { domainName: resolv.search[0]!, searchDomains: resolv.search } : {};
    this.dhcp = config.dhcp
      ? new DhcpServer(
          {
            serverIp: at(config.dhcp.serverHost),
            netmask: cidr.mask,
            network: cidr.network,
            poolStart: at(config.dhcp.first),
            poolEnd: at(config.dhcp.last),
            router: this.gatewayIp,
            dns: [this.dnsIp],
            mtu: config.mtu,
            leaseTimeSec: config.dhcp.leaseTimeSec ?? 86400,
            fixed: config.dhcp.fixed,
            ...(config.tftp ? { boot: { nextServer: config.tftp.nextServer ?? this.tftpIp, file: config.tftp.bootFile } } : {}),
            ...domain,
          },
          { store: config.leaseStore, onLease: config.onLease },
        )
      : null;
    this.dns = new DnsProxy({
      upstreams: resolv.nameservers,
      useHostResolver: config.dnsHostResolver,
      localNames: (name) => this.resolveLocal(name),
    });
    this.tftp = config.tftp
      ? new TftpServer({
          root: config.tftp.root,
          send: (sourcePort, destination, destinationPort, payload) => void this.gateway.sendUdp(this.tftpIp, sourcePort, destination, destinationPort, payload),
          maxPayload: config.mtu - IPV4_HEADER_LENGTH - UDP_HEADER_LENGTH,
        })
      : null;
    this.forwarder = new PortForwarder({
      link: this.gateway,
      tcp: this.tcp,
      gatewayIp: this.gatewayIp,
      defaultGuestIp: () => this.dhcp?.firstBoundIp() ?? at(config.defaultGuestHost),
      openUdpSockets: openNativeUdpSockets,
      listenTcp: this.hostStreams.listen,
      spliceNetns: (guestIp) => this.spliceNetnsOf(guestIp),
    });
  }

  /** Build the LAN and bind its port forwards; a bind failure closes everything and throws. */
  static async create(config: NatLanConfig): Promise<NatLan> {
    if (config.bindIp !== undefined && !hostHasAddress(config.bindIp)) {
      // Not refused: the address may come later (a VPN, DHCP on the uplink); until then flows fail, counted.
      config.log?.(`${config.key}: bind address ${config.bindIp} is not this host's; connections to other hosts fail until it is`);
    }
    const lan = new NatLan(config);
    try {
      await lan.forwarder.apply(config.forwards);
    } catch (err) {
      lan.close();
      throw err;
    }
    return lan;
  }

  setForwards(rules: PortForward[]): Promise<void> {
    return this.forwarder.apply(rules);
  }

  /** A NIC with `mac` left the LAN: end its flows now instead of letting them time out. */
  guestLeft(mac: Uint8Array): void {
    for (const { ip, mac: known } of this.gateway.arp.list()) {
      if (!known.every((b, i) => b === mac[i])) continue;
      this.tcp.closeGuest(ip);
      this.udp.closeGuest(ip);
    }
  }

  setLocalhostReachable(on: boolean): void {
    this.localhostReachable = on;
  }

  /**
   * Forwards to the guest with NIC `mac` splice inside network namespace
   * `netnsPath` (`--nat-splice<N> on`, namespace guests), or no longer
   * (null). Throws if the namespace cannot be opened.
   */
  spliceGuest(mac: string, netnsPath: string | null): void {
    const open = this.spliceNetns.get(mac);
    if (netnsPath !== null && open === undefined) this.spliceNetns.set(mac, openSync(netnsPath, 'r'));
    if (netnsPath === null && open !== undefined) {
      closeSync(open);
      this.spliceNetns.delete(mac);
    }
  }

  /** The namespace of the guest that holds `guestIp` (its DHCP lease, else what ARP learned), if it splices. */
  private spliceNetnsOf(guestIp: number): number | undefined {
    if (this.spliceNetns.size === 0) return undefined;
    const lease = this.dhcp?.leases().find((l) => l.state === 'bound' && l.ip === guestIp);
    if (lease !== undefined) return this.spliceNetns.get(lease.mac);
    const learned = this.gateway.arp.list().find((entry) => entry.ip === guestIp);
    return learned === undefined ? undefined : this.spliceNetns.get(formatMac(learned.mac));
  }

  /** Guests by the host name they sent in DHCP, or by their VM's name. */
  private resolveLocal(name: string): number[] | undefined {
    if (this.dhcp === null) return undefined;
    const byHostname = this.dhcp.resolveName(name);
    if (byHostname?.length) return byHostname;
    const wanted = this.dhcp.localName(name);
    const byVm = this.dhcp
      .leases()
      .filter((l) => l.state === 'bound' && this.config.vmNameForMac?.(l.mac)?.toLowerCase() === wanted)
      .map((l) => l.ip);
    return byVm.length ? byVm : undefined;
  }

  /** Packets for the gateway's own addresses, or broadcasts. */
  private local(ip: Ipv4View, sourceMac: Uint8Array, checksumPending: boolean): void {
    const dst = ip.destination;
    switch (ip.protocol) {
      case IpProtocol.UDP: {
        const udp = checkedUdp(ip, checksumPending);
        if (this.forwarder.fromGuestUdp(ip, udp)) return;
        if (udp.destinationPort === DHCP_SERVER_PORT) return this.dhcpRequest(ip, udp, sourceMac);
        if (dst === this.dnsIp && udp.destinationPort === 53) {
          const guest = ip.source;
          const guestPort = udp.sourcePort;
          return this.dns.handle(udp.payload, (answer) => void this.gateway.sendUdp(this.dnsIp, 53, guest, guestPort, answer));
        }
        if (dst === this.tftpIp && this.tftp?.fromGuest(ip.source, udp.sourcePort, udp.destinationPort, udp.payload)) return;
        if (dst === this.gatewayIp && this.localhostReachable) return this.udp.fromGuest(ip, udp, LOOPBACK);
        if (this.gateway.owns(dst)) this.gateway.sendIcmpError(ip.bytes, Icmpv4Type.DestinationUnreachable, Icmpv4UnreachableCode.PortUnreachable, dst);
        return;
      }
      case IpProtocol.TCP: {
        const tcp = checkedTcp(ip);
        // RFC 7766: DNS over TCP too (a guest retries there after a truncated answer).
        if (dst === this.dnsIp && tcp.destinationPort === 53) return this.tcp.fromGuest(ip, tcp, this.dns.openTcp, checksumPending);
        // Flows a port forward opened from a loopback client run to the gateway's address, reachable or not.
        const host = dst === this.gatewayIp && this.localhostReachable ? LOOPBACK : null;
        return this.tcp.fromGuest(ip, tcp, host, checksumPending);
      }
      default:
        return this.gateway.drop('ipv4:local-protocol');
    }
  }

  /**
   * A guest says a datagram we sent it found no socket: a TFTP client that
   * went away (its transfer ends now instead of after its retries).
   */
  private unreachable(quoted: Uint8Array, code: number): void {
    if (code !== Icmpv4UnreachableCode.PortUnreachable) return this.gateway.drop('icmpv4:unreachable-ignored');
    const original = Ipv4View.checkedHeader(quoted); // a malformed one throws: the gateway counts it
    const ports = original.payload;
    if (original.protocol !== IpProtocol.UDP || original.source !== this.tftpIp || ports.length < 4) return this.gateway.drop('icmpv4:unreachable-ignored');
    this.tftp?.clientGone(get16(ports, 0), original.destination, get16(ports, 2));
  }

  /** Packets for outside the LAN: the NAT proper. */
  private forward(ip: Ipv4View, checksumPending: boolean): void {
    const dst = ip.destination;
    if (isMartian(dst)) return this.gateway.drop('nat:martian-destination');
    switch (ip.protocol) {
      case IpProtocol.TCP:
        return this.tcp.fromGuest(ip, checkedTcp(ip), undefined, checksumPending);
      case IpProtocol.UDP: {
        const udp = checkedUdp(ip, checksumPending);
        if (this.forwarder.fromGuestUdp(ip, udp)) return;
        return this.udp.fromGuest(ip, udp);
      }
      case IpProtocol.ICMP: {
        const icmp = Icmpv4View.checked(ip.payload);
        if (!icmp.verifyChecksum()) throw new WireError('icmpv4', 'bad-checksum');
        if (icmp.type !== Icmpv4Type.EchoRequest) return this.gateway.drop('icmpv4:not-echo-request');
        return this.icmp.fromGuest(ip, icmp, formatIpv4(dst));
      }
      default:
        return this.gateway.sendIcmpError(ip.bytes, Icmpv4Type.DestinationUnreachable, Icmpv4UnreachableCode.ProtocolUnreachable);
    }
  }

  private dhcpRequest(ip: Ipv4View, udp: UdpView, sourceMac: Uint8Array): void {
    if (!this.dhcp) return;
    const request = parseDhcp(DhcpView.checked(udp.payload));
    const answer = this.dhcp.handle(request, { mac: formatMac(sourceMac), ip: ip.source });
    if (!answer) return;
    const payload = new Uint8Array(dhcpLength(answer.reply));
    emitDhcp(answer.reply, payload, 0);
    const toMac = answer.broadcast ? BROADCAST_MAC : parseMac(answer.dstMac);
    this.gateway.sendUdp(this.dhcpServerIp, DHCP_SERVER_PORT, answer.dstIp, DHCP_CLIENT_PORT, payload, toMac);
  }

  stats() {
    return {
      key: this.config.key,
      gateway: {
        ...this.gateway.counters,
        drops: { ...this.gateway.drops },
        arpEntries: this.gateway.arp.size,
        reassembly: { ...this.gateway.reassembly.counters, pending: this.gateway.reassembly.pending, heldBytes: this.gateway.reassembly.heldBytes },
      },
      tcp: this.tcp.stats(),
      udp: this.udp.stats(),
      icmp: this.icmp.stats(),
      dhcp: this.dhcp?.stats() ?? null,
      dns: this.dns.stats(),
      tftp: this.tftp?.stats() ?? null,
      forwards: this.forwarder.rules.map((r) => r.name),
      forwarding: this.forwarder.stats(),
    };
  }

  close(): void {
    for (const fd of this.spliceNetns.values()) closeSync(fd);
    this.spliceNetns.clear();
    this.forwarder.close();
    this.tcp.close();
    this.hostStreams.close();
    this.udp.shutdown();
    this.icmp.shutdown();
    this.dns.close();
    this.tftp?.close();
    this.gateway.close();
  }
}

/** A checked UDP datagram; its checksum is verified unless the guest left it to offload. */
function checkedUdp(ip: Ipv4View, checksumPending: boolean): UdpView {
  const udp = UdpView.checked(ip.payload);
  if (!checksumPending && !udp.verifyChecksum({ source: ip.source, destination: ip.destination })) throw new WireError('udp', 'bad-checksum');
  return udp;
}

/** The TCP NAT verifies the checksum itself (once, on the hot path). */
const checkedTcp = (ip: Ipv4View): TcpView => TcpView.checked(ip.payload);
