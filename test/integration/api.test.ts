/**
 * The REST API against a real daemon and a real netns guest: every route
 * (the last test checks that every operation of the OpenAPI document was
 * called), bad bodies (400 naming the field), unknown resources (404), the
 * TCP listener's token (401), events, captures, and gvisor-tap-vsock's
 * forwarder API opening a working forward to the guest.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab, run, waitFor } from '../helpers/lab.js';
import { ApiDaemon } from '../helpers/api.js';
import { ping, pingFails } from '../helpers/guest.js';
import { dhcp } from '../helpers/internet.js';
import { VNET_BIN } from '../helpers/vnet.js';

const lab = new Lab();
const TCP_PORT = 18181;
const TCP = `http://127.0.0.1:${TCP_PORT}`;
let api: ApiDaemon;
let hostNs: string;
let guest: string;
let guestMac: string;

const curlHost = (port: number) => lab.exec(hostNs, 'curl', ['-sS', '--max-time', '5', `http://127.0.0.1:${port}/index.html`]);

/** Status and error shape of a refusal. */
function assertError(res: { status: number; json: any; text: string }, status: number, field?: string): void {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.text}`);
  assert.equal(typeof res.json?.error?.code, 'string', res.text);
  assert.equal(typeof res.json?.error?.message, 'string', res.text);
  if (field !== undefined) {
    assert.equal(res.json.error.field, field, res.text);
    assert.match(res.json.error.message, new RegExp(`'${field}'`));
  }
}

describe('REST API', { timeout: 240_000 }, () => {
  before(async () => {
    hostNs = await lab.netns('host');
    api = await ApiDaemon.start(lab, hostNs, lab.tempDir('home'), ['--listen', `tcp:127.0.0.1:${TCP_PORT}`, '--ui', 'off', '--busy-poll-us', '350']);
    assert.equal((await api.request('POST', '/v1/vms', { name: 'g' })).status, 200);
    guest = lab.name('g');
    const started = await api.request('POST', '/v1/vms/g/start', { type: 'netns', netns: guest });
    assert.equal(started.status, 200, started.text);
    guestMac = started.json.nics[0].mac;
    const lease = await dhcp(lab, guest);
    assert.equal(lease.ip, '10.0.2.15');
    const www = lab.tempDir('www');
    writeFileSync(join(www, 'index.html'), 'hello from the guest\n');
    lab.spawn(guest, 'python3', ['-m', 'http.server', '--bind', '0.0.0.0', '8080', '--directory', www]);
    await lab.waitListening(guest, 8080);
    assert.equal((await api.request('POST', '/v1/vms', { name: 'h' })).status, 200);
    assert.equal((await api.request('PATCH', '/v1/vms/h', { nics: { 1: { mode: 'intnet', intnet: 'lan' } } })).status, 200);
    assert.equal((await api.request('POST', '/v1/natnetworks', { name: 'nn', network: '10.77.0.0/24' })).status, 200);
  });
  after(async () => {
    if (api && !api.alive) console.error(api.log);
    await lab.cleanup();
  });

  test('VMs: list, create, get, change, start, power off, delete', async () => {
    assert.deepEqual((await api.request('GET', '/v1/vms')).json.map((v: { name: string }) => v.name), ['g', 'h']);
    const created = await api.request('POST', '/v1/vms', { name: 'tmp', ostype: 'Linux_64' });
    assert.equal(created.json.name, 'tmp');
    assert.equal((await api.request('PATCH', '/v1/vms/tmp', { ostype: 'Debian_64' })).json.ostype, 'Debian_64');
    assert.equal((await api.request('GET', '/v1/vms/tmp')).json.ostype, 'Debian_64');
    assert.deepEqual((await api.request('DELETE', '/v1/vms/tmp?delete=true')).json, { deleted: 'tmp' });
    assertError(await api.request('GET', '/v1/vms/tmp'), 404);
    const start = await api.request('POST', '/v1/vms/h/start', { type: 'netns', netns: lab.name('h') });
    assert.equal(start.json.state, 'running', start.text);
    assert.equal((await api.request('POST', '/v1/vms/h/poweroff')).json.state, 'poweroff');
    assertError(await api.request('POST', '/v1/vms/h/poweroff'), 409);
  });

  test('NICs: list, get, pull and plug the cable (the guest loses and regains the gateway), promiscuous policy', async () => {
    const nics = (await api.request('GET', '/v1/vms/g/nics')).json;
    assert.equal(nics.length, 8);
    const nic = (await api.request('GET', '/v1/vms/g/nics/1')).json;
    assert.equal(nic.mode, 'nat');
    assert.equal(nic.network, 'nat:g/nic1');
    assert.equal(nic.runtime.linkUp, true);
    await ping(lab, guest, '10.0.2.2');
    const pulled = await api.request('PATCH', '/v1/vms/g/nics/1', { cableConnected: false });
    assert.equal(pulled.json.runtime.linkUp, false, pulled.text);
    await pingFails(lab, guest, '10.0.2.2');
    assert.equal((await api.request('PATCH', '/v1/vms/g/nics/1', { cableConnected: true })).json.runtime.linkUp, true);
    await ping(lab, guest, '10.0.2.2');
    assert.equal((await api.request('PATCH', '/v1/vms/g/nics/1', { promisc: 'allow-vms' })).json.promisc, 'allow-vms');
    assert.equal((await api.request('GET', '/v1/vms/h/nics/1')).json.runtime, null);
  });

  test('forwards on a NAT NIC: add (it answers), list, delete (it stops)', async () => {
    const added = await api.request('POST', '/v1/vms/g/nics/1/forwards', { name: 'web', protocol: 'tcp', hostPort: 18301, guestPort: 8080 });
    assert.equal(added.status, 200, added.text);
    assert.equal((await curlHost(18301)).stdout, 'hello from the guest\n');
    assert.deepEqual((await api.request('GET', '/v1/vms/g/nics/1/forwards')).json.map((r: { name: string }) => r.name), ['web']);
    assert.ok((await api.request('GET', '/v1/forwards')).json.some((f: { owner: string; name: string }) => f.owner === 'g/nic1' && f.name === 'web'));
    assertError(await api.request('POST', '/v1/vms/g/nics/1/forwards', { name: 'web', protocol: 'tcp', hostPort: 18302, guestPort: 8080 }), 400);
    assertError(await api.request('POST', '/v1/vms/h/nics/1/forwards', { protocol: 'tcp', hostPort: 18303, guestPort: 80 }), 409);
    assert.deepEqual((await api.request('DELETE', '/v1/vms/g/nics/1/forwards/web')).json, { deleted: 'web' });
    assert.notEqual((await curlHost(18301)).code, 0);
  });

  test('NAT networks: get, change, forwards, start and stop, delete', async () => {
    assert.ok((await api.request('GET', '/v1/natnetworks')).json.some((n: { name: string }) => n.name === 'nn'));
    assert.equal((await api.request('GET', '/v1/natnetworks/nn')).json.network, '10.77.0.0/24');
    assert.equal((await api.request('PATCH', '/v1/natnetworks/nn', { localhostReachable: true })).json.localhostReachable, true);
    const rule = { name: 'ssh', protocol: 'tcp', hostPort: 18322, guestIp: '10.77.0.4', guestPort: 22 };
    assert.equal((await api.request('POST', '/v1/natnetworks/nn/forwards', rule)).status, 200);
    assert.deepEqual((await api.request('GET', '/v1/natnetworks/nn/forwards')).json, [{ ...rule, hostIp: '' }]);
    assert.deepEqual((await api.request('DELETE', '/v1/natnetworks/nn/forwards/ssh')).json, { deleted: 'ssh' });
    assert.deepEqual((await api.request('POST', '/v1/natnetworks/nn/start')).json, { started: 'nn' });
    assert.equal((await api.request('GET', '/v1/natnetworks/nn')).json.running, true);
    assert.deepEqual((await api.request('POST', '/v1/natnetworks/nn/stop')).json, { stopped: 'nn' });
    assert.equal((await api.request('POST', '/v1/natnetworks', { name: 'gone', network: '10.78.0.0/24' })).status, 200);
    assert.deepEqual((await api.request('DELETE', '/v1/natnetworks/gone')).json, { deleted: 'gone' });
  });

  test('captures: start, list, download while running and after stop', async () => {
    const started = await api.request('POST', '/v1/vms/g/nics/1/capture', {});
    assert.equal(started.status, 200, started.text);
    assert.equal(started.json.active, true);
    assertError(await api.request('POST', '/v1/vms/g/nics/1/capture', {}), 409);
    await ping(lab, guest, '10.0.2.2', 3);
    assert.equal((await api.request('GET', '/v1/captures')).json.length, 1);
    await waitFor('frames in the capture', async () => (await api.request('GET', '/v1/vms/g/nics/1/capture')).json.capture.frames >= 6);
    const stopped = await api.request('DELETE', '/v1/vms/g/nics/1/capture');
    assert.equal(stopped.json.active, false);
    assertError(await api.request('DELETE', '/v1/vms/g/nics/1/capture'), 409);
    assertError(await api.request('POST', '/v1/vms/h/nics/1/capture', {}), 409);
    const pcap = await api.request('GET', '/v1/vms/g/nics/1/capture/pcap');
    assert.equal(pcap.status, 200);
    assert.equal(pcap.headers['content-type'], 'application/vnd.tcpdump.pcap');
    const file = join(lab.tempDir('pcap'), 'nic1.pcap');
    // The body came as UTF-8 text; fetch the bytes again with curl to keep them exact.
    await run('curl', ['-sS', '--unix-socket', join(api.home, 'vnet.sock'), '-o', file, 'http://vnet/v1/vms/g/nics/1/capture/pcap']);
    const dump = await run('tcpdump', ['-r', file, '-n', 'icmp']);
    assert.equal(dump.code, 0, dump.stderr);
    assert.match(dump.stdout, /10\.0\.2\.15 > 10\.0\.2\.2: ICMP echo request/);
  });

  test('networks, leases, stats, topology and the OpenAPI document', async () => {
    const networks = (await api.request('GET', '/v1/networks')).json.map((n: { key: string }) => n.key);
    for (const key of ['intnet:lan', 'natnet:nn', 'nat:g/nic1']) assert.ok(networks.includes(key), `${key} in ${networks}`);
    assert.deepEqual((await api.request('GET', '/v1/networks?kind=intnet')).json.map((n: { name: string }) => n.name), ['lan']);
    const nat = await api.request('GET', `/v1/networks/${encodeURIComponent('nat:g/nic1')}`);
    assert.equal(nat.json.cidr, '10.0.2.0/24');
    assert.deepEqual(nat.json.nics, ['g/nic1']);
    const leases = (await api.request('GET', '/v1/leases')).json;
    assert.equal(leases.length, 1);
    assert.equal(leases[0].ip, '10.0.2.15');
    assert.equal(leases[0].vm, 'g');
    const stats = (await api.request('GET', '/v1/stats')).json;
    assert.ok(stats.vms.g);
    assert.equal(stats.busyPoll.budgetUs, 350, 'the daemon took --busy-poll-us');
    const topo = (await api.request('GET', '/v1/topology')).json;
    assert.deepEqual(topo.vms.map((v: { name: string; state: string }) => [v.name, v.state]), [['g', 'running'], ['h', 'poweroff']]);
    assert.equal(typeof topo.vms[0].nics[0].runtime.fromGuestBps, 'number');
    const doc = (await api.request('GET', '/v1/openapi.json')).json;
    assert.equal(doc.openapi, '3.1.0');
  });

  test('events: the SSE stream, the recent list, and vnet events', async () => {
    // Both listeners start after the last event so far: what they print is what follows.
    const since = String(Math.max(0, ...(await api.request('GET', '/v1/events/recent')).json.map((e: { id: number }) => e.id)));
    const cli = spawn(process.execPath, [VNET_BIN, '--home', api.home, 'events', '--types', 'nic.link', '--count', '2', '--json', '--since', since], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    cli.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const done = new Promise((r) => cli.once('exit', r));
    // The SSE stream itself, read raw from the socket.
    api.exercised.add('GET /v1/events');
    const frames: string[] = [];
    const stream = request({ socketPath: join(api.home, 'vnet.sock'), path: `/v1/events?types=nic.link&since=${since}` }, (res) => {
      assert.equal(res.headers['content-type'], 'text/event-stream');
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => frames.push(chunk));
    });
    stream.on('error', () => {});
    stream.end();
    await waitFor('the event stream', () => frames.length > 0, 5000);
    await api.request('PATCH', '/v1/vms/g/nics/1', { cableConnected: false });
    await api.request('PATCH', '/v1/vms/g/nics/1', { cableConnected: true });
    await Promise.race([done, new Promise((_, reject) => setTimeout(() => reject(new Error(`vnet events printed: ${out}`)), 10_000))]);
    const printed = out.trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(printed.map((e) => e.data.cableConnected), [false, true]);
    await waitFor('SSE frames', () => frames.join('').split('event: nic.link').length - 1 >= 2, 5000);
    stream.destroy();
    assert.match(frames.join(''), /^retry: 2000\n\n(id: \d+\nevent: nic\.link\ndata: \{.*\}\n\n)+/);
    const recent = (await api.request('GET', '/v1/events/recent?types=vm.state,lease.granted,forward.added')).json.map((e: { type: string }) => e.type);
    for (const type of ['vm.state', 'lease.granted', 'forward.added']) assert.ok(recent.includes(type), `${type} in ${recent}`);
    assertError(await api.request('GET', '/v1/events/recent?types=bogus'), 400);
  });

  test('bad bodies are 400s that name the field', async () => {
    const cases: [string, string, unknown, string][] = [
      ['POST', '/v1/vms', { name: 5 }, 'name'],
      ['POST', '/v1/vms', {}, 'name'],
      ['PATCH', '/v1/vms/g', { nics: 'all' }, 'nics'],
      ['POST', '/v1/vms/h/start', { netns: 3 }, 'netns'],
      ['PATCH', '/v1/vms/g/nics/1', { cableConnected: 'no' }, 'cableConnected'],
      ['PATCH', '/v1/vms/g/nics/1', { promisc: 'everything' }, 'promisc'],
      ['PATCH', '/v1/vms/g/nics/1', { colour: 'red' }, 'colour'],
      ['POST', '/v1/vms/g/nics/1/forwards', { protocol: 'tcp', hostPort: 'x', guestPort: 80 }, 'hostPort'],
      ['POST', '/v1/vms/g/nics/1/forwards', { protocol: 'icmp', hostPort: 1, guestPort: 80 }, 'protocol'],
      ['POST', '/v1/vms/g/nics/1/forwards', { protocol: 'tcp', hostPort: 18304 }, 'guestPort'],
      ['POST', '/v1/natnetworks', { name: 'x', network: '10.79.0.0/24', dhcp: 'yes' }, 'dhcp'],
      ['PATCH', '/v1/natnetworks/nn', { localhostReachable: 1 }, 'localhostReachable'],
      ['POST', '/v1/natnetworks/nn/forwards', { protocol: 'tcp', hostPort: 18305, guestPort: 22 }, 'guestIp'],
      ['POST', '/v1/vms/g/nics/1/capture', { file: 3 }, 'file'],
    ];
    for (const [method, path, body, field] of cases) assertError(await api.request(method, path, body), 400, field);
    const notJson = await api.request('POST', '/v1/vms', '{"name": ');
    assertError(notJson, 400);
    assert.match(notJson.json.error.message, /not valid JSON/);
    assertError(await api.request('POST', '/v1/vms', '[1]'), 400);
    assertError(await api.request('PATCH', '/v1/vms/g', { nics: { 1: { mode: 'wormhole' } } }), 400);
  });

  test('unknown resources are 404s', async () => {
    const cases: [string, string][] = [
      ['GET', '/v1/vms/nope'],
      ['GET', '/v1/vms/nope/nics'],
      ['GET', '/v1/vms/g/nics/9'],
      ['PATCH', '/v1/vms/g/nics/0'],
      ['DELETE', '/v1/vms/g/nics/1/forwards/nope'],
      ['GET', '/v1/natnetworks/nope'],
      ['GET', '/v1/natnetworks/nope/forwards'],
      ['DELETE', '/v1/natnetworks/nn/forwards/nope'],
      ['GET', '/v1/networks/nope'],
      ['GET', '/v1/vms/h/nics/2/capture/pcap'],
      ['GET', '/v1/nothing/here'],
      ['GET', '/v2/vms'],
    ];
    for (const [method, path] of cases) assertError(await api.request(method, path, method === 'PATCH' ? {} : undefined), 404);
  });

  test('TCP: a missing or wrong token is a 401; the token in $VNET_HOME/token works', async () => {
    for (const token of [undefined, 'wrong', `${api.token}x`]) {
      const res = await api.tcp('GET', `${TCP}/v1/vms`, { token });
      assertError(res, 401);
      assert.equal(res.json.error.code, 'VNET_ERR_UNAUTHORIZED');
    }
    assertError(await api.tcp('POST', `${TCP}/services/forwarder/expose`, { body: {} }), 401);
    assertError(await api.tcp('GET', `${TCP}/v1/vms`, { cookie: `vnet_token_${TCP_PORT}=${api.token}` }), 401);
    const ok = await api.tcp('GET', `${TCP}/v1/vms/g`, { token: api.token });
    assert.equal(ok.status, 200);
    assert.equal(ok.json.name, 'g');
    assertError(await api.tcp('GET', `${TCP}/v1/vms/nope`, { token: api.token }), 404);
    assertError(await api.tcp('POST', `${TCP}/v1/vms`, { token: api.token, body: { name: [] } }), 400, 'name');
  });

  test('gvisor-tap-vsock: expose opens a working forward to the netns guest; all, unexpose, leases', async () => {
    const expose = await api.request('POST', '/services/forwarder/expose', { local: '127.0.0.1:18400', remote: '10.0.2.15:8080', protocol: 'tcp' });
    assert.equal(expose.status, 200, expose.text);
    assert.equal(expose.text, '');
    assert.equal((await curlHost(18400)).stdout, 'hello from the guest\n');
    // gvisor-tap-vsock tools often talk TCP; the same call works there with the token.
    const all = await api.tcp('GET', `${TCP}/services/forwarder/all`, { token: api.token });
    assert.deepEqual(all.json, [{ local: '127.0.0.1:18400', remote: '10.0.2.15:8080', protocol: 'tcp' }]);
    // It is an ordinary forward of the VM's NAT NIC.
    assert.deepEqual((await api.request('GET', '/v1/vms/g/nics/1/forwards')).json.map((r: { name: string }) => r.name), ['expose_tcp_127.0.0.1_18400']);
    const again = await api.request('POST', '/services/forwarder/expose', { local: '127.0.0.1:18400', remote: '10.0.2.15:8080' });
    assert.equal(again.status, 500);
    assert.equal(again.text, 'proxy already running for tcp on 127.0.0.1:18400\n');
    assert.equal((await api.request('POST', '/services/forwarder/expose', '{"local":')).status, 400);
    assert.equal((await api.request('POST', '/services/forwarder/expose', { local: '127.0.0.1:18401', remote: '10.0.2.15' })).status, 400);
    assert.equal((await api.request('POST', '/services/forwarder/expose', { local: '127.0.0.1:18401', remote: '192.0.2.9:80' })).status, 500);
    assert.deepEqual((await api.request('GET', '/services/dhcp/leases')).json, { '10.0.2.15': guestMac });
    const unexpose = await api.request('POST', '/services/forwarder/unexpose', { local: '127.0.0.1:18400', protocol: 'tcp' });
    assert.equal(unexpose.status, 200, unexpose.text);
    assert.notEqual((await curlHost(18400)).code, 0);
    const missing = await api.request('POST', '/services/forwarder/unexpose', { local: '127.0.0.1:18400' });
    assert.equal(missing.status, 500);
    assert.equal(missing.text, 'proxy not found\n');
    assert.deepEqual((await api.request('GET', '/services/forwarder/all')).json, []);
  });

  test("other modules' routes answer in the error shape (bad body, unknown resource)", async () => {
    // Routes this file does not test by meaning: one harmless call each, never a successful change.
    const external = api.external();
    for (const op of api.unexercised().filter((o) => external.includes(o))) {
      const [method, template] = op.split(' ') as [string, string];
      const path = template.replace(/\{[^}]+\}/g, 'vnet-no-such-thing');
      const hasParams = path !== template;
      const res = await api.request(method, path, method === 'POST' || method === 'PATCH' ? '[]' : undefined);
      assert.ok(res.status < 500, `${op}: ${res.status} ${res.text}`);
      if (method === 'GET' && !hasParams) assert.equal(res.status, 200, `${op}: ${res.text}`);
      else assertError(res, res.status);
    }
  });

  test('every documented operation was called by these tests', () => {
    assert.deepEqual(api.unexercised(), []);
  });
});
