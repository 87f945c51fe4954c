// TapTransport against real kernel tapName devices, inside a network namespace
// this file creates (vnt-<random>) and always deletes. Nothing outside it is
// touched. Needs root and /dev/net/tun; skipped otherwise.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readlinkSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';

import { TapTransport } from '../../../src/transport/tap.js';

const run = promisify(execFile);
const COMMAND_TIMEOUT_MS = 10_000;
const WAIT_LIMIT_MS = 5_000;

const canRun = process.getuid?.() === 0 && existsSync('/dev/net/tun');
const skip = canRun ? false : 'needs root and /dev/net/tun';

async function ip(...args: string[]): Promise<string> {
  const { stdout } = await run('ip', args, { timeout: COMMAND_TIMEOUT_MS });
  return stdout;
}

async function inNetns(ns: string, ...command: string[]): Promise<string> {
  return ip('netns', 'exec', ns, ...command);
}

async function waitFor(what: string, predicate: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + WAIT_LIMIT_MS;
  while (!(await predicate())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

// ---- hand-built frames (kept here so this test does not depend on src/wire) ----

const OUR_MAC = Uint8Array.from([0x02, 0x00, 0x00, 0x00, 0x00, 0x02]);
const OUR_IP = Uint8Array.from([10, 9, 0, 2]);
const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_ARP = 0x0806;

function ethertype(frame: Uint8Array): number {
  return (frame[12]! << 8) | frame[13]!;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

function internetChecksum(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i + 1 < bytes.length; i += 2) sum += (bytes[i]! << 8) | bytes[i + 1]!;
  if (bytes.length % 2 === 1) sum += bytes[bytes.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** An ARP reply "OUR_IP is at OUR_MAC" to an ARP request for OUR_IP, or null. */
function arpReply(request: Uint8Array): Uint8Array | null {
  if (ethertype(request) !== ETHERTYPE_ARP || request.length < 42) return null;
  const arp = request.subarray(14);
  const isRequest = arp[6] === 0 && arp[7] === 1;
  if (!isRequest || !sameBytes(arp.subarray(24, 28), OUR_IP)) return null;
  const reply = new Uint8Array(42);
  // Ethernet: dst = requester, src = us, ARP
  reply.set(arp.subarray(8, 14), 0);
  reply.set(OUR_MAC, 6);
  reply.set([0x08, 0x06], 12);
  // ARP: Ethernet/IPv4, hlen 6, plen 4, op 2 (reply)
  reply.set([0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x02], 14);
  reply.set(OUR_MAC, 22); //                sender MAC
  reply.set(OUR_IP, 28); //                 sender IP
  reply.set(arp.subarray(8, 14), 32); //    target MAC = requester
  reply.set(arp.subarray(14, 18), 38); //   target IP = requester
  return reply;
}

/** An ICMP echo reply to an echo request addressed to `ip`, or null. */
function echoReply(request: Uint8Array, ip: Uint8Array): Uint8Array | null {
  if (ethertype(request) !== ETHERTYPE_IPV4 || request.length < 14 + 20 + 8) return null;
  const headerLength = (request[14]! & 0x0f) * 4;
  const icmpAt = 14 + headerLength;
  if (request[14 + 9] !== 1 || request[icmpAt] !== 8 || !sameBytes(request.subarray(30, 34), ip)) return null;
  const reply = request.slice();
  reply.set(request.subarray(6, 12), 0); // Ethernet dst = sender
  reply.set(OUR_MAC, 6);
  reply.set(request.subarray(30, 34), 26); // IPv4 src = the address pinged
  reply.set(request.subarray(26, 30), 30); // IPv4 dst = sender (checksum unchanged by the swap)
  reply[icmpAt] = 0; // echo reply
  reply[icmpAt + 2] = 0;
  reply[icmpAt + 3] = 0;
  const icmpEnd = 14 + ((request[16]! << 8) | request[17]!);
  const checksum = internetChecksum(reply.subarray(icmpAt, icmpEnd));
  reply[icmpAt + 2] = checksum >> 8;
  reply[icmpAt + 3] = checksum & 0xff;
  return reply;
}

/** An ICMP echo request from OUR_IP to 10.9.0.1 (identifier 0x77xx), `sequence` as given. */
function echoRequest(dstMac: Uint8Array, sequence: number): Uint8Array {
  const frame = new Uint8Array(14 + 20 + 8 + 16);
  // Ethernet
  frame.set(dstMac, 0);
  frame.set(OUR_MAC, 6);
  frame.set([0x08, 0x00], 12);
  // IPv4: version/IHL, TOS, total length 44 | id, flags | TTL 64, ICMP, checksum | src | dst
  frame.set([0x45, 0x00, 0x00, 44, 0x12, 0x34, 0x00, 0x00, 64, 1, 0, 0], 14);
  frame.set(OUR_IP, 26);
  frame.set([10, 9, 0, 1], 30);
  const ipChecksum = internetChecksum(frame.subarray(14, 34));
  frame.set([ipChecksum >> 8, ipChecksum & 0xff], 24);
  // ICMP: echo request, code 0, checksum | identifier 0x7701, sequence | payload
  frame.set([8, 0, 0, 0, 0x77, 0x01, sequence >> 8, sequence & 0xff], 34);
  frame.fill(0xab, 42);
  const icmpChecksum = internetChecksum(frame.subarray(34));
  frame.set([icmpChecksum >> 8, icmpChecksum & 0xff], 36);
  return frame;
}

// ---- the tests ----

describe('TapTransport', { skip }, () => {
  const ns = `vnt-${randomBytes(4).toString('hex')}`;
  // Random so that the check "not on the host" cannot meet an unrelated device.
  const tapName = `vt${randomBytes(3).toString('hex')}`;
  const netnsPath = `/var/run/netns/${ns}`;
  const opened: TapTransport[] = [];

  function open(ifname: string): TapTransport {
    const tap = TapTransport.open({ ifname, netnsPath });
    opened.push(tap);
    return tap;
  }

  before(async () => {
    await ip('netns', 'add', ns);
  });

  after(async () => {
    try {
      for (const tap of opened) tap.close();
    } finally {
      await ip('netns', 'delete', ns);
    }
  });

  it('creates the device inside the namespace, not outside', async () => {
    const ourNetns = readlinkSync('/proc/thread-self/ns/net');
    const tap = open(tapName);
    assert.equal(readlinkSync('/proc/thread-self/ns/net'), ourNetns, 'the thread is back in its namespace');
    await assert.rejects(ip('link', 'show', tapName), 'not in the namespace we run in');
    assert.equal(tap.kind, 'tap');
    assert.equal(tap.ifname, tapName);
    assert.ok((await ip('-n', ns, 'link', 'show', tapName)).includes(tapName));
    await ip('-n', ns, 'link', 'set', tapName, 'up');
    await ip('-n', ns, 'addr', 'add', '10.9.0.1/24', 'dev', tapName);
  });

  it('delivers the frames a ping to a static neighbor sends (no ARP)', async () => {
    const tap = opened[0]!;
    const neighbor = ['lladdr', '02:00:00:00:00:03', 'dev', tapName, 'nud', 'permanent'];
    await ip('-n', ns, 'neigh', 'replace', '10.9.0.3', ...neighbor);
    const requests: Uint8Array[] = [];
    const peer = Uint8Array.from([10, 9, 0, 3]);
    tap.onFrame = (frame) => {
      const toPeer = ethertype(frame) === ETHERTYPE_IPV4 && sameBytes(frame.subarray(30, 34), peer);
      if (toPeer) requests.push(frame.slice());
    };
    tap.start();
    // No one answers 10.9.0.3, so ping fails; only the frames matter.
    await inNetns(ns, 'ping', '-c', '2', '-i', '0.2', '-W', '1', '10.9.0.3').catch(() => undefined);
    await waitFor('two echo requests', () => requests.length >= 2);
    const request = requests[0]!;
    assert.deepEqual([...request.subarray(0, 6)], [0x02, 0, 0, 0, 0, 0x03], 'to the static neighbor MAC');
    assert.equal(request[14 + 9], 1, 'ICMP');
    assert.equal(request[34], 8, 'echo request');
    assert.ok(tap.stats.framesIn >= 2);
    assert.ok(tap.stats.bytesIn >= 2 * 98);
  });

  it('answers ARP and ICMP by hand so that ping succeeds', async () => {
    const tap = opened[0]!;
    const seen = { arp: 0, icmp: 0 };
    tap.onFrame = (frame) => {
      const arp = arpReply(frame);
      if (arp !== null) {
        seen.arp++;
        tap.send(arp);
        return;
      }
      const echo = echoReply(frame, OUR_IP);
      if (echo !== null) {
        seen.icmp++;
        tap.send(echo);
      }
    };
    const before = tap.stats.framesOut;
    const output = await inNetns(ns, 'ping', '-c', '3', '-i', '0.2', '-W', '2', '10.9.0.2');
    assert.match(output, /3 received/);
    assert.ok(seen.arp >= 1, 'saw an ARP request');
    assert.equal(seen.icmp, 3);
    assert.ok(tap.stats.framesOut - before >= 4);
    assert.equal(tap.stats.dropsOut, 0);
  });

  it('writes every frame sent in one turn, in order', async () => {
    const tap = opened[0]!;
    const neighbor = ['lladdr', '02:00:00:00:00:02', 'dev', tapName, 'nud', 'permanent'];
    await ip('-n', ns, 'neigh', 'replace', '10.9.0.2', ...neighbor);
    const link = JSON.parse(await ip('-j', '-n', ns, 'link', 'show', tapName)) as { address: string }[];
    const tapMac = Uint8Array.from(link[0]!.address.split(':').map((byte) => parseInt(byte, 16)));
    const replies: number[] = [];
    tap.onFrame = (frame) => {
      const isEchoReply = ethertype(frame) === ETHERTYPE_IPV4 && frame[14 + 9] === 1 && frame[34] === 0;
      if (isEchoReply && frame[38] === 0x77) replies.push((frame[40]! << 8) | frame[41]!);
    };
    const count = 5;
    const before = tap.stats.framesOut;
    for (let sequence = 0; sequence < count; sequence++) tap.send(echoRequest(tapMac, sequence));
    assert.equal(tap.stats.framesOut, before, 'nothing written before the turn ends');
    await waitFor('the kernel to answer all of them', () => replies.length >= count);
    assert.deepEqual(replies, [0, 1, 2, 3, 4]);
    assert.equal(tap.stats.framesOut - before, count);
  });

  it('drops frames toward the guest that are not Ethernet frames', () => {
    const tap = opened[0]!;
    const before = tap.stats.dropsOut;
    tap.send(new Uint8Array(13));
    tap.send(new Uint8Array(65535 + 19));
    assert.equal(tap.stats.dropsOut - before, 2);
  });

  it('shows NO-CARRIER while the carrier is off', async () => {
    const tap = opened[0]!;
    tap.setCarrier(false);
    assert.match(await ip('-n', ns, 'link', 'show', tapName), /NO-CARRIER/);
    tap.setCarrier(true);
    const carrierBack = async (): Promise<boolean> => !/NO-CARRIER/.test(await ip('-n', ns, 'link', 'show', tapName));
    await waitFor('the carrier to come back', carrierBack);
  });

  it('attaches to an existing persistent device and leaves it on close', async () => {
    await ip('-n', ns, 'tuntap', 'add', 'dev', 'ptap0', 'mode', 'tap');
    const tap = open('ptap0');
    assert.equal(tap.ifname, 'ptap0');
    tap.close();
    tap.close(); // idempotent
    assert.match(await ip('-n', ns, 'link', 'show', 'ptap0'), /ptap0/);
    await ip('-n', ns, 'link', 'delete', 'ptap0');
  });

  it('removes a non-persistent device on close', async () => {
    const tap = open('tap1');
    tap.close();
    await assert.rejects(ip('-n', ns, 'link', 'show', 'tap1'));
  });

  it('reports the device going away through onClose', async () => {
    const tap = open('tap2');
    let reason: string | undefined;
    tap.onClose = (why) => {
      reason = why;
    };
    tap.start();
    await ip('-n', ns, 'link', 'delete', 'tap2');
    await waitFor('onClose', () => reason !== undefined);
    assert.match(reason!, /went away/);
    assert.ok(tap.isClosed);
    tap.send(new Uint8Array(60));
    assert.equal(tap.stats.dropsOut, 1, 'sends after close are dropped');
  });

  it('gives an actionable error for a namespace that does not exist', () => {
    assert.throws(
      () => TapTransport.open({ ifname: 'tap9', netnsPath: '/var/run/netns/vnt-does-not-exist' }),
      (error: Error & { code?: string }) =>
        error.code === 'VNET_ERR_NETNS' &&
        /vnt-does-not-exist.*No such file or directory \(ENOENT\)/.test(error.message),
    );
  });

  it('rejects a device name longer than IFNAMSIZ', () => {
    const tooLong = (): TapTransport => TapTransport.open({ ifname: 'a-much-too-long-name', netnsPath });
    assert.throws(tooLong, { code: 'VNET_ERR_INVALID_ARG' });
  });
});
