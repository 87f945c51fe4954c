/**
 * Routes for host-only interfaces, bridgeable interfaces, DHCP servers and
 * lab files: `/v1/hostonlyifs`, `/v1/bridgedifs`, `/v1/dhcpservers`,
 * `/v1/lab`. A DHCP server is addressed by VirtualBox's network name: the
 * intnet or NAT Network name, or `HostInterfaceNetworking-IF`.
 */
import { VnetError, notFound } from '../errors.js';
import type { Daemon } from '../daemon/daemon.js';
import { listBridgedIfs } from '../daemon/bridged.js';
import { applyLab, exportLab } from '../daemon/lab-apply.js';
import type { DhcpServerChange } from '../model/dhcp-server.js';
import type { LabSpec } from '../model/lab-file.js';
import type { Router } from './router.js';

function object(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new VnetError('VNET_ERR_BAD_REQUEST', 'request body must be a JSON object');
  }
  return body as Record<string, unknown>;
}

const optionalString = (value: unknown, field: string): string | undefined => {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new VnetError('VNET_ERR_BAD_REQUEST', `field '${field}': expected a string`);
  return value;
};

export function registerNetworkRoutes(router: Router, daemon: Daemon): Router {
  return router
    .on('GET', '/v1/hostonlyifs', () => daemon.hostOnly.list())
    .on('POST', '/v1/hostonlyifs', ({ body }) => daemon.hostOnly.create(optionalString(object(body).name, 'name')))
    .on('PATCH', '/v1/hostonlyifs/:name', ({ params, body }) => {
      const { ip, netmask } = object(body);
      if (ip === undefined) throw new VnetError('VNET_ERR_BAD_REQUEST', "field 'ip': required");
      return daemon.hostOnly.ipconfig(params.name!, ip, netmask);
    })
    .on('DELETE', '/v1/hostonlyifs/:name', ({ params }) => {
      daemon.hostOnly.remove(params.name!);
      return { deleted: params.name };
    })
    .on('GET', '/v1/bridgedifs', () => listBridgedIfs())
    .on('GET', '/v1/dhcpservers', () => daemon.dhcpServers.list())
    .on('POST', '/v1/dhcpservers', ({ body }) => {
      const { network, interface: ifname, ...change } = object(body);
      return daemon.dhcpServers.add({ network: optionalString(network, 'network'), interface: optionalString(ifname, 'interface') }, change as DhcpServerChange);
    })
    .on('GET', '/v1/dhcpservers/:network', ({ params }) => daemon.dhcpServers.get({ network: params.network! }))
    .on('PATCH', '/v1/dhcpservers/:network', ({ params, body }) => daemon.dhcpServers.modify({ network: params.network! }, object(body) as DhcpServerChange))
    .on('DELETE', '/v1/dhcpservers/:network', ({ params }) => {
      daemon.dhcpServers.remove({ network: params.network! });
      return { deleted: params.network };
    })
    .on('GET', '/v1/dhcpservers/:network/leases', ({ params, query }) => {
      const server = daemon.dhcpServers.get({ network: params.network! });
      const key = server.kind === 'hostonly' ? `hostonly:${server.network.replace(/^HostInterfaceNetworking-/, '')}` : `${server.kind}:${server.network}`;
      const mac = query.get('mac')?.toLowerCase().replace(/-/g, ':');
      const found = daemon.leases().filter((l) => l.network === key && (!mac || l.mac === mac || l.mac.replace(/:/g, '') === mac));
      if (mac && found.length === 0) throw notFound(`no lease for MAC ${query.get('mac')} on network '${server.network}'`);
      return found;
    })
    .on('GET', '/v1/lab', () => exportLab(daemon))
    .on('POST', '/v1/lab', async ({ body }) => applyLab(daemon, object(body) as unknown as LabSpec));
}
