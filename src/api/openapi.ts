/**
 * The OpenAPI 3.1 document served at `GET /v1/openapi.json`. Written by
 * hand, one entry per route; test/unit/api/openapi.test.ts holds it to the
 * router (every route documented, every documented path routed).
 */

type Schema = Record<string, unknown>;

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const arrayOf = (schema: Schema): Schema => ({ type: 'array', items: schema });
const str = { type: 'string' };
const bool = { type: 'boolean' };
const int = { type: 'integer' };
const port = { type: 'integer', minimum: 1, maximum: 65535 };

const ERRORS = {
  '400': { description: 'Bad request: the message (and `field`) name what is wrong', content: { 'application/json': { schema: ref('Error') } } },
  '401': { description: 'TCP only: missing or wrong bearer token', content: { 'application/json': { schema: ref('Error') } } },
  '404': { description: 'No such resource', content: { 'application/json': { schema: ref('Error') } } },
  '409': { description: 'Conflicts with the current state (exists, running, port in use)', content: { 'application/json': { schema: ref('Error') } } },
};

interface OpSpec {
  summary: string;
  body?: Schema;
  response?: Schema;
  /** Content type of a non-JSON answer. */
  produces?: string;
  query?: Record<string, string>;
  tag: string;
}

function op(spec: OpSpec, params: string[]): Schema {
  const parameters = [
    ...params.map((name) => ({ name, in: 'path', required: true, schema: str })),
    ...Object.entries(spec.query ?? {}).map(([name, description]) => ({ name, in: 'query', required: false, description, schema: str })),
  ];
  const content = spec.produces
    ? { [spec.produces]: { schema: spec.response ?? str } }
    : { 'application/json': { schema: spec.response ?? { type: 'object' } } };
  return {
    summary: spec.summary,
    tags: [spec.tag],
    ...(parameters.length ? { parameters } : {}),
    ...(spec.body ? { requestBody: { required: true, content: { 'application/json': { schema: spec.body } } } } : {}),
    responses: { '200': { description: 'OK', content }, ...ERRORS },
  };
}

