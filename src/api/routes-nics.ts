/**
 * NICs, port forwards and captures as resources:
 *
 *   /v1/vms/:vm/nics[/:n]                 GET, PATCH (cable, promiscuous policy, trace, …)
 *   /v1/vms/:vm/nics/:n/forwards[/:name]  GET, POST, DELETE (NAT NICs)
 *   /v1/natnetworks/:name/forwards[/:rule] GET, POST, DELETE
 *   /v1/vms/:vm/nics/:n/capture[/pcap]    GET, POST (start), DELETE (stop); the pcap file
 *   /v1/captures, /v1/forwards             every capture / forward
 *
 * Each change goes through the daemon's whole-VM (or whole-network) change,
 * so it is validated whole and saved atomically like the CLI's.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { join } from 'node:path';
import { VnetError, invalidState, notFound } from '../errors.js';
import type { Daemon } from '../daemon/daemon.js';
import { ATTACHMENT_MODES, NIC_SLOTS, PROMISC_POLICIES, type PortForward } from '../model/types.js';
import type { NicChange } from '../model/vm.js';
import { Reply, type Router } from './router.js';
import { checkBody, FieldError, slotParam, type FieldSpec } from './validate.js';
import { forwardViews, nicView, type NicView } from './views.js';

/** PATCH /v1/vms/:vm/nics/:n: the NIC settings, by their model names. */
const NIC_PATCH: Record<string, FieldSpec> = {
  mode: { kind: 'string', oneOf: ATTACHMENT_MODES },
  mac: { kind: 'string' },
  cableConnected: { kind: 'boolean' },
  promisc: { kind: 'string', oneOf: PROMISC_POLICIES },
  trace: { kind: 'boolean' },
  traceFile: { kind: 'string' },
  intnet: { kind: 'string' },
  natNetwork: { kind: 'string' },
  natNet: { kind: 'string' },
  natLocalhostReachable: { kind: 'boolean' },
  natDnsHostResolver: { kind: 'boolean' },
  natDnsPassDomain: { kind: 'boolean' },
  natSplice: { kind: 'boolean' },
  natTftpPrefix: { kind: 'string' },
  natTftpFile: { kind: 'string' },
  natTftpServer: { kind: 'string' },
  natBindIp: { kind: 'string' },
  mtu: { kind: 'integer', min: 0, max: 65520 },
  genericDriver: { kind: 'string' },
  genericProperties: { kind: 'object' },
  hostOnlyAdapter: { kind: 'string' },
  bridgeAdapter: { kind: 'string' },
};

const RULE_NAME = /^[A-Za-z0-9._-]{1,64}$/;

export const FORWARD_BODY: Record<string, FieldSpec> = {
  name: { kind: 'string' },
  protocol: { kind: 'string', oneOf: ['tcp', 'udp'], required: true },
  hostIp: { kind: 'string' },
  hostPort: { kind: 'integer', min: 1, max: 65535, required: true },
  guestIp: { kind: 'string' },
  guestPort: { kind: 'integer', min: 1, max: 65535, required: true },
};

/** A checked forward from a request body; the name defaults as VirtualBox's does. */
export function forwardFromBody(body: unknown): PortForward {
  const b = checkBody(body, FORWARD_BODY) as Partial<PortForward>;
  const rule: PortForward = {
    name: b.name || `${b.protocol}_${b.hostPort}_${b.guestPort}`,
    protocol: b.protocol!,
    hostIp: b.hostIp ?? '',
    hostPort: b.hostPort!,
    guestIp: b.guestIp ?? '',
    guestPort: b.guestPort!,
  };
  if (!RULE_NAME.test(rule.name)) throw new FieldError('name', `'${rule.name}' must be 1-64 letters, digits, '.', '_' or '-'`);
  if (rule.hostIp && !isIPv4(rule.hostIp) && !isIPv6(rule.hostIp)) throw new FieldError('hostIp', `'${rule.hostIp}' is not an IP address`);
  if (rule.guestIp && !isIPv4(rule.guestIp)) throw new FieldError('guestIp', `'${rule.guestIp}' is not an IPv4 address`);
  return rule;
}

