import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { formatIpv4, parseIpv4, parseMac } from '../../../src/wire/address.js';
import {
  DHCP_BROADCAST_FLAG,
  DhcpMessageType,
  DhcpOp,
  DhcpOption,
  DhcpView,
  dhcpLength,
  emitDhcp,
  getDomainSearch,
  getLeaseTime,
  getMessageType,
  getOptionString,
  getRebindingTime,
  getRenewalTime,
  getServerId,
  parseDhcp,
  stringOption,
  u16Option,
  u32Option,
  u8Option,
  type DhcpMessage,
} from '../../../src/wire/dhcpv4.js';
import { DECLINE_HOLD_MS, DhcpServer, OFFER_HOLD_MS, type DhcpServerConfig, type Lease, type LeaseEvent, type LeaseStore } from '../../../src/services/dhcp/server.js';

const ip = parseIpv4;
const MAC_A = '08:00:27:aa:bb:01';
const MAC_B = '08:00:27:aa:bb:02';
const MAC_C = '08:00:27:aa:bb:03';

/** VirtualBox NAT on NIC 1: 10.0.2.0/24, server = gateway .2, DNS .3, first guest .15. */
function natConfig(overrides: Partial<DhcpServerConfig> = {}): DhcpServerConfig {
  return {
    serverIp: ip('10.0.2.2'),
    netmask: ip('255.255.255.0'),
    network: ip('10.0.2.0'),
    poolStart: ip('10.0.2.15'),
    poolEnd: ip('10.0.2.30'),
    router: ip('10.0.2.2'),
    dns: [ip('10.0.2.3')],
    domainName: 'vnet.internal',
    searchDomains: ['vnet.internal'],
    leaseTimeSec: 86400,
    ...overrides,
  };
}

class FakeClock {
  now = 1_000_000;
  readonly read = (): number => this.now;
}

function setup(
  config: Partial<DhcpServerConfig> = {},
  extra: { store?: LeaseStore; maxLeases?: number } = {},
): { server: DhcpServer; clock: FakeClock; events: [LeaseEvent, Lease][] } {
  const clock = new FakeClock();
  const events: [LeaseEvent, Lease][] = [];
  const server = new DhcpServer(natConfig(config), {
    clock: clock.read,
    onLease: (lease, event) => events.push([event, lease]),
    ...extra,
  });
  return { server, clock, events };
}

interface ClientFields {
  mac?: string;
  xid?: number;
  ciaddr?: number;
  flags?: number;
  requested?: number;
  serverId?: number;
  hostname?: string;
  clientId?: boolean;
}

/**
 * A request as busybox udhcpc 1.36 sends it, through the wire codec: client id
 * 01+MAC, max message size 576, vendor class, then the parameter request list.
 */
function udhcpc(type: number, fields: ClientFields = {}): DhcpMessage {
  const mac = parseMac(fields.mac ?? MAC_A);
  const options = new Map<number, Uint8Array>([[DhcpOption.MessageType, u8Option(type)]]);
  if (fields.clientId ?? true) options.set(DhcpOption.ClientIdentifier, Uint8Array.of(1, ...mac));
  if (fields.requested !== undefined) options.set(DhcpOption.RequestedIpAddress, u32Option(fields.requested));
  if (fields.serverId !== undefined) options.set(DhcpOption.ServerIdentifier, u32Option(fields.serverId));
  options.set(DhcpOption.MaxMessageSize, u16Option(576));
  options.set(DhcpOption.VendorClassIdentifier, stringOption('udhcp 1.36.1'));
  if (fields.hostname !== undefined) options.set(DhcpOption.HostName, stringOption(fields.hostname));
  if (type !== DhcpMessageType.Release && type !== DhcpMessageType.Decline) {
    options.set(DhcpOption.ParameterRequestList, Uint8Array.of(1, 3, 6, 12, 15, 28, 42, 119));
  }
  const message: DhcpMessage = {
    op: DhcpOp.BootRequest,
    xid: fields.xid ?? 0x3903f326,
    ciaddr: fields.ciaddr ?? 0,
    flags: fields.flags ?? 0,
    chaddr: mac,
    options,
  };
  // Through the bytes and back, as the gateway would hand it over.
  const bytes = new Uint8Array(dhcpLength(message));
  emitDhcp(message, bytes, 0);
  return parseDhcp(DhcpView.checked(bytes));
}

