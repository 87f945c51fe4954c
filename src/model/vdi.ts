/**
 * The VDI (VirtualBox Disk Image) pre-header: check it, and repair it from
 * the known-good layout.
 *
 * Layout (VirtualBox `VDICore.h`, little-endian):
 *
 *     offset  size  field
 *          0    64  text line, e.g. "<<< Oracle VM VirtualBox Disk Image >>>\n", NUL-padded
 *         64     4  signature 0xBEDA107F
 *         68     4  version: major << 16 | minor; 1.1 = 0x00010001
 *         72     4  header size (`cbHeader`): 0x180 for a version 1.1 header
 *
 * Only these 76 bytes are judged and rewritten. Everything after them (block
 * map offsets, geometry, UUIDs) is the header proper, which a damaged first
 * sector usually leaves intact.
 */
import { closeSync, fstatSync, fsyncSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { VnetError } from '../errors.js';

export const VDI_TEXT_LENGTH = 64;
export const VDI_SIGNATURE = 0xbeda107f;
export const VDI_SIGNATURE_OFFSET = 64;
export const VDI_VERSION_OFFSET = 68;
export const VDI_HEADER_SIZE_OFFSET = 72;
/** Version 1.1, the only one VirtualBox (since 1.x) and QEMU write. */
export const VDI_VERSION_1_1 = 0x00010001;
/** `cbHeader` of a version 1.1 header. */
export const VDI_HEADER_SIZE_1_1 = 0x180;
/** Bytes of pre-header plus the header-size field: what check reads and repair may rewrite. */
export const VDI_PREHEADER_BYTES = 76;
/** VirtualBox's own text line, written by repair when the original is unreadable. */
export const VDI_DEFAULT_TEXT = '<<< Oracle VM VirtualBox Disk Image >>>\n';

export interface VdiFault {
  field: 'file' | 'text' | 'signature' | 'version' | 'header-size';
  offset: number;
  message: string;
}

export interface VdiCheck {
  path: string;
  ok: boolean;
  faults: VdiFault[];
  /** The text line as read, if it was a plausible one. */
  text: string | null;
}

/**
 * A medium path must name a file. VirtualBox reports a directory as
 * VERR_IS_A_DIRECTORY; we say the same, in words.
 * @throws VnetError VNET_ERR_INVALID_VALUE (directory) or VNET_ERR_NOT_FOUND.
 */
export function requireFile(path: string, what = 'medium'): void {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(path).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new VnetError('VNET_ERR_NOT_FOUND', `${what} '${path}' does not exist`);
    throw new VnetError('VNET_ERR_HOST', `cannot read ${what} '${path}': ${(err as Error).message}`, { cause: err });
  }
  if (isDirectory) {
    throw new VnetError('VNET_ERR_INVALID_VALUE', `${what} '${path}' is a directory, not an image file (VERR_IS_A_DIRECTORY)`);
  }
}

const hex = (n: number): string => `0x${n.toString(16).toUpperCase().padStart(8, '0')}`;
const version = (n: number): string => `${n >>> 16}.${n & 0xffff}`;

