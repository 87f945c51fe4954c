/**
 * The NAT under abuse: a guest that vanishes mid-transfer, a host socket
 * reset mid-transfer, 10,000 SYNs to closed ports, and junk frames. After
 * each, the flow tables drain to 0 and the daemon's TCP/UDP sockets return
 * to what they were (no socket, timer or buffer left behind).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab, sleep, waitFor } from '../helpers/lab.js';
import { REPO, VnetDaemon } from '../helpers/vnet.js';
import { ping } from '../helpers/guest.js';
import { dhcp, INTERNET_IP, makeWorld, NET_TOOLS, type World } from '../helpers/internet.js';

const lab = new Lab();
let vnet: VnetDaemon;
let world: World;
const ns: Record<string, string> = {};
const guestIp: Record<string, string> = {};

/** TCP flows of every NAT LAN the daemon runs. */
async function tcpFlows(): Promise<number> {
  const stats = await vnet.stats();
  return stats.nat.reduce((sum: number, lan: { tcp: { flows: number } }) => sum + lan.tcp.flows, 0);
}

/** The daemon's TCP and UDP sockets (host sockets of flows, listeners, DNS/ICMP sockets), as `ss` lines. */
async function inetSockets(): Promise<string[]> {
  const out = (await lab.exec(world.hostNs, 'ss', ['-tuanp'])).stdout;
  return out.split('\n').filter((line) => line.includes(`pid=${vnet.pid},`));
}

/** Flows drained to 0 and the daemon's inet sockets back to `before` (a socket may close a moment after its flow). */
async function drained(what: string, before: string[]): Promise<void> {
  await waitFor(`${what}: TCP flows to drain`, async () => (await tcpFlows()) === 0, 30_000, 250);
  let now: string[] = [];
  await waitFor(`${what}: host sockets back to ${before.length}`, async () => (now = await inetSockets()).length <= before.length, 10_000, 250).catch((err) => {
    throw new Error(`${err.message}; before:\n${before.join('\n')}\nnow:\n${now.join('\n')}`);
  });
}

describe('NAT robustness', { timeout: 240_000 }, () => {
  before(async () => {
    world = await makeWorld(lab);
    vnet = await VnetDaemon.start(lab, world.hostNs, undefined, { VNET_RESOLV_CONF: world.resolvConf });
    await vnet.must(['natnetwork', 'add', '--netname', 'shared', '--network', '10.14.0.0/24']);
    for (const vm of ['r1', 'r2']) {
      await vnet.must(['createvm', '--name', vm, '--register']);
      await vnet.must(['modifyvm', vm, '--nic1', 'natnetwork', '--nat-network1', 'shared']);
      ns[vm] = lab.name(vm);
      await vnet.must(['startvm', vm, '--type', 'netns', '--netns', ns[vm]!]);
      guestIp[vm] = (await dhcp(lab, ns[vm]!)).ip!;
    }
    lab.spawn(world.internetNs, 'python3', [NET_TOOLS, 'blob-server', INTERNET_IP, '8002', '200']);
    await lab.waitListening(world.internetNs, 8002);
    // Warm up (ICMP socket, DNS, ARP) so the fd baseline is stable.
    await ping(lab, ns.r1!, INTERNET_IP);
    await lab.mustExec(ns.r1!, 'python3', [NET_TOOLS, 'blob-clients', INTERNET_IP, '8002', '2']);
  });
  after(async () => {
    if (vnet && !vnet.alive) console.error(vnet.log);
    await lab.cleanup();
  });

  test('a guest that vanishes mid-transfer leaves nothing behind', async () => {
    const fds = await inetSockets();
    // r2 pulls data through 50 connections, then is powered off while they run.
    const pull = lab.exec(ns.r2!, 'python3', [NET_TOOLS, 'blob-clients', INTERNET_IP, '8002', '50'], { timeoutMs: 60_000 });
    await waitFor('transfers in flight', async () => (await tcpFlows()) > 10, 20_000, 50);
    await vnet.must(['controlvm', 'r2', 'poweroff']);
    await pull;
    await drained('after r2 vanished', fds);
    assert.ok(vnet.alive);
    await ping(lab, ns.r1!, INTERNET_IP);
  });

  test('a host socket reset mid-transfer resets the guest and leaves nothing behind', async () => {
    const fds = await inetSockets();
    lab.spawn(world.internetNs, 'python3', [NET_TOOLS, 'reset-server', INTERNET_IP, '8003', '30']);
    await lab.waitListening(world.internetNs, 8003);
    const readAll = `import socket\ns = socket.create_connection(('${INTERNET_IP}', 8003), timeout=10)\nwhile s.recv(1 << 20): pass`;
    const result = await lab.exec(ns.r1!, 'python3', ['-c', readAll]);
    assert.notEqual(result.code, 0, 'the guest should see the reset');
    assert.match(result.stderr, /ConnectionResetError/);
    await drained('after the reset', fds);
  });

  test('10,000 SYNs to closed ports leave no flow behind', async () => {
    const fds = await inetSockets();
    // The guest's kernel would answer our RSTs' absence with its own; a raw socket sends bare SYNs.
    const sent = await lab.mustExec(ns.r1!, 'python3', [NET_TOOLS, 'syn-flood', guestIp.r1!, INTERNET_IP, '10000'], { timeoutMs: 60_000 });
    assert.equal(sent.trim(), '10000');
    await sleep(500);
    await drained('after the SYN flood', fds);
    const stats = await vnet.stats();
    const shared = stats.nat.find((lan: { key: string }) => lan.key === 'natnet:shared');
    assert.ok(shared.tcp.refused + (shared.tcp.drops['tcp:connect-limit'] ?? 0) > 1000, JSON.stringify(shared.tcp));
    await ping(lab, ns.r1!, INTERNET_IP);
  });

  test('100,000 junk frames from a NAT guest: daemon up, drops counted, NAT still works', async () => {
    const script = join(REPO, 'test', 'helpers', 'send-junk.py');
    await lab.mustExec(ns.r1!, 'python3', [script, 'eth0', '100000', '7'], { timeoutMs: 120_000 });
    assert.ok(vnet.alive);
    const stats = await vnet.stats();
    const shared = stats.nat.find((lan: { key: string }) => lan.key === 'natnet:shared');
    const drops = Object.values(shared.gateway.drops as Record<string, number>).reduce((a, b) => a + b, 0);
    assert.ok(drops > 1000, JSON.stringify(shared.gateway.drops));
    await ping(lab, ns.r1!, INTERNET_IP);
    assert.equal((await lab.mustExec(ns.r1!, 'python3', [NET_TOOLS, 'blob-clients', INTERNET_IP, '8002', '5'])).trim(), 'ok 5');
  });
});
