import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import * as dnsPacket from 'dns-packet';
import fc from 'fast-check';
import { DnsProxy, LOCAL_NAME_TTL_SEC, type DnsProxyOptions } from '../../../src/services/dns/proxy.js';
import { errorResponse, getId, questionEnd, Rcode, sameQuestion, truncated } from '../../../src/services/dns/message.js';
import { parseResolvConf } from '../../../src/services/dns/resolv-conf.js';
import { FakeDns } from './fake-dns.js';

/** Every test's wait for an answer is bounded by this. */
const ANSWER_WAIT_MS = 3000;

function query(name: string, type: dnsPacket.RecordType, id = 0x1234, extra: Partial<dnsPacket.Packet> = {}): Uint8Array {
  return dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }], ...extra });
}

/** Asks the proxy over UDP; resolves with the decoded answer and its bytes, or rejects when none comes in time. */
function ask(
  proxy: DnsProxy,
  bytes: Uint8Array,
  tcp = false,
): Promise<{ packet: dnsPacket.DecodedPacket; bytes: Uint8Array; rcode: string; data: unknown[] }> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const timer = setTimeout(() => reject(new Error('no answer')), ANSWER_WAIT_MS);
    const reply = (response: Uint8Array): void => {
      assert.equal(answered, false, 'reply called at most once');
      answered = true;
      clearTimeout(timer);
      const packet = dnsPacket.decode(Buffer.from(response));
      resolve({ packet, bytes: response, rcode: rcodeName(packet), data: (packet.answers ?? []).map(dataOf) });
    };
    if (tcp) proxy.handleTcp(bytes, reply);
    else proxy.handle(bytes, reply);
  });
}

/** Calls `handle` and collects what `reply` got synchronously. */
function replies(proxy: DnsProxy, bytes: Uint8Array): Uint8Array[] {
  const got: Uint8Array[] = [];
  proxy.handle(bytes, (r) => got.push(r));
  return got;
}

/** dns-packet decodes the rcode name, which its types leave out. */
function rcodeName(packet: dnsPacket.DecodedPacket): string {
  return (packet as unknown as { rcode: string }).rcode;
}

function dataOf(record: dnsPacket.Answer): unknown {
  return (record as { data?: unknown }).data;
}

const rcodeOf = (p: dnsPacket.DecodedPacket): number => (p.flags ?? 0) & 0xf;

