/**
 * The NAT suite's table: one row per figure and MTU, vnet next to
 * slirp4netns and pasta measured in the same run, and vnet's ratio of
 * medians to each, marked ✓ (ahead) or ✗ (behind) when rep by rep the two
 * are apart (the 95 % interval of the paired ratio, paired-ratio.ts, leaves
 * out 1 on the medians' side) and ≈ when they are not. Noisy measurements
 * are used only where no clean one exists, and such cells are marked `*`.
 */
import type { NatEngineName } from './nat-engines.js';
import type { NatMeasurement } from './nat.js';
import { pairedRatio } from './paired-ratio.js';
import { median } from './report.js';

interface Row {
  title: string;
  test: string;
  /**
   * The forward's second path (through the TAP, dialled at the host's own
   * address), shown next to the spliced 127.0.0.1 figure of pasta and of
   * vnet (`--nat-splice1 on`); each path is compared with its like.
   */
  alt?: string;
  /** How the two paths are told apart in a cell (default: spliced / TAP). */
  altLabels?: [string, string];
  value: (m: NatMeasurement) => number | null | undefined;
  /** Extra figures in parentheses, from the same measurements. */
  detail?: (rows: NatMeasurement[]) => string;
  better: 'higher' | 'lower';
  digits: number;
  /** Not one of the issue's goal rows (shown for information). */
  info?: boolean;
}

const valuesOf = (rows: NatMeasurement[], pick: (m: NatMeasurement) => number | null | undefined): number[] =>
  rows.flatMap((m) => {
    const v = pick(m);
    return typeof v === 'number' && Number.isFinite(v) ? [v] : [];
  });

const medianOf = (rows: NatMeasurement[], pick: (m: NatMeasurement) => number | null | undefined): number => median(valuesOf(rows, pick));

const fmt = (value: number, digits: number): string =>
  Number.isFinite(value) ? value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : '—';

const lossDetail = (rows: NatMeasurement[]) => `${fmt(medianOf(rows, (m) => m.lossPct), 1)} % loss`;
const latencyDetail = (rows: NatMeasurement[]) => `${fmt(medianOf(rows, (m) => m.p50Us), 0)}/${fmt(medianOf(rows, (m) => m.p99Us), 0)} µs`;
const cpuDetail = (rows: NatMeasurement[]) => `${fmt(medianOf(rows, (m) => m.engineCpuPct), 0)} % at ${fmt(medianOf(rows, (m) => m.gbps), 2)}`;
const perGbit = (m: NatMeasurement) => (m.engineCpuPct != null && m.gbps ? m.engineCpuPct / m.gbps : null);

