/**
 * DHCP messages (RFC 2131 §2) and options (RFC 2132), over the UDP payload.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +---------------+---------------+---------------+---------------+
 *   |     op (1)    |   htype (1)   |   hlen (1)    |   hops (1)    |
 *   +---------------+---------------+---------------+---------------+
 *   |                            xid (4)                            |
 *   +-------------------------------+-------------------------------+
 *   |           secs (2)            |           flags (2)           |
 *   +-------------------------------+-------------------------------+
 *   |                          ciaddr  (4)                          |
 *   |                          yiaddr  (4)                          |
 *   |                          siaddr  (4)                          |
 *   |                          giaddr  (4)                          |
 *   +---------------------------------------------------------------+
 *   |                          chaddr  (16)                         |
 *   |                          sname   (64)                         |
 *   |                          file    (128)                        |
 *   +---------------------------------------------------------------+
 *   |                 magic cookie 99.130.83.99 (4)                 |
 *   |                          options (variable)                   |
 *   +---------------------------------------------------------------+
 *
 * Options become a `Map` from code to bytes. Repeated codes are joined
 * (RFC 3396 §7), and Option Overload (52) is honoured: options continue in
 * `file`, then `sname`. Emitting never overloads; long values are split.
 *
 * Reasons thrown: `truncated`, `bad-magic`, `bad-length` (hlen over 16),
 * `bad-option` (an option running past its area, a typed option of the wrong
 * length, a bad overload value or domain-search name).
 */

import { get16, get32, set16, set32 } from './bytes.js';
import { WireError } from './errors.js';

/** UDP port of DHCP servers. */
export const DHCP_SERVER_PORT = 67;
/** UDP port of DHCP clients. */
export const DHCP_CLIENT_PORT = 68;
/** Offset of the options, right after the magic cookie. */
export const DHCP_OPTIONS_OFFSET = 240;
/**
 * Shortest message we emit: the 300 bytes of a BOOTP message (RFC 951's
 * 64-byte vendor area); some old clients drop anything shorter.
 */
export const DHCP_MIN_LENGTH = 300;
/** RFC 2131 §2: "the 'flags' field ... the leftmost bit is defined as the BROADCAST (B) flag". */
export const DHCP_BROADCAST_FLAG = 0x8000;
/** Most pointer hops followed while decoding one domain-search name. */
export const DOMAIN_SEARCH_MAX_HOPS = 32;
/** RFC 1035 §2.3.4: names are 255 octets or less. */
const MAX_NAME_LENGTH = 255;

/** BOOTP op codes. */
export const DhcpOp = {
  BootRequest: 1,
  BootReply: 2,
} as const;

/** DHCP message types, option 53 (RFC 2132 §9.6). */
export const DhcpMessageType = {
  Discover: 1,
  Offer: 2,
  Request: 3,
  Decline: 4,
  Ack: 5,
  Nak: 6,
  Release: 7,
  Inform: 8,
} as const;

/** Option codes we know by name (RFC 2132 unless noted); others stay numbers. */
export const DhcpOption = {
  Pad: 0,
  SubnetMask: 1,
  Router: 3,
  DomainNameServer: 6,
  HostName: 12,
  DomainName: 15,
  InterfaceMtu: 26,
  BroadcastAddress: 28,
  RequestedIpAddress: 50,
  LeaseTime: 51,
  Overload: 52,
  MessageType: 53,
  ServerIdentifier: 54,
  ParameterRequestList: 55,
  Message: 56,
  MaxMessageSize: 57,
  RenewalTime: 58,
  RebindingTime: 59,
  VendorClassIdentifier: 60,
  ClientIdentifier: 61,
  /** §9.4: the TFTP server, when the sname field is used for options. */
  TftpServerName: 66,
  /** §9.5: the boot file, when the file field is used for options. */
  BootfileName: 67,
  /** RFC 3397. */
  DomainSearch: 119,
  End: 255,
} as const;

/** Ethernet hardware type (RFC 1700 ARP hardware types). */
export const DHCP_HTYPE_ETHERNET = 1;

const MAGIC_COOKIE = 0x63825363;

const OP = 0;
const HTYPE = 1;
const HLEN = 2;
const HOPS = 3;
const XID = 4;
const SECS = 8;
const FLAGS = 10;
const CIADDR = 12;
const YIADDR = 16;
const SIADDR = 20;
const GIADDR = 24;
const CHADDR = 28;
const CHADDR_LENGTH = 16;
const SNAME = 44;
const SNAME_LENGTH = 64;
const FILE = 108;
const FILE_LENGTH = 128;
const COOKIE = 236;

