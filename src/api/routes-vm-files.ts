/**
 * Routes for QEMU VMs' files and control: media, storage, clone, import,
 * `controlvm` actions, the QEMU command line and the console's path.
 */
import type { Daemon } from '../daemon/daemon.js';
import type { Router } from './router.js';
import { checkBody } from './validate.js';

export function registerVmFileRoutes(router: Router, daemon: Daemon): void {
  const files = daemon.vmFiles;
  router
    .on('GET', '/v1/media', ({ query }) => files.listMedia((query.get('kind') as 'hdd' | 'dvd' | null) ?? undefined))
    .on('POST', '/v1/media', ({ body }) => {
      const b = checkBody(body, { filename: { kind: 'string', required: true }, size: { kind: 'integer', required: true }, format: { kind: 'string' } });
      return files.createMedium({ filename: b.filename as string, size: b.size as number, format: b.format as string | undefined });
    })
    .on('POST', '/v1/media/close', ({ body }) => {
      const b = checkBody(body, { medium: { kind: 'string', required: true }, delete: { kind: 'boolean' } });
      return files.closeMedium(b.medium as string, b.delete === true);
    })
    .on('POST', '/v1/media/check', ({ body }) => files.checkMedium(checkBody(body, { path: { kind: 'string', required: true } }).path as string))
    .on('POST', '/v1/media/repair', ({ body }) => files.repairMedium(checkBody(body, { path: { kind: 'string', required: true } }).path as string))
    .on('POST', '/v1/vms/:vm/storagectl', ({ params, body }) => {
      const b = checkBody(body, { name: { kind: 'string', required: true }, add: { kind: 'string' }, remove: { kind: 'boolean' } });
      return files.storageCtl(params.vm!, { name: b.name as string, add: b.add as string | undefined, remove: b.remove as boolean | undefined });
    })
    .on('POST', '/v1/vms/:vm/storageattach', ({ params, body }) => {
      const b = checkBody(body, {
        storagectl: { kind: 'string', required: true },
        port: { kind: 'integer', required: true },
        device: { kind: 'integer' },
        type: { kind: 'string' },
        medium: { kind: 'string', required: true },
      });
      return files.storageAttach(params.vm!, b as never);
    })
    .on('POST', '/v1/vms/:vm/clone', ({ params, body }) => {
      const b = checkBody(body, { name: { kind: 'string', required: true }, options: { kind: 'string[]' }, register: { kind: 'boolean' } });
      return files.clone(params.vm!, { name: b.name as string, options: b.options as string[] | undefined });
    })
    .on('GET', '/v1/vms/:vm/export-source', ({ params }) => files.exportSource(params.vm!))
    .on('POST', '/v1/import', ({ body }) => {
      const b = checkBody(body, { file: { kind: 'string', required: true }, vsysName: { kind: 'string' } });
      return files.importVm(b.file as string, b.vsysName as string | undefined);
    })
    .on('POST', '/v1/vms/:vm/control', ({ params, body }) => {
      const b = checkBody(body, { action: { kind: 'string', required: true } });
      return daemon.controlVm(params.vm!, b.action as string);
    })
    .on('GET', '/v1/vms/:vm/qemu-command', ({ params }) => daemon.qemuCommand(params.vm!))
    .on('GET', '/v1/vms/:vm/console', ({ params }) => daemon.consolePath(params.vm!));
}
