/**
 * gvisor-tap-vsock's HTTP services, so tools written for it (podman machine,
 * crc, lima's helpers) can drive vnet:
 *
 *   POST /services/forwarder/expose    {"local":"127.0.0.1:8080","remote":"10.0.2.15:80","protocol":"tcp"}
 *   POST /services/forwarder/unexpose  {"local":"127.0.0.1:8080","protocol":"tcp"}
 *   GET  /services/forwarder/all       [{"local":…,"remote":…,"protocol":…}], sorted by local then protocol
 *   GET  /services/dhcp/leases         {"10.0.2.15":"08:00:27:…"}
 *
 * As there: success is 200 with an empty body; a body that is not JSON or a
 * remote that is not host:port is 400; a failure to expose or unexpose
 * ("proxy already running", "proxy not found", port in use) is 500; error
 * bodies are one line of text/plain. `protocol` defaults to tcp.
 *
 * An expose becomes a port forward of the NAT LAN whose network holds the
 * remote address — a running VM's NAT NIC (the one whose lease holds the
 * address, if several share the network) or a NAT Network — named
 * `expose_<protocol>_<host ip>_<host port>`, so it shows in `showvminfo`
 * and `natnetwork list` and is saved like any other rule. Deviations: unix
 * and npipe protocols are not supported (500), and a remote without an IP
 * is refused (gvisor-tap-vsock would use the caller's address, which a
 * caller on the unix socket does not have).
 */
import { isIPv4 } from 'node:net';
import type { Daemon } from '../daemon/daemon.js';
import { defaultNatCidr } from '../daemon/nat-lans.js';
import type { PortForward } from '../model/types.js';
import { parseCidr, parseIpv4 } from '../wire/address.js';
import { Reply, type Router } from './router.js';
import { natNetworkRuleText, natRuleText } from './routes-nics.js';

