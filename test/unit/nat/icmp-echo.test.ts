// IcmpEchoNat against real host ICMP sockets (ping and raw), inside a network
// namespace this file creates (vnt-<random>) and always deletes. The file runs
// itself again inside it (VNET_ICMP_TEST_NETNS set); only addresses of that
// namespace are pinged: 127.0.0.1, an unrouted TEST-NET-1 address, and a
// 198.51.100.0/24 veth neighbour that never answers. Needs root.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { IcmpEchoNat, type IcmpEchoNatOptions } from '../../../src/nat/icmp-echo.js';
import { openNativeIcmpSocket } from '../../../src/transport/icmp-socket.js';
import type { NatLink } from '../../../src/nat/udp-nat.js';
import { LINK_HEADROOM } from '../../../src/stack/guest-link.js';
import { parseIpv4 } from '../../../src/wire/address.js';
import { emitIcmpv4, Icmpv4Type, Icmpv4UnreachableCode, Icmpv4View } from '../../../src/wire/icmpv4.js';
import { emitIpv4, IpProtocol, IPV4_HEADER_LENGTH, Ipv4View } from '../../../src/wire/ipv4.js';

const run = promisify(execFile);
const NETNS_ENV = 'VNET_ICMP_TEST_NETNS';
const COMMAND_TIMEOUT_MS = 10_000;
const CHILD_TIMEOUT_MS = 90_000;
const WAIT_LIMIT_MS = 5_000;
/** How long "nothing comes back" is watched for. */
const QUIET_MS = 300;
/** Cases run inside the namespace: 9 per socket kind. */
const MIN_INNER_TESTS = 18;

const ip = parseIpv4;
const GUEST_A = ip('10.0.2.15');
const GUEST_B = ip('10.0.2.16');
const GATEWAY = ip('10.0.2.2');
const ELSEWHERE = ip('203.0.113.5');
/** TEST-NET-1: the namespace has no route to it. */
const UNROUTED = '192.0.2.1';
/** On the namespace's veth v0 (198.51.100.1/24); nothing answers ARP for it. */
const SILENT_NEIGHBOUR = '198.51.100.9';

const netns = process.env[NETNS_ENV];
const isRoot = process.getuid?.() === 0;

// ---------------------------------------------------------------- outside the namespace

if (netns === undefined) {
  const skip = isRoot && existsSync('/usr/sbin/ip') ? false : 'needs root and iproute2';
  describe('IcmpEchoNat (in a test network namespace)', { skip }, () => {
    it('passes every case over ping and raw sockets', { timeout: CHILD_TIMEOUT_MS + COMMAND_TIMEOUT_MS }, async () => {
      const name = `vnt-${randomBytes(4).toString('hex')}`;
      const ipCmd = (...args: string[]) => run('ip', args, { timeout: COMMAND_TIMEOUT_MS });
      const sysctl = (setting: string) => ipCmd('netns', 'exec', name, 'sysctl', '-q', '-w', setting);
      await ipCmd('netns', 'add', name);
      try {
        await ipCmd('-n', name, 'link', 'set', 'lo', 'up');
        await ipCmd('-n', name, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1');
        await ipCmd('-n', name, 'address', 'add', '198.51.100.1/24', 'dev', 'v0');
        await ipCmd('-n', name, 'link', 'set', 'v0', 'up');
        await ipCmd('-n', name, 'link', 'set', 'v1', 'up');
        // Ping sockets for every group, in this namespace only; ARP gives up after one 100 ms try.
        await sysctl('net.ipv4.ping_group_range=0 2147483647');
        await sysctl('net.ipv4.neigh.v0.mcast_solicit=1');
        await sysctl('net.ipv4.neigh.v0.retrans_time_ms=100');
        const self = fileURLToPath(import.meta.url);
        // A test runner parent sets NODE_TEST_CONTEXT; the child must report as a runner of its own.
        const env: NodeJS.ProcessEnv = { ...process.env, [NETNS_ENV]: name };
        delete env.NODE_TEST_CONTEXT;
        let output: string;
        try {
          const { stdout } = await run('ip', ['netns', 'exec', name, process.execPath, '--test', '--test-reporter=spec', self], {
            env,
            timeout: CHILD_TIMEOUT_MS,
            maxBuffer: 16 * 1024 * 1024,
          });
          output = stdout;
        } catch (err) {
          const e = err as { stdout?: string; stderr?: string; message: string };
          assert.fail(`the tests inside ${name} failed:\n${e.stdout ?? ''}\n${e.stderr ?? e.message}`);
        }
        if (process.env.VNET_TEST_VERBOSE) process.stdout.write(output);
        const passed = Number(/^ℹ pass (\d+)$/m.exec(output)?.[1] ?? 0);
        assert.ok(passed >= MIN_INNER_TESTS && /^ℹ fail 0$/m.test(output), `the tests inside ${name} did not all run:\n${output}`);
      } finally {
        await ipCmd('netns', 'delete', name);
      }
    });
  });
}

// ---------------------------------------------------------------- inside the namespace

class FakeLink implements NatLink {
  /** Segments arrive finished (checksums filled, no super-segments). */
  readonly offload = false;
  readonly mtu = 1500;
  readonly frames: { frame: Uint8Array; dst: number }[] = [];
  readonly errors: { original: Uint8Array; type: number; code: number; source: number | undefined }[] = [];
  private identification = 0;
  sendIpv4(frame: Uint8Array, dstIp: number): void {
    this.frames.push({ frame, dst: dstIp });
  }
  sendIcmpError(original: Uint8Array, type: number, code: number, source?: number): void {
    this.errors.push({ original: original.slice(), type, code, source });
  }
  nextIdentification(): number {
    this.identification = (this.identification + 1) & 0xffff;
    return this.identification;
  }  takesUdpSegmentation(): boolean {
    return false;
  }
}

/** A guest's echo request as the gateway hands it over: checked views of one packet. */
function guestEcho(source: number, destination: number, identifier: number, sequenceNumber: number, data: Uint8Array) {
  const icmpLength = 8 + data.length;
  const packet = new Uint8Array(IPV4_HEADER_LENGTH + icmpLength);
  emitIpv4({ source, destination, protocol: IpProtocol.ICMP, ttl: 64, payloadLength: icmpLength }, packet, 0);
  emitIcmpv4({ kind: 'echoRequest', identifier, sequenceNumber, data }, packet, IPV4_HEADER_LENGTH);
  const ipView = Ipv4View.checked(packet);
  return [ipView, Icmpv4View.checked(ipView.payload)] as const;
}

function payload(seed: number, length = 56): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (seed + i * 7) & 0xff);
}