const OVERLOAD_FILE = 1;
const OVERLOAD_SNAME = 2;

function badOption(): WireError {
  return new WireError('dhcpv4', 'bad-option');
}

/** A view over a DHCP message. */
export class DhcpView {
  constructor(readonly bytes: Uint8Array) {}

  /** Wraps untrusted bytes: fixed fields and magic cookie present, hlen at most 16. */
  static checked(bytes: Uint8Array): DhcpView {
    if (bytes.length < DHCP_OPTIONS_OFFSET) throw new WireError('dhcpv4', 'truncated');
    const view = new DhcpView(bytes);
    // RFC 2131 §3: "The first four octets of the 'options' field ... magic cookie".
    if (get32(bytes, COOKIE) !== MAGIC_COOKIE) throw new WireError('dhcpv4', 'bad-magic');
    if (view.hlen > CHADDR_LENGTH) throw new WireError('dhcpv4', 'bad-length');
    return view;
  }

  get op(): number {
    return this.bytes[OP]!;
  }
  get htype(): number {
    return this.bytes[HTYPE]!;
  }
  get hlen(): number {
    return this.bytes[HLEN]!;
  }
  get hops(): number {
    return this.bytes[HOPS]!;
  }
  get xid(): number {
    return get32(this.bytes, XID);
  }
  get secs(): number {
    return get16(this.bytes, SECS);
  }
  get flags(): number {
    return get16(this.bytes, FLAGS);
  }
  get ciaddr(): number {
    return get32(this.bytes, CIADDR);
  }
  get yiaddr(): number {
    return get32(this.bytes, YIADDR);
  }
  get siaddr(): number {
    return get32(this.bytes, SIADDR);
  }
  get giaddr(): number {
    return get32(this.bytes, GIADDR);
  }
  /** The first `hlen` bytes of chaddr. */
  get chaddr(): Uint8Array {
    return this.bytes.subarray(CHADDR, CHADDR + this.hlen);
  }
  /** The raw 64-byte sname field. */
  get snameField(): Uint8Array {
    return this.bytes.subarray(SNAME, SNAME + SNAME_LENGTH);
  }
  /** The raw 128-byte file field. */
  get fileField(): Uint8Array {
    return this.bytes.subarray(FILE, FILE + FILE_LENGTH);
  }
  /** Raw option bytes after the cookie. */
  get options(): Uint8Array {
    return this.bytes.subarray(DHCP_OPTIONS_OFFSET);
  }
}

/** Option values by code, in order of first appearance. */
export type DhcpOptions = Map<number, Uint8Array>;

/** A DHCP message as a plain value. `parseDhcp` fills every field; `emitDhcp` defaults the optional ones. */
export interface DhcpMessage {
  /** `DhcpOp.BootRequest` or `DhcpOp.BootReply`. */
  op: number;
  /** Defaults to Ethernet (1). */
  htype?: number;
  hops?: number;
  xid: number;
  secs?: number;
  /** See `DHCP_BROADCAST_FLAG`. */
  flags?: number;
  ciaddr?: number;
  yiaddr?: number;
  siaddr?: number;
  giaddr?: number;
  /** Client hardware address, up to 16 bytes; its length is hlen. */
  chaddr: Uint8Array;
  /** Server host name, up to 63 characters (empty when the field carried options). */
  sname?: string;
  /** Boot file name, up to 127 characters (empty when the field carried options). */
  file?: string;
  options: DhcpOptions;
}

function latin1(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length && bytes[i] !== 0; i++) s += String.fromCharCode(bytes[i]!);
  return s;
}

/**
 * Adds the options in `area` to `out`, joining repeats (RFC 3396 §7: "the
 * receiving agent MUST concatenate the values"). Pad skipped, End stops; a
 * missing End is tolerated since many clients omit it.
 */
