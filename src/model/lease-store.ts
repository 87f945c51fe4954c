/** DHCP leases of one network, kept in `$VNET_HOME/leases/<network>.json` (atomic writes). */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lease, LeaseStore } from '../services/dhcp/leases.js';
import { writeFileAtomic } from './store.js';

export class FileLeaseStore implements LeaseStore {
  readonly path: string;

  constructor(home: string, networkKey: string) {
    const dir = join(home, 'leases');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // Keys look like `nat:vm/nic1`: keep them readable but safe as file names.
    this.path = join(dir, `${networkKey.replace(/[^A-Za-z0-9._-]/g, '_')}.json`);
  }

  load(): Lease[] {
    try {
      const leases = JSON.parse(readFileSync(this.path, 'utf8')) as Lease[];
      return Array.isArray(leases) ? leases : [];
    } catch {
      return [];
    }
  }

  save(leases: Lease[]): void {
    writeFileAtomic(this.path, JSON.stringify(leases, null, 1) + '\n');
  }
}