/** gvisor-tap-vsock's `http.Error`: status, one line of text. */
const textError = (status: number, message: string): Reply =>
  new Reply(status, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' }, `${message}\n`);
const ok = (): Reply => new Reply(200, {}, '');
const json = (value: unknown): Reply => new Reply(200, { 'content-type': 'application/json' }, `${JSON.stringify(value)}\n`);

/** A 500 for a request that was well-formed but could not be carried out. */
class ExposeError extends Error {}

interface Owner {
  /** `VM/nicN` or `natnet:NAME`. */
  label: string;
  cidr: string;
  apply(change: { add?: PortForward; remove?: string }): Promise<unknown>;
  forwards: PortForward[];
}

function splitHostPort(text: string): { host: string; port: number } {
  const colon = text.lastIndexOf(':');
  const host = text.slice(0, colon);
  const port = Number(text.slice(colon + 1));
  if (colon < 0 || !/^\d+$/.test(text.slice(colon + 1)) || port < 1 || port > 65535) {
    throw new Error(`address ${text}: missing port in address`);
  }
  return { host, port };
}

function inCidr(ip: string, cidr: string): boolean {
  const { network, mask } = parseCidr(cidr);
  return ((parseIpv4(ip) & mask) >>> 0) === network;
}

/** `127.0.0.1:8080` for a rule; vnet's empty host IP means 127.0.0.1. */
const localOf = (r: PortForward): string => `${r.hostIp || '127.0.0.1'}:${r.hostPort}`;
/** A gvisor local with no host (`:8080`) binds every address. */
const normaliseLocal = (text: string): string => (text.startsWith(':') ? `0.0.0.0${text}` : text);

export function registerGvisorRoutes(router: Router, daemon: Daemon): void {
  /** NAT LANs that take forwards: running VMs' NAT NICs, then NAT Networks. */
  const owners = (): Owner[] => {
    const list: Owner[] = [];
    for (const vm of daemon.listVms()) {
      for (const nic of vm.nics) {
        const running = daemon.runningNic(vm.name, nic.slot);
        if (nic.mode !== 'nat' || !running) continue;
        list.push({
          label: `${vm.name}/nic${nic.slot}`,
          cidr: running.natLan?.config.cidr ?? (nic.natNet || defaultNatCidr(nic.slot)),
          forwards: nic.portForwards,
          apply: ({ add, remove }) =>
            daemon.modifyVm(vm.name, { nics: { [String(nic.slot)]: add ? { addForwards: [natRuleText(add)] } : { deleteForwards: [remove!] } } }),
        });
      }
    }
    for (const n of daemon.listNatNetworks()) {
      list.push({
        label: `natnet:${n.name}`,
        cidr: n.network,
        forwards: n.portForwards,
        apply: ({ add, remove }) => daemon.modifyNatNetwork(n.name, add ? { addForwards: [natNetworkRuleText(add)] } : { deleteForwards: [remove!] }),
      });
    }
    return list;
  };

  /** The one NAT LAN that owns `ip`; a lease decides between NAT NICs sharing a network. */
  const ownerOf = (ip: string): Owner => {
    const candidates = owners().filter((o) => inCidr(ip, o.cidr));
    if (candidates.length > 1) {
      const leased = daemon.leases().filter((l) => l.ip === ip && l.state === 'bound' && l.vm !== null).map((l) => `${l.vm}/nic${l.nic}`);
      const byLease = candidates.filter((c) => leased.includes(c.label));
      if (byLease.length === 1) return byLease[0]!;
      const natNetworks = candidates.filter((c) => c.label.startsWith('natnet:'));
      if (natNetworks.length === 1 && byLease.length === 0) return natNetworks[0]!;
      throw new ExposeError(`remote address ${ip} is on several NAT networks (${candidates.map((c) => c.label).join(', ')}) and no lease tells them apart`);
    }
    if (!candidates.length) throw new ExposeError(`no NAT network holds ${ip}: start a VM with a NAT NIC or create a NAT network on its subnet`);
    return candidates[0]!;
  };

  /** Parse the JSON body as gvisor-tap-vsock does: anything else is a 400. */
  const parse = (body: unknown): Record<string, unknown> => {
    const value: unknown = JSON.parse(String(body));
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('json: cannot unmarshal into Go value of type types.ExposeRequest');
    return value as Record<string, unknown>;
  };

  const attempt = async (body: unknown, action: (request: Record<string, unknown>) => Promise<void>): Promise<Reply> => {
    let request: Record<string, unknown>;
    try {
      request = parse(body);
      for (const field of ['local', 'remote', 'protocol']) {
        if (request[field] !== undefined && typeof request[field] !== 'string') throw new Error(`json: cannot unmarshal ${typeof request[field]} into Go struct field .${field} of type string`);
      }
    } catch (err) {
      return textError(400, (err as Error).message);
    }
    try {
      await action(request);
      return ok();
    } catch (err) {
      return textError(err instanceof BadRequest ? 400 : 500, (err as Error).message);
    }
  };

  router
    .on('GET', '/services/forwarder/all', () => {
      const leases = daemon.leases().filter((l) => l.state === 'bound');
      const all = owners().flatMap((o) =>
        o.forwards.map((r) => {
          const guest = r.guestIp || leases.find((l) => `${l.vm}/nic${l.nic}` === o.label)?.ip || '';
          return { local: localOf(r), remote: `${guest}:${r.guestPort}`, protocol: r.protocol };
        }),
      );
      all.sort((a, b) => (a.local === b.local ? a.protocol.localeCompare(b.protocol) : a.local.localeCompare(b.local)));
      return json(all);
    })
    .on('POST', '/services/forwarder/expose', ({ body }) =>
      attempt(body, async (request) => {
        const protocol = String(request.protocol || 'tcp');
        let local: { host: string; port: number };
        let remote: { host: string; port: number };
        try {
          remote = splitHostPort(String(request.remote ?? ''));
          local = splitHostPort(normaliseLocal(String(request.local ?? '')));
        } catch (err) {
          throw new BadRequest((err as Error).message);
        }
        if (!remote.host) throw new BadRequest(`remote ${String(request.remote)} has no IP address: vnet needs the guest's address`);
        if (!isIPv4(remote.host)) throw new BadRequest(`remote ${String(request.remote)}: '${remote.host}' is not an IPv4 address`);
        if (protocol !== 'tcp' && protocol !== 'udp') throw new ExposeError(`unknown protocol ${protocol}`);
        const localText = `${local.host}:${local.port}`;
        if (owners().some((o) => o.forwards.some((r) => r.protocol === protocol && localOf(r) === localText))) {
          throw new ExposeError(`proxy already running for ${protocol} on ${localText}`);
        }
        const owner = ownerOf(remote.host);
        const rule: PortForward = {
          name: `expose_${protocol}_${local.host}_${local.port}`,
          protocol,
          hostIp: local.host,
          hostPort: local.port,
          guestIp: remote.host,
          guestPort: remote.port,
        };
        await owner.apply({ add: rule });
      }),
      { rawBody: true },
    )
    .on('POST', '/services/forwarder/unexpose', ({ body }) =>
      attempt(body, async (request) => {
        const protocol = String(request.protocol || 'tcp');
        const localText = normaliseLocal(String(request.local ?? ''));
        for (const owner of owners()) {
          const rule = owner.forwards.find((r) => r.protocol === protocol && localOf(r) === localText);
          if (rule) {
            await owner.apply({ remove: rule.name });
            return;
          }
        }
        throw new ExposeError('proxy not found');
      }),
      { rawBody: true },
    )
    .on('GET', '/services/dhcp/leases', () =>
      json(Object.fromEntries(daemon.leases().filter((l) => l.state === 'bound').map((l) => [l.ip, l.mac]))),
    );
}

/** A 400: the request named something unusable. */
class BadRequest extends Error {}