/** Judge the pre-header bytes (at least the first 76 of the file). */
export function checkPreHeader(bytes: Uint8Array, path = ''): VdiCheck {
  const faults: VdiFault[] = [];
  if (bytes.length < VDI_PREHEADER_BYTES) {
    faults.push({ field: 'file', offset: 0, message: `file is ${bytes.length} bytes long, shorter than a VDI pre-header (${VDI_PREHEADER_BYTES})` });
    return { path, ok: false, faults, text: null };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = readText(bytes);
  if (text === null) {
    const zero = bytes.subarray(0, VDI_TEXT_LENGTH).every((b) => b === 0);
    faults.push({
      field: 'text',
      offset: 0,
      message: zero
        ? 'text line at offset 0 is missing (64 zero bytes); expected e.g. "<<< Oracle VM VirtualBox Disk Image >>>"'
        : 'text line at offset 0 is not "<<< … >>>" followed by a newline and NUL padding',
    });
  }
  const signature = view.getUint32(VDI_SIGNATURE_OFFSET, true);
  if (signature !== VDI_SIGNATURE) {
    faults.push({ field: 'signature', offset: VDI_SIGNATURE_OFFSET, message: `signature at offset 64 is ${hex(signature)}, expected ${hex(VDI_SIGNATURE)}` });
  }
  const ver = view.getUint32(VDI_VERSION_OFFSET, true);
  if (ver !== VDI_VERSION_1_1) {
    faults.push({ field: 'version', offset: VDI_VERSION_OFFSET, message: `version at offset 68 is ${version(ver)} (${hex(ver)}), expected 1.1 (${hex(VDI_VERSION_1_1)})` });
  }
  const headerSize = view.getUint32(VDI_HEADER_SIZE_OFFSET, true);
  if (headerSize !== VDI_HEADER_SIZE_1_1) {
    faults.push({
      field: 'header-size',
      offset: VDI_HEADER_SIZE_OFFSET,
      message: `header size at offset 72 is ${headerSize}, expected ${VDI_HEADER_SIZE_1_1} (${hex(VDI_HEADER_SIZE_1_1)}) for version 1.1`,
    });
  }
  return { path, ok: faults.length === 0, faults, text };
}

/** The text line if it looks like one: `<<< … >>>\n` then NULs. */
function readText(bytes: Uint8Array): string | null {
  const field = bytes.subarray(0, VDI_TEXT_LENGTH);
  const nul = field.indexOf(0);
  const end = nul < 0 ? VDI_TEXT_LENGTH : nul;
  if (field.subarray(end).some((b) => b !== 0)) return null;
  const text = Buffer.from(field.subarray(0, end)).toString('latin1');
  return /^<<< [\x20-\x7e]+ >>>\n$/.test(text) ? text : null;
}

function readHead(path: string): Uint8Array {
  requireFile(path);
  const fd = openSync(path, 'r');
  try {
    const head = new Uint8Array(VDI_PREHEADER_BYTES);
    const n = readSync(fd, head, 0, head.length, 0);
    return head.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/** Check the VDI at `path`. */
export function checkVdi(path: string): VdiCheck {
  return checkPreHeader(readHead(path), path);
}

/** The known-good pre-header, keeping the original text line if it was readable. */
export function goodPreHeader(text: string | null): Uint8Array {
  const out = new Uint8Array(VDI_PREHEADER_BYTES);
  out.set(Buffer.from(text ?? VDI_DEFAULT_TEXT, 'latin1'));
  const view = new DataView(out.buffer);
  view.setUint32(VDI_SIGNATURE_OFFSET, VDI_SIGNATURE, true);
  view.setUint32(VDI_VERSION_OFFSET, VDI_VERSION_1_1, true);
  view.setUint32(VDI_HEADER_SIZE_OFFSET, VDI_HEADER_SIZE_1_1, true);
  return out;
}

export interface VdiRepair {
  check: VdiCheck;
  /** Where the original bytes were saved; null if nothing needed repair. */
  backup: string | null;
}

/**
 * Rewrite a damaged pre-header from the known-good layout. The original 76
 * bytes are first saved (fsynced) to `<path>.preheader-<time>.bak`; only
 * then is the image touched.
 */
export function repairVdi(path: string, now = new Date()): VdiRepair {
  const head = readHead(path);
  const check = checkPreHeader(head, path);
  if (check.ok) return { check, backup: null };
  if (head.length < VDI_PREHEADER_BYTES) throw new VnetError('VNET_ERR_INVALID_VALUE', `${path}: ${check.faults[0]!.message}; not a repairable VDI`);
  const backup = `${path}.preheader-${now.toISOString().replace(/[:.]/g, '-')}.bak`;
  const saved = openSync(backup, 'wx', 0o600);
  try {
    writeSync(saved, head);
    fsyncSync(saved);
  } finally {
    closeSync(saved);
  }
  const fd = openSync(path, 'r+');
  try {
    if (fstatSync(fd).size < VDI_HEADER_SIZE_1_1) throw new VnetError('VNET_ERR_INVALID_VALUE', `${path}: too short to hold a VDI header; not repaired`);
    writeSync(fd, goodPreHeader(check.text), 0, VDI_PREHEADER_BYTES, 0);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return { check, backup };
}
