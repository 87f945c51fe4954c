/** Request-body checks: every refusal names the field. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { checkBody, FieldError, slotParam } from '../../../src/api/validate.js';
import { toErrorResponse } from '../../../src/api/errors.js';
import { forwardFromBody } from '../../../src/api/routes-nics.js';

const fieldOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof FieldError, `expected a FieldError, got ${String(err)}`);
    return err.field;
  }
  assert.fail('expected a throw');
};

describe('checkBody', () => {
  const spec = { name: { kind: 'string', required: true }, on: { kind: 'boolean' }, port: { kind: 'integer', min: 1, max: 65535 }, mode: { kind: 'string', oneOf: ['a', 'b'] } } as const;

  test('a good body passes through', () => {
    assert.deepEqual(checkBody({ name: 'x', on: true, port: 80, mode: 'a' }, spec), { name: 'x', on: true, port: 80, mode: 'a' });
  });
  test('a body that is not an object is a 400 without a field', () => {
    for (const body of [null, [], 'text', 3]) assert.throws(() => checkBody(body, spec), { code: 'VNET_ERR_BAD_REQUEST', message: /JSON object/ });
  });
  test('missing, wrong-typed, out-of-range, not-allowed and unknown fields are named', () => {
    assert.equal(fieldOf(() => checkBody({}, spec)), 'name');
    assert.equal(fieldOf(() => checkBody({ name: 1 }, spec)), 'name');
    assert.equal(fieldOf(() => checkBody({ name: 'x', on: 'yes' }, spec)), 'on');
    assert.equal(fieldOf(() => checkBody({ name: 'x', port: 0 }, spec)), 'port');
    assert.equal(fieldOf(() => checkBody({ name: 'x', port: 1.5 }, spec)), 'port');
    assert.equal(fieldOf(() => checkBody({ name: 'x', mode: 'c' }, spec)), 'mode');
    assert.equal(fieldOf(() => checkBody({ name: 'x', colour: 'red' }, spec)), 'colour');
  });
  test('open bodies let unknown fields through', () => {
    assert.deepEqual(checkBody({ name: 'x', extra: 1 }, spec, { open: true }), { name: 'x', extra: 1 });
  });
  test('the error body carries the field', () => {
    const { status, body } = toErrorResponse(new FieldError('hostPort', 'must be an integer'));
    assert.equal(status, 400);
    assert.deepEqual(body, { error: { code: 'VNET_ERR_BAD_REQUEST', message: "field 'hostPort': must be an integer", field: 'hostPort' } });
  });
  test('slotParam: 1..N, else 404', () => {
    assert.equal(slotParam('3', 8), 3);
    for (const bad of ['0', '9', 'x', '1.5']) assert.throws(() => slotParam(bad, 8), { code: 'VNET_ERR_NOT_FOUND' });
  });
});

describe('forwardFromBody', () => {
  test('defaults the name as VirtualBox does', () => {
    assert.deepEqual(forwardFromBody({ protocol: 'tcp', hostPort: 8080, guestPort: 80 }), { name: 'tcp_8080_80', protocol: 'tcp', hostIp: '', hostPort: 8080, guestIp: '', guestPort: 80 });
  });
  test('names the bad field', () => {
    assert.equal(fieldOf(() => forwardFromBody({ protocol: 'sctp', hostPort: 1, guestPort: 1 })), 'protocol');
    assert.equal(fieldOf(() => forwardFromBody({ protocol: 'tcp', hostPort: 70000, guestPort: 1 })), 'hostPort');
    assert.equal(fieldOf(() => forwardFromBody({ protocol: 'tcp', hostPort: 1 })), 'guestPort');
    assert.equal(fieldOf(() => forwardFromBody({ protocol: 'tcp', hostPort: 1, guestPort: 1, guestIp: 'nope' })), 'guestIp');
    assert.equal(fieldOf(() => forwardFromBody({ protocol: 'tcp', hostPort: 1, guestPort: 1, name: 'a b' })), 'name');
  });
});
