// Draws the topology as SVG: the host on top, networks in the middle, VMs
// below; a line per NIC from its VM to its network (green: cable in, red
// dashed: pulled, grey dotted: VM not running), the NAT networks' uplinks to
// the host with their port forwards. Text goes in with textContent only.

const NS = 'http://www.w3.org/2000/svg';
const WIDTH = 1000;
const HEIGHT = 430;
const HOST_Y = 16;
const NET_Y = 170;
const VM_Y = 320;

function el(name, attrs = {}, parent) {
  const node = document.createElementNS(NS, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (parent) parent.appendChild(node);
  return node;
}

function text(parent, x, y, content, attrs = {}) {
  const t = el('text', { x, y, ...attrs }, parent);
  t.textContent = content;
  return t;
}

/** "12.3 kB/s" */
export function formatRate(bps) {
  if (!bps) return '0 B/s';
  const units = ['B/s', 'kB/s', 'MB/s', 'GB/s'];
  let value = bps;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(value >= 100 || unit === 0 ? 0 : 1)} ${units[unit]}`;
}

const kindClass = (kind) => (['intnet', 'natnetwork', 'nat'].includes(kind) ? kind : 'other');
const spread = (count, index) => ((index + 1) * WIDTH) / (count + 1);
const fitted = (s, max) => (s.length > max ? `${s.slice(0, max - 1)}…` : s);

export function drawTopology(svg, topo) {
  svg.setAttribute('viewBox', `0 0 ${WIDTH} ${HEIGHT}`);
  svg.replaceChildren();
  const links = el('g', { class: 'links' }, svg);
  const nodes = el('g', { class: 'nodes' }, svg);

  // Host.
  const hostX = WIDTH / 2;
  const host = el('g', { class: 'node host', 'data-testid': 'host' }, nodes);
  el('rect', { x: hostX - 110, y: HOST_Y, width: 220, height: 44, rx: 10 }, host);
  text(host, hostX, HOST_Y + 19, `host · ${topo.host.name}`, { 'text-anchor': 'middle' });
  text(host, hostX, HOST_Y + 35, 'vnet daemon', { 'text-anchor': 'middle', class: 'label-muted' });

  // Networks: the ones some VM uses or that run.
  const networks = topo.networks.filter((n) => n.nics.length || n.active);
  const netPos = new Map();
  networks.forEach((n, i) => {
    const x = spread(networks.length, i);
    netPos.set(n.key, x);
    const g = el('g', { class: `node network ${kindClass(n.kind)}`, 'data-testid': 'network', 'data-key': n.key }, nodes);
    el('rect', { x: x - 85, y: NET_Y, width: 170, height: 50, rx: 25 }, g);
    text(g, x, NET_Y + 21, fitted(n.name, 24), { 'text-anchor': 'middle' });
    const sub = n.kind === 'natnetwork' ? 'NAT network' : n.kind === 'intnet' ? 'internal network' : n.kind === 'nat' ? 'NAT' : n.kind;
    text(g, x, NET_Y + 37, n.cidr ? `${sub} · ${n.cidr}` : sub, { 'text-anchor': 'middle', class: 'label-muted' });
    if (n.kind === 'natnetwork' || n.kind === 'nat') {
      // NAT reaches the outside through the host.
      el('path', { class: 'uplink', d: `M${x},${NET_Y} C${x},${NET_Y - 50} ${hostX},${HOST_Y + 94} ${hostX},${HOST_Y + 44}` }, links);
    }
  });

  // Forwards, as badges over their network's uplink.
  const forwardsByNet = new Map();
  for (const f of topo.forwards) {
    const key = f.owner.startsWith('natnet:') ? f.owner : `nat:${f.owner}`;
    if (!netPos.has(key)) continue;
    if (!forwardsByNet.has(key)) forwardsByNet.set(key, []);
    forwardsByNet.get(key).push(f);
  }
  for (const [key, list] of forwardsByNet) {
    const x = netPos.get(key);
    list.slice(0, 3).forEach((f, i) => {
      const g = el('g', { 'data-testid': 'forward-badge', 'data-name': f.name }, nodes);
      const label = `${f.protocol} :${f.hostPort} → ${f.guestIp || 'guest'}:${f.guestPort}`;
      const y = NET_Y - 62 + i * 20;
      el('rect', { class: 'forward', x: x + 6, y: y - 13, width: label.length * 6.4 + 12, height: 18, rx: 5 }, g);
      text(g, x + 12, y, label);
    });
    if (list.length > 3) text(nodes, x + 12, NET_Y - 62 + 3 * 20, `+${list.length - 3} more`, { class: 'label-muted' });
  }

  // VMs and their NICs.
  topo.vms.forEach((vm, i) => {
    const x = spread(topo.vms.length, i);
    const g = el('g', { class: `node vm ${vm.state}`, 'data-testid': 'vm', 'data-vm': vm.name }, nodes);
    el('rect', { x: x - 75, y: VM_Y, width: 150, height: 56, rx: 8 }, g);
    text(g, x, VM_Y + 23, fitted(vm.name, 20), { 'text-anchor': 'middle' });
    text(g, x, VM_Y + 40, vm.state === 'running' ? '● running' : '○ powered off', { 'text-anchor': 'middle', class: 'label-muted' });
    const nics = vm.nics.filter((n) => n.network && netPos.has(n.network));
    nics.forEach((nic, j) => {
      const from = x - 50 + ((j + 1) * 100) / (nics.length + 1);
      const to = netPos.get(nic.network);
      const state = !nic.runtime ? 'idle' : nic.runtime.linkUp && nic.cableConnected ? 'up' : 'down';
      el('path', {
        class: `link ${state}`,
        d: `M${from},${VM_Y} C${from},${VM_Y - 45} ${to},${NET_Y + 95} ${to},${NET_Y + 50}`,
        'data-testid': 'nic-link',
        'data-vm': vm.name,
        'data-nic': nic.slot,
        'data-state': state,
      }, links);
      // Under the VM: one line per NIC with its rates (↑ from the guest, ↓ to it).
      const rate = nic.runtime ? ` ↑${formatRate(nic.runtime.fromGuestBps)} ↓${formatRate(nic.runtime.toGuestBps)}` : '';
      text(nodes, x, VM_Y + 70 + j * 14, `nic${nic.slot}${state === 'down' ? ' ✂ pulled' : ''}${rate}`, { class: 'rate', 'text-anchor': 'middle', 'data-testid': 'nic-rate' });
    });
  });

  if (!topo.vms.length && !networks.length) text(nodes, WIDTH / 2, NET_Y + 20, 'No VMs or networks yet: create one with vnet createvm', { 'text-anchor': 'middle', class: 'label-muted' });
}
