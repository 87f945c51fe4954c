/**
 * `vnet events [--types T,T] [--json] [--count N] [--since ID]`: print the
 * daemon's events as they happen, one line each, until interrupted (or
 * after N events).
 */
import type { VnetEvent } from '../daemon/events.js';
import { hasFlag, parseArgs, single, usageError } from './argv.js';
import type { Command } from './commands.js';

/** One event as a line: time, type, then the data as key=value. */
export function formatEvent(event: VnetEvent): string {
  const fields = Object.entries(event.data as unknown as Record<string, unknown>)
    .map(([key, value]) => `${key}=${value === null || value === '' ? '-' : String(value)}`)
    .join(' ');
  return `${event.time}  ${event.type.padEnd(16)} ${fields}`;
}

export const events: Command = async (args, { api, print }) => {
  const parsed = parseArgs(args, { flags: ['json'] });
  const unknown = parsed.options.find((o) => !['json', 'types', 'count', 'since'].includes(o.key)) ?? (parsed.positionals[0] ? { spelling: parsed.positionals[0] } : null);
  if (unknown) throw usageError(`events: unexpected argument ${unknown.spelling}`);
  const countText = single(parsed, 'count');
  const count = countText === undefined ? Infinity : Number(countText);
  if (!Number.isInteger(count) || count < 1) throw usageError(`events: --count ${countText}: expected a positive whole number`);
  const since = single(parsed, 'since');
  if (since !== undefined && !/^\d+$/.test(since)) throw usageError(`events: --since ${since}: expected an event id`);
  const query = new URLSearchParams();
  const types = single(parsed, 'types');
  if (types) query.set('types', types);
  if (since !== undefined) query.set('since', since);
  const json = hasFlag(parsed, 'json');
  let seen = 0;
  await api.events(`/v1/events${query.size ? `?${query}` : ''}`, (data) => {
    const event = data as VnetEvent;
    print(json ? JSON.stringify(event) : formatEvent(event));
    return ++seen < count;
  });
};