/** Routes as `METHOD /path/{param}` → operation. */
const ROUTES: Record<string, OpSpec> = {
  'GET /v1/openapi.json': { tag: 'meta', summary: 'This document' },
  'GET /v1/topology': { tag: 'meta', summary: 'Host, networks, VMs with NICs (rates, link, capture) and forwards, for the dashboard', response: ref('Topology') },

  'GET /v1/vms': { tag: 'vms', summary: 'List VMs', response: arrayOf(ref('Vm')) },
  'POST /v1/vms': { tag: 'vms', summary: 'Create and register a VM', body: { type: 'object', required: ['name'], properties: { name: str, ostype: str } }, response: ref('Vm') },
  'GET /v1/vms/{vm}': { tag: 'vms', summary: 'One VM', response: ref('Vm') },
  'PATCH /v1/vms/{vm}': { tag: 'vms', summary: 'Change a VM (modifyvm/controlvm): `nics` maps slot → NIC change', body: { type: 'object', properties: { ostype: str, memoryMb: int, cpus: int, boot: { type: 'object', description: 'boot position (1-4) → none|floppy|dvd|disk|net', additionalProperties: { type: 'string', enum: ['none', 'floppy', 'dvd', 'disk', 'net'] } }, nics: { type: 'object', additionalProperties: ref('NicPatch') } } }, response: ref('Vm') },
  'DELETE /v1/vms/{vm}': { tag: 'vms', summary: 'Unregister a VM', query: { delete: '`true` also deletes its folder' } },
  'POST /v1/vms/{vm}/start': { tag: 'vms', summary: 'Start a VM', body: { type: 'object', properties: { type: { type: 'string', enum: ['netns', 'headless'] }, netns: str } }, response: ref('Vm') },
  'POST /v1/vms/{vm}/poweroff': { tag: 'vms', summary: 'Power a VM off', response: ref('Vm') },

  'GET /v1/vms/{vm}/nics': { tag: 'nics', summary: "A VM's NICs with their running state", response: arrayOf(ref('Nic')) },
  'GET /v1/vms/{vm}/nics/{n}': { tag: 'nics', summary: 'One NIC', response: ref('Nic') },
  'PATCH /v1/vms/{vm}/nics/{n}': { tag: 'nics', summary: 'Change a NIC: pull or plug the cable, promiscuous policy, trace, attachment', body: ref('NicPatch'), response: ref('Nic') },

  'GET /v1/forwards': { tag: 'forwards', summary: 'Every port forward of every NAT NIC and NAT network', response: arrayOf(ref('ForwardView')) },
  'GET /v1/vms/{vm}/nics/{n}/forwards': { tag: 'forwards', summary: "A NAT NIC's port forwards", response: arrayOf(ref('Forward')) },
  'POST /v1/vms/{vm}/nics/{n}/forwards': { tag: 'forwards', summary: 'Add a port forward to a NAT NIC (binds the host port at once if the VM runs)', body: ref('ForwardRequest'), response: ref('Forward') },
  'DELETE /v1/vms/{vm}/nics/{n}/forwards/{name}': { tag: 'forwards', summary: 'Remove a port forward from a NAT NIC' },
  'GET /v1/natnetworks/{name}/forwards': { tag: 'forwards', summary: "A NAT network's port forwards", response: arrayOf(ref('Forward')) },
  'POST /v1/natnetworks/{name}/forwards': { tag: 'forwards', summary: 'Add a port forward to a NAT network (guestIp required)', body: ref('ForwardRequest'), response: ref('Forward') },
  'DELETE /v1/natnetworks/{name}/forwards/{rule}': { tag: 'forwards', summary: 'Remove a port forward from a NAT network' },

  'GET /v1/captures': { tag: 'captures', summary: 'Captures running now', response: arrayOf(ref('Capture')) },
  'GET /v1/vms/{vm}/nics/{n}/capture': { tag: 'captures', summary: "A NIC's capture state", response: ref('CaptureState') },
  'POST /v1/vms/{vm}/nics/{n}/capture': { tag: 'captures', summary: 'Start capturing a running NIC to a pcap file', body: { type: 'object', properties: { file: str } }, response: ref('CaptureState') },
  'DELETE /v1/vms/{vm}/nics/{n}/capture': { tag: 'captures', summary: 'Stop the capture', response: ref('CaptureState') },
  'GET /v1/vms/{vm}/nics/{n}/capture/pcap': { tag: 'captures', summary: 'Download the capture file (also while it runs)', produces: 'application/vnd.tcpdump.pcap', response: { type: 'string', format: 'binary' } },

  'GET /v1/networks': { tag: 'networks', summary: 'Every network: internal networks, NAT networks, per-NIC NATs; `?kind=intnet` lists internal networks as `list intnets`', query: { kind: '`intnet` for the internal-network list' }, response: arrayOf(ref('Network')) },
  'GET /v1/networks/{network}': { tag: 'networks', summary: 'One network by key (`intnet:lan`, `natnet:NAME`, `nat:VM/nic1` URL-encoded)', response: ref('Network') },
  'GET /v1/natnetworks': { tag: 'networks', summary: 'NAT networks', response: arrayOf(ref('NatNetwork')) },
  'POST /v1/natnetworks': { tag: 'networks', summary: 'Add a NAT network', body: { type: 'object', required: ['name', 'network'], properties: { name: str, network: str, enabled: bool, dhcp: bool, localhostReachable: bool, addForwards: arrayOf(str) } }, response: ref('NatNetwork') },
  'GET /v1/natnetworks/{name}': { tag: 'networks', summary: 'One NAT network', response: ref('NatNetwork') },
  'PATCH /v1/natnetworks/{name}': { tag: 'networks', summary: 'Change a NAT network', body: { type: 'object', properties: { network: str, enabled: bool, dhcp: bool, localhostReachable: bool, addForwards: arrayOf(str), deleteForwards: arrayOf(str) } }, response: ref('NatNetwork') },
  'DELETE /v1/natnetworks/{name}': { tag: 'networks', summary: 'Remove a NAT network' },
  'POST /v1/natnetworks/{name}/start': { tag: 'networks', summary: 'Start a NAT network without VMs' },
  'POST /v1/natnetworks/{name}/stop': { tag: 'networks', summary: 'Stop a NAT network started by hand' },

  'GET /v1/leases': { tag: 'leases', summary: 'DHCP leases vnet handed out', query: { network: 'only this network (key or NAT network name)' }, response: arrayOf(ref('Lease')) },
  'GET /v1/stats': { tag: 'stats', summary: 'Engine counters: per NIC, per NAT LAN, per switch, and the event loop\'s busy polling' },

  'GET /v1/hostonlyifs': { tag: 'networks', summary: 'Host-only interfaces (vboxnetN) with address, MAC and status' },
  'POST /v1/hostonlyifs': { tag: 'networks', summary: 'Create a host-only interface (next vboxnetN, or `name`) with its default DHCP server', body: { type: 'object', properties: { name: str } } },
  'PATCH /v1/hostonlyifs/{name}': { tag: 'networks', summary: 'Set a host-only interface address (hostonlyif ipconfig)', body: { type: 'object', required: ['ip'], properties: { ip: str, netmask: str } } },
  'DELETE /v1/hostonlyifs/{name}': { tag: 'networks', summary: 'Remove a host-only interface and its DHCP server' },
  'GET /v1/bridgedifs': { tag: 'networks', summary: 'Interfaces of the daemon namespace a bridged NIC can use' },
  'GET /v1/dhcpservers': { tag: 'dhcp', summary: 'DHCP servers of intnets, host-only interfaces and NAT networks' },
  'POST /v1/dhcpservers': { tag: 'dhcp', summary: 'Add a DHCP server (`network` or `interface`, serverIp, netmask, lowerIp, upperIp, enabled, leaseTimeSec, setOptions, fixed)', body: { type: 'object' } },
  'GET /v1/dhcpservers/{network}': { tag: 'dhcp', summary: 'One DHCP server, by VirtualBox network name' },
  'PATCH /v1/dhcpservers/{network}': { tag: 'dhcp', summary: 'Change a DHCP server', body: { type: 'object' } },
  'DELETE /v1/dhcpservers/{network}': { tag: 'dhcp', summary: 'Remove a DHCP server' },
  'GET /v1/dhcpservers/{network}/leases': { tag: 'dhcp', summary: 'Leases of one DHCP server (findlease)', query: { mac: 'only this MAC (404 when it has none)' }, response: arrayOf(ref('Lease')) },
  'GET /v1/lab': { tag: 'lab', summary: 'The state as a lab spec (export-config)' },
  'POST /v1/lab': { tag: 'lab', summary: 'Apply a lab spec idempotently (`dryRun` plans only); returns the changes made', body: { type: 'object' } },

  'GET /v1/events': { tag: 'events', summary: 'Server-Sent Events stream; `Last-Event-ID` replays kept events', query: { types: 'comma-separated event types', since: 'replay events after this id' }, produces: 'text/event-stream' },
  'GET /v1/events/recent': { tag: 'events', summary: 'The last kept events', query: { types: 'comma-separated event types' }, response: arrayOf(ref('Event')) },

  'GET /services/forwarder/all': { tag: 'gvisor-tap-vsock', summary: 'gvisor-tap-vsock: every forward', response: arrayOf(ref('GvisorProxy')) },
  'POST /services/forwarder/expose': { tag: 'gvisor-tap-vsock', summary: 'gvisor-tap-vsock: forward local → remote (200 empty; 400/500 text)', body: ref('GvisorProxy'), produces: 'text/plain' },
  'POST /services/forwarder/unexpose': { tag: 'gvisor-tap-vsock', summary: 'gvisor-tap-vsock: remove the forward on local (500 "proxy not found")', body: { type: 'object', required: ['local'], properties: { local: str, protocol: str } }, produces: 'text/plain' },
  'GET /services/dhcp/leases': { tag: 'gvisor-tap-vsock', summary: 'gvisor-tap-vsock: bound leases as {ip: mac}', response: { type: 'object', additionalProperties: str } },
};