/** VirtualBox's NAT spelling (`name,tcp,hostip,hostport,guestip,guestport`). */
export const natRuleText = (r: PortForward): string => `${r.name},${r.protocol},${r.hostIp},${r.hostPort},${r.guestIp},${r.guestPort}`;
/** VirtualBox's NAT Network spelling (`name:tcp:[hostip]:hostport:[guestip]:guestport`). */
export const natNetworkRuleText = (r: PortForward): string => `${r.name}:${r.protocol}:[${r.hostIp}]:${r.hostPort}:[${r.guestIp}]:${r.guestPort}`;

export function registerNicRoutes(router: Router, daemon: Daemon): void {
  const vmOf = (name: string) => daemon.getVm(name);
  const nicOf = (vmName: string, n: string): NicView => {
    const vm = vmOf(vmName);
    const slot = slotParam(n, vm.nics.length || NIC_SLOTS);
    return nicView(daemon, vm, vm.nics[slot - 1]!);
  };
  const changeNic = async (vmName: string, slot: number, change: NicChange): Promise<NicView> => {
    const vm = await daemon.modifyVm(vmName, { nics: { [String(slot)]: change } });
    return nicView(daemon, vm, vm.nics[slot - 1]!);
  };
  const natNic = (vmName: string, n: string): NicView => {
    const nic = nicOf(vmName, n);
    if (nic.mode !== 'nat') throw invalidState(`NIC ${nic.slot} of '${nic.vm}' is attached to ${nic.mode}, not NAT: only NAT NICs have port forwards`);
    return nic;
  };
  const natNetwork = (name: string) => {
    const found = daemon.listNatNetworks().find((n) => n.name === name);
    if (!found) throw notFound(`no NAT network named '${name}'`);
    return found;
  };

  router
    .on('GET', '/v1/vms/:vm/nics', ({ params }) => {
      const vm = vmOf(params.vm!);
      return vm.nics.map((nic) => nicView(daemon, vm, nic));
    })
    .on('GET', '/v1/vms/:vm/nics/:n', ({ params }) => nicOf(params.vm!, params.n!))
    .on('PATCH', '/v1/vms/:vm/nics/:n', ({ params, body }) => {
      const nic = nicOf(params.vm!, params.n!);
      return changeNic(nic.vm, nic.slot, checkBody(body, NIC_PATCH) as NicChange);
    })

    .on('GET', '/v1/forwards', () => forwardViews(daemon))
    .on('GET', '/v1/vms/:vm/nics/:n/forwards', ({ params }) => natNic(params.vm!, params.n!).portForwards)
    .on('POST', '/v1/vms/:vm/nics/:n/forwards', async ({ params, body }) => {
      const nic = natNic(params.vm!, params.n!);
      const rule = forwardFromBody(body);
      await changeNic(nic.vm, nic.slot, { addForwards: [natRuleText(rule)] });
      return rule;
    })
    .on('DELETE', '/v1/vms/:vm/nics/:n/forwards/:name', async ({ params }) => {
      const nic = natNic(params.vm!, params.n!);
      if (!nic.portForwards.some((r) => r.name === params.name)) throw notFound(`NIC ${nic.slot} of '${nic.vm}' has no port forward named '${params.name}'`);
      await changeNic(nic.vm, nic.slot, { deleteForwards: [params.name!] });
      return { deleted: params.name };
    })
    .on('GET', '/v1/natnetworks/:name', ({ params }) => natNetwork(params.name!))
    .on('GET', '/v1/natnetworks/:name/forwards', ({ params }) => natNetwork(params.name!).portForwards)
    .on('POST', '/v1/natnetworks/:name/forwards', async ({ params, body }) => {
      natNetwork(params.name!);
      const rule = forwardFromBody(body);
      if (!rule.guestIp) throw new FieldError('guestIp', 'is required: a NAT network has many guests');
      await daemon.modifyNatNetwork(params.name!, { addForwards: [natNetworkRuleText(rule)] });
      return rule;
    })
    .on('DELETE', '/v1/natnetworks/:name/forwards/:rule', async ({ params }) => {
      if (!natNetwork(params.name!).portForwards.some((r) => r.name === params.rule)) {
        throw notFound(`NAT network '${params.name}' has no port forward named '${params.rule}'`);
      }
      await daemon.modifyNatNetwork(params.name!, { deleteForwards: [params.rule!] });
      return { deleted: params.rule };
    })

    .on('GET', '/v1/captures', () =>
      daemon.listVms().flatMap((vm) =>
        vm.nics.flatMap((nic) => {
          const capture = daemon.runningNic(vm.name, nic.slot)?.captureInfo;
          return capture ? [{ vm: vm.name, nic: nic.slot, ...capture }] : [];
        }),
      ),
    )
    .on('GET', '/v1/vms/:vm/nics/:n/capture', ({ params }) => {
      const nic = nicOf(params.vm!, params.n!);
      return { vm: nic.vm, nic: nic.slot, active: !!nic.runtime?.capture, path: tracePath(daemon, nic), capture: nic.runtime?.capture ?? null };
    })
    .on('POST', '/v1/vms/:vm/nics/:n/capture', async ({ params, body }) => {
      const nic = nicOf(params.vm!, params.n!);
      const { file } = checkBody(body, { file: { kind: 'string' } }) as { file?: string };
      if (!nic.runtime) throw invalidState(`NIC ${nic.slot} of '${nic.vm}' is not running: start the VM (and attach the NIC) first`);
      if (nic.runtime.capture) throw invalidState(`NIC ${nic.slot} of '${nic.vm}' is already capturing to ${nic.runtime.capture.path}`);
      const next = await changeNic(nic.vm, nic.slot, { trace: true, ...(file !== undefined ? { traceFile: file } : {}) });
      return { vm: next.vm, nic: next.slot, active: true, path: tracePath(daemon, next), capture: next.runtime?.capture ?? null };
    })
    .on('DELETE', '/v1/vms/:vm/nics/:n/capture', async ({ params }) => {
      const nic = nicOf(params.vm!, params.n!);
      if (!nic.trace) throw invalidState(`NIC ${nic.slot} of '${nic.vm}' is not capturing`);
      const next = await changeNic(nic.vm, nic.slot, { trace: false });
      return { vm: next.vm, nic: next.slot, active: false, path: tracePath(daemon, next), capture: null };
    })
    .on('GET', '/v1/vms/:vm/nics/:n/capture/pcap', ({ params }) => {
      const nic = nicOf(params.vm!, params.n!);
      const path = tracePath(daemon, nic);
      if (!existsSync(path)) throw notFound(`no capture file for NIC ${nic.slot} of '${nic.vm}' (${path}): start a capture first`);
      let bytes: Buffer;
      try {
        bytes = readFileSync(path);
      } catch (err) {
        throw new VnetError('VNET_ERR_HOST', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
      }
      return new Reply(200, {
        'content-type': 'application/vnd.tcpdump.pcap',
        'content-disposition': `attachment; filename="${nic.vm}-nic${nic.slot}.pcap"`,
        'cache-control': 'no-store',
      }, bytes);
    });
}

/** Where a NIC's capture goes: its trace file, or `<vm folder>/nic<N>.pcap`. */
function tracePath(daemon: Daemon, nic: NicView): string {
  return nic.runtime?.capture?.path ?? (nic.traceFile || join(daemon.vmFolder(nic.vm), `nic${nic.slot}.pcap`));
}