describe('DnsProxy: proxy mode', () => {
  const started: FakeDns[] = [];
  const proxies: DnsProxy[] = [];
  const server = async (options = {}): Promise<FakeDns> => {
    const s = await FakeDns.start(options);
    started.push(s);
    return s;
  };
  const proxyFor = (options: DnsProxyOptions): DnsProxy => {
    const p = new DnsProxy(options);
    proxies.push(p);
    return p;
  };
  after(async () => {
    for (const p of proxies) p.close();
    for (const s of started) await s.close();
  });

  it('passes A, AAAA, MX and TXT answers through, keeping the guest\'s ID', async () => {
    const upstream = await server();
    const proxy = proxyFor({ upstreams: [upstream.upstream] });
    const a = await ask(proxy, query('example.test', 'A', 0xbeef));
    assert.equal(a.packet.id, 0xbeef);
    assert.equal(a.packet.flag_qr, true);
    assert.deepEqual(a.data, ['192.0.2.10']);
    const aaaa = await ask(proxy, query('example.test', 'AAAA'));
    assert.deepEqual(aaaa.data, ['2001:db8::10']);
    const mx = await ask(proxy, query('Example.TEST', 'MX'));
    assert.deepEqual(mx.data, [{ preference: 10, exchange: 'mail.example.test' }]);
    const txt = await ask(proxy, query('example.test', 'TXT'));
    assert.deepEqual(txt.data.map((d) => (d as Buffer[]).map(String)), [['v=spf1 -all']]);
    const nx = await ask(proxy, query('nothing.test', 'A'));
    assert.equal(nx.rcode, 'NXDOMAIN');
    // The upstream saw other IDs than the guest's.
    assert.equal(upstream.udpQueries.length, 5);
    const stats = proxy.stats();
    assert.equal(stats.forwarded, 5);
    assert.equal(stats.pending, 0);
  });

  it('maps two concurrent queries with the same guest ID back to the right guest', async () => {
    const upstream = await server({ delays: { 'a.test': 150, 'b.test': 10 } });
    const proxy = proxyFor({ upstreams: [upstream.upstream] });
    const [a, b] = await Promise.all([ask(proxy, query('a.test', 'A', 7)), ask(proxy, query('b.test', 'A', 7))]);
    assert.equal(a.packet.id, 7);
    assert.equal(b.packet.id, 7);
    assert.equal(a.data[0], '192.0.2.1');
    assert.equal(b.data[0], '192.0.2.2');
    const ids = upstream.udpQueries.map((q) => q.id);
    assert.equal(new Set(ids).size, 2, `distinct upstream IDs: ${ids.join(', ')}`);
  });

  it('retries a truncated answer over TCP and truncates again for a 512-byte guest', async () => {
    const upstream = await server();
    const proxy = proxyFor({ upstreams: [upstream.upstream] });
    const small = await ask(proxy, query('big.test', 'TXT', 1));
    assert.equal(small.packet.flag_tc, true);
    assert.equal(small.packet.answers!.length, 0);
    assert.equal(small.packet.questions![0]!.name, 'big.test');
    assert.ok(small.bytes.length <= 512);
    assert.equal(upstream.tcpQueries, 1);
    const stats = proxy.stats();
    assert.equal(stats.tcpRetries, 1);
    assert.equal(stats.truncated, 1);
  });

  it('returns the full TCP answer to a guest that advertised a large EDNS size, or asked over TCP', async () => {
    const upstream = await server();
    const proxy = proxyFor({ upstreams: [upstream.upstream] });
    const edns = query('big.test', 'TXT', 2, {
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }],
    });
    const big = await ask(proxy, edns);
    assert.equal(big.packet.flag_tc, false);
    assert.equal(big.packet.answers!.length, 12);
    assert.ok(big.bytes.length > 512);
    const overTcp = await ask(proxy, query('big.test', 'TXT', 3), true);
    assert.equal(overTcp.packet.id, 3);
    assert.equal(overTcp.packet.answers!.length, 12);
  });

  it('fails over to the next upstream on timeout, then SERVFAIL when all fail', async () => {
    const dead = await server({ silent: true });
    const alive = await server();
    const proxy = proxyFor({ upstreams: [dead.upstream, alive.upstream], timeoutMs: 100 });
    const a = await ask(proxy, query('example.test', 'A', 9));
    assert.equal(a.data[0], '192.0.2.10');
    assert.equal(dead.udpQueries.length, 1);
    assert.equal(proxy.stats().timeouts, 1);
    assert.equal(proxy.stats().failovers, 1);

    const dead2 = await server({ silent: true });
    const none = proxyFor({ upstreams: [dead.upstream, dead2.upstream], timeoutMs: 100 });
    const started = Date.now();
    const failed = await ask(none, query('example.test', 'A', 10));
    assert.equal(failed.packet.id, 10);
    assert.equal(failed.rcode, 'SERVFAIL');
    assert.equal(failed.packet.questions![0]!.name, 'example.test');
    assert.ok(Date.now() - started >= 190);
    assert.equal(none.stats().servfails, 1);
    assert.equal(none.stats().pending, 0);
  });

  it('fails over when an upstream answers SERVFAIL', async () => {
    const broken = await server({ rcode: Rcode.ServFail });
    const alive = await server();
    const proxy = proxyFor({ upstreams: [broken.upstream, alive.upstream] });
    const a = await ask(proxy, query('example.test', 'A'));
    assert.equal(a.data[0], '192.0.2.10');
  });

  it('answers SERVFAIL at once with no upstream, and bounds pending queries', async () => {
    const none = proxyFor({ upstreams: [] });
    const got = replies(none, query('example.test', 'A', 5));
    assert.equal(got.length, 1);
    assert.equal(rcodeName(dnsPacket.decode(Buffer.from(got[0]!))), 'SERVFAIL');

    const dead = await server({ silent: true });
    const proxy = proxyFor({ upstreams: [dead.upstream], maxPending: 2, timeoutMs: 1000 });
    for (let i = 0; i < 5; i++) proxy.handle(query('example.test', 'A', i), () => {});
    assert.equal(proxy.stats().pending, 2);
    assert.equal(proxy.stats().drops['dns:too-many-pending'], 3);
    proxy.close();
    assert.equal(proxy.stats().pending, 0);
  });

  it('answers VM names from localNames, authoritatively, A only', async () => {
    const upstream = await server();
    const proxy = proxyFor({
      upstreams: [upstream.upstream],
      localNames: (name) => (name.toLowerCase() === 'vm1' ? [0x0a00020f] : undefined),
    });
    const a = await ask(proxy, query('VM1', 'A', 11));
    assert.equal(a.packet.id, 11);
    assert.equal(a.packet.flag_aa, true);
    assert.equal(a.packet.questions![0]!.name, 'VM1');
    assert.deepEqual(a.packet.answers!.map((r) => [r.name, dataOf(r), (r as dnsPacket.StringAnswer).ttl]), [['VM1', '10.0.2.15', LOCAL_NAME_TTL_SEC]]);
    const aaaa = await ask(proxy, query('vm1', 'AAAA'));
    assert.equal(aaaa.rcode, 'NOERROR');
    assert.equal(aaaa.packet.answers!.length, 0);
    assert.equal(upstream.udpQueries.length, 0);
    await ask(proxy, query('example.test', 'A'));
    assert.equal(upstream.udpQueries.length, 1);
    assert.equal(proxy.stats().local, 2);
  });
});

