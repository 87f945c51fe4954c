/**
 * STYLE.md's rule for the folder tree: imports point down the list. A module
 * may import its own folder and the folders before its own; the files at
 * src/'s top (`errors.ts`, `after-call.ts`) are the base every layer may
 * use. Nothing imports `cli` (the process entry: `vnet daemon` there is what
 * puts the daemon and its API together).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = resolve(fileURLToPath(import.meta.url), '../../../../src');
const LAYERS = ['wire', 'switch', 'stack', 'nat', 'services', 'transport', 'host', 'model', 'daemon', 'api', 'cli', 'web'];

function* typescriptFiles(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* typescriptFiles(path);
    else if (name.endsWith('.ts')) yield path;
  }
}

/** The layer of a file under src/, or 'base' for a file at its top. */
const layerOf = (path: string): string => {
  const rel = relative(SRC, path);
  return rel.includes(sep) ? rel.split(sep)[0]! : 'base';
};

test('every import in src/ points down the layer list', () => {
  const violations: string[] = [];
  let imports = 0;
  for (const file of typescriptFiles(SRC)) {
    const from = layerOf(file);
    for (const match of readFileSync(file, 'utf8').matchAll(/from '(\.{1,2}\/[^']+)'/g)) {
      imports++;
      const to = layerOf(resolve(dirname(file), match[1]!));
      if (to === 'base' || to === from) continue;
      if (LAYERS.indexOf(to) > LAYERS.indexOf(from) || to === 'cli') {
        violations.push(`${relative(SRC, file)} imports ${match[1]} (${from} → ${to})`);
      }
    }
  }
  assert.ok(imports > 100, `only ${imports} relative imports found: is ${SRC} the source folder?`);
  assert.deepEqual(violations, []);
});