const ROWS: Row[] = [
  { title: 'TCP guest→host, Gbit/s', test: 'tcp_g2h', value: (m) => m.gbps, better: 'higher', digits: 2 },
  { title: 'TCP host→guest, Gbit/s', test: 'tcp_h2g', value: (m) => m.gbps, better: 'higher', digits: 2 },
  { title: 'TCP fwd host→guest, Gbit/s', test: 'tcp_fwd_h2g', alt: 'tcp_fwdalt_h2g', value: (m) => m.gbps, better: 'higher', digits: 2 },
  { title: 'UDP 1 Gbit/s guest→host: rx Gbit/s (loss)', test: 'udp_g2h', value: (m) => m.rxGbps, detail: lossDetail, better: 'higher', digits: 3 },
  { title: 'UDP 1 Gbit/s host→guest: rx Gbit/s (loss)', test: 'udp_h2g', value: (m) => m.rxGbps, detail: lossDetail, better: 'higher', digits: 3 },
  // Neither engine splices UDP: vnet's two paths both cross the NIC; pasta's from 127.0.0.1 is its socket-to-socket one.
  { title: 'UDP 1 Gbit/s fwd host→guest: rx Gbit/s (loss)', test: 'udp_fwd_h2g', alt: 'udp_fwdalt_h2g', altLabels: ['from 127.0.0.1', 'from 10.254.0.1'], value: (m) => m.rxGbps, detail: lossDetail, better: 'higher', digits: 3 },
  { title: 'request/response g→h, RT/s (p50/p99)', test: 'rr_g2h', value: (m) => m.rtPerS, detail: latencyDetail, better: 'higher', digits: 0 },
  { title: 'request/response through fwd, RT/s (p50/p99)', test: 'rr_fwd_h2g', alt: 'rr_fwdalt_h2g', value: (m) => m.rtPerS, detail: latencyDetail, better: 'higher', digits: 0 },
  { title: 'new connections/s g→h', test: 'crr_g2h', value: (m) => m.connPerS, better: 'higher', digits: 0 },
  { title: 'new connections/s through fwd', test: 'crr_fwd_h2g', alt: 'crr_fwdalt_h2g', value: (m) => m.connPerS, better: 'higher', digits: 0 },
  { title: 'engine CPU per Gbit/s, TCP g→h (% of a core; CPU at Gbit/s)', test: 'tcp_g2h', value: perGbit, detail: cpuDetail, better: 'lower', digits: 1 },
  { title: 'engine CPU per Gbit/s, TCP h→g', test: 'tcp_h2g', value: perGbit, detail: cpuDetail, better: 'lower', digits: 1 },
  { title: 'engine CPU per Gbit/s, TCP fwd', test: 'tcp_fwd_h2g', alt: 'tcp_fwdalt_h2g', value: perGbit, detail: cpuDetail, better: 'lower', digits: 1 },
  { title: 'engine RSS during TCP g→h, MB (info)', test: 'tcp_g2h', value: (m) => m.engineRssMb, better: 'lower', digits: 0, info: true },
];

/** Measurements of one cell: clean ones if any, else the noisy ones (then `noisy` is true). */
function pick(results: NatMeasurement[], engine: NatEngineName, mtu: number, test: string): { rows: NatMeasurement[]; noisy: boolean } {
  const all = results.filter((m) => m.engine === engine && m.mtu === mtu && m.test === test && !m.error);
  const clean = all.filter((m) => !m.noisy);
  return clean.length ? { rows: clean, noisy: false } : { rows: all, noisy: all.length > 0 };
}

interface Cell {
  /** The median of the measurements. */
  value: number;
  /** Each rep's figure, by rep number. */
  reps: Map<number, number>;
  text: string;
}

function cell(results: NatMeasurement[], engine: NatEngineName, mtu: number, test: string, row: Row): Cell {
  const { rows, noisy } = pick(results, engine, mtu, test);
  const failed = results.some((m) => m.engine === engine && m.mtu === mtu && m.test === test && m.error);
  const value = medianOf(rows, row.value);
  // For the pairing: a rep measured twice (both noisy) counts with its later figure.
  const reps = new Map(rows.flatMap((m) => valuesOf([m], row.value).map((v): [number, number] => [m.rep, v])));
  if (!Number.isFinite(value)) return { value, reps, text: failed ? 'fails' : '—' };
  return { value, reps, text: `${fmt(value, row.digits)}${row.detail ? ` (${row.detail(rows)})` : ''}${noisy ? ' *' : ''}` };
}

interface Verdict {
  text: string;
  /** vnet's median is the better one; null when there is nothing to compare. */
  ahead: boolean | null;
  /** Rep by rep, the two are apart on the medians' side (the paired ratio's 95 % interval leaves out 1). */
  apart: boolean;
  /** "vs ANCHOR 0.87× (95 %: 0.78–0.97)", the paired ratio, for the summary. */
  paired: string;
}

function ratioText(vnet: Cell, anchor: Cell, anchorName: string, row: Row): Verdict {
  const ratio = vnet.value / anchor.value;
  if (!Number.isFinite(ratio)) return { text: '—', ahead: null, apart: false, paired: '' };
  const ahead = row.better === 'higher' ? ratio > 1 : ratio < 1;
  const paired = pairedRatio([...vnet.reps].flatMap(([rep, v]) => (anchor.reps.has(rep) ? [[v, anchor.reps.get(rep)!] as [number, number]] : [])));
  // The interval must leave out 1 on the side the medians put the ratio.
  const apart = paired !== null && (ratio > 1 ? paired.low > 1 : paired.high < 1);
  const mark = row.info ? '' : !apart ? ' ≈' : ahead ? ' ✓' : ' ✗';
  const interval = paired === null ? '' : ` (95 %: ${paired.low.toFixed(2)}–${Number.isFinite(paired.high) ? paired.high.toFixed(2) : '∞'})`;
  return { text: `${ratio.toFixed(2)}${mark}`, ahead, apart, paired: `vs ${anchorName} ${paired?.ratio.toFixed(2) ?? '—'}×${interval}` };
}

