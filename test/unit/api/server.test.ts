/** TCP listener: bearer token, dashboard sign-in cookie, 401s in the one error shape; the token file. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Router } from '../../../src/api/router.js';
import { boundPort, ensureToken, listenTcp } from '../../../src/api/server.js';

const home = mkdtempSync(join(tmpdir(), 'vnt-server-'));
const router = new Router().on('GET', '/v1/ping', () => ({ pong: true }));
let api: Server;
let ui: Server;
let token: string;

/** Loopback only. */
const get = (server: Server, path: string, headers: Record<string, string> = {}) =>
  fetch(`http://127.0.0.1:${boundPort(server)}${path}`, { headers, redirect: 'manual' });

describe('TCP API server', () => {
  before(async () => {
    token = ensureToken(home);
    api = await listenTcp(router, { host: '127.0.0.1', port: 0, token, ui: false });
    ui = await listenTcp(router, { host: '127.0.0.1', port: 0, token, ui: true });
  });
  after(() => {
    api.close();
    ui.close();
    rmSync(home, { recursive: true, force: true });
  });

  test('the token file is 0600, reused once made', () => {
    assert.equal(statSync(join(home, 'token')).mode & 0o777, 0o600);
    assert.equal(ensureToken(home), token);
    assert.equal(readFileSync(join(home, 'token'), 'utf8').trim(), token);
  });

  test('a missing or wrong token is a 401 with the error shape', async () => {
    for (const headers of [{} as Record<string, string>, { authorization: 'Bearer nope' }, { authorization: `Basic ${token}` }]) {
      const res = await get(api, '/v1/ping', headers);
      assert.equal(res.status, 401);
      assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="vnet"');
      const body = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, 'VNET_ERR_UNAUTHORIZED');
      assert.match(body.error.message, /token/);
    }
  });

  test('the right bearer token passes', async () => {
    const res = await get(api, '/v1/ping', { authorization: `Bearer ${token}` });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { pong: true });
  });

  test('the API listener serves no dashboard and takes no cookie', async () => {
    assert.equal((await get(api, '/', { cookie: `vnet_token_${boundPort(api)}=${token}` })).status, 401);
    assert.equal((await get(api, '/', { authorization: `Bearer ${token}` })).status, 404);
  });

  test('dashboard: sign-in form without a token, cookie after ?token=, then pages and API', async () => {
    const page = await get(ui, '/');
    assert.equal(page.status, 401);
    assert.match(await page.text(), /<form/);
    assert.equal((await get(ui, '/v1/ping')).headers.get('content-type'), 'application/json');
    assert.equal((await get(ui, '/?token=wrong')).status, 401);
    const signIn = await get(ui, `/?token=${token}`);
    assert.equal(signIn.status, 303);
    const cookie = signIn.headers.get('set-cookie')!;
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Strict/);
    const jar = { cookie: cookie.split(';')[0]! };
    const index = await get(ui, '/', jar);
    assert.equal(index.status, 200);
    assert.match(index.headers.get('content-security-policy')!, /default-src 'self'/);
    assert.match(await index.text(), /vnet dashboard/);
    for (const asset of ['/app.js', '/topology.js', '/style.css', '/favicon.svg']) assert.equal((await get(ui, asset, jar)).status, 200, asset);
    assert.deepEqual(await (await get(ui, '/v1/ping', jar)).json(), { pong: true });
    assert.equal((await get(ui, '/../package.json', jar)).status, 404);
  });

  test('a taken port is a clear error', async () => {
    await assert.rejects(listenTcp(router, { host: '127.0.0.1', port: boundPort(api), token, ui: false }), { code: 'VNET_ERR_PORT_IN_USE', message: /in use/ });
  });
});
