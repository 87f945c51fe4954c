import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  addressesOption,
  DHCP_BROADCAST_FLAG,
  DHCP_MIN_LENGTH,
  dhcpLength,
  DhcpMessageType,
  DhcpOp,
  DhcpOption,
  DhcpView,
  domainSearchOption,
  emitDhcp,
  getClientIdentifier,
  getDnsServers,
  getDomainName,
  getDomainSearch,
  getHostName,
  getInterfaceMtu,
  getLeaseTime,
  getMessageType,
  getOptionString,
  getOptionU16,
  getParameterRequestList,
  getRebindingTime,
  getRenewalTime,
  getRequestedIp,
  getRouters,
  getServerId,
  getSubnetMask,
  getBroadcastAddress,
  parseDhcp,
  stringOption,
  u16Option,
  u32Option,
  u8Option,
  type DhcpMessage,
} from '../../../src/wire/dhcpv4.js';
import { UDHCPC_DISCOVER } from './fixtures.js';
import { assertNoReadPastEnd, atOffset, hex, throwsWire, valueOrWireError } from './helpers.js';

const MAC = hex('08 00 27 aa', 'bb cc');

/** A fresh 240-byte header with cookie, then `options` (bytes after the cookie). */
function message(options: Uint8Array, patch?: (m: Uint8Array) => void): Uint8Array {
  const m = new Uint8Array(240 + options.length);
  m.set(UDHCPC_DISCOVER.subarray(0, 240));
  m.set(options, 240);
  patch?.(m);
  return m;
}

describe('DhcpView', () => {
  it('reads the fixed fields of a udhcpc DISCOVER', () => {
    const dhcp = DhcpView.checked(atOffset(UDHCPC_DISCOVER));
    assert.equal(dhcp.op, DhcpOp.BootRequest);
    assert.equal(dhcp.htype, 1);
    assert.equal(dhcp.hlen, 6);
    assert.equal(dhcp.hops, 0);
    assert.equal(dhcp.xid, 0x3903f326);
    assert.equal(dhcp.secs, 0);
    assert.equal(dhcp.flags, 0);
    assert.equal(dhcp.ciaddr, 0);
    assert.equal(dhcp.giaddr, 0);
    assert.deepEqual(dhcp.chaddr, MAC);
    assert.equal(dhcp.options.length, 60);
  });

  it('rejects truncated messages, a wrong cookie and hlen over 16', () => {
    throwsWire(() => DhcpView.checked(UDHCPC_DISCOVER.subarray(0, 239)), 'dhcpv4', 'truncated');
    throwsWire(() => DhcpView.checked(message(new Uint8Array(0), (m) => (m[239] = 0x64))), 'dhcpv4', 'bad-magic');
    throwsWire(() => DhcpView.checked(message(new Uint8Array(0), (m) => (m[2] = 17))), 'dhcpv4', 'bad-length');
  });
});