function source(mac = MAC_A, address = 0): { mac: string; ip: number } {
  return { mac, ip: address };
}

/** Emits a reply and parses it back, as the guest will. */
function onTheWire(reply: DhcpMessage): DhcpMessage {
  const bytes = new Uint8Array(dhcpLength(reply) + 5);
  emitDhcp(reply, bytes, 5);
  return parseDhcp(DhcpView.checked(bytes.subarray(5)));
}

/** DISCOVER then REQUEST (SELECTING); returns the ACK's yiaddr. */
function dora(server: DhcpServer, mac: string, hostname?: string): number {
  const offer = server.handle(udhcpc(DhcpMessageType.Discover, { mac }), source(mac));
  assert.ok(offer, 'an offer');
  const ack = server.handle(
    udhcpc(DhcpMessageType.Request, { mac, requested: offer.reply.yiaddr!, serverId: ip('10.0.2.2'), hostname }),
    source(mac),
  );
  assert.ok(ack, 'an ack');
  assert.equal(getMessageType(ack.reply.options), DhcpMessageType.Ack);
  return ack.reply.yiaddr!;
}

describe('DhcpServer: DISCOVER, OFFER, REQUEST, ACK', () => {
  it('offers .15 to the first guest with the options in the order asked', () => {
    const { server } = setup({ mtu: 1500 });
    const out = server.handle(udhcpc(DhcpMessageType.Discover), source());
    assert.ok(out);
    const offer = onTheWire(out.reply);
    assert.equal(offer.op, DhcpOp.BootReply);
    assert.equal(offer.xid, 0x3903f326);
    assert.equal(formatIpv4(offer.yiaddr!), '10.0.2.15');
    assert.equal(offer.ciaddr, 0);
    assert.deepEqual([...offer.chaddr], [...parseMac(MAC_A)]);
    assert.deepEqual(
      [...offer.options.keys()],
      [53, 54, 51, 58, 59, 1, 3, 6, 15, 28, 119, 26],
      '53/54/51/58/59, then the request list order (12 and 42 not served), then the rest',
    );
    assert.equal(getMessageType(offer.options), DhcpMessageType.Offer);
    assert.equal(formatIpv4(getServerId(offer.options)!), '10.0.2.2');
    assert.equal(getLeaseTime(offer.options), 86400);
    assert.equal(getRenewalTime(offer.options), 43200);
    assert.equal(getRebindingTime(offer.options), 75600);
    assert.deepEqual([...offer.options.get(DhcpOption.SubnetMask)!], [255, 255, 255, 0]);
    assert.deepEqual([...offer.options.get(DhcpOption.Router)!], [10, 0, 2, 2]);
    assert.deepEqual([...offer.options.get(DhcpOption.DomainNameServer)!], [10, 0, 2, 3]);
    assert.deepEqual([...offer.options.get(DhcpOption.BroadcastAddress)!], [10, 0, 2, 255]);
    assert.deepEqual([...offer.options.get(DhcpOption.InterfaceMtu)!], [0x05, 0xdc]);
    assert.equal(getOptionString(offer.options, DhcpOption.DomainName), 'vnet.internal');
    assert.deepEqual(getDomainSearch(offer.options), ['vnet.internal']);
    // RFC 2131 §4.1: no broadcast bit, no ciaddr → unicast to yiaddr and chaddr.
    assert.equal(out.broadcast, false);
    assert.equal(formatIpv4(out.dstIp), '10.0.2.15');
    assert.equal(out.dstMac, MAC_A);
    assert.equal(server.stats().offers, 1);
  });

  it('broadcasts when the client sets the broadcast flag', () => {
    const { server } = setup();
    const out = server.handle(udhcpc(DhcpMessageType.Discover, { flags: DHCP_BROADCAST_FLAG }), source());
    assert.ok(out);
    assert.equal(out.broadcast, true);
    assert.equal(out.dstIp, 0xffffffff);
    assert.equal(out.dstMac, 'ff:ff:ff:ff:ff:ff');
    assert.equal(out.reply.flags, DHCP_BROADCAST_FLAG);
  });

  it('binds on REQUEST in SELECTING, stores the host name and reports the grant', () => {
    const { server, clock, events } = setup();
    assert.equal(formatIpv4(dora(server, MAC_A, 'alpine-1')), '10.0.2.15');
    const lease = server.findLease('08-00-27-AA-BB-01');
    assert.ok(lease);
    assert.equal(lease.state, 'bound');
    assert.equal(lease.hostname, 'alpine-1');
    assert.equal(lease.clientId, '01080027aabb01');
    assert.equal(lease.expiresAt, clock.now + 86400_000);
    assert.deepEqual(events.map(([e]) => e), ['granted']);
    assert.deepEqual(server.resolveName('ALPINE-1.vnet.internal.'), [ip('10.0.2.15')]);
    assert.equal(server.resolveName('other'), undefined);
    assert.equal(server.stats().acks, 1);
  });

  it('gives the next guest .16 and the same guest the same address again', () => {
    const { server } = setup();
    assert.equal(formatIpv4(dora(server, MAC_A)), '10.0.2.15');
    assert.equal(formatIpv4(dora(server, MAC_B)), '10.0.2.16');
    assert.equal(formatIpv4(dora(server, MAC_A)), '10.0.2.15');
    assert.equal(server.leases().length, 2);
  });

  it("names the first bound lease's address for a port forward without a guest IP; offers do not count", () => {
    const { server } = setup();
    assert.equal(server.firstBoundIp(), undefined);
    server.handle(udhcpc(DhcpMessageType.Discover), source());
    assert.equal(server.firstBoundIp(), undefined, 'an offer is not a guest yet');
    dora(server, MAC_B);
    assert.equal(formatIpv4(server.firstBoundIp()!), '10.0.2.16', "the bound lease, behind the other client's offer");
  });

  it('offers the address the client asks for when it is free', () => {
    const { server } = setup();
    const out = server.handle(udhcpc(DhcpMessageType.Discover, { requested: ip('10.0.2.20') }), source());
    assert.equal(formatIpv4(out!.reply.yiaddr!), '10.0.2.20');
    const outside = server.handle(udhcpc(DhcpMessageType.Discover, { mac: MAC_B, requested: ip('10.0.2.200') }), source(MAC_B));
    assert.equal(formatIpv4(outside!.reply.yiaddr!), '10.0.2.15');
  });

  it('frees its offer when the client selects another server, silently', () => {
    const { server } = setup();
    server.handle(udhcpc(DhcpMessageType.Discover), source());
    const out = server.handle(udhcpc(DhcpMessageType.Request, { requested: ip('10.0.2.99'), serverId: ip('10.0.2.99') }), source());
    assert.equal(out, null);
    assert.equal(server.stats().drops['other-server'], 1);
    assert.equal(server.leases().length, 0);
  });

  it('NAKs a SELECTING request for an address other than the one offered', () => {
    const { server } = setup();
    server.handle(udhcpc(DhcpMessageType.Discover), source());
    const out = server.handle(udhcpc(DhcpMessageType.Request, { requested: ip('10.0.2.17'), serverId: ip('10.0.2.2') }), source());
    assert.equal(getMessageType(out!.reply.options), DhcpMessageType.Nak);
  });
});

