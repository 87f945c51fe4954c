import assert from 'node:assert/strict';
import { describe as suite, it } from 'node:test';
import fc from 'fast-check';
import { describe } from '../../../src/wire/describe.js';
import { UDHCPC_DISCOVER_FRAME } from './fixtures.js';
import { hex } from './helpers.js';

const ETH_TO_GATEWAY = [
  // Ethernet: 08:00:27:aa:bb:cc > 52:54:00:12:35:02, IPv4
  '52 54 00 12',
  '35 02 08 00',
  '27 aa bb cc',
  '08 00',
];

const ARP_REQUEST = hex(
  // Ethernet: 08:00:27:aa:bb:cc > broadcast, ARP
  'ff ff ff ff',
  'ff ff 08 00',
  '27 aa bb cc',
  '08 06',
  // ARP: request, 08:00:27:aa:bb:cc 10.0.2.15 asks for 10.0.2.2
  '00 01 08 00',
  '06 04 00 01',
  '08 00 27 aa',
  'bb cc 0a 00',
  '02 0f 00 00',
  '00 00 00 00',
  '0a 00 02 02',
);

const PING = hex(
  ...ETH_TO_GATEWAY,
  // IPv4: 10.0.2.15 > 10.0.2.2, ICMP
  '45 00 00 24',
  '1c 46 40 00',
  '40 01 06 83',
  '0a 00 02 0f',
  '0a 00 02 02',
  // ICMP: echo request id 1 seq 2, 8 bytes of data
  '08 00 ab ac',
  '00 01 00 02',
  '10 11 12 13',
  '14 15 16 17',
);

const SYN = hex(
  ...ETH_TO_GATEWAY,
  // IPv4: 10.0.2.15 > 10.0.2.2, TCP, total 60
  '45 00 00 3c',
  '30 39 40 00',
  '40 06 f2 72',
  '0a 00 02 0f',
  '0a 00 02 02',
  // TCP: 40000 > 80 SYN seq 16909060 win 64240, 20 bytes of options
  '9c 40 00 50',
  '01 02 03 04',
  '00 00 00 00',
  'a0 02 fa f0',
  '7e 50 00 00',
  '02 04 05 b4',
  '04 02 08 0a',
  '0a 0b 0c 0d',
  '00 00 00 00',
  '01 03 03 07',
);

const DNS = hex(
  ...ETH_TO_GATEWAY,
  // IPv4: 10.0.2.15 > 10.0.2.3, UDP
  '45 00 00 28',
  'be ef 00 00',
  '40 11 a3 c4',
  '0a 00 02 0f',
  '0a 00 02 03',
  // UDP: 53000 > 53, 12 bytes
  'cf 08 00 35',
  '00 14 05 42',
  '12 34 01 00',
  '00 01 00 00',
  '00 00 00 00',
);

suite('describe', () => {
  it('summarises ARP', () => {
    assert.equal(describe(ARP_REQUEST), '08:00:27:aa:bb:cc > ff:ff:ff:ff:ff:ff ARP who-has 10.0.2.2 tell 10.0.2.15');
  });

  it('summarises ICMP echo', () => {
    assert.equal(
      describe(PING),
      '08:00:27:aa:bb:cc > 52:54:00:12:35:02 IPv4 10.0.2.15 > 10.0.2.2 ICMP echo request id 1 seq 2 len 8',
    );
  });

  it('summarises TCP with tcpdump flags', () => {
    assert.equal(
      describe(SYN),
      '08:00:27:aa:bb:cc > 52:54:00:12:35:02 TCP 10.0.2.15:40000 > 10.0.2.2:80 [S] seq 16909060 win 64240 len 0',
    );
    const synAck = SYN.slice();
    synAck[14 + 20 + 13] = 0x12;
    assert.match(describe(synAck), /\[S\.\] seq 16909060 ack 0 win/);
  });

  it('summarises UDP and DHCP', () => {
    assert.equal(describe(DNS), '08:00:27:aa:bb:cc > 52:54:00:12:35:02 UDP 10.0.2.15:53000 > 10.0.2.3:53 len 12');
    assert.equal(
      describe(UDHCPC_DISCOVER_FRAME),
      '08:00:27:aa:bb:cc > ff:ff:ff:ff:ff:ff UDP 0.0.0.0:68 > 255.255.255.255:67 DHCP DISCOVER xid 0x3903f326 chaddr 08:00:27:aa:bb:cc',
    );
  });

  it('shows fragments without reading a transport header', () => {
    const first = DNS.slice();
    first[14 + 6] = 0x20; // MF, offset 0
    assert.match(describe(first), /IPv4 10\.0\.2\.15 > 10\.0\.2\.3 frag id 48879 off 0\+ proto 17 len 20$/);
  });

  it('shows VLAN tags and unknown EtherTypes', () => {
    const lldp = hex('01 80 c2 00', '00 0e 08 00', '27 aa bb cc', '81 00 00 05', '88 cc 02 07');
    assert.equal(describe(lldp), '08:00:27:aa:bb:cc > 01:80:c2:00:00:0e vlan 5 ethertype 0x88cc len 2');
  });

  it('names the malformed layer instead of throwing', () => {
    assert.equal(describe(new Uint8Array(5)), 'malformed (ethernet: truncated)');
    assert.equal(describe(PING.subarray(0, 40)), '08:00:27:aa:bb:cc > 52:54:00:12:35:02 malformed (ipv4: bad-length)');
    assert.match(describe(SYN.subarray(0, 50)), /malformed \(ipv4: bad-length\)$/);
  });

  it('never throws (property)', () => {
    const prefix = fc.constantFrom(ARP_REQUEST, PING, SYN, DNS, UDHCPC_DISCOVER_FRAME);
    fc.assert(
      fc.property(prefix, fc.nat(), fc.uint8Array({ maxLength: 8 }), fc.nat(), (frame, cut, noise, at) => {
        const bytes = frame.slice(0, cut % (frame.length + 1));
        if (bytes.length > 0) bytes.set(noise.subarray(0, bytes.length - (at % bytes.length)), at % bytes.length);
        assert.equal(typeof describe(bytes), 'string');
        assert.doesNotMatch(describe(bytes), /bug/);
      }),
    );
  });
});
