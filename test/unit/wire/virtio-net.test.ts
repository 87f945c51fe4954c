import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  GsoType,
  newFrameOffload,
  readVirtioNetHeader,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_LENGTH,
  writeVirtioNetHeader,
} from '../../../src/wire/virtio-net.js';
import { hex } from './helpers.js';

// A TSO frame as Linux hands it to a TAP: NEEDS_CSUM, TCPv4, headers 54, MSS 1448, csum at 34+16.
const TSO_HEADER = hex(
  '01 01 36 00', // flags NEEDS_CSUM | gso_type TCPV4 | hdr_len 54 (LE)
  'a8 05 22 00', // gso_size 1448 | csum_start 34
  '10 00', //       csum_offset 16
);

test('reads a TSO header (little-endian fields)', () => {
  const offload = readVirtioNetHeader(TSO_HEADER, 0, newFrameOffload())!;
  assert.deepEqual(offload, { flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType: GsoType.TcpV4, hdrLen: 54, gsoSize: 1448, csumStart: 34, csumOffset: 16 });
});

test('an all-zero header states no offloads', () => {
  assert.equal(readVirtioNetHeader(new Uint8Array(VIRTIO_NET_HDR_LENGTH), 0, newFrameOffload()), undefined);
});

test('writes at a non-zero offset, and zeros for no offloads', () => {
  const offload = readVirtioNetHeader(TSO_HEADER, 0, newFrameOffload())!;
  const out = new Uint8Array(3 + VIRTIO_NET_HDR_LENGTH).fill(0xee);
  writeVirtioNetHeader(offload, out, 3);
  assert.deepEqual(out.subarray(3), TSO_HEADER);
  writeVirtioNetHeader(undefined, out, 3);
  assert.deepEqual(out.subarray(3), new Uint8Array(VIRTIO_NET_HDR_LENGTH));
  assert.equal(out[0], 0xee);
});
