#!/usr/bin/env node
// Top self-time functions of a V8 .cpuprofile (node --cpu-prof), as file:line.
//   node bench/tools/cpuprofile-top.mjs PROFILE [N]
// Self time per node = samples that ended in it × the mean sample interval.
// Native work done inside libuv's poll phase (the TAP addon's reads) shows as "(idle)"/"(program)".
import { readFileSync } from 'node:fs';

const [path, n = '25'] = process.argv.slice(2);
if (!path) {
  console.error('usage: cpuprofile-top.mjs PROFILE [N]');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(path, 'utf8'));
const hits = new Map();
for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
const total = profile.samples.length;
const byFrame = new Map();
for (const node of profile.nodes) {
  const count = hits.get(node.id) ?? 0;
  if (!count) continue;
  const f = node.callFrame;
  const file = f.url ? f.url.replace(/^file:\/\//, '').replace(/.*\/dist\//, 'dist/') : '';
  const key = `${f.functionName || '(anonymous)'} ${file}${file ? `:${f.lineNumber + 1}` : ''}`;
  byFrame.set(key, (byFrame.get(key) ?? 0) + count);
}
const seconds = (profile.endTime - profile.startTime) / 1e6;
console.log(`${total} samples over ${seconds.toFixed(1)} s`);
const rows = [...byFrame].sort((a, b) => b[1] - a[1]).slice(0, Number(n));
for (const [key, count] of rows) console.log(`${((100 * count) / total).toFixed(1).padStart(5)} %  ${key}`);