describe('DhcpServer: network boot', () => {
  it('puts the TFTP server in siaddr and the boot file in the file field; options 66 and 67 only for clients that ask', () => {
    const { server } = setup({ boot: { nextServer: ip('10.0.2.4'), file: 'g.pxe' } });
    const plain = onTheWire(server.handle(udhcpc(DhcpMessageType.Discover), source())!.reply);
    assert.equal(formatIpv4(plain.siaddr!), '10.0.2.4');
    assert.equal(plain.file, 'g.pxe');
    assert.equal(plain.options.has(DhcpOption.TftpServerName), false);
    assert.equal(plain.options.has(DhcpOption.BootfileName), false);

    const asking = udhcpc(DhcpMessageType.Discover, { mac: MAC_B });
    asking.options.set(DhcpOption.ParameterRequestList, Uint8Array.of(1, 3, 66, 67));
    const pxe = onTheWire(server.handle(asking, source(MAC_B))!.reply);
    assert.equal(getOptionString(pxe.options, DhcpOption.TftpServerName), '10.0.2.4');
    assert.equal(getOptionString(pxe.options, DhcpOption.BootfileName), 'g.pxe');
    assert.equal(pxe.file, 'g.pxe');
  });

  it('leaves siaddr and the file field empty without boot settings, and in a NAK', () => {
    const { server } = setup();
    const offer = onTheWire(server.handle(udhcpc(DhcpMessageType.Discover), source())!.reply);
    assert.equal(offer.siaddr, 0);
    assert.equal(offer.file ?? '', '');
    const booting = setup({ boot: { nextServer: ip('10.0.2.4'), file: 'g.pxe' } }).server;
    const nak = booting.handle(udhcpc(DhcpMessageType.Request, { requested: ip('10.0.9.9') }), source());
    assert.equal(getMessageType(nak!.reply.options), DhcpMessageType.Nak);
    assert.equal(onTheWire(nak!.reply).siaddr, 0);
  });
});

