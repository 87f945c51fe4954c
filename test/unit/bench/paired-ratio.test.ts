import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { natTable } from '../../../bench/nat-report.js';
import type { NatMeasurement } from '../../../bench/nat.js';
import { pairedRatio } from '../../../bench/paired-ratio.js';

describe('pairedRatio', () => {
  test('the geometric mean of the ratios, and the t interval of their logs', () => {
    // Log ratios ±ln 2: mean 0 (ratio 1), sample sd ln 2·√(4/3), t(3 df) = 3.182.
    const r = pairedRatio([
      [2, 1],
      [1, 2],
      [2, 1],
      [1, 2],
    ])!;
    assert.equal(r.pairs, 4);
    assert.ok(Math.abs(r.ratio - 1) < 1e-12);
    const sd = Math.LN2 * Math.sqrt(4 / 3);
    const half = 3.182 * (sd / 2);
    assert.ok(Math.abs(r.low - Math.exp(-half)) < 1e-12);
    assert.ok(Math.abs(r.high - Math.exp(half)) < 1e-12);
  });

  test('a steady ratio under a swing the engines share is apart from 1', () => {
    // Each rep's machine state moves both engines by up to 2x; vnet stays at 0.8 of the anchor.
    const pairs = [1, 2, 1.4, 0.7, 1.8].map((state, i): [number, number] => [0.8 * state * (1 + 0.02 * i), state]);
    const r = pairedRatio(pairs)!;
    assert.ok(r.high < 1, `interval ${r.low}–${r.high} should lie below 1`);
    assert.ok(r.low > 0.7);
  });

  test('one pair has no interval; no pair (or a zero) gives nothing', () => {
    const one = pairedRatio([[3, 1]])!;
    assert.ok(Math.abs(one.ratio - 3) < 1e-12);
    assert.deepEqual([one.low, one.high, one.pairs], [0, Infinity, 1]);
    assert.equal(pairedRatio([]), null);
    assert.equal(pairedRatio([[0, 1]]), null);
  });
});

describe('natTable verdicts', () => {
  const measurement = (engine: string, rep: number, connPerS: number): NatMeasurement =>
    ({ suite: 'nat', test: 'crr_g2h', engine, mtu: 65520, rep, attempt: 1, noisy: false, connPerS }) as unknown as NatMeasurement;
  const run = (vnet: number[], slirp: number[], pasta: number[]) => [
    ...vnet.map((v, i) => measurement('vnet', i + 1, v)),
    ...slirp.map((v, i) => measurement('slirp4netns', i + 1, v)),
    ...pasta.map((v, i) => measurement('pasta', i + 1, v)),
  ];
  const rowOf = (markdown: string) => markdown.split('\n').find((line) => line.startsWith('| new connections/s g→h'))!;

  test('behind rep by rep is ✗ even when the reps overlap; a mixed comparison is ≈', () => {
    // vnet below slirp4netns in every rep; against pasta it is ahead in some reps and behind in others.
    const table = natTable(run([3200, 5500, 4300, 3700, 3100], [4000, 6700, 5300, 4600, 3900], [3000, 6000, 4000, 4000, 3500]));
    const cells = rowOf(table.markdown).split('|').map((c) => c.trim());
    assert.match(cells[6]!, /^0\.80 ✗$/);
    assert.match(cells[7]!, / ≈$/);
    assert.equal(table.behindApart.length, 1);
    assert.match(table.behindApart[0]!, /^new connections\/s g→h @65520: vs slirp4netns 0\.81× \(95 %: 0\.79–0\.82\)$/);
    assert.equal(table.ahead, 0);
    assert.equal(table.aheadApart, 0);
  });

  test('ahead of both rep by rep counts as ahead with the reps apart', () => {
    const table = natTable(run([5000, 6000, 5500, 5200, 5800], [4000, 5000, 4400, 4300, 4700], [4100, 4900, 4500, 4200, 4600]));
    assert.equal(table.ahead, 1);
    assert.equal(table.aheadApart, 1);
    assert.deepEqual(table.behindApart, []);
    assert.match(rowOf(table.markdown), /✓ \| \d\.\d\d ✓ \|$/);
  });
});
