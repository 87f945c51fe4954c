/**
 * `npm run bench`: vnet side by side with references measured in the same run.
 *
 *   node dist/bench/run.js [--suite intnet|nat|all] [--reps 3] [--duration 5]
 *                          [--mtu 1500,65520] [--no-reverse] [--out bench/results]
 *
 * Suites:
 *   intnet  TCP between two netns guests on a vnet internal network vs a Linux
 *           bridge between two namespaces (bench/intnet.ts).
 *   nat     vnet's NAT vs slirp4netns and pasta serving the same kind of guest
 *           namespace, as the harness in /work/shared/bench-anchors does (TCP
 *           guest → host, host → guest, port forwards; UDP at 1 Gbit/s;
 *           request/response; connection rate; engine CPU) (bench/nat.ts).
 *           Its own options: [--engines vnet,slirp4netns,pasta] [--tests a,b]
 *           [--max-minutes 25] (no new rep starts after that).
 *
 * Prints one line per measurement, then a Markdown table of medians, and
 * appends JSONL to `--out`. `--from A.jsonl,B.jsonl` measures nothing: it
 * prints the tables of earlier runs (needs no root). Exit status: 0 when every measurement produced a
 * number (whatever the number is), 1 when setup broke or a run failed, 2 for
 * bad arguments. Everything it creates lives in namespaces `vnb-*-<id>` and
 * is removed at the end, on errors, and on SIGINT/SIGTERM.
 *
 * Profiling: VNET_BENCH_CPU_PROF=DIR runs the daemon under `node --cpu-prof`;
 * the profile lands in DIR when the daemon exits at the end of the run.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runIntnet } from './intnet.js';
import { Lab } from './lab.js';
import { runNat, natProgressLine, NAT_TESTS, type NatMeasurement } from './nat.js';
import { NAT_ENGINES, type NatEngineName } from './nat-engines.js';
import { natTable } from './nat-report.js';
import { REPO } from './pairs.js';
import { JsonlWriter, markdownTable, median, progressLine, runMetadata, type Measurement } from './report.js';

const SUITES = ['intnet', 'nat', 'all'] as const;
type SuiteName = (typeof SUITES)[number];

/** What the issue asks for: at MTU 65520, vnet at least this share of the bridge. */
const GOAL_RATIO = 0.6;
const GOAL_MTU = 65520;

const USAGE = `usage: npm run bench -- [--suite intnet|nat|all] [--reps N] [--duration S] [--mtu 1500,65520] [--no-reverse] [--out DIR]
       nat only: [--engines vnet,slirp4netns,pasta] [--tests tcp_g2h,...] [--max-minutes M]
       npm run bench -- --from RUN.jsonl[,RUN.jsonl]   (the tables of earlier runs)`;

interface Options {
  suite: SuiteName;
  reps: number;
  duration: number;
  mtus: number[];
  reverse: boolean;
  out: string;
  engines: NatEngineName[];
  tests: string[] | null;
  maxMinutes: number;
  /** JSONL files of earlier runs to print, instead of measuring. */
  from: string[];
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      suite: { type: 'string', default: 'intnet' },
      reps: { type: 'string', default: '3' },
      duration: { type: 'string', default: '5' },
      mtu: { type: 'string', default: '1500,65520' },
      'no-reverse': { type: 'boolean', default: false },
      out: { type: 'string', default: resolve(REPO, 'bench', 'results') },
      engines: { type: 'string', default: NAT_ENGINES.join(',') },
      tests: { type: 'string', default: '' },
      'max-minutes': { type: 'string', default: '25' },
      from: { type: 'string', default: '' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const suite = values.suite as SuiteName;
  if (!SUITES.includes(suite)) throw new Error(`--suite must be one of ${SUITES.join(', ')}`);
  const count = (name: string, text: string, max: number) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`--${name} must be an integer from 1 to ${max}`);
    return n;
  };
  const mtus = values.mtu.split(',').map((m) => count('mtu', m.trim(), 65535));
  if (mtus.some((m) => m < 576)) throw new Error('--mtu values must be at least 576');
  const listOf = <T extends string>(name: string, text: string, allowed: readonly T[]): T[] => {
    const items = text.split(',').map((item) => item.trim());
    const bad = items.filter((item) => !allowed.includes(item as T));
    if (bad.length) throw new Error(`--${name}: unknown ${bad.join(', ')} (known: ${allowed.join(', ')})`);
    return items as T[];
  };
  return {
    suite,
    reps: count('reps', values.reps, 100),
    duration: count('duration', values.duration, 120),
    mtus,
    reverse: !values['no-reverse'],
    out: resolve(values.out),
    engines: listOf('engines', values.engines, NAT_ENGINES),
    tests: values.tests ? listOf('tests', values.tests, NAT_TESTS.map((t) => t.name)) : null,
    maxMinutes: count('max-minutes', values['max-minutes'], 24 * 60),
    from: values.from ? values.from.split(',').map((file) => resolve(file.trim())) : [],
  };
}

