/** The REST API (v1): resource-shaped routes over the daemon. */
import { VnetError } from '../errors.js';
import type { VmChange } from '../model/vm.js';
import type { NatNetworkChange } from '../model/nat-network.js';
import type { CreateVmRequest, Daemon, StartVmRequest } from '../daemon/daemon.js';
import { Router } from './router.js';
import { checkBody } from './validate.js';
import { registerNicRoutes } from './routes-nics.js';
import { registerEventRoutes } from './routes-events.js';
import { registerGvisorRoutes } from './routes-gvisor.js';
import { registerNetworkRoutes } from './routes-networks.js';
import { registerVmFileRoutes } from './routes-vm-files.js';
import { openApiDocument } from './openapi.js';
import { networkViews, topology } from './views.js';
import { readFileSync } from 'node:fs';

/** The package's version, for the OpenAPI document. */
const VERSION = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** NAT network fields a body may carry (open: later modules add more). */
const NAT_NETWORK_FIELDS = {
  network: { kind: 'string' },
  enabled: { kind: 'boolean' },
  dhcp: { kind: 'boolean' },
  localhostReachable: { kind: 'boolean' },
  addForwards: { kind: 'string[]' },
  deleteForwards: { kind: 'string[]' },
} as const;

export function buildRoutes(daemon: Daemon): Router {
  const router: Router = new Router()
    .on('GET', '/v1/openapi.json', (): unknown => openApiDocument(VERSION, router.list()))
    .on('GET', '/v1/topology', () => topology(daemon))
    .on('GET', '/v1/vms', () => daemon.listVms())
    .on('POST', '/v1/vms', ({ body }) => daemon.createVm(checkBody(body, { name: { kind: 'string', required: true }, ostype: { kind: 'string' } }, { open: true }) as unknown as CreateVmRequest))
    .on('GET', '/v1/vms/:vm', ({ params }) => daemon.getVm(params.vm!))
    .on('PATCH', '/v1/vms/:vm', ({ params, body }) => daemon.modifyVm(params.vm!, checkBody(body, { ostype: { kind: 'string' }, nics: { kind: 'object' } }, { open: true }) as VmChange))
    .on('DELETE', '/v1/vms/:vm', ({ params, query }) => {
      daemon.unregisterVm(params.vm!, query.get('delete') === 'true');
      return { deleted: params.vm };
    })
    .on('POST', '/v1/vms/:vm/start', ({ params, body }) => daemon.startVm(params.vm!, checkBody(body, { type: { kind: 'string' }, netns: { kind: 'string' } }, { open: true }) as StartVmRequest))
    .on('POST', '/v1/vms/:vm/poweroff', ({ params }) => daemon.powerOff(params.vm!))
    .on('GET', '/v1/networks', ({ query }) => {
      const kind = query.get('kind');
      if (kind === 'intnet') return daemon.listIntnets();
      return networkViews(daemon).filter((n) => !kind || n.kind === kind);
    })
    .on('GET', '/v1/networks/:network', ({ params }) => {
      const found = networkViews(daemon).find((n) => n.key === params.network);
      if (!found) throw new VnetError('VNET_ERR_NOT_FOUND', `no network '${params.network}': keys look like intnet:NAME, natnet:NAME, nat:VM/nicN`);
      return found;
    })
    .on('GET', '/v1/stats', () => daemon.stats())
    .on('GET', '/v1/natnetworks', () => daemon.listNatNetworks())
    .on('POST', '/v1/natnetworks', ({ body }) => {
      const checked = checkBody(body, { name: { kind: 'string', required: true }, ...NAT_NETWORK_FIELDS }, { open: true });
      const { name, ...change } = checked as unknown as NatNetworkChange & { name: string };
      return daemon.addNatNetwork(name, change);
    })
    .on('PATCH', '/v1/natnetworks/:name', ({ params, body }) => daemon.modifyNatNetwork(params.name!, checkBody(body, NAT_NETWORK_FIELDS, { open: true }) as NatNetworkChange))
    .on('DELETE', '/v1/natnetworks/:name', ({ params }) => {
      daemon.removeNatNetwork(params.name!);
      return { deleted: params.name };
    })
    .on('POST', '/v1/natnetworks/:name/start', async ({ params }) => {
      await daemon.startNatNetwork(params.name!);
      return { started: params.name };
    })
    .on('POST', '/v1/natnetworks/:name/stop', ({ params }) => {
      daemon.stopNatNetwork(params.name!);
      return { stopped: params.name };
    })
    .on('GET', '/v1/leases', ({ query }) => {
      const network = query.get('network');
      return daemon.leases().filter((l) => !network || l.network === network || l.network === `natnet:${network}` || l.network.endsWith(`:${network}`));
    });
  registerNicRoutes(router, daemon);
  registerEventRoutes(router, daemon);
  registerGvisorRoutes(router, daemon);
  registerNetworkRoutes(router, daemon);
  registerVmFileRoutes(router, daemon);
  return router;
}