describe('DhcpServer: RENEWING, REBINDING, INIT-REBOOT', () => {
  it('renews a unicast request with ciaddr, answering to ciaddr', () => {
    const { server, clock, events } = setup();
    const address = dora(server, MAC_A);
    clock.now += 43200_000;
    const out = server.handle(udhcpc(DhcpMessageType.Request, { ciaddr: address, xid: 7 }), source(MAC_A, address));
    assert.ok(out);
    const ack = onTheWire(out.reply);
    assert.equal(getMessageType(ack.options), DhcpMessageType.Ack);
    assert.equal(ack.ciaddr, address);
    assert.equal(ack.yiaddr, address);
    assert.equal(out.dstIp, address);
    assert.equal(out.broadcast, false);
    assert.equal(server.findLease(MAC_A)!.expiresAt, clock.now + 86400_000);
    assert.equal(events.length, 2);
  });

  it('rebinds a broadcast request with ciaddr, still answering to ciaddr (RFC 2131 §4.1)', () => {
    const { server, clock } = setup();
    const address = dora(server, MAC_A);
    clock.now += 75600_000;
    const out = server.handle(udhcpc(DhcpMessageType.Request, { ciaddr: address, flags: DHCP_BROADCAST_FLAG }), source(MAC_A, address));
    assert.equal(getMessageType(out!.reply.options), DhcpMessageType.Ack);
    assert.equal(out!.dstIp, address);
  });

  it('NAKs an INIT-REBOOT on the wrong network, by broadcast, with only 53, 54 and 56', () => {
    const { server } = setup();
    dora(server, MAC_A);
    const out = server.handle(udhcpc(DhcpMessageType.Request, { requested: ip('192.168.1.50') }), source());
    assert.ok(out);
    const nak = onTheWire(out.reply);
    assert.equal(getMessageType(nak.options), DhcpMessageType.Nak);
    assert.deepEqual([...nak.options.keys()], [53, 54, 56]);
    assert.equal(nak.yiaddr, 0);
    assert.equal(nak.ciaddr, 0);
    assert.equal(out.broadcast, true);
    assert.equal(out.dstMac, 'ff:ff:ff:ff:ff:ff');
    assert.equal(server.stats().naks, 1);
  });

  it('NAKs an INIT-REBOOT for an address leased to someone else, or not the client\'s own', () => {
    const { server } = setup();
    const a = dora(server, MAC_A);
    const b = dora(server, MAC_B);
    const stolen = server.handle(udhcpc(DhcpMessageType.Request, { mac: MAC_C, requested: a }), source(MAC_C));
    assert.equal(getMessageType(stolen!.reply.options), DhcpMessageType.Nak);
    const moved = server.handle(udhcpc(DhcpMessageType.Request, { mac: MAC_A, requested: b + 1 }), source());
    assert.equal(getMessageType(moved!.reply.options), DhcpMessageType.Nak);
    const reserved = server.handle(udhcpc(DhcpMessageType.Request, { mac: MAC_C, requested: ip('10.0.2.3') }), source(MAC_C));
    assert.equal(getMessageType(reserved!.reply.options), DhcpMessageType.Nak);
  });

  it('ACKs an INIT-REBOOT of its own lease, and of a free pool address when it has no record (authoritative)', () => {
    const { server } = setup();
    const a = dora(server, MAC_A);
    const own = server.handle(udhcpc(DhcpMessageType.Request, { requested: a }), source());
    assert.equal(getMessageType(own!.reply.options), DhcpMessageType.Ack);
    const fresh = server.handle(udhcpc(DhcpMessageType.Request, { mac: MAC_B, requested: ip('10.0.2.25') }), source(MAC_B));
    assert.equal(getMessageType(fresh!.reply.options), DhcpMessageType.Ack);
    assert.equal(formatIpv4(server.findLease(MAC_B)!.ip), '10.0.2.25');
  });

  it('drops a REQUEST that names no address', () => {
    const { server } = setup();
    assert.equal(server.handle(udhcpc(DhcpMessageType.Request), source()), null);
    assert.equal(server.stats().drops['no-address'], 1);
  });
});

