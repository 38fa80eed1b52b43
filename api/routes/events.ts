// POST /events: a JSON array or NDJSON of events. Valid events are stored (or acknowledged by Kafka) before the
// 202; invalid ones are named by index and not stored. The body is limited in bytes and in events (413).
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { PayloadTooLarge, ValidationError } from '../../core/errors.ts';
import { parseEvent } from '../../core/events.ts';
import type { EventSink, IncomingEvent } from '../../core/sink.ts';
import { readBodyText } from '../body.ts';
import type { AppEnv } from '../env.ts';
import { requireScope } from '../middleware/auth.ts';
import { errorResponses, SECURITY } from '../params.ts';

export const MAX_EVENTS = 10_000;
export const MAX_BODY_BYTES = 10 * 1024 * 1024;

const Accepted = z
  .object({
    accepted: z.number().int(),
    rejected: z.array(z.object({ index: z.number().int(), error: z.string() })),
  })
  .openapi('EventsAccepted');

const route = createRoute({
  method: 'post',
  path: '/events',
  summary: 'Ingest events (JSON array or NDJSON)',
  security: SECURITY,
  request: {
    body: {
      required: true,
      content: {
        // Any JSON: an array of events, or NDJSON (one event is one line). Items that are not valid events
        // are accepted and named in `rejected`, not refused, so the schema may not narrow them.
        'application/json': {
          schema: z.unknown().openapi({ description: 'a JSON array of events, or NDJSON' }),
        },
        'application/x-ndjson': { schema: z.string() },
      },
    },
  },
  responses: {
    202: {
      description: 'Stored (or acknowledged by Kafka)',
      content: { 'application/json': { schema: Accepted } },
    },
    ...errorResponses(400, 401, 403, 413, 429, 500, 503),
  },
});

/** Splits a body into JSON values: a JSON array, or one JSON value per non-empty line. */
export function parseBody(text: string): unknown[] {
  const trimmed = text.trim();
  if (trimmed.length === 0) throw new ValidationError('body', 'is empty; send a JSON array or NDJSON');
  if (trimmed.startsWith('[')) {
    let value: unknown;
    try {
      value = JSON.parse(trimmed);
    } catch (err) {
      throw new ValidationError('body', `is not valid JSON: ${(err as Error).message}`);
    }
    if (!Array.isArray(value)) throw new ValidationError('body', 'must be a JSON array or NDJSON');
    if (value.length > MAX_EVENTS) throw new PayloadTooLarge(`at most ${MAX_EVENTS} events per request`);
    return value;
  }
  const out: unknown[] = [];
  const lines = trimmed.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] as string).trim();
    if (line.length === 0) continue;
    if (out.length >= MAX_EVENTS) throw new PayloadTooLarge(`at most ${MAX_EVENTS} events per request`);
    try {
      out.push(JSON.parse(line));
    } catch (err) {
      throw new ValidationError(
        'body',
        `line ${i + 1} is not valid JSON (${(err as Error).message}); send a JSON array or NDJSON`,
      );
    }
  }
  return out;
}

export function eventRoutes(sink: EventSink) {
  const app = new OpenAPIHono<AppEnv>();
  // Documented in OpenAPI but read by hand: the body is bounded in bytes while it streams in, and any
  // content type is taken (producers rarely label NDJSON correctly).
  app.openAPIRegistry.registerPath(route);
  app.post('/events', requireScope('write:events'), async (c) => {
    const values = parseBody(await readBodyText(c.req.raw, MAX_BODY_BYTES));
    const now = Date.now();
    const good: IncomingEvent[] = [];
    const rejected: { index: number; error: string }[] = [];
    const seen = new Set<string>();
    values.forEach((raw, index) => {
      const r = parseEvent(raw, now);
      if (!r.ok) {
        rejected.push({ index, error: r.error });
        return;
      }
      // The same event twice in one request is stored once; it is not an error.
      if (seen.has(r.event.row.event_id)) return;
      seen.add(r.event.row.event_id);
      good.push({ raw, event: r.event });
    });
    if (good.length > 0) await sink.write(good);
    return c.json({ accepted: values.length - rejected.length, rejected }, 202);
  });
  return app;
}
