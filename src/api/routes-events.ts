/**
 * `GET /v1/events`: the daemon's events as Server-Sent Events (one `event:`
 * per type, `data:` a JSON object, `id:` the sequence number).
 * `?types=vm.state,nic.link` filters; `Last-Event-ID` (or `?since=ID`)
 * replays the kept events after that id first. A comment line every
 * HEARTBEAT_MS keeps proxies and idle timers from closing the stream.
 * `GET /v1/events/recent` is the kept events as a JSON array.
 */
import type { Daemon } from '../daemon/daemon.js';
import { EVENT_TYPES, MAX_SUBSCRIBERS, type VnetEvent, type VnetEventType } from '../daemon/events.js';
import { VnetError } from '../errors.js';
import { Stream, type Router } from './router.js';

export const HEARTBEAT_MS = 15_000;

function typeFilter(text: string | null): Set<VnetEventType> | null {
  if (!text) return null;
  const types = text.split(',').map((t) => t.trim()).filter(Boolean);
  for (const type of types) {
    if (!(EVENT_TYPES as readonly string[]).includes(type)) {
      throw new VnetError('VNET_ERR_BAD_REQUEST', `unknown event type '${type}' in 'types'; known: ${EVENT_TYPES.join(', ')}`);
    }
  }
  return new Set(types as VnetEventType[]);
}

function lastId(text: string | string[] | null | undefined): number | undefined {
  const value = Array.isArray(text) ? text[0] : text;
  if (value === undefined || value === null || !/^\d+$/.test(value)) return undefined;
  return Number(value);
}

/** One event in SSE framing. */
export const sseFrame = (event: VnetEvent): string => `id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;

export function registerEventRoutes(router: Router, daemon: Daemon): void {
  router
    .on('GET', '/v1/events/recent', ({ query }) => {
      const types = typeFilter(query.get('types'));
      return daemon.events.history().filter((e) => !types || types.has(e.type));
    })
    .on('GET', '/v1/events', ({ query, headers }) => {
      const types = typeFilter(query.get('types'));
      const after = lastId(headers['last-event-id']) ?? lastId(query.get('since'));
      if (daemon.events.subscriberCount >= MAX_SUBSCRIBERS) throw new VnetError('VNET_ERR_INVALID_STATE', 'too many event streams are open');
      return new Stream((res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
        res.write('retry: 2000\n\n');
        const unsubscribe = daemon.events.subscribe((event) => {
          if (!types || types.has(event.type)) res.write(sseFrame(event));
        }, after);
        const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
        res.once('close', () => {
          clearInterval(heartbeat);
          unsubscribe();
        });
      });
    });
}