describe('DhcpServer: RELEASE, DECLINE, INFORM', () => {
  it('gives the same address back after a RELEASE', () => {
    const { server, events } = setup();
    const a = dora(server, MAC_A);
    dora(server, MAC_B);
    const out = server.handle(udhcpc(DhcpMessageType.Release, { ciaddr: a, serverId: ip('10.0.2.2') }), source(MAC_A, a));
    assert.equal(out, null);
    assert.equal(server.stats().releases, 1);
    assert.equal(server.findLease(MAC_A), undefined);
    assert.deepEqual(events.map(([e]) => e), ['granted', 'granted', 'released']);
    dora(server, MAC_C);
    assert.equal(dora(server, MAC_A), a);
  });

  it('ignores a RELEASE of an address the client does not hold', () => {
    const { server } = setup();
    const a = dora(server, MAC_A);
    assert.equal(server.handle(udhcpc(DhcpMessageType.Release, { mac: MAC_B, ciaddr: a }), source(MAC_B)), null);
    assert.equal(server.stats().drops['release-not-leased'], 1);
    assert.ok(server.findLease(MAC_A));
  });

  it('keeps a declined address out of use for a while', () => {
    const { server, clock } = setup();
    const a = dora(server, MAC_A);
    server.handle(udhcpc(DhcpMessageType.Decline, { requested: a, serverId: ip('10.0.2.2') }), source());
    assert.equal(server.stats().declines, 1);
    const next = dora(server, MAC_A);
    assert.notEqual(next, a);
    assert.notEqual(dora(server, MAC_B), a);
    clock.now += DECLINE_HOLD_MS;
    assert.equal(dora(server, MAC_C), a);
  });

  it('refuses a DECLINE from a client that does not hold the address', () => {
    const { server } = setup();
    const a = dora(server, MAC_A);
    server.handle(udhcpc(DhcpMessageType.Decline, { mac: MAC_B, requested: a }), source(MAC_B));
    assert.equal(server.stats().declines, 0);
    assert.equal(server.stats().drops['decline-not-leased'], 1);
  });

  it('answers an INFORM with configuration and no lease (RFC 2131 §3.4)', () => {
    const { server } = setup();
    const configured = ip('10.0.2.77');
    const out = server.handle(udhcpc(DhcpMessageType.Inform, { ciaddr: configured }), source(MAC_A, configured));
    assert.ok(out);
    const ack = onTheWire(out.reply);
    assert.equal(getMessageType(ack.options), DhcpMessageType.Ack);
    assert.equal(ack.yiaddr, 0);
    for (const code of [DhcpOption.LeaseTime, DhcpOption.RenewalTime, DhcpOption.RebindingTime]) assert.equal(ack.options.has(code), false);
    assert.equal(ack.options.has(DhcpOption.ServerIdentifier), true);
    assert.equal(ack.options.has(DhcpOption.Router), true);
    assert.equal(out.dstIp, configured);
    assert.equal(out.dstMac, MAC_A);
    assert.equal(server.stats().informs, 1);
    assert.equal(server.leases().length, 0);
  });
});

