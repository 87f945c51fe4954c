import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Switch } from '../../../src/switch/switch.js';
import type { PortKind, PromiscPolicy, SwitchPort } from '../../../src/switch/port.js';

const BROADCAST = 'ff:ff:ff:ff:ff:ff';

function mac(text: string): Uint8Array {
  return Uint8Array.from(text.split(':').map((h) => parseInt(h, 16)));
}

/** An Ethernet frame: dst, src, type 0x0800, a small payload. */
function frame(dst: string, src: string, payloadLength = 46): Uint8Array {
  const f = new Uint8Array(14 + payloadLength);
  f.set(mac(dst), 0);
  f.set(mac(src), 6);
  f[12] = 0x08;
  f[13] = 0x00;
  return f;
}

interface Nic {
  port: SwitchPort;
  got: Uint8Array[];
  mac: string;
}

function plug(
  sw: Switch,
  name: string,
  macText: string,
  promisc: PromiscPolicy = 'deny',
  kind: PortKind = 'vm',
): Nic {
  const got: Uint8Array[] = [];
  const port = sw.attach({ name, mac: mac(macText), promisc, kind, deliver: (f) => got.push(f.slice()) });
  return { port, got, mac: macText };
}

const A = '52:54:00:00:00:0a';
const B = '52:54:00:00:00:0b';
const C = '52:54:00:00:00:0c';
const H = '0a:00:27:00:00:01';
const UNKNOWN = '52:54:00:00:00:99';

function lab(policyC: PromiscPolicy = 'deny') {
  let now = 0;
  const sw = new Switch('intnet', { clock: () => now });
  const a = plug(sw, 'a', A);
  const b = plug(sw, 'b', B);
  const c = plug(sw, 'c', C, policyC);
  const h = plug(sw, 'host', H, 'deny', 'host');
  return { sw, a, b, c, h, advance: (ms: number) => (now += ms) };
}

test('broadcast floods to every other port; the source is learned', () => {
  const { sw, a, b, c, h } = lab();
  a.port.send(frame(BROADCAST, A));
  assert.equal(a.got.length, 0);
  assert.equal(b.got.length, 1);
  assert.equal(c.got.length, 1);
  assert.equal(h.got.length, 1);
  assert.deepEqual(sw.macs().map((e) => [e.mac, e.port]), [[A, 'a']]);
  assert.equal(sw.counters.flooded, 1);
});

test('multicast floods regardless of promiscuous policy', () => {
  const { a, b, c } = lab();
  a.port.send(frame('01:00:5e:00:00:fb', A));
  b.port.send(frame('33:33:00:00:00:01', B));
  assert.equal(c.got.length, 2);
});

test('known unicast goes to the learned port only', () => {
  const { sw, a, b, c, h } = lab();
  b.port.send(frame(BROADCAST, B));
  a.port.send(frame(B, A));
  assert.equal(b.got.length, 1);
  assert.equal(c.got.length, 1, 'only the broadcast');
  assert.equal(h.got.length, 1, 'only the broadcast');
  assert.equal(sw.counters.unicast, 1);
  assert.equal(a.port.counters.framesOut, 1);
  assert.equal(b.port.counters.framesOut, 1);
  assert.equal(a.port.counters.framesIn, 1);
  assert.equal(a.port.counters.bytesIn, 60);
});

test('unicast to a MAC on the ingress port is filtered silently (802.1D)', () => {
  const { sw, a, b } = lab();
  a.port.send(frame(BROADCAST, A));
  a.port.send(frame(BROADCAST, '52:54:00:00:00:aa')); // a second station behind port a
  a.port.send(frame('52:54:00:00:00:aa', A));
  assert.equal(sw.counters.filtered, 1);
  assert.equal(b.got.length, 2);
  assert.deepEqual(a.port.counters.drops, {});
});

test('unknown unicast reaches its owner by own MAC before it is learned, and no deny port', () => {
  const { a, b, c, h } = lab();
  a.port.send(frame(B, A));
  assert.equal(b.got.length, 1, 'b owns the MAC');
  assert.equal(c.got.length, 0, 'deny: not for c');
  assert.equal(h.got.length, 0, 'deny: not for host');
});

test('a station that moves is re-learned on its new port', () => {
  const { a, b, c } = lab();
  a.port.send(frame(BROADCAST, '52:54:00:00:00:77'));
  c.port.send(frame('52:54:00:00:00:77', C));
  assert.equal(a.got.length, 1);
  b.port.send(frame(BROADCAST, '52:54:00:00:00:77'));
  c.port.send(frame('52:54:00:00:00:77', C));
  assert.equal(a.got.length, 2, 'a saw only the broadcast from b');
  assert.equal(b.got.length, 2, 'a broadcast, then the unicast');
});

