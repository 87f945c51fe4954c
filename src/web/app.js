// The vnet dashboard: reads /v1/topology and /v1/leases (every second, for
// rates, and at once on every event from /v1/events), and drives the API for
// cables, forwards and captures. Plain ES modules; no build step, nothing
// loaded from outside this daemon. Text goes in with textContent only.
import { drawTopology, formatRate } from './topology.js';

const EVENT_TYPES = ['vm.state', 'nic.link', 'lease.granted', 'lease.released', 'lease.expired', 'forward.added', 'forward.removed', 'flows.sampled', 'capture.started', 'capture.stopped'];
const REFRESH_MS = 1000;
const MAX_LOG = 100;

const $ = (selector) => document.querySelector(selector);
const enc = encodeURIComponent;
/** NICs captured during this visit, so their pcap stays downloadable after stopping. */
const captured = new Set();
let topo = null;

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    credentials: 'same-origin',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const value = text ? JSON.parse(text) : null;
  if (!res.ok) throw new Error(value?.error?.message ?? `HTTP ${res.status}`);
  return value;
}

function showError(err, where = '#action-error') {
  const box = $(where);
  box.textContent = err ? String(err.message ?? err) : '';
  if (err && where === '#action-error') setTimeout(() => { if (box.textContent === String(err.message ?? err)) box.textContent = ''; }, 6000);
}

function node(tag, attrs = {}, children = []) {
  const e = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'text') e.textContent = value;
    else if (key === 'class') e.className = value;
    else e.setAttribute(key, value);
  }
  for (const child of children) e.append(child);
  return e;
}

/**
 * Keyed table rendering: rows are kept across refreshes (a click in flight
 * never loses its button), and a cell is rebuilt only when its content changed.
 */
function renderTable(tbody, items, keyOf, cellsOf, emptyText) {
  const wanted = new Set(items.map(keyOf));
  for (const row of [...tbody.rows]) if (!wanted.has(row.dataset.key)) row.remove();
  tbody.querySelector('tr.empty-row')?.remove();
  if (!items.length) {
    const cols = tbody.parentElement.tHead.rows[0].cells.length;
    tbody.append(node('tr', { class: 'empty-row' }, [node('td', { class: 'empty', colspan: String(cols), text: emptyText })]));
    return;
  }
  items.forEach((item, index) => {
    const key = keyOf(item);
    let row = [...tbody.rows].find((r) => r.dataset.key === key);
    if (!row) {
      row = node('tr');
      row.dataset.key = key;
    }
    if (tbody.rows[index] !== row) tbody.insertBefore(row, tbody.rows[index] ?? null);
    cellsOf(item).forEach((cell, i) => {
      const sig = JSON.stringify(cell.sig ?? cell.text ?? '');
      let td = row.cells[i];
      if (!td) td = row.insertCell(i);
      if (td.dataset.sig === sig) return;
      td.dataset.sig = sig;
      td.className = cell.class ?? '';
      td.replaceChildren(...(cell.build ? cell.build() : [document.createTextNode(cell.text ?? '')]));
    });
  });
}

function button(label, attrs, onClick, danger = false) {
  const b = node('button', { type: 'button', ...attrs, text: label, class: danger ? 'danger' : '' });
  b.addEventListener('click', async () => {
    b.disabled = true;
    try {
      await onClick();
      showError(null);
    } catch (err) {
      showError(err);
    } finally {
      b.disabled = false;
      void refresh();
    }
  });
  return b;
}

function renderNics() {
  const rows = topo.vms.flatMap((vm) => vm.nics.map((nic) => ({ vm, nic })));
  renderTable($('#nic-table tbody'), rows, ({ vm, nic }) => `${vm.name}/${nic.slot}`, ({ vm, nic }) => {
    const path = `/v1/vms/${enc(vm.name)}/nics/${nic.slot}`;
    const rt = nic.runtime;
    const capturing = !!rt?.capture;
    if (capturing) captured.add(`${vm.name}/${nic.slot}`);
    const cable = nic.cableConnected;
    return [
      { text: vm.name },
      { text: `nic${nic.slot}` },
      { sig: [nic.network, nic.mode], build: () => [node('span', { class: 'tag', text: nic.network ?? nic.mode })] },
      { text: nic.mac },
      { text: rt ? formatRate(rt.fromGuestBps) : '—', class: 'num' },
      { text: rt ? formatRate(rt.toGuestBps) : '—', class: 'num' },
      {
        sig: ['cable', cable, vm.name],
        build: () => [
          node('span', { class: `tag ${cable ? 'up' : 'down'}`, text: cable ? 'in' : 'pulled' }), ' ',
          button(cable ? 'Pull cable' : 'Plug cable', { 'data-action': 'cable', 'data-vm': vm.name, 'data-nic': String(nic.slot) },
            () => api('PATCH', path, { cableConnected: !cable }), cable),
        ],
      },
      {
        sig: ['capture', !!rt, capturing, captured.has(`${vm.name}/${nic.slot}`), rt?.capture?.frames ?? 0],
        build: () => {
          if (!rt) return [document.createTextNode('—')];
          const parts = [capturing
            ? button('Stop capture', { 'data-action': 'capture-stop', 'data-vm': vm.name, 'data-nic': String(nic.slot) }, () => api('DELETE', `${path}/capture`), true)
            : button('Start capture', { 'data-action': 'capture-start', 'data-vm': vm.name, 'data-nic': String(nic.slot) }, () => api('POST', `${path}/capture`, {}))];
          if (capturing) parts.push(' ', node('span', { class: 'muted', text: `${rt.capture.frames} frames` }));
          if (captured.has(`${vm.name}/${nic.slot}`)) {
            parts.push(' ', node('a', { href: `${path}/capture/pcap`, download: `${vm.name}-nic${nic.slot}.pcap`, 'data-action': 'capture-download', text: 'pcap' }));
          }
          return parts;
        },
      },
    ];
  }, 'No NICs attached. Attach one with vnet modifyvm VM --nic1 intnet.');
}

