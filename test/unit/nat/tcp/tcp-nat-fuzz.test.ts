import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { netHostStream } from '../../../../src/nat/tcp/host-stream.js';
import { TcpNat } from '../../../../src/nat/tcp/tcp-nat.js';
import { fold, pseudoHeaderSum, sum } from '../../../../src/wire/checksum.js';
import { emitIpv4, IpProtocol, Ipv4View } from '../../../../src/wire/ipv4.js';
import { TcpView } from '../../../../src/wire/tcp.js';
import { FakeGuest, FakeLink, GUEST_IP, GuestTcp, REMOTE_IP, until } from './fake-guest.js';

/** A guest IPv4 packet around arbitrary TCP bytes (header fields, options and payload all random). */
function packet(tcpBytes: Uint8Array, fixChecksum: boolean): Uint8Array {
  const out = new Uint8Array(20 + tcpBytes.length);
  emitIpv4({ source: GUEST_IP, destination: REMOTE_IP, protocol: IpProtocol.TCP, ttl: 64, payloadLength: tcpBytes.length }, out, 0);
  out.set(tcpBytes, 20);
  if (fixChecksum && tcpBytes.length >= 18) {
    out[36] = 0;
    out[37] = 0;
    const c = fold(sum(out.subarray(20), pseudoHeaderSum(GUEST_IP, REMOTE_IP, IpProtocol.TCP, tcpBytes.length)));
    out[36] = c >>> 8;
    out[37] = c & 0xff;
  }
  return out;
}

/** TCP bytes with a plausible header: ports from a small set, a valid or odd data offset, random rest. */
const segmentBytes = (ports: { local: number[]; remote: number[] }, seqNear: () => number) =>
  fc
    .record({
      local: fc.constantFrom(...ports.local),
      remote: fc.constantFrom(...ports.remote),
      seqDelta: fc.integer({ min: -70000, max: 70000 }),
      randomSeq: fc.boolean(),
      seq: fc.nat(0xffffffff),
      ack: fc.nat(0xffffffff),
      offsetWords: fc.integer({ min: 0, max: 15 }),
      flags: fc.nat(255),
      window: fc.nat(0xffff),
      rest: fc.uint8Array({ maxLength: 120 }),
    })
    .map((f) => {
      const bytes = new Uint8Array(20 + f.rest.length);
      const dv = new DataView(bytes.buffer);
      dv.setUint16(0, f.local);
      dv.setUint16(2, f.remote);
      dv.setUint32(4, f.randomSeq ? f.seq : (seqNear() + f.seqDelta) >>> 0);
      dv.setUint32(8, f.ack);
      bytes[12] = f.offsetWords << 4;
      bytes[13] = f.flags;
      dv.setUint16(14, f.window);
      bytes.set(f.rest, 20);
      return bytes;
    });

describe('TcpNat with garbled guest segments', () => {
  it('never throws; bad segments are counted', async () => {
    const link = new FakeLink();
    const sockets: net.Socket[] = [];
    const nat = new TcpNat({
      link,
      // Host connects that never complete: no real sockets needed.
      connect: (_host, _port, events) => {
        const s = new net.Socket();
        sockets.push(s);
        return netHostStream(s, events);
      },
    });
    fc.assert(
      fc.property(segmentBytes({ local: [1000, 1001, 0], remote: [80, 0] }, () => 0), fc.boolean(), (tcpBytes, fix) => {
        const p = packet(tcpBytes, fix);
        const ip = Ipv4View.checked(p);
        let tcp: TcpView;
        try {
          tcp = TcpView.checked(ip.payload);
        } catch {
          return; // the gateway's catch: not ours
        }
        nat.fromGuest(ip, tcp, '127.0.0.1');
      }),
      { numRuns: 3000 },
    );
    const drops = nat.stats().drops;
    assert.ok((drops['tcp:bad-checksum'] ?? 0) > 0);
    nat.close();
    assert.equal(nat.flowCount, 0);
    assert.ok(sockets.every((s) => s.destroyed));
    assert.deepEqual(link.errors, []);
  });

  it('keeps an established connection sane under random segments', async () => {
    const link = new FakeLink();
    const nat = new TcpNat({ link });
    const server = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => {});
      s.pipe(s);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const guest = new FakeGuest(nat, link);
    const c = new GuestTcp(guest, { localPort: 1000, remotePort: port, shift: 7 });
    await c.connect();
    fc.assert(
      fc.property(segmentBytes({ local: [1000], remote: [port] }, () => c.sndNxt), (tcpBytes) => {
        const ip = Ipv4View.checked(packet(tcpBytes, true));
        let tcp: TcpView;
        try {
          tcp = TcpView.checked(ip.payload);
        } catch {
          return;
        }
        nat.fromGuest(ip, tcp, '127.0.0.1');
      }),
      { numRuns: 3000 },
    );
    // Let sockets and timers settle; the NAT must still be coherent.
    await new Promise((r) => setTimeout(r, 50));
    for (const f of nat.connections()) {
      assert.ok(f.inFlight >= 0 && f.inFlight <= f.queued + 1, `in flight ${f.inFlight} of ${f.queued}`);
    }
    nat.close();
    assert.equal(nat.flowCount, 0);
    await until(() => true);
    await new Promise<void>((r) => server.close(() => r()));
    assert.deepEqual(link.errors, []);
  });
});
