/** The OpenAPI document matches the router: every route documented, every documented operation routed. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Daemon } from '../../../src/daemon/daemon.js';
import { buildRoutes } from '../../../src/api/routes.js';
import { openApiDocument, openApiPath } from '../../../src/api/openapi.js';

const home = mkdtempSync(join(tmpdir(), 'vnt-openapi-'));
const router = buildRoutes(new Daemon(home));
const doc = openApiDocument('test', router.list()) as { paths: Record<string, Record<string, { parameters?: { name: string; in: string }[] }>> };


describe('OpenAPI document', () => {
  after(() => rmSync(home, { recursive: true, force: true }));

  test('every route of the router is documented', () => {
    const missing = router.list().filter((r) => !doc.paths[openApiPath(r.pattern)]?.[r.method.toLowerCase()]);
    assert.deepEqual(missing, [], 'routes without an OpenAPI operation');
  });

  test('every documented operation is routed', () => {
    const routed = new Set(router.list().map((r) => `${r.method} ${openApiPath(r.pattern)}`));
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    assert.deepEqual(documented.filter((op) => !routed.has(op)), [], 'documented operations no route serves');
  });

  test('each path parameter is declared on its operation', () => {
    for (const [path, ops] of Object.entries(doc.paths)) {
      const names = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
      for (const [method, op] of Object.entries(ops)) {
        const declared = (op.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name);
        assert.deepEqual(declared, names, `${method} ${path}`);
      }
    }
  });

  test('no route is registered twice', () => {
    const keys = router.list().map((r) => `${r.method} ${r.pattern}`);
    assert.deepEqual(keys.filter((k, i) => keys.indexOf(k) !== i), []);
  });
});
