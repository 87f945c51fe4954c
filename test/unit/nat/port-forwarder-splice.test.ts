// Which forwarded TCP connections the PortForwarder splices (src/nat/port-forwarder.ts), with a fake
// listener and fake accepted sockets; the splicing itself is tested in test/unit/transport/tcp-socket.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { MAX_SPLICED_PAIRS, PortForwarder } from '../../../src/nat/port-forwarder.js';
import type { AcceptedHostSocket } from '../../../src/nat/tcp/host-stream.js';
import { parseIpv4 } from '../../../src/wire/address.js';

const GUEST = parseIpv4('10.0.2.15');
const GATEWAY = parseIpv4('10.0.2.2');
const NETNS_FD = 42;

interface Splice {
  host: string;
  port: number;
  netnsFd: number;
  ended: (error: string | undefined) => void;
}

/** A forwarder with one TCP rule; `accept(peer, answer)` plays a client arriving. */
async function setUp(netns: (guestIp: number) => number | undefined) {
  let onAccept: ((socket: AcceptedHostSocket) => void) | undefined;
  const forwarded: Array<{ guestIp: number; sourceIp: number }> = [];
  const forwarder = new PortForwarder({
    link: { mtu: 1500 } as never,
    tcp: { forward: (_accepted, guestIp, _guestPort, sourceIp) => void forwarded.push({ guestIp, sourceIp }) },
    gatewayIp: GATEWAY,
    defaultGuestIp: () => GUEST,
    openUdpSockets: () => assert.fail('no UDP here'),
    listenTcp: async (_host, port, accept) => {
      onAccept = accept;
      return { port, close: () => {} };
    },
    spliceNetns: netns,
  });
  await forwarder.apply([{ name: 'web', protocol: 'tcp', hostIp: '', hostPort: 18080, guestIp: '', guestPort: 8080 }]);
  const splices: Splice[] = [];
  const accept = (peer: string, answer: boolean) =>
    onAccept!({
      peerIp: parseIpv4(peer),
      peerPort: 40000,
      open: () => assert.fail('the fake NAT does not open'),
      close: () => {},
      splice: (host, port, netnsFd, ended) => {
        splices.push({ host, port, netnsFd, ended });
        return answer;
      },
    });
  return { forwarder, forwarded, splices, accept };
}

describe('PortForwarder: spliced forwards', () => {
  it('splices a loopback client into the namespace, to the guest address, and counts the pair until it ends', async () => {
    const { forwarder, forwarded, splices, accept } = await setUp((ip) => (ip === GUEST ? NETNS_FD : undefined));
    accept('127.0.0.1', true);
    accept('127.0.0.5', true);
    assert.deepEqual(splices.map(({ host, port, netnsFd }) => ({ host, port, netnsFd })), [
      { host: '10.0.2.15', port: 8080, netnsFd: NETNS_FD },
      { host: '10.0.2.15', port: 8080, netnsFd: NETNS_FD },
    ]);
    assert.deepEqual(forwarded, []);
    assert.equal(forwarder.counters.spliced, 2);
    assert.equal(forwarder.counters.splicedOpen, 2);
    splices[0]!.ended(undefined);
    splices[1]!.ended('ECONNRESET');
    assert.deepEqual(
      { open: forwarder.counters.splicedOpen, errors: forwarder.counters.spliceErrors, accepted: forwarder.counters.accepted },
      { open: 0, errors: 1, accepted: 2 },
    );
    forwarder.close();
  });

  it('a LAN client, a splice that declines, splicing off, and a full pair table take the NIC', async () => {
    let netns: number | undefined = NETNS_FD;
    // The guest at GUEST splices (while `netns` says so); no other address has a namespace.
    const { forwarder, forwarded, splices, accept } = await setUp((ip) => (ip === GUEST ? netns : undefined));
    accept('198.51.100.2', true);
    assert.deepEqual(forwarded, [{ guestIp: GUEST, sourceIp: parseIpv4('198.51.100.2') }], 'the guest sees a LAN client as itself');
    accept('127.0.0.1', false);
    assert.equal(splices.length, 1, 'asked, and declined');
    netns = undefined;
    accept('127.0.0.1', true);
    netns = NETNS_FD;
    forwarder.counters.splicedOpen = MAX_SPLICED_PAIRS;
    accept('127.0.0.1', true);
    forwarder.counters.splicedOpen = 0;
    await forwarder.apply([{ name: 'other', protocol: 'tcp', hostIp: '', hostPort: 18081, guestIp: '10.0.2.99', guestPort: 80 }]);
    accept('127.0.0.1', true);
    assert.equal(splices.length, 1, 'neither off, nor full, nor another guest address asks');
    assert.deepEqual(forwarded.slice(1), [
      { guestIp: GUEST, sourceIp: GATEWAY },
      { guestIp: GUEST, sourceIp: GATEWAY },
      { guestIp: GUEST, sourceIp: GATEWAY },
      { guestIp: parseIpv4('10.0.2.99'), sourceIp: GATEWAY },
    ]);
    assert.equal(forwarder.counters.spliced, 0);
    forwarder.close();
  });
});