test('learned entries age out after 300 s; then unicast floods again', () => {
  const { sw, a, b, c, advance } = lab('allow-all');
  b.port.send(frame(BROADCAST, B));
  advance(300_000);
  a.port.send(frame(B, A));
  assert.equal(c.got.length, 2, 'the broadcast, then a copy of the known unicast');
  advance(300_001);
  a.port.send(frame(B, A));
  assert.equal(sw.counters.flooded, 2);
  assert.equal(b.got.length, 2);
  sw.sweep();
  assert.deepEqual(sw.macs().map((e) => e.mac), [A]);
});

test('a flood of 100k random source MACs keeps the table at its limit', () => {
  const sw = new Switch('flood', { macLimit: 4096, clock: () => 0 });
  let delivered = 0;
  const attacker = sw.attach({ name: 'attacker', deliver: () => {} });
  sw.attach({ name: 'victim', mac: mac(A), deliver: () => delivered++ });
  const f = frame(BROADCAST, A);
  let seed = 12345;
  for (let i = 0; i < 100_000; i++) {
    for (let j = 6; j < 12; j++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      f[j] = seed >>> 24;
    }
    f[6] &= 0xfe; // individual address
    attacker.send(f);
  }
  const stats = sw.snapshot();
  assert.ok(stats.macCount <= 4096, `table size ${stats.macCount}`);
  assert.equal(stats.macCount, 4096);
  assert.ok(stats.macTable.full >= 100_000 - 4096 - 10);
  assert.equal(delivered, 100_000, 'every frame still forwarded');
});

test('link down: nothing in, nothing out, counted; MACs are forgotten', () => {
  const { sw, a, b } = lab();
  b.port.send(frame(BROADCAST, B));
  b.port.linkUp = false;
  assert.deepEqual(sw.macs().map((e) => e.mac), []);
  b.port.send(frame(BROADCAST, B));
  assert.equal(a.got.length, 1);
  assert.equal(b.port.counters.drops['link-down'], 1);
  a.port.send(frame(B, A));
  assert.equal(b.got.length, 0);
  assert.equal(b.port.counters.drops['link-down'], 2);
  a.port.send(frame(BROADCAST, A));
  assert.equal(b.port.counters.drops['link-down'], 3);
  b.port.linkUp = true;
  a.port.send(frame(BROADCAST, A));
  assert.equal(b.got.length, 1);
  assert.equal(b.port.snapshot().linkUp, true);
});

test('runts and group or zero source MACs are dropped and counted', () => {
  const { a, b } = lab();
  a.port.send(new Uint8Array(13));
  a.port.send(new Uint8Array(0));
  a.port.send(frame(B, BROADCAST));
  a.port.send(frame(B, '01:00:5e:00:00:01'));
  a.port.send(frame(B, '00:00:00:00:00:00'));
  assert.deepEqual(a.port.counters.drops, { runt: 2, 'bad-source': 3 });
  assert.equal(a.port.counters.framesIn, 0);
  assert.equal(b.got.length, 0);
  a.port.send(frame(B, A, 0)); // exactly a header is a frame
  assert.equal(b.got.length, 1);
});

test('802.1Q tagged frames are forwarded unchanged', () => {
  const { a, b } = lab();
  const tagged = Uint8Array.of(...mac(B), ...mac(A), 0x81, 0x00, 0x00, 0x05, 0x08, 0x00, 1, 2, 3);
  a.port.send(tagged);
  assert.deepEqual(b.got[0], tagged);
});

test('deny: a VM never sees unicast not meant for it', () => {
  const { a, b, c } = lab('deny');
  b.port.send(frame(BROADCAST, B));
  a.port.send(frame(B, A)); // known
  a.port.send(frame(UNKNOWN, A)); // flooded
  assert.equal(c.got.length, 1, 'only the broadcast');
});

test('allow-all: copies of known and flooded unicast, including host traffic', () => {
  const { a, b, c, h } = lab('allow-all');
  b.port.send(frame(BROADCAST, B));
  h.port.send(frame(BROADCAST, H));
  a.port.send(frame(B, A)); // known VM→VM
  a.port.send(frame(UNKNOWN, A)); // flooded
  a.port.send(frame(H, A)); // known VM→host
  h.port.send(frame(B, H)); // known host→VM
  assert.equal(c.got.length, 6);
  assert.equal(b.got.length, 3, 'broadcast from h, unicast from a, unicast from h');
  assert.equal(a.got.length, 2, 'only the broadcasts: deny');
});

