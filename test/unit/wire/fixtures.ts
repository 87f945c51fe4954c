/** Captured-style frames shared by several wire tests (no tests here). */

import { hex } from './helpers.js';

const zeros = (n: number): string => '00'.repeat(n);

/** A DHCPDISCOVER as busybox udhcpc 1.36 sends it: the UDP payload, padded to 300 bytes. */
export const UDHCPC_DISCOVER = hex(
  // BOOTP: op BOOTREQUEST, htype Ethernet, hlen 6, hops 0
  '01 01 06 00',
  // xid
  '39 03 f3 26',
  // secs 0, flags 0
  '00 00 00 00',
  // ciaddr, yiaddr, siaddr, giaddr: all 0.0.0.0
  '00 00 00 00',
  '00 00 00 00',
  '00 00 00 00',
  '00 00 00 00',
  // chaddr 08:00:27:aa:bb:cc, padded to 16
  '08 00 27 aa',
  'bb cc 00 00',
  '00 00 00 00',
  '00 00 00 00',
  // sname (64) and file (128), empty
  zeros(64),
  zeros(128),
  // magic cookie 99.130.83.99
  '63 82 53 63',
  // options: 53 message type DISCOVER; 61 client id (type 1, MAC)
  '35 01 01 3d',
  '07 01 08 00',
  '27 aa bb cc',
  // 57 max message size 576; 55 parameter request list: 1 3 6 12 15 28 42
  '39 02 02 40',
  '37 07 01 03',
  '06 0c 0f 1c',
  // 60 vendor class "udhcp 1.36.1"
  '2a 3c 0c 75',
  '64 68 63 70',
  '20 31 2e 33',
  // ... then End
  '36 2e 31 ff',
  // padding to 300 bytes
  zeros(20),
);

/** The DISCOVER above as a broadcast frame: Ethernet, IPv4, UDP headers, then the message. */
export const UDHCPC_DISCOVER_FRAME = new Uint8Array([
  ...hex(
    // Ethernet: 08:00:27:aa:bb:cc > ff:ff:ff:ff:ff:ff, IPv4
    'ff ff ff ff',
    'ff ff 08 00',
    '27 aa bb cc',
    '08 00',
    // IPv4: total 328, TTL 64, UDP, 0.0.0.0 > 255.255.255.255
    '45 00 01 48',
    '00 00 00 00',
    '40 11 79 a6',
    '00 00 00 00',
    'ff ff ff ff',
    // UDP: 68 > 67, length 308, checksum 0xc131
    '00 44 00 43',
    '01 34 c1 31',
  ),
  ...UDHCPC_DISCOVER,
]);