function readOptionArea(area: Uint8Array, out: DhcpOptions): void {
  let i = 0;
  while (i < area.length) {
    const code = area[i]!;
    if (code === DhcpOption.End) return;
    if (code === DhcpOption.Pad) {
      i++;
      continue;
    }
    if (i + 1 >= area.length) throw badOption();
    const length = area[i + 1]!;
    const end = i + 2 + length;
    if (end > area.length) throw badOption();
    const value = area.subarray(i + 2, end);
    const earlier = out.get(code);
    if (earlier === undefined) {
      out.set(code, value);
    } else {
      const joined = new Uint8Array(earlier.length + value.length);
      joined.set(earlier);
      joined.set(value, earlier.length);
      out.set(code, joined);
    }
    i = end;
  }
}

/**
 * Decodes every option of a checked view, following Option Overload (52),
 * which is then dropped from the map. Values alias the frame unless they
 * were joined from parts.
 */
export function parseDhcpOptions(view: DhcpView): DhcpOptions {
  return readOptions(view).options;
}

function readOptions(view: DhcpView): { options: DhcpOptions; overload: number } {
  const options: DhcpOptions = new Map();
  readOptionArea(view.options, options);
  const overload = getOptionU8(options, DhcpOption.Overload);
  if (overload !== undefined) {
    if (overload < 1 || overload > 3) throw badOption();
    options.delete(DhcpOption.Overload);
    // RFC 3396 §7: the parts are read from "the 'options' field", then "the 'file' field", then "the 'sname' field".
    if ((overload & OVERLOAD_FILE) !== 0) readOptionArea(view.fileField, options);
    if ((overload & OVERLOAD_SNAME) !== 0) readOptionArea(view.snameField, options);
  }
  return { options, overload: overload ?? 0 };
}

/** The message of a checked view; chaddr and option values alias the frame. Throws `bad-option`. */
export function parseDhcp(view: DhcpView): DhcpMessage {
  const { options, overload } = readOptions(view);
  return {
    op: view.op,
    htype: view.htype,
    hops: view.hops,
    xid: view.xid,
    secs: view.secs,
    flags: view.flags,
    ciaddr: view.ciaddr,
    yiaddr: view.yiaddr,
    siaddr: view.siaddr,
    giaddr: view.giaddr,
    chaddr: view.chaddr,
    sname: (overload & OVERLOAD_SNAME) !== 0 ? '' : latin1(view.snameField),
    file: (overload & OVERLOAD_FILE) !== 0 ? '' : latin1(view.fileField),
    options,
  };
}

function optionsLength(options: DhcpOptions): number {
  let n = 0;
  for (const value of options.values()) {
    // RFC 3396 §5: values over 255 bytes are split into several instances.
    n += Math.max(1, Math.ceil(value.length / 255)) * 2 + value.length;
  }
  return n + 1; // End
}

/** Length `emitDhcp` writes: at least `DHCP_MIN_LENGTH`. */
export function dhcpLength(message: DhcpMessage): number {
  return Math.max(DHCP_MIN_LENGTH, DHCP_OPTIONS_OFFSET + optionsLength(message.options));
}

function writeString(into: Uint8Array, offset: number, size: number, s: string | undefined, field: string): void {
  into.fill(0, offset, offset + size);
  if (s === undefined) return;
  if (s.length >= size) throw new RangeError(`DHCP ${field} is ${s.length} characters, at most ${size - 1} fit`);
  for (let i = 0; i < s.length; i++) into[offset + i] = s.charCodeAt(i);
}

/**
 * Writes the full message at `offset`, padded with zeros to
 * `DHCP_MIN_LENGTH`; returns the offset just past it. Throws `RangeError`
 * for chaddr over 16 bytes, over-long sname/file, or option code 0 or 255 in
 * the map (bugs in the caller).
 */