test('allow-vms: VM-to-VM unicast, never host or service traffic', () => {
  const sw = new Switch('net', { clock: () => 0 });
  const a = plug(sw, 'a', A);
  const b = plug(sw, 'b', B);
  const c = plug(sw, 'c', C, 'allow-vms');
  const h = plug(sw, 'host', H, 'deny', 'host');
  const gw = plug(sw, 'gw', '52:54:00:12:35:02', 'deny', 'service');
  b.port.send(frame(BROADCAST, B)); // c: 1
  a.port.send(frame(B, A)); // known VM→VM: c: 2
  a.port.send(frame(UNKNOWN, A)); // flooded from a VM: c: 3
  a.port.send(frame(H, A)); // unlearned host MAC, flooded: hidden
  a.port.send(frame(gw.mac, A)); // unlearned service MAC: hidden
  h.port.send(frame(UNKNOWN, H)); // flooded from the host: hidden
  h.port.send(frame(B, H)); // known host→VM: hidden
  gw.port.send(frame(A, gw.mac)); // known service→VM: hidden
  a.port.send(frame(gw.mac, A)); // known VM→service: hidden
  assert.equal(c.got.length, 3);
  assert.equal(h.got.length, 2, 'b broadcast, a unicast to H');
  assert.equal(gw.got.length, 3);
});

test('a port without a known MAC gets flooded unicast (it cannot filter)', () => {
  const sw = new Switch('net');
  const a = plug(sw, 'a', A);
  const got: Uint8Array[] = [];
  sw.attach({ name: 'tap', kind: 'host', deliver: (f) => got.push(f) });
  a.port.send(frame(UNKNOWN, A));
  assert.equal(got.length, 1);
});

test('changing promisc at run time takes effect', () => {
  const { a, b, c } = lab('deny');
  b.port.send(frame(BROADCAST, B));
  a.port.send(frame(B, A));
  c.port.promisc = 'allow-all';
  a.port.send(frame(B, A));
  c.port.promisc = 'deny';
  a.port.send(frame(B, A));
  assert.equal(c.got.length, 2);
  assert.equal(c.port.snapshot().promisc, 'deny');
});

test('a throwing deliver is counted and others still receive', () => {
  const sw = new Switch('net');
  const a = plug(sw, 'a', A);
  const bad = sw.attach({ name: 'bad', mac: mac(B), deliver: () => { throw new Error('boom'); } });
  const c = plug(sw, 'c', C);
  a.port.send(frame(BROADCAST, A));
  assert.equal(bad.counters.drops['deliver-error'], 1);
  assert.equal(bad.counters.framesOut, 0);
  assert.equal(c.got.length, 1);
});

test('detach forgets the port and its MACs; a detached port counts its input', () => {
  const { sw, a, b, c } = lab();
  b.port.send(frame(BROADCAST, B));
  sw.detach(b.port);
  sw.detach(b.port);
  assert.equal(sw.attached.length, 3);
  a.port.send(frame(B, A));
  assert.equal(b.got.length, 0);
  b.port.send(frame(BROADCAST, B));
  assert.equal(b.port.counters.drops.detached, 1);
  assert.equal(c.got.length, 1, 'only the broadcast from before detach');
});

test('deliver may feed the switch and attach ports while it runs', () => {
  const sw = new Switch('net');
  const got: string[] = [];
  const a = sw.attach({ name: 'a', mac: mac(A), deliver: () => got.push('a') });
  sw.attach({
    name: 'echo',
    mac: mac(B),
    deliver: (f) => {
      got.push('echo');
      if (f[0] === 0xff) {
        sw.attach({ name: 'late', deliver: () => got.push('late') });
        echoPort().send(frame(A, B));
      }
    },
  });
  const echoPort = () => sw.attached[1]!;
  a.send(frame(BROADCAST, A));
  assert.deepEqual(got, ['echo', 'a']);
});

test('stats snapshot', () => {
  const { sw, a } = lab();
  a.port.send(frame(BROADCAST, A));
  const s = sw.snapshot();
  assert.equal(s.name, 'intnet');
  assert.equal(s.macCount, 1);
  assert.equal(s.macLimit, 4096);
  assert.equal(s.ports.length, 4);
  assert.deepEqual(s.ports[0], {
    name: 'a', kind: 'vm', mac: A, linkUp: true, promisc: 'deny',
    framesIn: 1, bytesIn: 60, framesOut: 0, bytesOut: 0, drops: {},
  });
});

test('property: arbitrary bytes from any port never throw', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(3), fc.uint8Array({ maxLength: 80 }), fc.boolean()), { maxLength: 40 }),
      (inputs) => {
        const { a, b, c, h } = lab('allow-vms');
        const nics = [a, b, c, h];
        for (const [which, bytes, flip] of inputs) {
          if (flip) nics[which]!.port.linkUp = !nics[which]!.port.linkUp;
          nics[which]!.port.send(bytes);
        }
        for (const n of nics) {
          const cnt = n.port.counters;
          assert.ok(cnt.framesIn >= 0 && cnt.framesOut >= 0);
        }
      },
    ),
    { numRuns: 300 },
  );
});