/**
 * Routes of other modules (routes-networks.ts, routes-vm-files.ts). They are
 * documented while the router serves them; `x-vnet-module` names the file.
 */
const OTHER_ROUTES: Record<string, OpSpec & { module: string }> = {
  'GET /v1/hostonlyifs': { module: 'routes-networks', tag: 'networks', summary: 'Host-only interfaces (list hostonlyifs)' },
  'POST /v1/hostonlyifs': { module: 'routes-networks', tag: 'networks', summary: 'Create a host-only interface', body: { type: 'object', properties: { name: str } } },
  'PATCH /v1/hostonlyifs/{name}': { module: 'routes-networks', tag: 'networks', summary: 'Set a host-only interface address (hostonlyif ipconfig)', body: { type: 'object', required: ['ip'], properties: { ip: str, netmask: str } } },
  'DELETE /v1/hostonlyifs/{name}': { module: 'routes-networks', tag: 'networks', summary: 'Remove a host-only interface' },
  'GET /v1/bridgedifs': { module: 'routes-networks', tag: 'networks', summary: 'Interfaces a NIC can bridge to (list bridgedifs)' },
  'GET /v1/dhcpservers': { module: 'routes-networks', tag: 'dhcpservers', summary: 'DHCP servers (list dhcpservers)' },
  'POST /v1/dhcpservers': { module: 'routes-networks', tag: 'dhcpservers', summary: 'Add a DHCP server to a network or interface', body: { type: 'object', properties: { network: str, interface: str } } },
  'GET /v1/dhcpservers/{network}': { module: 'routes-networks', tag: 'dhcpservers', summary: 'One DHCP server by network name' },
  'PATCH /v1/dhcpservers/{network}': { module: 'routes-networks', tag: 'dhcpservers', summary: 'Change a DHCP server', body: { type: 'object' } },
  'DELETE /v1/dhcpservers/{network}': { module: 'routes-networks', tag: 'dhcpservers', summary: 'Remove a DHCP server' },
  'GET /v1/dhcpservers/{network}/leases': { module: 'routes-networks', tag: 'dhcpservers', summary: "A DHCP server's leases (dhcpserver findlease with ?mac=)", query: { mac: 'only this MAC' }, response: arrayOf(ref('Lease')) },
  'GET /v1/lab': { module: 'routes-networks', tag: 'lab', summary: 'The current configuration as a lab file' },
  'POST /v1/lab': { module: 'routes-networks', tag: 'lab', summary: 'Apply a lab file', body: { type: 'object' } },
  'GET /v1/media': { module: 'routes-vm-files', tag: 'media', summary: 'Registered media (list hdds)', query: { kind: 'hdd or dvd' } },
  'POST /v1/media': { module: 'routes-vm-files', tag: 'media', summary: 'Create a disk image (createmedium)', body: { type: 'object', required: ['filename', 'size'], properties: { filename: str, size: int, format: str } } },
  'POST /v1/media/close': { module: 'routes-vm-files', tag: 'media', summary: 'Forget a medium (closemedium)', body: { type: 'object', required: ['medium'], properties: { medium: str, delete: bool } } },
  'POST /v1/media/check': { module: 'routes-vm-files', tag: 'media', summary: "Check a VDI's pre-header", body: { type: 'object', required: ['path'], properties: { path: str } } },
  'POST /v1/media/repair': { module: 'routes-vm-files', tag: 'media', summary: "Repair a VDI's pre-header", body: { type: 'object', required: ['path'], properties: { path: str } } },
  'POST /v1/vms/{vm}/storagectl': { module: 'routes-vm-files', tag: 'vms', summary: 'Add or remove a storage controller', body: { type: 'object', required: ['name'], properties: { name: str, add: str, remove: bool } } },
  'POST /v1/vms/{vm}/storageattach': { module: 'routes-vm-files', tag: 'vms', summary: 'Attach a disk or DVD', body: { type: 'object', required: ['storagectl', 'port', 'medium'], properties: { storagectl: str, port: int, device: int, type: str, medium: str } } },
  'POST /v1/vms/{vm}/clone': { module: 'routes-vm-files', tag: 'vms', summary: 'Clone a VM', body: { type: 'object', required: ['name'], properties: { name: str, options: arrayOf(str), register: bool } } },
  'GET /v1/vms/{vm}/export-source': { module: 'routes-vm-files', tag: 'vms', summary: 'What export needs of a VM' },
  'POST /v1/import': { module: 'routes-vm-files', tag: 'vms', summary: 'Import an exported VM', body: { type: 'object', required: ['file'], properties: { file: str, vsysName: str } } },
  'POST /v1/vms/{vm}/control': { module: 'routes-vm-files', tag: 'vms', summary: 'controlvm actions (reset, pause, resume, acpipowerbutton)', body: { type: 'object', required: ['action'], properties: { action: str } } },
  'GET /v1/vms/{vm}/qemu-command': { module: 'routes-vm-files', tag: 'vms', summary: "The QEMU command line for a VM's NICs" },
  'GET /v1/vms/{vm}/console': { module: 'routes-vm-files', tag: 'vms', summary: "Path of a VM's serial console log" },
};