export function emitDhcp(message: DhcpMessage, into: Uint8Array, offset: number): number {
  if (message.chaddr.length > CHADDR_LENGTH) throw new RangeError(`DHCP chaddr is ${message.chaddr.length} bytes, at most 16`);
  const end = offset + dhcpLength(message);
  into[offset + OP] = message.op;
  into[offset + HTYPE] = message.htype ?? DHCP_HTYPE_ETHERNET;
  into[offset + HLEN] = message.chaddr.length;
  into[offset + HOPS] = message.hops ?? 0;
  set32(into, offset + XID, message.xid);
  set16(into, offset + SECS, message.secs ?? 0);
  set16(into, offset + FLAGS, message.flags ?? 0);
  set32(into, offset + CIADDR, message.ciaddr ?? 0);
  set32(into, offset + YIADDR, message.yiaddr ?? 0);
  set32(into, offset + SIADDR, message.siaddr ?? 0);
  set32(into, offset + GIADDR, message.giaddr ?? 0);
  into.fill(0, offset + CHADDR, offset + CHADDR + CHADDR_LENGTH);
  into.set(message.chaddr, offset + CHADDR);
  writeString(into, offset + SNAME, SNAME_LENGTH, message.sname, 'sname');
  writeString(into, offset + FILE, FILE_LENGTH, message.file, 'file');
  set32(into, offset + COOKIE, MAGIC_COOKIE);
  let o = offset + DHCP_OPTIONS_OFFSET;
  for (const [code, value] of message.options) {
    if (code === DhcpOption.Pad || code === DhcpOption.End || code < 0 || code > 255) {
      throw new RangeError(`DHCP option code ${code} cannot carry a value`);
    }
    let at = 0;
    do {
      const chunk = value.subarray(at, at + 255);
      into[o] = code;
      into[o + 1] = chunk.length;
      into.set(chunk, o + 2);
      o += 2 + chunk.length;
      at += 255;
    } while (at < value.length);
  }
  into[o++] = DhcpOption.End;
  into.fill(0, o, end);
  return end;
}

// ---- Typed option readers: `undefined` when absent, `bad-option` when malformed.

/** A one-byte option. */
export function getOptionU8(options: DhcpOptions, code: number): number | undefined {
  const v = options.get(code);
  if (v === undefined) return undefined;
  if (v.length !== 1) throw badOption();
  return v[0]!;
}

/** A two-byte option. */
export function getOptionU16(options: DhcpOptions, code: number): number | undefined {
  const v = options.get(code);
  if (v === undefined) return undefined;
  if (v.length !== 2) throw badOption();
  return get16(v, 0);
}

/** A four-byte option (times, or one address). */
export function getOptionU32(options: DhcpOptions, code: number): number | undefined {
  const v = options.get(code);
  if (v === undefined) return undefined;
  if (v.length !== 4) throw badOption();
  return get32(v, 0);
}

/** A list of one or more addresses. */
export function getOptionAddresses(options: DhcpOptions, code: number): number[] | undefined {
  const v = options.get(code);
  if (v === undefined) return undefined;
  if (v.length === 0 || v.length % 4 !== 0) throw badOption();
  const out: number[] = [];
  for (let i = 0; i < v.length; i += 4) out.push(get32(v, i));
  return out;
}

/** An NVT ASCII string; trailing NULs, which some clients send, are dropped. */
export function getOptionString(options: DhcpOptions, code: number): string | undefined {
  const v = options.get(code);
  if (v === undefined) return undefined;
  let n = v.length;
  while (n > 0 && v[n - 1] === 0) n--;
  let s = '';
  for (let i = 0; i < n; i++) s += String.fromCharCode(v[i]!);
  return s;
}

/** Message type (53). */
export function getMessageType(o: DhcpOptions): number | undefined {
  return getOptionU8(o, DhcpOption.MessageType);
}
/** Requested IP address (50). */
export function getRequestedIp(o: DhcpOptions): number | undefined {
  return getOptionU32(o, DhcpOption.RequestedIpAddress);
}
/** Server identifier (54). */
export function getServerId(o: DhcpOptions): number | undefined {
  return getOptionU32(o, DhcpOption.ServerIdentifier);
}
/** Lease time in seconds (51). */
export function getLeaseTime(o: DhcpOptions): number | undefined {
  return getOptionU32(o, DhcpOption.LeaseTime);
}
/** Renewal (T1) time in seconds (58). */
export function getRenewalTime(o: DhcpOptions): number | undefined {
  return getOptionU32(o, DhcpOption.RenewalTime);
}
/** Rebinding (T2) time in seconds (59). */
export function getRebindingTime(o: DhcpOptions): number | undefined {
  return getOptionU32(o, DhcpOption.RebindingTime);
}
/** Subnet mask (1). */
export function getSubnetMask(o: DhcpOptions): number | undefined {
  return getOptionU32(o, DhcpOption.SubnetMask);
}
/** Routers (3). */
export function getRouters(o: DhcpOptions): number[] | undefined {
  return getOptionAddresses(o, DhcpOption.Router);
}
/** DNS servers (6). */
export function getDnsServers(o: DhcpOptions): number[] | undefined {
  return getOptionAddresses(o, DhcpOption.DomainNameServer);
}
/** Host name (12). */
export function getHostName(o: DhcpOptions): string | undefined {
  return getOptionString(o, DhcpOption.HostName);
}
/** Domain name (15). */
export function getDomainName(o: DhcpOptions): string | undefined {
  return getOptionString(o, DhcpOption.DomainName);
}
/** Interface MTU (26). */
export function getInterfaceMtu(o: DhcpOptions): number | undefined {
  return getOptionU16(o, DhcpOption.InterfaceMtu);
}
/** Broadcast address (28). */
export function getBroadcastAddress(o: DhcpOptions): number | undefined {
  return getOptionU32(o, DhcpOption.BroadcastAddress);
}
/** Parameter request list (55): the codes asked for, in the client's order. */
export function getParameterRequestList(o: DhcpOptions): Uint8Array | undefined {
  const v = o.get(DhcpOption.ParameterRequestList);
  if (v !== undefined && v.length === 0) throw badOption();
  return v;
}
/** Client identifier (61): type byte then identifier (RFC 2132 §9.14: "minimum length is 2"). */
export function getClientIdentifier(o: DhcpOptions): Uint8Array | undefined {
  const v = o.get(DhcpOption.ClientIdentifier);
  if (v !== undefined && v.length < 2) throw badOption();
  return v;
}