describe('DhcpServer: pool, expiry, limits', () => {
  it('makes no offer when the pool is exhausted, then reuses an expired lease', () => {
    const { server, clock, events } = setup({ poolStart: ip('10.0.2.15'), poolEnd: ip('10.0.2.16'), leaseTimeSec: 60 });
    dora(server, MAC_A);
    dora(server, MAC_B);
    assert.equal(server.handle(udhcpc(DhcpMessageType.Discover, { mac: MAC_C }), source(MAC_C)), null);
    assert.equal(server.stats().poolExhausted, 1);
    clock.now += 60_000;
    assert.equal(formatIpv4(dora(server, MAC_C)), '10.0.2.15');
    assert.deepEqual(events.filter(([e]) => e === 'expired').map(([, l]) => l.mac), [MAC_A, MAC_B]);
    // B's record was not reused, so B comes back to .16.
    assert.equal(formatIpv4(dora(server, MAC_B)), '10.0.2.16');
  });

  it('holds an offer for OFFER_HOLD_MS, without an expiry event', () => {
    const { server, clock, events } = setup({ poolStart: ip('10.0.2.15'), poolEnd: ip('10.0.2.15') });
    server.handle(udhcpc(DhcpMessageType.Discover), source());
    assert.equal(server.handle(udhcpc(DhcpMessageType.Discover, { mac: MAC_B }), source(MAC_B)), null);
    clock.now += OFFER_HOLD_MS;
    assert.equal(formatIpv4(server.handle(udhcpc(DhcpMessageType.Discover, { mac: MAC_B }), source(MAC_B))!.reply.yiaddr!), '10.0.2.15');
    assert.deepEqual(events, []);
  });

  it('never holds more than maxLeases records', () => {
    const { server } = setup({}, { maxLeases: 2 });
    dora(server, MAC_A);
    dora(server, MAC_B);
    assert.equal(server.handle(udhcpc(DhcpMessageType.Discover, { mac: MAC_C }), source(MAC_C)), null);
    assert.equal(server.stats().drops['lease-table-full'], 1);
    assert.equal(server.leases().length, 2);
  });

  it('keys the lease by client identifier when present, by chaddr otherwise', () => {
    const { server } = setup();
    const withId = dora(server, MAC_A);
    const offer = server.handle(udhcpc(DhcpMessageType.Discover, { clientId: false }), source());
    assert.notEqual(offer!.reply.yiaddr, withId, 'another client (no identifier) on the same MAC');
    assert.equal(server.findLease(MAC_A)!.clientId, '01080027aabb01');
  });

  it('hands a fixed address to its MAC only, even outside the pool', () => {
    const { server } = setup({
      fixed: [
        { mac: '080027AABB02', ip: ip('10.0.2.100') },
        { mac: MAC_C, ip: ip('10.0.2.15') },
      ],
    });
    assert.equal(formatIpv4(dora(server, MAC_A)), '10.0.2.16', '.15 is reserved for C');
    assert.equal(formatIpv4(dora(server, MAC_B)), '10.0.2.100');
    assert.equal(formatIpv4(dora(server, MAC_C)), '10.0.2.15');
    const wrong = server.handle(udhcpc(DhcpMessageType.Request, { mac: MAC_B, requested: ip('10.0.2.20') }), source(MAC_B));
    assert.equal(getMessageType(wrong!.reply.options), DhcpMessageType.Nak);
  });

  it('refuses a configuration whose pool is off the network', () => {
    assert.throws(() => setup({ poolStart: ip('10.0.3.15'), poolEnd: ip('10.0.3.30') }), RangeError);
    assert.throws(() => setup({ poolStart: ip('10.0.2.30'), poolEnd: ip('10.0.2.15') }), RangeError);
    assert.throws(() => setup({ fixed: [{ mac: 'nope', ip: ip('10.0.2.40') }] }), RangeError);
  });
});

