/**
 * VBoxManage-style arguments: `--name value` and `--name=value`; dashes inside
 * names are optional and case is ignored (`--mac-address1` = `--macaddress1`);
 * a trailing number is the NIC slot (`--nic2`).
 */
import { VnetError } from '../errors.js';

export interface ParsedOption {
  /** As typed, for messages: `--nic1`. */
  spelling: string;
  /** Normalised name without the slot: `macaddress`. */
  key: string;
  /** Trailing number of the option (`--nic2` → 2), if any. */
  slot?: number;
  /** Values; most options take one. */
  values: string[];
}

export interface ParsedArgs {
  positionals: string[];
  options: ParsedOption[];
}

export interface OptionSpec {
  /** Normalised keys that take no value. */
  flags?: readonly string[];
  /** How many values an option takes when it is not a flag (default 1). */
  arity?: (key: string, firstValue: string | undefined) => number;
}

export const usageError = (message: string): VnetError => new VnetError('VNET_ERR_BAD_REQUEST', message);

export function normaliseOptionName(spelling: string): { key: string; slot?: number } {
  const name = spelling.replace(/^--?/, '').toLowerCase().replace(/-/g, '');
  const match = /^(.*?[a-z])(\d+)$/.exec(name);
  return match ? { key: match[1]!, slot: Number(match[2]) } : { key: name };
}

export function parseArgs(args: readonly string[], spec: OptionSpec = {}): ParsedArgs {
  const positionals: string[] = [];
  const options: ParsedOption[] = [];
  const flags = new Set(spec.flags ?? []);
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('-') || arg === '-') {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const spelling = eq >= 0 ? arg.slice(0, eq) : arg;
    const { key, slot } = normaliseOptionName(spelling);
    if (flags.has(key)) {
      if (eq >= 0) throw usageError(`option ${spelling} takes no value`);
      options.push({ spelling, key, slot, values: [] });
      continue;
    }
    const values: string[] = [];
    if (eq >= 0) values.push(arg.slice(eq + 1));
    const wanted = spec.arity?.(key, values[0] ?? args[i + 1]) ?? 1;
    while (values.length < wanted) {
      const next = args[i + 1];
      if (next === undefined) throw usageError(`option ${spelling} needs ${wanted > 1 ? `${wanted} values` : 'a value'}`);
      values.push(next);
      i++;
    }
    options.push({ spelling, key, slot, values });
  }
  return { positionals, options };
}

/** `on`/`off` (VirtualBox also accepts true/false, yes/no, 1/0). */
export function onOff(option: ParsedOption): boolean {
  const value = option.values[0]!.toLowerCase();
  if (['on', 'true', 'yes', '1'].includes(value)) return true;
  if (['off', 'false', 'no', '0'].includes(value)) return false;
  throw usageError(`option ${option.spelling} expects on or off, not '${option.values[0]}'`);
}

/** The single value of an option that is not tied to a NIC. */
export function single(parsed: ParsedArgs, key: string): string | undefined {
  const found = parsed.options.filter((o) => o.key === key);
  return found.at(-1)?.values[0];
}

export const hasFlag = (parsed: ParsedArgs, key: string): boolean => parsed.options.some((o) => o.key === key);