export interface NatTable {
  markdown: string;
  /** Goal rows where vnet's medians are ahead of every anchor measured, and goal rows compared. */
  ahead: number;
  compared: number;
  /** Goal rows where some anchor's median is ahead. */
  behind: string[];
  /** Goal rows where vnet is ahead of every anchor with the reps apart. */
  aheadApart: number;
  /** Goal rows where some anchor is ahead with the reps apart, with the paired ratios that say so. */
  behindApart: string[];
}

export function natTable(results: NatMeasurement[]): NatTable {
  const mtus = [...new Set(results.map((m) => m.mtu))];
  const lines = [
    '| test | MTU | vnet | slirp4netns | pasta | vnet/slirp4netns | vnet/pasta |',
    '|---|---:|---:|---:|---:|---:|---:|',
  ];
  let ahead = 0;
  let aheadApart = 0;
  let compared = 0;
  const behind: string[] = [];
  const behindApart: string[] = [];
  for (const mtu of mtus) {
    for (const row of ROWS) {
      if (!results.some((m) => m.mtu === mtu && (m.test === row.test || m.test === row.alt))) continue;
      const vnet = cell(results, 'vnet', mtu, row.test, row);
      const slirp = cell(results, 'slirp4netns', mtu, row.test, row);
      const pasta = cell(results, 'pasta', mtu, row.test, row);
      const alt = (engine: NatEngineName) => (row.alt ? cell(results, engine, mtu, row.alt, row) : null);
      const [vnetAlt, pastaAlt] = [alt('vnet'), alt('pasta')].map((c) => (c && c.text !== '—' ? c : null));
      // vnet's TAP path against pasta's; without one of its own, vnet's only path against both of pasta's.
      const vnetTap = vnetAlt ?? vnet;
      const vsSlirp = ratioText(vnet, slirp, 'slirp4netns', row);
      const vsSlirpAlt = vnetAlt ? ratioText(vnetAlt, slirp, 'slirp4netns (TAP path)', row) : null;
      const vsPasta = ratioText(vnet, pasta, 'pasta', row);
      const vsPastaAlt = pastaAlt ? ratioText(vnetTap, pastaAlt, 'pasta (TAP path)', row) : null;
      const [firstLabel, secondLabel] = row.altLabels ?? ['spliced', 'TAP'];
      const both = (first: string, second: string | undefined, labels: boolean) =>
        second === undefined || second === '—' ? first : labels ? `${first} ${firstLabel} / ${second} ${secondLabel}` : `${first} / ${second}`;
      lines.push(
        `| ${row.title} | ${mtu} | ${both(vnet.text, vnetAlt?.text, true)} | ${slirp.text} | ${both(pasta.text, pastaAlt?.text, true)} ` +
          `| ${both(vsSlirp.text, vsSlirpAlt?.text, false)} | ${both(vsPasta.text, vsPastaAlt?.text, false)} |`,
      );
      if (row.info) continue;
      const verdicts = [vsSlirp, vsSlirpAlt, vsPasta, vsPastaAlt].filter((v): v is Verdict => v !== null && v.ahead !== null);
      if (!verdicts.length) continue;
      compared++;
      const name = `${row.title} @${mtu}`;
      if (verdicts.every((v) => v.ahead)) ahead++;
      else behind.push(name);
      if (verdicts.every((v) => v.ahead && v.apart)) aheadApart++;
      const lost = verdicts.filter((v) => !v.ahead && v.apart);
      if (lost.length) behindApart.push(`${name}: ${lost.map((v) => v.paired).join(', ')}`);
    }
  }
  return { markdown: lines.join('\n'), ahead, compared, behind, aheadApart, behindApart };
}
