/**
 * TFTP packets (RFC 1350, options RFC 2347).
 *
 *   RRQ/WRQ  | 01/02 | filename | 0 | mode | 0 | [option | 0 | value | 0]* |
 *   DATA     | 03 | block # | data (0 to blksize bytes) |
 *   ACK      | 04 | block # |
 *   ERROR    | 05 | error code | message | 0 |
 *   OACK     | 06 | [option | 0 | value | 0]* |          (RFC 2347)
 *
 * Opcodes, block numbers and error codes are 16-bit big-endian. Strings are
 * NUL-terminated ASCII; option names are case-insensitive (kept lowercase
 * here). Reasons thrown: `truncated`, `bad-opcode`, `bad-string`.
 */
import { get16, set16 } from './bytes.js';
import { WireError } from './errors.js';

export const TFTP_PORT = 69;

export const TftpOpcode = { RRQ: 1, WRQ: 2, DATA: 3, ACK: 4, ERROR: 5, OACK: 6 } as const;

/** RFC 1350 §5 error codes, and RFC 2347's 8. */
export const TftpError = {
  NotDefined: 0,
  FileNotFound: 1,
  AccessViolation: 2,
  DiskFull: 3,
  IllegalOperation: 4,
  UnknownTransferId: 5,
  FileExists: 6,
  NoSuchUser: 7,
  OptionRefused: 8,
} as const;

export type TftpPacket =
  | { opcode: typeof TftpOpcode.RRQ | typeof TftpOpcode.WRQ; filename: string; mode: string; options: Map<string, string> }
  | { opcode: typeof TftpOpcode.DATA; block: number; data: Uint8Array }
  | { opcode: typeof TftpOpcode.ACK; block: number }
  | { opcode: typeof TftpOpcode.ERROR; code: number; message: string }
  | { opcode: typeof TftpOpcode.OACK; options: Map<string, string> };

const HEADER = 4;

/** Parses a TFTP packet (the UDP payload); views into `bytes`, strings decoded. */
export function parseTftp(bytes: Uint8Array): TftpPacket {
  if (bytes.length < 2) throw new WireError('tftp', 'truncated');
  const opcode = get16(bytes, 0);
  switch (opcode) {
    case TftpOpcode.RRQ:
    case TftpOpcode.WRQ: {
      const strings = nulStrings(bytes, 2);
      if (strings.length < 2 || strings.length % 2 !== 0) throw new WireError('tftp', 'bad-string');
      return { opcode, filename: strings[0]!, mode: strings[1]!.toLowerCase(), options: optionMap(strings.slice(2)) };
    }
    case TftpOpcode.DATA:
      if (bytes.length < HEADER) throw new WireError('tftp', 'truncated');
      return { opcode, block: get16(bytes, 2), data: bytes.subarray(HEADER) };
    case TftpOpcode.ACK:
      if (bytes.length < HEADER) throw new WireError('tftp', 'truncated');
      return { opcode, block: get16(bytes, 2) };
    case TftpOpcode.ERROR: {
      if (bytes.length < HEADER) throw new WireError('tftp', 'truncated');
      // Some clients leave the message's NUL out: take what is there.
      const end = bytes.indexOf(0, HEADER);
      return { opcode, code: get16(bytes, 2), message: ascii(bytes.subarray(HEADER, end < 0 ? bytes.length : end)) };
    }
    case TftpOpcode.OACK: {
      const strings = nulStrings(bytes, 2);
      if (strings.length % 2 !== 0) throw new WireError('tftp', 'bad-string');
      return { opcode, options: optionMap(strings) };
    }
    default:
      throw new WireError('tftp', 'bad-opcode');
  }
}

/** DATA: the 4-byte header, then `data`. */
export function tftpData(block: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER + data.length);
  set16(out, 0, TftpOpcode.DATA);
  set16(out, 2, block & 0xffff);
  out.set(data, HEADER);
  return out;
}

export function tftpAck(block: number): Uint8Array {
  const out = new Uint8Array(HEADER);
  set16(out, 0, TftpOpcode.ACK);
  set16(out, 2, block & 0xffff);
  return out;
}

export function tftpError(code: number, message: string): Uint8Array {
  const text = asciiBytes(message);
  const out = new Uint8Array(HEADER + text.length + 1);
  set16(out, 0, TftpOpcode.ERROR);
  set16(out, 2, code);
  out.set(text, HEADER);
  return out;
}

/** RRQ or WRQ (what a client sends; the server's tests use it). */
export function tftpRequest(opcode: typeof TftpOpcode.RRQ | typeof TftpOpcode.WRQ, filename: string, mode: string, options: Map<string, string> = new Map()): Uint8Array {
  return withStrings(opcode, [filename, mode, ...[...options].flat()]);
}

export function tftpOack(options: Map<string, string>): Uint8Array {
  return withStrings(TftpOpcode.OACK, [...options].flat());
}

function withStrings(opcode: number, strings: string[]): Uint8Array {
  const encoded = strings.map(asciiBytes);
  const out = new Uint8Array(2 + encoded.reduce((n, s) => n + s.length + 1, 0));
  set16(out, 0, opcode);
  let at = 2;
  for (const s of encoded) {
    out.set(s, at);
    at += s.length + 1; // the NUL is already there
  }
  return out;
}

/** The NUL-terminated strings from `offset` to the end; every one must be terminated. */
function nulStrings(bytes: Uint8Array, offset: number): string[] {
  const out: string[] = [];
  while (offset < bytes.length) {
    const end = bytes.indexOf(0, offset);
    if (end < 0) throw new WireError('tftp', 'bad-string');
    out.push(ascii(bytes.subarray(offset, end)));
    offset = end + 1;
  }
  return out;
}

/** name, value, name, value… → Map with lowercase names; the first of a repeated name wins. */
function optionMap(strings: string[]): Map<string, string> {
  const options = new Map<string, string>();
  for (let i = 0; i + 1 < strings.length; i += 2) {
    const name = strings[i]!.toLowerCase();
    if (!options.has(name)) options.set(name, strings[i + 1]!);
  }
  return options;
}

const ascii = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
const asciiBytes = (text: string): Uint8Array => Buffer.from(text, 'latin1');
