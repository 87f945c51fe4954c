/**
 * `vnet apply` on the daemon's side: plan the lab against the current state
 * (every value validated before anything changes), then run the steps through
 * the daemon's own operations, in dependency order: NAT Networks, host-only
 * interfaces, DHCP servers, VMs. A step that fails on the host (a busy port,
 * no privilege) stops the run; the steps before it stay applied and the
 * error says which step failed.
 */
import { VnetError } from '../errors.js';
import { checkLabShape, exportLab as exportSpec, planLab, type LabSpec, type LabState } from '../model/lab-file.js';
import type { Daemon } from './daemon.js';

/** The parts of the daemon's state a lab covers. */
function labState(daemon: Daemon): LabState {
  return {
    vms: daemon.listVms().map((vm) => ({ ...vm, nics: vm.nics })),
    natNetworks: daemon.listNatNetworks().map(({ running: _running, ...n }) => n),
    hostOnlyIfs: daemon.hostOnly.list().map(({ name, ip, netmask }) => ({ name, ip, netmask })),
    dhcpServers: daemon.dhcpServers.list().map(({ running: _running, ...s }) => s),
  };
}

export interface ApplyResult {
  changes: string[];
}

export async function applyLab(daemon: Daemon, body: LabSpec & { dryRun?: boolean }): Promise<ApplyResult> {
  const { dryRun, ...raw } = body;
  const spec = checkLabShape(raw);
  const steps = planLab(labState(daemon), spec);
  if (dryRun) return { changes: steps.map((s) => s.summary) };
  const done: string[] = [];
  for (const step of steps) {
    try {
      switch (step.op) {
        case 'natnetwork.add':
          daemon.addNatNetwork(step.name, step.change);
          break;
        case 'natnetwork.modify':
          await daemon.modifyNatNetwork(step.name, step.change);
          break;
        case 'hostonlyif.create':
          daemon.hostOnly.create(step.name);
          break;
        case 'hostonlyif.ipconfig':
          daemon.hostOnly.ipconfig(step.name, step.ip, step.netmask);
          break;
        case 'dhcpserver.add':
          daemon.dhcpServers.add({ network: step.network }, step.change);
          break;
        case 'dhcpserver.modify':
          daemon.dhcpServers.modify({ network: step.network }, step.change);
          break;
        case 'vm.create':
          daemon.createVm({ name: step.name, ostype: step.ostype });
          break;
        case 'vm.modify':
          await daemon.modifyVm(step.name, step.change);
          break;
      }
    } catch (err) {
      const e = err as VnetError;
      const before = done.length ? ` (done before it: ${done.join('; ')})` : ' (nothing was changed)';
      throw new VnetError(e.code ?? 'VNET_ERR_HOST', `apply stopped at '${step.summary}': ${e.message}${before}`, { cause: err });
    }
    done.push(step.summary);
  }
  return { changes: done };
}

export function exportLab(daemon: Daemon): LabSpec {
  return exportSpec(labState(daemon));
}