describe('parseDhcp', () => {
  it('parses the DISCOVER and its options', () => {
    const m = parseDhcp(DhcpView.checked(UDHCPC_DISCOVER));
    assert.equal(m.xid, 0x3903f326);
    assert.equal(m.sname, '');
    assert.equal(m.file, '');
    assert.deepEqual([...m.options.keys()], [53, 61, 57, 55, 60]);
    assert.equal(getMessageType(m.options), DhcpMessageType.Discover);
    assert.deepEqual(getClientIdentifier(m.options), hex('01 08 00 27', 'aa bb cc'));
    assert.equal(getOptionU16(m.options, DhcpOption.MaxMessageSize), 576);
    assert.deepEqual([...getParameterRequestList(m.options)!], [1, 3, 6, 12, 15, 28, 42]);
    assert.equal(getOptionString(m.options, DhcpOption.VendorClassIdentifier), 'udhcp 1.36.1');
    assert.equal(getRequestedIp(m.options), undefined);
    assert.equal(getHostName(m.options), undefined);
  });

  it('rejects an option running past the end', () => {
    throwsWire(() => parseDhcp(DhcpView.checked(message(hex('35 01 01 0c', '05 61 62')))), 'dhcpv4', 'bad-option');
    throwsWire(() => parseDhcp(DhcpView.checked(message(hex('35')))), 'dhcpv4', 'bad-option');
  });

  it('tolerates a missing End and stops at End', () => {
    const noEnd = parseDhcp(DhcpView.checked(message(hex('00 35 01 03'))));
    assert.equal(getMessageType(noEnd.options), DhcpMessageType.Request);
    const afterEnd = parseDhcp(DhcpView.checked(message(hex('35 01 03 ff', '0c 09'))));
    assert.equal(afterEnd.options.size, 1);
  });

  it('joins repeated options (RFC 3396 §7)', () => {
    const m = parseDhcp(DhcpView.checked(message(hex('0c 02 76 6d', '0c 02 2d 31', 'ff'))));
    assert.equal(getHostName(m.options), 'vm-1');
  });

  it('follows Option Overload into file, then sname (RFC 2132 §9.3)', () => {
    const bytes = message(hex('34 01 03 35', '01 05 ff'), (m) => {
      m.set(hex('0c 02 76 6d', 'ff'), 108); // file: host name part 1
      m.set(hex('0c 02 2d 31', 'ff'), 44); // sname: host name part 2
    });
    const m = parseDhcp(DhcpView.checked(bytes));
    assert.equal(getHostName(m.options), 'vm-1');
    assert.equal(m.options.has(DhcpOption.Overload), false);
    assert.equal(m.sname, '');
    assert.equal(m.file, '');
  });

  it('rejects a bad overload value', () => {
    throwsWire(() => parseDhcp(DhcpView.checked(message(hex('34 01 04 ff')))), 'dhcpv4', 'bad-option');
    throwsWire(() => parseDhcp(DhcpView.checked(message(hex('34 01 00 ff')))), 'dhcpv4', 'bad-option');
  });
});