describe('DnsProxy: host-resolver mode', () => {
  it('resolves localhost through the host\'s resolver (/etc/hosts)', async () => {
    const proxy = new DnsProxy({ upstreams: [], useHostResolver: true });
    try {
      const a = await ask(proxy, query('localhost', 'A', 21));
      assert.equal(a.packet.id, 21);
      assert.equal(a.rcode, 'NOERROR');
      assert.ok(a.data.includes('127.0.0.1'), JSON.stringify(a.packet.answers));
      assert.equal(proxy.stats().hostResolver, 1);
    } finally {
      proxy.close();
    }
  });

  it('answers NXDOMAIN for a name with no address, NODATA for one of the other family, SERVFAIL on resolver failure', async () => {
    const table: Record<string, Record<number, string[]>> = { 'v4only.test': { 4: ['192.0.2.7'], 6: [] } };
    const proxy = new DnsProxy({
      upstreams: [],
      useHostResolver: true,
      lookup: async (name, family) => {
        if (name === 'broken.test') throw Object.assign(new Error('resolver down'), { code: 'EAI_AGAIN' });
        return table[name]?.[family] ?? [];
      },
    });
    try {
      assert.equal((await ask(proxy, query('missing.test', 'A'))).rcode, 'NXDOMAIN');
      const nodata = await ask(proxy, query('v4only.test', 'AAAA'));
      assert.equal(nodata.rcode, 'NOERROR');
      assert.equal(nodata.packet.answers!.length, 0);
      const a = await ask(proxy, query('v4only.test', 'A'));
      assert.equal(a.data[0], '192.0.2.7');
      assert.equal((await ask(proxy, query('broken.test', 'A'))).rcode, 'SERVFAIL');
    } finally {
      proxy.close();
    }
  });

  it('passes other types to the upstream', async () => {
    const upstream = await FakeDns.start();
    const proxy = new DnsProxy({ upstreams: [upstream.upstream], useHostResolver: true, lookup: async () => [] });
    try {
      const mx = await ask(proxy, query('example.test', 'MX'));
      assert.equal(mx.packet.answers!.length, 1);
      assert.equal(upstream.udpQueries.length, 1);
    } finally {
      proxy.close();
      await upstream.close();
    }
  });
});

