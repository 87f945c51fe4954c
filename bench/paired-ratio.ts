/**
 * How far apart two engines are, from reps run side by side: the geometric
 * mean of the per-rep ratios and its 95 % confidence interval (Student's t
 * on the logarithms of the ratios).
 *
 * Why paired: a rep runs every engine on one test within seconds, and on
 * this noisy 2-core VM the machine's state moves all of them together (in
 * one run every engine's second rep of new connections per second was its
 * fastest); one engine's reps alone span ±40 %. Comparing rep with rep
 * takes that shared swing out. Why not a rank test: with 5 pairs no
 * sign-flip or signed-rank test can go below p = 2/32, so it could never
 * call anything apart.
 */

/** Student's t, 97.5th percentile, for 1–30 degrees of freedom. */
const T_975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086,
  2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

export interface PairedRatio {
  /** Geometric mean of a/b over the pairs. */
  ratio: number;
  /** Its 95 % confidence interval (low = high = ratio for identical ratios; infinite for one pair). */
  low: number;
  high: number;
  pairs: number;
}

/**
 * `pairs` holds [a, b] per rep, both positive. Null when there is no usable
 * pair. Past 30 degrees of freedom the 30's quantile stands in (wider than
 * the truth, never narrower).
 */
export function pairedRatio(pairs: Array<[number, number]>): PairedRatio | null {
  const logs = pairs.filter(([a, b]) => a > 0 && b > 0 && Number.isFinite(a / b)).map(([a, b]) => Math.log(a / b));
  const n = logs.length;
  if (n === 0) return null;
  const mean = logs.reduce((sum, x) => sum + x, 0) / n;
  if (n === 1) return { ratio: Math.exp(mean), low: 0, high: Infinity, pairs: 1 };
  const variance = logs.reduce((sum, x) => sum + (x - mean) ** 2, 0) / (n - 1);
  const half = T_975[Math.min(n - 1, T_975.length) - 1]! * Math.sqrt(variance / n);
  return { ratio: Math.exp(mean), low: Math.exp(mean - half), high: Math.exp(mean + half), pairs: n };
}
