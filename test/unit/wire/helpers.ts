/** Shared helpers for the wire tests (no tests here). */

import assert from 'node:assert/strict';
import { WireError } from '../../../src/wire/errors.js';

/** Bytes from hex rows such as `'45 00 00 54'`; whitespace is ignored. */
export function hex(...rows: string[]): Uint8Array {
  const text = rows.join('').replace(/\s+/g, '');
  assert.equal(text.length % 2, 0, 'odd number of hex digits');
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** The same bytes placed at a non-zero byteOffset inside a bigger buffer (as Node's pooled Buffers are). */
export function atOffset(bytes: Uint8Array, offset = 3): Uint8Array {
  const big = new Uint8Array(offset + bytes.length + 7).fill(0xee);
  big.set(bytes, offset);
  return big.subarray(offset, offset + bytes.length);
}

/** Runs `f`; a `WireError` is an accepted outcome, any other exception fails the test. */
export function valueOrWireError<T>(f: () => T): T | WireError {
  try {
    return f();
  } catch (err) {
    if (err instanceof WireError) return err;
    throw err;
  }
}

/** Asserts `f` throws `WireError(protocol, reason)`. */
export function throwsWire(f: () => unknown, protocol: string, reason: string): void {
  assert.throws(f, (err: unknown) => err instanceof WireError && err.protocol === protocol && err.reason === reason);
}

/** Every numeric/boolean getter of a view, by name. */
export function scalarFields(view: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const descriptors = Object.getOwnPropertyDescriptors(Object.getPrototypeOf(view));
  for (const [name, d] of Object.entries(descriptors)) {
    if (d.get === undefined) continue;
    const v: unknown = d.get.call(view);
    if (typeof v === 'number' || typeof v === 'boolean' || v === undefined) out[name] = v;
  }
  return out;
}

/**
 * Proves a checked view reads nothing past its bytes: its scalar getters give
 * the same answers when the bytes are followed by 0xff filler.
 */
export function assertNoReadPastEnd<V extends object>(make: (b: Uint8Array) => V, bytes: Uint8Array): void {
  const padded = new Uint8Array(bytes.length + 64).fill(0xff);
  padded.set(bytes);
  assert.deepEqual(scalarFields(make(padded)), scalarFields(make(bytes)));
}
