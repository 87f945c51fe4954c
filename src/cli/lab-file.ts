/**
 * `vnet apply -f lab.yaml [--dry-run]` and `vnet export-config [--json]`.
 *
 * The file is read and checked here first (YAML syntax, shape, every value,
 * against an empty state), so a broken file is refused before the daemon is
 * asked for anything and the error names the file, the line and the field.
 * The daemon then plans against its real state and applies; an error it
 * finds (a clash with what exists) names a path, which is mapped back to the
 * line here.
 */
import { readFileSync } from 'node:fs';
import { isMap, isSeq, LineCounter, parseDocument, stringify, type Document } from 'yaml';
import { VnetError } from '../errors.js';
import { checkLabShape, LabError, parseLabPath, planLab, type LabPath, type LabSpec } from '../model/lab-file.js';
import { hasFlag, parseArgs, single, usageError } from './argv.js';
import type { Command } from './commands.js';

/** Line (1-based) of the node at `path`, or of its deepest ancestor that exists. */
function lineOf(doc: Document, counter: LineCounter, path: LabPath): number {
  let node: unknown = doc.contents;
  let line = 1;
  const lineAt = (n: unknown) => {
    const range = (n as { range?: number[] } | null)?.range;
    if (range) line = counter.linePos(range[0]!).line;
  };
  lineAt(node);
  for (const segment of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => String((p.key as { value?: unknown })?.value ?? p.key) === String(segment));
      if (!pair) break;
      lineAt(pair.key);
      node = pair.value;
      if (node) lineAt(node);
    } else if (isSeq(node) && typeof segment === 'number') {
      node = node.items[segment];
      if (!node) break;
      lineAt(node);
    } else break;
  }
  return line;
}

const fieldName = (path: LabPath): string => path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');

/** Read, parse and check a lab file; every problem is one VnetError naming file:line and field. */
export function readLabFile(file: string): LabSpec {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new VnetError('VNET_ERR_NOT_FOUND', `cannot read lab file ${file}: ${(err as NodeJS.ErrnoException).code === 'EISDIR' ? 'it is a directory' : (err as Error).message}`);
  }
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, uniqueKeys: true });
  const syntax = doc.errors[0];
  if (syntax) {
    const line = syntax.linePos?.[0]?.line ?? 1;
    throw new VnetError('VNET_ERR_INVALID_VALUE', `${file}:${line}: YAML syntax error: ${syntax.message.split('\n')[0]}`);
  }
  try {
    const spec = checkLabShape(doc.toJS());
    // Every value is checked by planning against an empty state; nothing is sent yet.
    planLab({ vms: [], natNetworks: [], hostOnlyIfs: [], dhcpServers: [] }, spec);
    return spec;
  } catch (err) {
    if (err instanceof LabError) throw located(file, doc, counter, err.path, err.reason);
    throw err;
  }
}

function located(file: string, doc: Document, counter: LineCounter, path: LabPath, reason: string): VnetError {
  return new VnetError('VNET_ERR_INVALID_VALUE', `${file}:${lineOf(doc, counter, path)}: ${fieldName(path) || '(top)'}: ${reason}`);
}

export const apply: Command = async (args, { api, print }) => {
  const parsed = parseArgs(args, { flags: ['dryrun', 'json'] });
  const unknown = parsed.options.find((o) => !['f', 'file', 'dryrun', 'json'].includes(o.key));
  if (unknown) throw usageError(`apply: unknown option ${unknown.spelling}`);
  const file = single(parsed, 'f') ?? single(parsed, 'file') ?? parsed.positionals[0];
  if (!file) throw usageError('apply: -f FILE is required');
  const spec = readLabFile(file);
  let result: { changes: string[] };
  try {
    result = await api.post<{ changes: string[] }>('/v1/lab', { ...spec, dryRun: hasFlag(parsed, 'dryrun') });
  } catch (err) {
    // The daemon's plan names a path (`vms[1].nics.2.mode: …`): point at the line.
    const match = /^((?:natnetworks|hostonlyifs|dhcpservers|vms)[^:]*): (.*)$/s.exec((err as Error).message);
    if (!match) throw err;
    const counter = new LineCounter();
    const doc = parseDocument(readFileSync(file, 'utf8'), { lineCounter: counter });
    throw located(file, doc, counter, parseLabPath(match[1]!), match[2]!);
  }
  if (hasFlag(parsed, 'json')) return print(JSON.stringify(result, null, 2));
  if (result.changes.length === 0) return print(`${file}: no changes`);
  const verb = hasFlag(parsed, 'dryrun') ? 'would make' : 'made';
  print([`${file}: ${verb} ${result.changes.length} change(s):`, ...result.changes.map((c) => `  ${c}`)].join('\n'));
};

export const exportConfig: Command = async (args, { api, print }) => {
  const parsed = parseArgs(args, { flags: ['json'] });
  const unknown = parsed.options.find((o) => o.key !== 'json');
  if (unknown) throw usageError(`export-config: unknown option ${unknown.spelling}`);
  const spec = await api.get<LabSpec>('/v1/lab');
  if (hasFlag(parsed, 'json')) return print(JSON.stringify(spec, null, 2));
  print(`# vnet lab: 'vnet apply -f FILE' recreates it\n${stringify(spec).trimEnd()}`);
};