describe('DhcpServer: store', () => {
  class MemoryStore implements LeaseStore {
    saved: Lease[] = [];
    saves = 0;
    load(): Lease[] {
      return JSON.parse(JSON.stringify(this.saved)) as Lease[];
    }
    save(leases: Lease[]): void {
      this.saves++;
      this.saved = JSON.parse(JSON.stringify(leases)) as Lease[];
    }
  }

  it('keeps the same address per MAC across a restart', () => {
    const store = new MemoryStore();
    const first = setup({}, { store });
    dora(first.server, MAC_B);
    dora(first.server, MAC_A, 'web');
    assert.equal(store.saved.length, 2);
    const restarted = new DhcpServer(natConfig(), { clock: first.clock.read, store });
    assert.equal(formatIpv4(restarted.findLease(MAC_A)!.ip), '10.0.2.16');
    assert.deepEqual(restarted.resolveName('web'), [ip('10.0.2.16')]);
    // Even long after expiry, with other guests arriving first, each MAC gets its address back.
    first.clock.now += 10 * 86400_000;
    const later = new DhcpServer(natConfig(), { clock: first.clock.read, store });
    assert.equal(formatIpv4(dora(later, MAC_C)), '10.0.2.17');
    assert.equal(formatIpv4(dora(later, MAC_A)), '10.0.2.16');
    assert.equal(formatIpv4(dora(later, MAC_B)), '10.0.2.15');
  });

  it('skips stored leases that no longer fit the configuration', () => {
    const store = new MemoryStore();
    store.saved = [
      { mac: MAC_A, ip: ip('192.168.0.5'), expiresAt: 2e12, state: 'bound' },
      { mac: 'garbage', ip: ip('10.0.2.15'), expiresAt: 2e12, state: 'bound' },
      { mac: MAC_B, ip: ip('10.0.2.20'), expiresAt: 2e12, state: 'bound', hostname: 'bad name!' },
      { mac: MAC_C, ip: ip('10.0.2.20'), expiresAt: 2e12, state: 'bound' },
    ];
    const { server } = setup({}, { store });
    const leases = server.leases();
    assert.equal(leases.length, 1);
    assert.equal(leases[0]!.mac, MAC_B);
    assert.equal(leases[0]!.hostname, undefined);
  });
});

describe('DhcpServer: bad requests', () => {
  it('counts and drops malformed options, replies, BOOTP and non-Ethernet requests', () => {
    const { server } = setup();
    const badRequested = udhcpc(DhcpMessageType.Discover);
    badRequested.options.set(DhcpOption.RequestedIpAddress, Uint8Array.of(10, 0, 2));
    assert.equal(server.handle(badRequested, source()), null);
    const reply = { ...udhcpc(DhcpMessageType.Discover), op: DhcpOp.BootReply };
    assert.equal(server.handle(reply, source()), null);
    const bootp = udhcpc(DhcpMessageType.Discover);
    bootp.options.delete(DhcpOption.MessageType);
    assert.equal(server.handle(bootp, source()), null);
    const token = { ...udhcpc(DhcpMessageType.Discover), htype: 6 };
    assert.equal(server.handle(token, source()), null);
    const offerFromGuest = udhcpc(DhcpMessageType.Offer);
    assert.equal(server.handle(offerFromGuest, source()), null);
    assert.deepEqual(server.stats().drops, {
      'dhcpv4:bad-option': 1,
      'not-request': 1,
      bootp: 1,
      'not-ethernet': 1,
      'not-client-message': 1,
    });
  });

  it('never throws on any message the codec accepts', () => {
    const { server } = setup({ poolStart: ip('10.0.2.15'), poolEnd: ip('10.0.2.18') }, { maxLeases: 3 });
    const option = fc.tuple(
      fc.constantFrom(1, 3, 12, 50, 51, 53, 54, 55, 61, 119, 200),
      fc.uint8Array({ minLength: 0, maxLength: 8 }),
    );
    fc.assert(
      fc.property(
        fc.constantFrom(1, 2),
        fc.uint8Array({ minLength: 6, maxLength: 6 }),
        fc.constantFrom(0, ip('10.0.2.15'), ip('10.0.2.16'), ip('1.2.3.4')),
        fc.array(option, { maxLength: 6 }),
        fc.integer({ min: 1, max: 8 }),
        (op, chaddr, ciaddr, options, type) => {
          const message: DhcpMessage = { op, xid: 1, ciaddr, chaddr, options: new Map(options.filter(([c]) => c !== 53)) };
          message.options.set(DhcpOption.MessageType, u8Option(type));
          const bytes = new Uint8Array(dhcpLength(message));
          emitDhcp(message, bytes, 0);
          const out = server.handle(parseDhcp(DhcpView.checked(bytes)), source());
          if (out !== null) onTheWire(out.reply);
        },
      ),
      { numRuns: 500 },
    );
  });
});
