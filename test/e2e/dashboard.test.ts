/**
 * The dashboard in real headless Chromium (Debian's, driven by
 * playwright-core) against a lab of two networks and three netns VMs:
 *
 *   a ─ eth0 192.168.60.1 ─┐
 *                          ├─ intnet "lan"
 *   b ─ eth0 192.168.60.2 ─┘
 *     └ eth1 ─┐
 *   c ─ eth0 ─┴─ NAT network "natlab" 10.88.0.0/24 (c by DHCP, web server :8000)
 *
 * It shows both networks and the three VMs; pulling a's cable in the UI cuts
 * a's ping to b (plugging it back restores it); adding a forward in the UI
 * makes c's web server answer on the host; a capture started and stopped in
 * the UI downloads as a pcap. The screenshot goes to test-artifacts/.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { Lab, must } from '../helpers/lab.js';
import { ApiDaemon } from '../helpers/api.js';
import { chromiumAvailable, launchInNetns } from '../helpers/browser.js';
import { ping, pingFails } from '../helpers/guest.js';
import { dhcp } from '../helpers/internet.js';
import { REPO } from '../helpers/vnet.js';

const lab = new Lab();
const UI_PORT = 18480;
const FORWARD_PORT = 18490;
export const ARTIFACTS = join(REPO, 'test-artifacts');
let api: ApiDaemon;
let hostNs: string;
let browser: BrowserContext | undefined;
let page: Page;
const ns: Record<string, string> = {};
let cIp: string;


describe('dashboard in headless Chromium', { timeout: 240_000, skip: chromiumAvailable() ? false : 'no /usr/bin/chromium (apt-get install chromium)' }, () => {
  before(async () => {
    hostNs = await lab.netns('host');
    api = await ApiDaemon.start(lab, hostNs, lab.tempDir('home'), ['--ui', `127.0.0.1:${UI_PORT}`]);
    await api.must(['natnetwork', 'add', '--netname', 'natlab', '--network', '10.88.0.0/24', '--enable', '--dhcp', 'on']);
    for (const vm of ['a', 'b', 'c']) await api.must(['createvm', '--name', vm, '--register']);
    await api.must(['modifyvm', 'a', '--nic1', 'intnet', '--intnet1', 'lan']);
    await api.must(['modifyvm', 'b', '--nic1', 'intnet', '--intnet1', 'lan', '--nic2', 'natnetwork', '--nat-network2', 'natlab']);
    await api.must(['modifyvm', 'c', '--nic1', 'natnetwork', '--nat-network1', 'natlab']);
    for (const vm of ['a', 'b', 'c']) {
      ns[vm] = lab.name(vm);
      await api.must(['startvm', vm, '--type', 'netns', '--netns', ns[vm]!]);
    }
    await must('ip', ['-n', ns.a!, 'addr', 'add', '192.168.60.1/24', 'dev', 'eth0']);
    await must('ip', ['-n', ns.b!, 'addr', 'add', '192.168.60.2/24', 'dev', 'eth0']);
    cIp = (await dhcp(lab, ns.c!)).ip!;
    const www = lab.tempDir('www');
    writeFileSync(join(www, 'index.html'), 'hello from c\n');
    lab.spawn(ns.c!, 'python3', ['-m', 'http.server', '--bind', '0.0.0.0', '8000', '--directory', www]);
    await lab.waitListening(ns.c!, 8000);
    browser = await launchInNetns(lab, hostNs);
    page = await browser.newPage();
    page.setDefaultTimeout(15_000);
    await page.goto(`http://127.0.0.1:${UI_PORT}/?token=${api.token}`);
  });
  after(async () => {
    await browser?.close().catch(() => {});
    if (api && !api.alive) console.error(api.log);
    await lab.cleanup();
  });

  test('shows the two networks and the three VMs of the lab', async () => {
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=vm]').length === 3);
    const networks = await page.$$eval('[data-testid=network]', (nodes) => nodes.map((n) => n.getAttribute('data-key')));
    assert.deepEqual(networks.sort(), ['intnet:lan', 'natnet:natlab']);
    const vms = await page.$$eval('[data-testid=vm]', (nodes) => nodes.map((n) => n.getAttribute('data-vm')));
    assert.deepEqual(vms, ['a', 'b', 'c']);
    assert.equal(await page.locator('[data-testid=nic-link][data-state=up]').count(), 4);
    assert.equal(await page.locator('#nic-table tbody tr').count(), 4);
    await page.waitForSelector('#status[data-state=live]');
    await page.waitForFunction((ip) => document.querySelector('#lease-table')!.textContent!.includes(ip), cIp);
  });

  test("pulling a's cable in the UI cuts its ping to b; plugging it back restores it", async () => {
    await ping(lab, ns.a!, '192.168.60.2');
    await page.click('button[data-action=cable][data-vm=a][data-nic="1"]');
    await page.waitForSelector('[data-testid=nic-link][data-vm=a][data-nic="1"][data-state=down]');
    await page.waitForSelector('button[data-action=cable][data-vm=a][data-nic="1"]:text("Plug cable")');
    await pingFails(lab, ns.a!, '192.168.60.2');
    await page.click('button[data-action=cable][data-vm=a][data-nic="1"]');
    await page.waitForSelector('[data-testid=nic-link][data-vm=a][data-nic="1"][data-state=up]');
    await ping(lab, ns.a!, '192.168.60.2');
  });

  test('adding a forward in the UI makes the guest answer on the host', async () => {
    const curl = () => lab.exec(hostNs, 'curl', ['-sS', '--max-time', '5', `http://127.0.0.1:${FORWARD_PORT}/index.html`]);
    assert.notEqual((await curl()).code, 0);
    await page.selectOption('#forward-form select[name=owner]', 'natnet:natlab');
    await page.fill('#forward-form input[name=name]', 'web');
    await page.fill('#forward-form input[name=hostPort]', String(FORWARD_PORT));
    await page.fill('#forward-form input[name=guestIp]', cIp);
    await page.fill('#forward-form input[name=guestPort]', '8000');
    await page.click('#forward-form button[type=submit]');
    await page.waitForSelector('#forward-table button[data-action=forward-remove][data-name=web]');
    assert.equal(await page.textContent('#forward-error'), '');
    assert.equal((await curl()).stdout, 'hello from c\n');
    await page.waitForSelector('[data-testid=forward-badge][data-name=web]');
  });

  test('a capture started and stopped in the UI downloads as a pcap', async () => {
    await page.click('button[data-action=capture-start][data-vm=c][data-nic="1"]');
    await page.waitForSelector('button[data-action=capture-stop][data-vm=c][data-nic="1"]');
    await ping(lab, ns.c!, '10.88.0.1', 3);
    await page.click('button[data-action=capture-stop][data-vm=c][data-nic="1"]');
    const link = page.locator('a[data-action=capture-download]');
    await link.waitFor();
    const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
    const file = join(lab.tempDir('download'), 'c.pcap');
    await download.saveAs(file);
    const dump = await lab.exec(hostNs, 'tcpdump', ['-r', file, '-n', 'icmp']);
    assert.equal(dump.code, 0, dump.stderr);
    assert.match(dump.stdout, /ICMP echo request/);
  });

  test('a screenshot of the live dashboard is saved to test-artifacts/', async () => {
    // Traffic on a's NIC so the rates show.
    const pinger = lab.spawn(ns.a!, 'ping', ['-i', '0.05', '-s', '1000', '-c', '100', '192.168.60.2']);
    await page.waitForFunction(() => /[1-9][\d.]* (kB|MB)\/s/.test(document.querySelector('#nic-table')!.textContent!), undefined, { timeout: 10_000 });
    mkdirSync(ARTIFACTS, { recursive: true });
    const path = join(ARTIFACTS, 'dashboard.png');
    await page.screenshot({ path, fullPage: true });
    pinger.kill();
    assert.ok((await import('node:fs')).statSync(path).size > 20_000);
  });
});
