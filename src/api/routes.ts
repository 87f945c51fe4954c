/** The REST API (v1): resource-shaped routes over the daemon. */
import { VnetError } from '../errors.js';
import type { VmChange } from '../model/vm.js';
import type { NatNetworkChange } from '../model/nat-network.js';
import type { CreateVmRequest, Daemon, StartVmRequest } from '../daemon/daemon.js';
import { Router } from './router.js';

function object(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new VnetError('VNET_ERR_BAD_REQUEST', 'request body must be a JSON object');
  }
  return body as Record<string, unknown>;
}

export function buildRoutes(daemon: Daemon): Router {
  return new Router()
    .on('GET', '/v1/vms', () => daemon.listVms())
    .on('POST', '/v1/vms', ({ body }) => daemon.createVm(object(body) as unknown as CreateVmRequest))
    .on('GET', '/v1/vms/:vm', ({ params }) => daemon.getVm(params.vm!))
    .on('PATCH', '/v1/vms/:vm', ({ params, body }) => daemon.modifyVm(params.vm!, object(body) as VmChange))
    .on('DELETE', '/v1/vms/:vm', ({ params, query }) => {
      daemon.unregisterVm(params.vm!, query.get('delete') === 'true');
      return { deleted: params.vm };
    })
    .on('POST', '/v1/vms/:vm/start', ({ params, body }) => daemon.startVm(params.vm!, object(body) as StartVmRequest))
    .on('POST', '/v1/vms/:vm/poweroff', ({ params }) => daemon.powerOff(params.vm!))
    .on('GET', '/v1/networks', ({ query }) => {
      const kind = query.get('kind');
      if (kind === 'intnet') return daemon.listIntnets();
      return daemon.registry.list().map((n) => ({ key: n.key, kind: n.kind, name: n.name, ports: n.switch.attached.length }));
    })
    .on('GET', '/v1/stats', () => daemon.stats())
    .on('GET', '/v1/natnetworks', () => daemon.listNatNetworks())
    .on('POST', '/v1/natnetworks', ({ body }) => {
      const { name, ...change } = object(body) as unknown as NatNetworkChange & { name: string };
      return daemon.addNatNetwork(name, change);
    })
    .on('PATCH', '/v1/natnetworks/:name', ({ params, body }) => daemon.modifyNatNetwork(params.name!, object(body) as NatNetworkChange))
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
      return daemon.leases().filter((l) => !network || l.network === network || l.network === `natnet:${network}`);
    });
}