/** Where forwards can go: NAT NICs (VM/nicN) and NAT networks (natnet:NAME). */
function forwardOwners() {
  const owners = [];
  for (const vm of topo.vms) for (const nic of vm.nics) if (nic.mode === 'nat') owners.push({ value: `${vm.name}/nic${nic.slot}`, label: `${vm.name} nic${nic.slot} (NAT)` });
  for (const n of topo.networks) if (n.kind === 'natnetwork') owners.push({ value: `natnet:${n.name}`, label: `${n.name} (NAT network)` });
  return owners;
}

function forwardPath(owner) {
  if (owner.startsWith('natnet:')) return `/v1/natnetworks/${enc(owner.slice(7))}/forwards`;
  const [vm, nic] = owner.split('/nic');
  return `/v1/vms/${enc(vm)}/nics/${nic}/forwards`;
}

function renderForwards() {
  const select = $('#forward-form select[name=owner]');
  const owners = forwardOwners();
  const sig = JSON.stringify(owners);
  if (select.dataset.sig !== sig) {
    const current = select.value;
    select.replaceChildren(...owners.map((o) => node('option', { value: o.value, text: o.label })));
    if (owners.some((o) => o.value === current)) select.value = current;
    select.dataset.sig = sig;
  }
  renderTable($('#forward-table tbody'), topo.forwards, (f) => `${f.owner}/${f.name}`, (f) => [
    { text: f.owner.replace(/^natnet:/, '') },
    { text: f.name },
    { text: f.protocol },
    { text: `${f.hostIp || '127.0.0.1'}:${f.hostPort}` },
    { text: `${f.guestIp || '(lease)'}:${f.guestPort}` },
    { sig: ['rm', f.owner, f.name], build: () => [button('Remove', { 'data-action': 'forward-remove', 'data-name': f.name }, () => api('DELETE', `${forwardPath(f.owner)}/${enc(f.name)}`), true)] },
  ], 'No port forwards.');
}

async function addForward(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const data = new FormData(form);
  const body = { protocol: data.get('protocol'), hostPort: Number(data.get('hostPort')), guestPort: Number(data.get('guestPort')) };
  for (const key of ['name', 'hostIp', 'guestIp']) if (data.get(key)) body[key] = data.get(key);
  const submit = form.querySelector('button[type=submit]');
  submit.disabled = true;
  try {
    if (!data.get('owner')) throw new Error('no NAT NIC or NAT network to forward to');
    await api('POST', forwardPath(String(data.get('owner'))), body);
    showError(null, '#forward-error');
    form.querySelector('input[name=hostPort]').value = '';
    form.querySelector('input[name=name]').value = '';
  } catch (err) {
    showError(err, '#forward-error');
  } finally {
    submit.disabled = false;
    void refresh();
  }
}

function renderLeases(leases) {
  renderTable($('#lease-table tbody'), leases, (l) => `${l.network}/${l.mac}`, (l) => [
    { text: l.network },
    { text: l.ip },
    { text: l.mac },
    { text: l.vm ? `${l.vm} nic${l.nic}` : '—' },
    { text: l.hostname ?? '—' },
    { sig: l.state, build: () => [node('span', { class: `tag ${l.state === 'bound' ? 'up' : ''}`, text: l.state })] },
    { text: new Date(l.expiresAt).toLocaleString([], { dateStyle: 'short', timeStyle: 'short' }) },
  ], 'No leases yet.');
}

let refreshing = null;
let again = false;
/** One refresh at a time; a request during one runs once more after it. */
async function refresh() {
  if (refreshing) {
    again = true;
    return refreshing;
  }
  refreshing = (async () => {
    try {
      const [t, leases] = await Promise.all([api('GET', '/v1/topology'), api('GET', '/v1/leases')]);
      topo = t;
      $('#host').textContent = `${topo.host.name} · ${topo.vms.length} VMs · ${topo.networks.length} networks`;
      drawTopology($('#topology'), topo);
      renderNics();
      renderForwards();
      renderLeases(leases);
    } catch (err) {
      showError(err);
    }
  })();
  await refreshing;
  refreshing = null;
  if (again) {
    again = false;
    await refresh();
  }
}

function logEvent(event) {
  const log = $('#event-log');
  const fields = Object.entries(event.data).map(([k, v]) => `${k}=${v ?? '-'}`).join(' ');
  const item = node('li', {}, [
    node('span', { class: 'muted', text: new Date(event.time).toLocaleTimeString() }),
    node('span', { class: 'type', text: event.type }),
    node('span', { text: fields }),
  ]);
  log.prepend(item);
  while (log.children.length > MAX_LOG) log.lastElementChild.remove();
}

function connectEvents() {
  const status = $('#status');
  const source = new EventSource('/v1/events?since=0');
  source.onopen = () => {
    status.dataset.state = 'live';
    status.textContent = 'live';
  };
  source.onerror = () => {
    status.dataset.state = 'down';
    status.textContent = 'reconnecting…';
  };
  for (const type of EVENT_TYPES) {
    source.addEventListener(type, (message) => {
      logEvent(JSON.parse(message.data));
      if (type !== 'flows.sampled') void refresh();
    });
  }
}

$('#forward-form').addEventListener('submit', addForward);
connectEvents();
void refresh();
setInterval(() => void refresh(), REFRESH_MS);