const SCHEMAS: Record<string, Schema> = {
  Error: { type: 'object', required: ['error'], properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string', example: 'VNET_ERR_NOT_FOUND' }, message: str, field: str } } } },
  Vm: { type: 'object', properties: { name: str, uuid: str, ostype: str, state: str, memoryMb: int, cpus: int, bootOrder: arrayOf(str), nics: arrayOf({ type: 'object' }), running: { type: ['object', 'null'] } } },
  NicPatch: { type: 'object', properties: { mode: str, mac: str, cableConnected: bool, promisc: { type: 'string', enum: ['deny', 'allow-vms', 'allow-all'] }, trace: bool, traceFile: str, intnet: str, natNetwork: str, natNet: str, natLocalhostReachable: bool, natDnsHostResolver: bool, natDnsPassDomain: bool, natSplice: bool, natTftpPrefix: str, natTftpFile: str, natTftpServer: str, natBindIp: str, mtu: int, genericDriver: str, genericProperties: { type: 'object' }, hostOnlyAdapter: str, bridgeAdapter: str } },
  Nic: { type: 'object', properties: { vm: str, slot: int, mode: str, mac: str, cableConnected: bool, promisc: str, trace: bool, network: { type: ['string', 'null'] }, portForwards: arrayOf(ref('Forward')), runtime: { type: ['object', 'null'], properties: { linkUp: bool, fromGuestBps: int, toGuestBps: int, framesFromGuest: int, bytesFromGuest: int, framesToGuest: int, bytesToGuest: int, capture: { type: ['object', 'null'] } } } } },
  Forward: { type: 'object', properties: { name: str, protocol: { type: 'string', enum: ['tcp', 'udp'] }, hostIp: str, hostPort: port, guestIp: str, guestPort: port } },
  ForwardRequest: { type: 'object', required: ['protocol', 'hostPort', 'guestPort'], properties: { name: str, protocol: { type: 'string', enum: ['tcp', 'udp'] }, hostIp: str, hostPort: port, guestIp: str, guestPort: port } },
  ForwardView: { allOf: [ref('Forward'), { type: 'object', properties: { owner: str } }] },
  Capture: { type: 'object', properties: { vm: str, nic: int, path: str, frames: int, dropped: int, bytesWritten: int } },
  CaptureState: { type: 'object', properties: { vm: str, nic: int, active: bool, path: str, capture: { type: ['object', 'null'] } } },
  Network: { type: 'object', properties: { key: str, kind: str, name: str, cidr: { type: ['string', 'null'] }, active: bool, nics: arrayOf(str) } },
  NatNetwork: { type: 'object', properties: { name: str, network: str, enabled: bool, dhcp: bool, localhostReachable: bool, portForwards: arrayOf(ref('Forward')), running: bool } },
  Lease: { type: 'object', properties: { network: str, mac: str, ip: str, hostname: { type: ['string', 'null'] }, vm: { type: ['string', 'null'] }, nic: { type: ['integer', 'null'] }, state: str, expiresAt: str } },
  Event: { type: 'object', properties: { id: int, type: { type: 'string', enum: ['vm.state', 'nic.link', 'lease.granted', 'lease.released', 'lease.expired', 'forward.added', 'forward.removed', 'flows.sampled', 'capture.started', 'capture.stopped'] }, time: str, data: { type: 'object' } } },
  Topology: { type: 'object', properties: { host: { type: 'object' }, networks: arrayOf(ref('Network')), vms: arrayOf({ type: 'object', properties: { name: str, state: str, nics: arrayOf(ref('Nic')) } }), forwards: arrayOf(ref('ForwardView')) } },
  GvisorProxy: { type: 'object', properties: { local: { type: 'string', example: '127.0.0.1:8080' }, remote: { type: 'string', example: '10.0.2.15:80' }, protocol: { type: 'string', enum: ['tcp', 'udp'] } } },
};

/** `/v1/vms/:vm` → `/v1/vms/{vm}` */
export const openApiPath = (pattern: string): string => pattern.replace(/:([A-Za-z]+)/g, '{$1}');

/**
 * The document; `version` is the package's. Other modules' routes are
 * included when `routed` (the router's list) has them.
 */
export function openApiDocument(version: string, routed: { method: string; pattern: string }[] = []): Schema {
  const paths: Record<string, Record<string, Schema>> = {};
  const served = new Set(routed.map((r) => `${r.method} ${openApiPath(r.pattern)}`));
  const add = (key: string, operation: Schema) => {
    const [method, path] = key.split(' ') as [string, string];
    (paths[path] ??= {})[method.toLowerCase()] = operation;
  };
  const paramsOf = (key: string) => [...key.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
  for (const [key, spec] of Object.entries(ROUTES)) add(key, op(spec, paramsOf(key)));
  for (const [key, spec] of Object.entries(OTHER_ROUTES)) {
    if (served.has(key)) add(key, { ...op(spec, paramsOf(key)), 'x-vnet-module': spec.module });
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'vnet API',
      version,
      description: 'VirtualBox-style networking for QEMU VMs and network namespaces. On $VNET_HOME/vnet.sock (mode 0600) without a token; on TCP (`vnet daemon --listen tcp:HOST:PORT` or `--ui`) with `Authorization: Bearer <token>` from $VNET_HOME/token.',
    },
    servers: [{ url: '/' }],
    components: {
      schemas: SCHEMAS,
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'TCP only: the token in $VNET_HOME/token' } },
    },
    security: [{}, { bearer: [] }],
    paths,
  };
}