describe('typed option helpers', () => {
  it('read what the builders write', () => {
    const o = new Map<number, Uint8Array>([
      [DhcpOption.MessageType, u8Option(DhcpMessageType.Ack)],
      [DhcpOption.RequestedIpAddress, u32Option(0x0a00020f)],
      [DhcpOption.ServerIdentifier, u32Option(0x0a000202)],
      [DhcpOption.LeaseTime, u32Option(86400)],
      [DhcpOption.RenewalTime, u32Option(43200)],
      [DhcpOption.RebindingTime, u32Option(75600)],
      [DhcpOption.SubnetMask, u32Option(0xffffff00)],
      [DhcpOption.Router, addressesOption([0x0a000202])],
      [DhcpOption.DomainNameServer, addressesOption([0x0a000203, 0x08080808])],
      [DhcpOption.HostName, stringOption('vm1')],
      [DhcpOption.DomainName, stringOption('lab.example')],
      [DhcpOption.InterfaceMtu, u16Option(1500)],
      [DhcpOption.BroadcastAddress, u32Option(0x0a0002ff)],
      [DhcpOption.DomainSearch, domainSearchOption(['lab.example', 'example.'])],
    ]);
    assert.equal(getMessageType(o), DhcpMessageType.Ack);
    assert.equal(getRequestedIp(o), 0x0a00020f);
    assert.equal(getServerId(o), 0x0a000202);
    assert.equal(getLeaseTime(o), 86400);
    assert.equal(getRenewalTime(o), 43200);
    assert.equal(getRebindingTime(o), 75600);
    assert.equal(getSubnetMask(o), 0xffffff00);
    assert.deepEqual(getRouters(o), [0x0a000202]);
    assert.deepEqual(getDnsServers(o), [0x0a000203, 0x08080808]);
    assert.equal(getHostName(o), 'vm1');
    assert.equal(getDomainName(o), 'lab.example');
    assert.equal(getInterfaceMtu(o), 1500);
    assert.equal(getBroadcastAddress(o), 0x0a0002ff);
    assert.deepEqual(getDomainSearch(o), ['lab.example', 'example']);
  });

  it('refuse wrong lengths', () => {
    throwsWire(() => getMessageType(new Map([[53, hex('01 02')]])), 'dhcpv4', 'bad-option');
    throwsWire(() => getLeaseTime(new Map([[51, hex('00 01')]])), 'dhcpv4', 'bad-option');
    throwsWire(() => getRouters(new Map([[3, hex('0a 00 02')]])), 'dhcpv4', 'bad-option');
    throwsWire(() => getClientIdentifier(new Map([[61, hex('01')]])), 'dhcpv4', 'bad-option');
    throwsWire(() => getParameterRequestList(new Map([[55, new Uint8Array(0)]])), 'dhcpv4', 'bad-option');
  });

  it('drop trailing NULs some clients put after a host name', () => {
    assert.equal(getHostName(new Map([[12, hex('76 6d 31 00')]])), 'vm1');
  });

  it('decode the compressed domain search example of RFC 3397 §2', () => {
    // "eng.apple.com." and "marketing.apple.com.", split over three options of 9 bytes.
    const bytes = message(
      hex(
        '77 09 03 65', // 119, len 9: 3 "eng" ...
        '6e 67 05 61',
        '70 70 6c 77', // ... 5 "appl" | 119, len 9
        '09 65 03 63', // "e" 3 "com" 0 9 "ma"
        '6f 6d 00 09',
        '6d 61 77 09', // | 119, len 9
        '72 6b 65 74', // "rketing" pointer to offset 4 ("apple.com")
        '69 6e 67 c0',
        '04 ff',
      ),
    );
    const m = parseDhcp(DhcpView.checked(bytes));
    assert.deepEqual(getDomainSearch(m.options), ['eng.apple.com', 'marketing.apple.com']);
  });

  it('refuse pointer loops and labels running past the end', () => {
    throwsWire(() => getDomainSearch(new Map([[119, hex('c0 00')]])), 'dhcpv4', 'bad-option');
    throwsWire(() => getDomainSearch(new Map([[119, hex('03 61 62')]])), 'dhcpv4', 'bad-option');
    throwsWire(() => getDomainSearch(new Map([[119, hex('03 61 62 63')]])), 'dhcpv4', 'bad-option');
    throwsWire(() => getDomainSearch(new Map([[119, hex('80 00')]])), 'dhcpv4', 'bad-option');
  });
});