async function main(): Promise<number> {
  let options: Options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (err) {
    console.error(`bench: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (options.from.length) return printEarlierRuns(options.from);
  if (process.getuid?.() !== 0) {
    console.error('bench: needs root (it creates network namespaces, veths, a bridge and TAPs)');
    return 1;
  }

  const lab = new Lab();
  const onSignal = (signal: NodeJS.Signals) => {
    console.error(`\nbench: ${signal}, tearing down`);
    void lab.cleanup().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  // `on`, not `once`: a second signal (timeout(1) forwards one, a user presses ^C twice)
  // must join the teardown, not kill the process in the middle of it.
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const out = new JsonlWriter(options.out, `bench-${options.suite}`, runMetadata(REPO, options));
  const results: Measurement[] = [];
  const natResults: NatMeasurement[] = [];
  const record = (m: Measurement) => {
    results.push(m);
    out.write(m);
    console.error(progressLine(m));
  };

  let setupFailed = false;
  try {
    if (options.suite === 'intnet' || options.suite === 'all') {
      await runIntnet(lab, { mtus: options.mtus, reps: options.reps, duration: options.duration, reverse: options.reverse }, record);
    }
    if (options.suite === 'nat' || options.suite === 'all') {
      const deadline = Date.now() + options.maxMinutes * 60_000;
      const nat = { mtus: options.mtus, reps: options.reps, duration: options.duration, engines: options.engines, tests: options.tests, deadline };
      await runNat(lab, nat, (m) => {
        natResults.push(m);
        out.write(m);
        console.error(natProgressLine(m));
      });
    }
  } catch (err) {
    setupFailed = true;
    console.error(`bench: setup failed: ${(err as Error).message}`);
  } finally {
    await lab.cleanup();
  }

  printTables(results, natResults);
  console.log(`\nraw results: ${out.path}`);
  // An anchor failing a test (pasta's UDP forward from 127.0.0.1) is a finding about the anchor, shown in the table.
  const failedRuns = [...results, ...natResults.filter((r) => r.engine === 'vnet')].filter((r) => r.error).length;
  if (failedRuns) console.error(`bench: ${failedRuns} run(s) produced no number (see above)`);
  return setupFailed || failedRuns ? 1 : 0;
}

function printTables(results: Measurement[], natResults: NatMeasurement[]): void {
  if (results.length) {
    console.log(`\n${markdownTable(results)}\n`);
    console.log(goalLine(results));
  }
  if (natResults.length) {
    const table = natTable(natResults);
    console.log(`\n${table.markdown}\n`);
    console.log('✓ / ✗ = vnet ahead of / behind that anchor, rep by rep (the 95 % interval of the paired ratio leaves out 1); ' +
      '≈ = the reps do not tell them apart (the ratio of medians shows the side); * = only noisy measurements (others used > 10 % of a core meanwhile).');
    console.log(`goal (vnet ahead of both anchors on every row): ${table.ahead} of ${table.compared} rows by medians` +
      (table.behind.length ? `; behind on: ${table.behind.join('; ')}` : ' — met'));
    console.log(`with the reps apart: ahead of both anchors on ${table.aheadApart} of ${table.compared} rows; behind on ` +
      (table.behindApart.length ? table.behindApart.join('; ') : 'none'));
  }
}

/** `--from`: the tables of runs on file (their meta lines skipped). */
function printEarlierRuns(files: string[]): number {
  const results: Measurement[] = [];
  const natResults: NatMeasurement[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      console.error(`bench: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      return 2;
    }
    for (const [index, line] of text.split('\n').entries()) {
      if (!line.trim()) continue;
      let record: { kind?: string; suite?: string };
      try {
        record = JSON.parse(line);
      } catch {
        console.error(`bench: ${file}:${index + 1} is not JSON`);
        return 2;
      }
      if (record.kind === 'meta') continue;
      if (record.suite === 'nat') natResults.push(record as NatMeasurement);
      else results.push(record as Measurement);
    }
  }
  printTables(results, natResults);
  return 0;
}

/** The goal, stated; informative only — a number never fails the run. */
function goalLine(results: Measurement[]): string {
  const at = (engine: string) =>
    results.filter((r) => r.mtu === GOAL_MTU && r.test === 'tcp_a2b' && r.engine === engine && r.gbps !== undefined).map((r) => r.gbps!);
  const [bridge, vnet] = [at('bridge'), at('vnet')];
  if (!bridge.length || !vnet.length) return `goal (vnet ≥ ${GOAL_RATIO * 100} % of the bridge at MTU ${GOAL_MTU}): not measured`;
  const ratio = median(vnet) / median(bridge);
  return `goal (vnet ≥ ${GOAL_RATIO * 100} % of the bridge at MTU ${GOAL_MTU}, A→B): ${(100 * ratio).toFixed(0)} % — ${ratio >= GOAL_RATIO ? 'met' : 'not met'}`;
}

process.exitCode = await main();
