/**
 * The outside world of a NAT test, all inside namespaces the lab owns:
 *
 *   host ns (the daemon's)                       internet ns
 *   lo 127.0.0.1 ── dnsmasq :53 (upstream DNS)   eth0 198.51.100.2/24 (servers)
 *   up0 198.51.100.1/24 ◄──────── veth ────────►
 *
 * Addresses are from RFC 5737's documentation range; nothing leaves the lab.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { must, run, waitFor, type Lab } from './lab.js';
import { REPO } from './vnet.js';

export const INTERNET_IP = '198.51.100.2';
/** The host's DNS search list (the daemon's resolv.conf), which NAT DHCP passes on (options 15 and 119). */
export const SEARCH_DOMAINS = ['lab.example.test', 'corp.example.test'];
export const HOST_UPLINK_IP = '198.51.100.1';
export const NET_TOOLS = join(REPO, 'test', 'helpers', 'net-tools.py');
export const UDHCPC_SCRIPT = join(REPO, 'test', 'helpers', 'udhcpc.script');

export interface World {
  hostNs: string;
  internetNs: string;
  /** resolv.conf for the daemon (VNET_RESOLV_CONF), naming the dnsmasq upstream. */
  resolvConf: string;
}

/** The strings of big.example.test's TXT record: ~1.2 KB, more than a DNS answer over UDP without EDNS takes (512). */
export const BIG_TXT = ['a', 'b', 'c', 'd', 'e', 'f'].map((c) => c.repeat(200));

/** DNS records the upstream serves (dnsmasq), for `dig` through the NAT. */
const DNSMASQ_RECORDS = [
  `--address=/www.example.test/${INTERNET_IP}`,
  '--host-record=v6.example.test,2001:db8::42',
  '--mx-host=example.test,mail.example.test,10',
  '--txt-record=example.test,hello from the lab',
  `--txt-record=big.example.test,${BIG_TXT.join(',')}`,
];

export async function makeWorld(lab: Lab): Promise<World> {
  const hostNs = await lab.netns('host');
  const internetNs = await lab.netns('inet');
  await must('ip', ['-n', hostNs, 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', internetNs]);
  await must('ip', ['-n', hostNs, 'addr', 'add', `${HOST_UPLINK_IP}/24`, 'dev', 'up0']);
  await must('ip', ['-n', hostNs, 'link', 'set', 'up0', 'up']);
  await must('ip', ['-n', internetNs, 'addr', 'add', `${INTERNET_IP}/24`, 'dev', 'eth0']);
  await must('ip', ['-n', internetNs, 'link', 'set', 'eth0', 'up']);
  const dir = lab.tempDir('world');
  const resolvConf = join(dir, 'resolv.conf');
  writeFileSync(resolvConf, `nameserver 127.0.0.1\nsearch ${SEARCH_DOMAINS.join(' ')}\n`);
  lab.spawn(hostNs, 'dnsmasq', ['-k', '--no-resolv', '--no-hosts', '--listen-address=127.0.0.1', '--bind-interfaces', '--port=53', `--pid-file=${join(dir, 'dnsmasq.pid')}`, '--user=root', ...DNSMASQ_RECORDS]);
  await waitFor('dnsmasq', async () => (await run('ip', ['netns', 'exec', hostNs, 'dig', '+short', '+time=1', '+tries=1', '@127.0.0.1', 'www.example.test'])).stdout.includes(INTERNET_IP));
  return { hostNs, internetNs, resolvConf };
}

/** Run busybox udhcpc on `ifname` in `netns`; the lease's fields. */
export async function dhcp(lab: Lab, netns: string, ifname = 'eth0'): Promise<Record<string, string>> {
  const leaseFile = join(lab.tempDir('lease'), 'lease');
  await must('ip', ['netns', 'exec', netns, 'env', `LEASE_FILE=${leaseFile}`, 'busybox', 'udhcpc', '-i', ifname, '-n', '-q', '-f', '-t', '5', '-T', '1', '-s', UDHCPC_SCRIPT, '-x', `hostname:${netns}`], { timeoutMs: 20_000 });
  const { readFileSync } = await import('node:fs');
  return Object.fromEntries(readFileSync(leaseFile, 'utf8').trim().split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
}