describe('emitDhcp', () => {
  const offer: DhcpMessage = {
    op: DhcpOp.BootReply,
    xid: 0x3903f326,
    flags: DHCP_BROADCAST_FLAG,
    yiaddr: 0x0a00020f,
    siaddr: 0x0a000202,
    chaddr: MAC,
    options: new Map([
      [DhcpOption.MessageType, u8Option(DhcpMessageType.Offer)],
      [DhcpOption.ServerIdentifier, u32Option(0x0a000202)],
      [DhcpOption.LeaseTime, u32Option(86400)],
      [DhcpOption.SubnetMask, u32Option(0xffffff00)],
      [DhcpOption.Router, addressesOption([0x0a000202])],
      [DhcpOption.DomainNameServer, addressesOption([0x0a000203])],
    ]),
  };

  it('writes a full OFFER at a non-zero offset, padded to 300 bytes', () => {
    const into = new Uint8Array(320).fill(0xee);
    assert.equal(dhcpLength(offer), DHCP_MIN_LENGTH);
    assert.equal(emitDhcp(offer, into, 9), 9 + DHCP_MIN_LENGTH);
    assert.equal(into[8], 0xee);
    assert.equal(into[309], 0xee);
    const bytes = into.subarray(9, 309);
    assert.deepEqual(bytes.subarray(0, 12), hex('02 01 06 00', '39 03 f3 26', '00 00 80 00'));
    assert.deepEqual(bytes.subarray(236, 243), hex('63 82 53 63', '35 01 02'));
    const parsed = parseDhcp(DhcpView.checked(bytes));
    assert.equal(parsed.yiaddr, 0x0a00020f);
    assert.equal(getMessageType(parsed.options), DhcpMessageType.Offer);
    assert.deepEqual(getRouters(parsed.options), [0x0a000202]);
  });

  it('re-emits the udhcpc DISCOVER byte for byte', () => {
    const parsed = parseDhcp(DhcpView.checked(UDHCPC_DISCOVER));
    const into = new Uint8Array(dhcpLength(parsed));
    emitDhcp(parsed, into, 0);
    assert.deepEqual(into, UDHCPC_DISCOVER);
  });

  it('splits values over 255 bytes (RFC 3396) and parses them back joined', () => {
    const long = new Uint8Array(300).map((_, i) => i & 0xff);
    const m: DhcpMessage = { op: 1, xid: 1, chaddr: MAC, options: new Map([[224, long]]) };
    const into = new Uint8Array(dhcpLength(m));
    emitDhcp(m, into, 0);
    assert.deepEqual(into.subarray(240, 242), hex('e0 ff'));
    assert.deepEqual(parseDhcp(DhcpView.checked(into)).options.get(224), long);
  });

  it('refuses caller bugs', () => {
    assert.throws(() => emitDhcp({ ...offer, chaddr: new Uint8Array(17) }, new Uint8Array(400), 0), RangeError);
    assert.throws(() => emitDhcp({ ...offer, sname: 'x'.repeat(64) }, new Uint8Array(400), 0), RangeError);
    assert.throws(() => emitDhcp({ ...offer, options: new Map([[255, u8Option(1)]]) }, new Uint8Array(400), 0), RangeError);
  });

  const u8 = fc.integer({ min: 0, max: 255 });
  const u16 = fc.integer({ min: 0, max: 0xffff });
  const u32 = fc.integer({ min: 0, max: 0xffffffff });
  const code = fc.integer({ min: 1, max: 254 }).filter((c) => c !== DhcpOption.Overload);
  const messageArb = fc.record(
    {
      op: fc.constantFrom(1, 2),
      htype: u8,
      hops: u8,
      xid: u32,
      secs: u16,
      flags: u16,
      ciaddr: u32,
      yiaddr: u32,
      siaddr: u32,
      giaddr: u32,
      chaddr: fc.uint8Array({ maxLength: 16 }),
      sname: fc.string({ unit: 'grapheme-ascii', maxLength: 63 }),
      file: fc.string({ unit: 'grapheme-ascii', maxLength: 127 }),
      options: fc.uniqueArray(fc.tuple(code, fc.uint8Array({ maxLength: 300 })), { selector: (e) => e[0], maxLength: 6 }).map((entries) => new Map(entries)),
    },
    { noNullPrototype: true },
  );

  it('parses what it emits (property)', () => {
    fc.assert(
      fc.property(messageArb, (m) => {
        const into = new Uint8Array(dhcpLength(m));
        emitDhcp(m, into, 0);
        assert.deepEqual(parseDhcp(DhcpView.checked(into)), m);
      }),
    );
  });

  it('checked() and parsing on arbitrary bytes yield a value or a WireError (property)', () => {
    const cookie = fc.constantFrom(hex('63 82 53 63'), hex('63 82 53 64'));
    const options = fc.array(fc.oneof(fc.constantFrom(0, 52, 53, 119, 255), u8), { maxLength: 40 });
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 236, maxLength: 236 }), cookie, options, (head, c, tail) => {
        head[2] &= 0x1f;
        const bytes = new Uint8Array([...head, ...c, ...tail]);
        const r = valueOrWireError(() => DhcpView.checked(bytes));
        if (r instanceof DhcpView) {
          assertNoReadPastEnd((b) => new DhcpView(b), bytes);
          const m = valueOrWireError(() => parseDhcp(r));
          if (!(m instanceof Error)) valueOrWireError(() => getDomainSearch(m.options));
        }
      }),
    );
  });
});