/** Domain search list (119), names without trailing dot. */
export function getDomainSearch(o: DhcpOptions): string[] | undefined {
  const v = o.get(DhcpOption.DomainSearch);
  return v === undefined ? undefined : decodeDomainSearch(v);
}

/**
 * Decodes RFC 3397 §2 data: RFC 1035 names, compression pointers counting
 * from the start of the (joined) option value.
 */
export function decodeDomainSearch(data: Uint8Array): string[] {
  const names: string[] = [];
  let pos = 0;
  while (pos < data.length) {
    let name = '';
    let p = pos;
    let jumped = false;
    let hops = 0;
    for (;;) {
      if (p >= data.length) throw badOption();
      const length = data[p]!;
      if (length === 0) {
        if (!jumped) pos = p + 1;
        break;
      }
      if ((length & 0xc0) === 0xc0) {
        if (p + 1 >= data.length || ++hops > DOMAIN_SEARCH_MAX_HOPS) throw badOption();
        if (!jumped) pos = p + 2;
        jumped = true;
        p = ((length & 0x3f) << 8) | data[p + 1]!;
        continue;
      }
      if ((length & 0xc0) !== 0 || p + 1 + length > data.length) throw badOption();
      if (name.length > 0) name += '.';
      for (let i = p + 1; i <= p + length; i++) name += String.fromCharCode(data[i]!);
      if (name.length > MAX_NAME_LENGTH) throw badOption();
      p += 1 + length;
    }
    names.push(name);
  }
  return names;
}

// ---- Option value builders, for `options.set(code, …)`.

/** One byte. */
export function u8Option(n: number): Uint8Array {
  return Uint8Array.of(n);
}

/** Two bytes, big-endian. */
export function u16Option(n: number): Uint8Array {
  const b = new Uint8Array(2);
  set16(b, 0, n);
  return b;
}

/** Four bytes, big-endian: times and single addresses. */
export function u32Option(n: number): Uint8Array {
  const b = new Uint8Array(4);
  set32(b, 0, n);
  return b;
}

/** A list of addresses. */
export function addressesOption(addresses: readonly number[]): Uint8Array {
  const b = new Uint8Array(addresses.length * 4);
  addresses.forEach((a, i) => set32(b, i * 4, a));
  return b;
}

/** An ASCII string (characters above 0xff are cut to their low byte). */
export function stringOption(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
  return b;
}

/**
 * Encodes a domain search list (RFC 3397) without compression, which the RFC
 * allows. Throws `RangeError` for an empty or over-63-byte label.
 */
export function domainSearchOption(names: readonly string[]): Uint8Array {
  const parts: number[] = [];
  for (const raw of names) {
    const name = raw.endsWith('.') ? raw.slice(0, -1) : raw;
    if (name.length > 0) {
      for (const label of name.split('.')) {
        if (label.length === 0 || label.length > 63) throw new RangeError(`bad label in search domain "${raw}"`);
        parts.push(label.length);
        for (let i = 0; i < label.length; i++) parts.push(label.charCodeAt(i) & 0xff);
      }
    }
    parts.push(0);
  }
  return Uint8Array.from(parts);
}
