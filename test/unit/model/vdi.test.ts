import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkPreHeader, goodPreHeader, VDI_DEFAULT_TEXT, VDI_PREHEADER_BYTES } from '../../../src/model/vdi.js';

// A known-good pre-header, four bytes a row after the text:
//   0: "<<< Oracle VM VirtualBox Disk Image >>>\n" + NUL padding to 64
//  64: 7f 10 da be   signature 0xBEDA107F (little-endian)
//  68: 01 00 01 00   version 1.1
//  72: 80 01 00 00   header size 0x180
const good = (): Uint8Array => goodPreHeader(null);

test('a known-good pre-header passes', () => {
  const bytes = good();
  assert.deepEqual([...bytes.subarray(64, 76)], [0x7f, 0x10, 0xda, 0xbe, 0x01, 0x00, 0x01, 0x00, 0x80, 0x01, 0x00, 0x00]);
  const check = checkPreHeader(bytes);
  assert.equal(check.ok, true);
  assert.equal(check.text, VDI_DEFAULT_TEXT);
});

test('each damaged field is named with its offset and expected value', () => {
  const bytes = good();
  bytes[10] = 0xff; // text no longer printable
  bytes[64] = 0; // signature
  bytes[70] = 2; // version 1.1 → 1.0x00020001? (major 3)
  bytes[72] = 0x90; // header size 0x190
  const faults = checkPreHeader(bytes).faults.map((f) => f.field);
  assert.deepEqual(faults, ['text', 'signature', 'version', 'header-size']);
  assert.match(checkPreHeader(bytes).faults[3]!.message, /header size at offset 72 is 400, expected 384 \(0x00000180\)/);
});

test('a short file is one fault, not a crash', () => {
  const check = checkPreHeader(new Uint8Array(10));
  assert.equal(check.ok, false);
  assert.equal(check.faults[0]!.field, 'file');
});

test('repair keeps a readable original text line', () => {
  const text = '<<< QEMU VM Virtual Disk Image >>>\n';
  const bytes = goodPreHeader(text);
  assert.equal(bytes.length, VDI_PREHEADER_BYTES);
  assert.equal(checkPreHeader(bytes).text, text);
});