describe('DnsProxy: malformed queries', () => {
  it('drops what has no header, answers FORMERR to what has one, and never throws', () => {
    const proxy = new DnsProxy({ upstreams: [] });
    try {
      assert.deepEqual(replies(proxy, Uint8Array.of(1, 2, 3)), []);
      // Header says one question, none follows.
      const headerOnly = Uint8Array.of(0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0);
      const [formerr] = replies(proxy, headerOnly);
      assert.ok(formerr);
      assert.equal(getId(formerr), 0xabcd);
      assert.equal(formerr[3]! & 0xf, Rcode.FormErr);
      assert.equal(formerr[2]! & 0x80, 0x80, 'QR set');
      // A response from a guest is not answered (no loops).
      const response = dnsPacket.encode({ type: 'response', id: 1, questions: [{ type: 'A', name: 'x.test' }] });
      assert.deepEqual(replies(proxy, response), []);
      // Two questions: FORMERR.
      const two = dnsPacket.encode({ type: 'query', id: 2, questions: [{ type: 'A', name: 'x.test' }, { type: 'A', name: 'y.test' }] });
      assert.equal(rcodeOf(dnsPacket.decode(Buffer.from(replies(proxy, two)[0]!))), Rcode.FormErr);
      // Opcode NOTIFY (4): NOTIMP.
      const notify = query('x.test', 'SOA', 3);
      notify[2] = (notify[2]! & 0x87) | (4 << 3);
      assert.equal(replies(proxy, notify)[0]![3]! & 0xf, Rcode.NotImp);
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
          const got = replies(proxy, bytes);
          assert.ok(got.length <= 1);
        }),
        { numRuns: 2000 },
      );
      assert.equal(proxy.stats().drops['dns:truncated']! >= 1, true);
    } finally {
      proxy.close();
    }
  });
});

describe('DNS message helpers', () => {
  it('finds the question, compares it case-insensitively and truncates to it', () => {
    const q = query('Example.Test', 'A', 1);
    assert.equal(questionEnd(q), 12 + 14 + 4);
    assert.equal(sameQuestion(q, query('example.test', 'A', 2)), true);
    assert.equal(sameQuestion(q, query('example.test', 'AAAA', 2)), false);
    assert.equal(sameQuestion(q, query('exbmple.test', 'A', 2)), false);
    const full = dnsPacket.encode({
      type: 'response',
      id: 1,
      questions: [{ type: 'A', name: 'example.test' }],
      answers: [{ type: 'A', name: 'example.test', data: '192.0.2.1' }],
    });
    const cut = dnsPacket.decode(Buffer.from(truncated(full)));
    assert.equal(cut.flag_tc, true);
    assert.equal(cut.answers!.length, 0);
    assert.equal(cut.questions!.length, 1);
    const servfail = dnsPacket.decode(Buffer.from(errorResponse(q, Rcode.ServFail)));
    assert.equal(rcodeName(servfail), 'SERVFAIL');
    assert.equal(servfail.flag_rd, true);
    assert.equal(servfail.questions![0]!.name, 'Example.Test');
  });
});

describe('resolv.conf', () => {
  it('reads nameservers in order, keeps stubs, skips junk; the last search line wins', () => {
    const conf = parseResolvConf(
      [
        '# generated by resolvconf',
        'nameserver 127.0.0.53',
        'nameserver 192.0.2.53 ; trailing comment',
        'nameserver fe80::1%eth0',
        'nameserver not-an-address',
        'options edns0 trust-ad',
        'domain old.example',
        'search corp.example. lab.example',
        '',
      ].join('\n'),
    );
    assert.deepEqual(conf.nameservers, [
      { host: '127.0.0.53', port: 53 },
      { host: '192.0.2.53', port: 53 },
      { host: 'fe80::1%eth0', port: 53 },
    ]);
    assert.deepEqual(conf.search, ['corp.example', 'lab.example']);
    assert.deepEqual(parseResolvConf(''), { nameservers: [], search: [] });
  });
});