/** The IPv4 and ICMP views of a frame the NAT sent toward a guest, checksums verified. */
function openReply(frame: Uint8Array) {
  const ipView = Ipv4View.checked(frame.subarray(LINK_HEADROOM));
  assert.ok(ipView.verifyChecksum(), 'IPv4 header checksum');
  const icmp = Icmpv4View.checked(ipView.payload);
  assert.ok(icmp.verifyChecksum(), 'ICMP checksum');
  return { ip: ipView, icmp };
}

async function waitFor(what: string, predicate: () => boolean): Promise<void> {
  const deadline = Date.now() + WAIT_LIMIT_MS;
  while (!predicate()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const quiet = () => new Promise((resolve) => setTimeout(resolve, QUIET_MS));
const openFds = () => readdirSync('/proc/self/fd').length;

async function assertInNamespace(name: string): Promise<void> {
  const { stdout } = await run('ip', ['netns', 'identify', String(process.pid)], { timeout: COMMAND_TIMEOUT_MS });
  assert.equal(stdout.trim(), name, 'refusing to ping outside the test namespace');
}

if (netns !== undefined) {
  for (const kind of ['ping', 'raw'] as const) {
    describe(`IcmpEchoNat over a ${kind} socket`, () => {
      function setup(extra: Partial<IcmpEchoNatOptions> = {}) {
        const link = new FakeLink();
        const nat = new IcmpEchoNat({ link, openSocket: (handlers) => openNativeIcmpSocket(handlers, kind), ...extra });
        return { link, nat };
      }

      it('runs inside the test namespace', async () => {
        await assertInNamespace(netns);
      });

      it('answers an echo to the gateway (host 127.0.0.1) as the gateway, ids and payload restored', async () => {
        await assertInNamespace(netns);
        const { link, nat } = setup();
        try {
          const data = payload(1);
          nat.fromGuest(...guestEcho(GUEST_A, GATEWAY, 0x1234, 7, data), '127.0.0.1');
          assert.equal(nat.stats().socket, kind);
          await waitFor('the echo reply', () => link.frames.length === 1);
          const { frame, dst } = link.frames[0]!;
          assert.equal(dst, GUEST_A);
          const reply = openReply(frame);
          assert.equal(reply.ip.source, GATEWAY);
          assert.equal(reply.ip.destination, GUEST_A);
          assert.equal(reply.ip.protocol, IpProtocol.ICMP);
          assert.equal(reply.ip.ttl, 64);
          assert.equal(reply.icmp.type, Icmpv4Type.EchoReply);
          assert.equal(reply.icmp.code, 0);
          assert.equal(reply.icmp.identifier, 0x1234);
          assert.equal(reply.icmp.sequenceNumber, 7);
          assert.deepEqual(reply.icmp.data, data);
          assert.equal(nat.flowCount, 1);
          assert.deepEqual(nat.stats().drops, {});
        } finally {
          nat.shutdown();
        }
      });

      it('sends from the bind address it is given, and says why when the host has no such address', async () => {
        const link = new FakeLink();
        const bound = new IcmpEchoNat({ link, openSocket: (handlers) => openNativeIcmpSocket(handlers, kind, '127.0.0.2') });
        const unbindable = new IcmpEchoNat({ link: new FakeLink(), openSocket: (handlers) => openNativeIcmpSocket(handlers, kind, '192.0.2.1') });
        try {
          bound.fromGuest(...guestEcho(GUEST_A, GATEWAY, 9, 1, payload(3)), '127.0.0.1');
          await waitFor('the echo reply', () => link.frames.length === 1);
          assert.equal(openReply(link.frames[0]!.frame).icmp.sequenceNumber, 1);
          unbindable.fromGuest(...guestEcho(GUEST_A, GATEWAY, 9, 1, payload(3)), '127.0.0.1');
          assert.match(unbindable.stats().socketError ?? '', /cannot send ICMP from 192\.0\.2\.1/);
          assert.equal(unbindable.stats().socket, null);
        } finally {
          bound.shutdown();
          unbindable.shutdown();
        }
      });

      it('answers from whatever address the guest pinged', async () => {
        const { link, nat } = setup();
        try {
          nat.fromGuest(...guestEcho(GUEST_A, ELSEWHERE, 1, 1, payload(2, 0)), '127.0.0.1');
          await waitFor('the echo reply', () => link.frames.length === 1);
          const reply = openReply(link.frames[0]!.frame);
          assert.equal(reply.ip.source, ELSEWHERE);
          assert.equal(reply.icmp.data.length, 0);
        } finally {
          nat.shutdown();
        }
      });

      it('gives two guests using the same identifier and sequence their own replies', async () => {
        const { link, nat } = setup();
        try {
          const dataA = payload(10);
          const dataB = payload(20, 100);
          nat.fromGuest(...guestEcho(GUEST_A, GATEWAY, 0x4242, 1, dataA), '127.0.0.1');
          nat.fromGuest(...guestEcho(GUEST_B, GATEWAY, 0x4242, 1, dataB), '127.0.0.1');
          nat.fromGuest(...guestEcho(GUEST_A, GATEWAY, 0x4242, 2, dataA), '127.0.0.1');
          await waitFor('three echo replies', () => link.frames.length === 3);
          assert.equal(nat.flowCount, 2);
          const got = link.frames.map(({ frame, dst }) => {
            const reply = openReply(frame);
            assert.equal(reply.ip.destination, dst);
            assert.equal(reply.icmp.identifier, 0x4242);
            return { dst, seq: reply.icmp.sequenceNumber, data: reply.icmp.data.slice() };
          });
          got.sort((x, y) => x.dst - y.dst || x.seq - y.seq);
          assert.deepEqual(got, [
            { dst: GUEST_A, seq: 1, data: dataA },
            { dst: GUEST_A, seq: 2, data: dataA },
            { dst: GUEST_B, seq: 1, data: dataB },
          ]);
        } finally {
          nat.shutdown();
        }
      });

      it('forgets flows idle for 60 s and drops their late replies', async () => {
        let now = 1_000_000;
        const { link, nat } = setup({ clock: () => now });
        try {
          nat.fromGuest(...guestEcho(GUEST_A, GATEWAY, 9, 1, payload(3)), '127.0.0.1');
          await waitFor('the echo reply', () => link.frames.length === 1);
          now += 60_000;
          nat.sweep();
          assert.equal(nat.flowCount, 1, 'not idle for longer than 60 s yet');
          now += 1;
          nat.sweep();
          assert.equal(nat.flowCount, 0);
          // Forgotten before its reply could come in: the reply is dropped.
          nat.fromGuest(...guestEcho(GUEST_A, GATEWAY, 9, 2, payload(3)), '127.0.0.1');
          now += 60_001;
          nat.sweep();
          await quiet();
          assert.equal(link.frames.length, 1);
          const stats = nat.stats();
          assert.equal(stats.drops['icmp:reply-unmatched'], 1);
          assert.equal(stats.opened, 2);
          assert.equal(stats.closed, 2);
        } finally {
          nat.shutdown();
        }
      });

      it('bounds the flow table', async () => {
        const { link, nat } = setup({ maxFlows: 2 });
        try {
          nat.fromGuest(...guestEcho(GUEST_A, GATEWAY, 1, 1, payload(4)), '127.0.0.1');
          nat.fromGuest(...guestEcho(GUEST_A, GATEWAY, 2, 1, payload(4)), '127.0.0.1');
          nat.fromGuest(...guestEcho(GUEST_A, GATEWAY, 3, 1, payload(4)), '127.0.0.1');
          assert.equal(nat.flowCount, 2);
          assert.equal(nat.stats().drops['icmp:flow-table-full'], 1);
          await waitFor('two echo replies', () => link.frames.length === 2);
        } finally {
          nat.shutdown();
        }
      });

      it('sends no reply where there is no route: net unreachable from the gateway, no flow kept', async () => {
        const { link, nat } = setup();
        try {
          nat.fromGuest(...guestEcho(GUEST_A, ELSEWHERE, 5, 1, payload(5)), UNROUTED);
          await quiet();
          assert.equal(link.frames.length, 0);
          assert.equal(nat.flowCount, 0);
          assert.equal(nat.stats().drops['icmp:send-ENETUNREACH'], 1);
          assert.equal(link.errors.length, 1);
          const error = link.errors[0]!;
          assert.equal(error.type, Icmpv4Type.DestinationUnreachable);
          assert.equal(error.code, Icmpv4UnreachableCode.NetUnreachable);
          assert.equal(new Ipv4View(error.original).destination, ELSEWHERE);
        } finally {
          nat.shutdown();
        }
      });

      it('relays "host unreachable" for a neighbour that never answers, quoting the guest\'s own request', async () => {
        const { link, nat } = setup();
        try {
          nat.fromGuest(...guestEcho(GUEST_A, ELSEWHERE, 0xbeef, 3, payload(6)), SILENT_NEIGHBOUR);
          await waitFor('the relayed error', () => link.errors.length === 1);
          assert.equal(link.frames.length, 0);
          const error = link.errors[0]!;
          assert.equal(error.type, Icmpv4Type.DestinationUnreachable);
          assert.equal(error.code, Icmpv4UnreachableCode.HostUnreachable);
          assert.equal(error.source, undefined, 'from the gateway');
          const original = Ipv4View.checked(error.original);
          assert.ok(original.verifyChecksum());
          assert.equal(original.source, GUEST_A);
          assert.equal(original.destination, ELSEWHERE);
          const request = new Icmpv4View(original.payload);
          assert.equal(request.type, Icmpv4Type.EchoRequest);
          assert.equal(request.identifier, 0xbeef);
          assert.equal(request.sequenceNumber, 3);
          assert.ok(request.verifyChecksum(), 'the quoted request checksum is fixed up');
        } finally {
          nat.shutdown();
        }
      });

      it('never throws on odd input and leaks no file descriptor', async () => {
        const before = openFds();
        const { link, nat } = setup();
        const [ipView, icmp] = guestEcho(GUEST_A, GATEWAY, 1, 1, payload(7));
        nat.fromGuest(ipView, icmp, 'not an address');
        const timestamp = new Uint8Array(28);
        emitIpv4({ source: GUEST_A, destination: GATEWAY, protocol: IpProtocol.ICMP, ttl: 64, payloadLength: 8 }, timestamp, 0);
        emitIcmpv4({ kind: 'other', type: 13, code: 0, restOfHeader: 0, data: new Uint8Array(0) }, timestamp, IPV4_HEADER_LENGTH);
        const tsIp = Ipv4View.checked(timestamp);
        nat.fromGuest(tsIp, Icmpv4View.checked(tsIp.payload), '127.0.0.1');
        nat.fromGuest(ipView, new Icmpv4View(new Uint8Array(3)), '127.0.0.1');
        nat.fromGuest(ipView, icmp, '127.0.0.1');
        await waitFor('the echo reply', () => link.frames.length === 1);
        const drops = nat.stats().drops;
        assert.equal(drops['icmp:bad-host-address'], 1);
        assert.equal(drops['icmp:not-echo-request'], 2);
        nat.shutdown();
        nat.fromGuest(ipView, icmp, '127.0.0.1');
        assert.equal(nat.stats().drops['icmp:shut-down'], 1);
        assert.equal(openFds(), before);
      });
    });
  }
}
