// POST /events: a JSON array or NDJSON of events. Valid events are stored (or acknowledged by Kafka) before the
// 202; invalid ones are named by index and not stored. The body is limited in bytes and in events (413). A
// credential bound to a team writes that team's usage events only: any other event is named in `rejected`
// before anything is stored or published.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { fromStructured, isCloudEventsMediaType, parseCloudEventsBody } from '../../core/cloudevents.ts';
import { PayloadTooLarge, ValidationError } from '../../core/errors.ts';
import { eventOpenApiSchemas } from '../../core/event-schemas.ts';
import type { ParsedEvent } from '../../core/events.ts';
import { parseEvent } from '../../core/events.ts';
import type { HttpLedger } from '../../core/ledger.ts';
import type { EventSink, IncomingEvent } from '../../core/sink.ts';
import { readBodyText } from '../body.ts';
import type { AppEnv, Identity } from '../env.ts';
import { requireScope } from '../middleware/auth.ts';
import { errorResponses, intParam, SECURITY } from '../params.ts';

export const MAX_EVENTS = 10_000;
export const MAX_BODY_BYTES = 10 * 1024 * 1024;
/** How long `wait=stored` waits by default, and at most. */
export const WAIT_STORED_DEFAULT_MS = 30_000;
export const WAIT_STORED_MAX_MS = 120_000;

const Accepted = z
  .object({
    accepted: z.number().int(),
    rejected: z.array(z.object({ index: z.number().int(), error: z.string() })),
    pending: z.number().int().optional().openapi({
      description: 'with wait=stored, when the wait ended first: accepted events not yet queryable',
    }),
  })
  .openapi('EventsAccepted');

const WaitQuery = z.object({
  wait: z
    .enum(['stored'], { error: 'must be stored' })
    .optional()
    .openapi({
      param: { name: 'wait', in: 'query' },
      description:
        'stored: answer 200 only once every accepted event is queryable (read-your-writes); through Kafka, ' +
        'once the ingesters have stored the produced offsets. Past wait_ms, 202 with `pending`.',
    }),
  wait_ms: intParam('wait_ms', 0, WAIT_STORED_MAX_MS, WAIT_STORED_DEFAULT_MS),
});

// The contract's events, for the OpenAPI document: UsageEvent and LogEvent come from the zod event schema
// (core/event-schemas.ts, which also writes schemas/*.json). The handler reads the body itself and names each
// item that is not a valid event in `rejected` (still 202), so an item is documented as "UsageEvent, LogEvent
// or anything else": the shapes are there for a schema-driven client or fuzzer, and a validator built from it
// accepts exactly what the route accepts.
type SchemaComponent = Parameters<OpenAPIHono['openAPIRegistry']['registerComponent']>[2];
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const EVENT_COMPONENTS = eventOpenApiSchemas();
const EventItem = {
  anyOf: [
    ref('UsageEvent'),
    ref('LogEvent'),
    { description: 'anything else: not stored, named in `rejected` by its index (the answer is still 202)' },
  ],
};
const EventsBody = {
  anyOf: [
    {
      type: 'array',
      items: ref('EventItem'),
      maxItems: MAX_EVENTS,
      description: `a batch of at most ${MAX_EVENTS} events (more: 413)`,
    },
    ref('EventItem'),
  ],
  description:
    'A JSON array of events; a body that is not an array is read as NDJSON (whatever its content type), so a ' +
    'single event on one line is a batch of one.',
};

const route = createRoute({
  method: 'post',
  path: '/events',
  summary: 'Ingest events (JSON array or NDJSON)',
  description:
    'A credential bound to a team (team_id claim, or a key of a team) writes only usage events of that team: ' +
    'an event of another team, or a log event, is named in `rejected` and neither stored nor published. ' +
    'CloudEvents 1.0 in structured mode are taken too, with Content-Type application/cloudevents+json (one) or ' +
    'application/cloudevents-batch+json (an array): `type` is an event type (or ends in .<type>), `time` (required) ' +
    'the timestamp, `data` an object with the other fields, and event_id is derived from (source, id).',
  security: SECURITY,
  request: {
    query: WaitQuery,
    body: {
      required: true,
      content: {
        'application/json': { schema: ref('EventsBody') },
        'application/x-ndjson': {
          // No `example`: schema-driven tools (Schemathesis) have no serializer for this media type and would
          // stop on it; the description carries the sample instead.
          schema: z.string().openapi({
            description:
              'NDJSON: one event (UsageEvent or LogEvent) per line; blank lines are skipped. For example ' +
              '{"event_id":"e-1","type":"activity","timestamp":"2025-01-02T10:00:00Z","user_id":"u1",' +
              '"team_id":"t1","service":"billing"}',
          }),
        },
      },
    },
  },
  responses: {
    200: {
      description: 'With wait=stored: every accepted event is queryable',
      content: { 'application/json': { schema: Accepted } },
    },
    202: {
      description:
        'Durable: stored, or acknowledged by Kafka and queryable within seconds (with wait=stored: the wait ended ' +
        'first, `pending` says how many are not yet queryable)',
      content: { 'application/json': { schema: Accepted } },
    },
    400: {
      description:
        'A body that is not a JSON array or NDJSON; or every event rejected: then the error also carries ' +
        '`accepted` (0) and `rejected`, as a 202 would',
      content: {
        'application/json': {
          schema: z.object({
            error: z.string(),
            message: z.string(),
            accepted: z.number().int().optional(),
            rejected: z.array(z.object({ index: z.number().int(), error: z.string() })).optional(),
          }),
        },
      },
    },
    ...errorResponses(401, 403, 413, 429, 500, 503),
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

/**
 * Why a team-bound caller may not write `event`, or undefined when it may. Unbound callers write any team's
 * events and logs. Log events belong to no team (system logs are platform-wide), so a bound caller writes none.
 */
export function teamRefusal(identity: Pick<Identity, 'teamId'>, event: ParsedEvent): string | undefined {
  const team = identity.teamId;
  if (team === undefined) return undefined;
  if (event.kind === 'log') {
    return `type: log events are platform-wide; this credential may only write usage events of team ${team}`;
  }
  if (event.row.team_id !== team) return `team_id: this credential may only write team ${team}`;
  return undefined;
}

export function eventRoutes(sink: EventSink, ledger?: HttpLedger) {
  const app = new OpenAPIHono<AppEnv>();
  // Documented in OpenAPI but read by hand: the body is bounded in bytes while it streams in, and any
  // content type is taken (producers rarely label NDJSON correctly).
  for (const [name, schema] of Object.entries({ ...EVENT_COMPONENTS, EventItem, EventsBody })) {
    app.openAPIRegistry.registerComponent('schemas', name, schema as SchemaComponent);
  }
  app.openAPIRegistry.registerPath(route);
  app.post('/events', requireScope('write:events'), async (c) => {
    // Parameters before the body: a request with a bad one is refused without reading it.
    const query = WaitQuery.safeParse(c.req.query());
    if (!query.success) {
      const issue = query.error.issues[0];
      throw new ValidationError(String(issue?.path[0] ?? 'query'), issue?.message ?? 'is invalid');
    }
    const cloud = isCloudEventsMediaType(c.req.header('content-type'));
    const text = await readBodyText(c.req.raw, MAX_BODY_BYTES);
    const values = cloud ? parseCloudEventsBody(text, cloud, MAX_EVENTS) : parseBody(text);
    const identity = c.get('identity');
    const now = Date.now();
    const good: IncomingEvent[] = [];
    const rejected: { index: number; error: string }[] = [];
    const seen = new Set<string>();
    values.forEach((item, index) => {
      // A structured-mode CloudEvent becomes the event it carries (core/cloudevents.ts), then is checked alike.
      const mapped = cloud ? fromStructured(item) : { ok: true as const, raw: item };
      if (!mapped.ok) {
        rejected.push({ index, error: mapped.error });
        return;
      }
      const raw = mapped.raw;
      const r = parseEvent(raw, now);
      if (!r.ok) {
        rejected.push({ index, error: r.error });
        return;
      }
      const refusal = teamRefusal(identity, r.event);
      if (refusal !== undefined) {
        rejected.push({ index, error: refusal });
        return;
      }
      // The same event twice in one request is stored once; it is not an error.
      if (seen.has(r.event.row.event_id)) return;
      seen.add(r.event.row.event_id);
      good.push({ raw, event: r.event });
    });
    const accepted = values.length - rejected.length;
    const receipt = good.length > 0 ? await sink.write(good) : undefined;
    // Once durable: a request that fails before this is retried, and its retry is then no duplicate.
    await ledger?.({
      values,
      rejected,
      accepted: good,
      viaKafka: sink.kind === 'kafka',
      team: identity.teamId,
      nowMs: now,
    });
    // Nothing accepted is a client error, in the error model's shape with the same `rejected` list.
    if (values.length > 0 && accepted === 0) {
      const message = `no event accepted: all ${rejected.length} rejected (see rejected)`;
      return c.json({ error: 'Bad Request', message, accepted: 0, rejected }, 400);
    }
    if (query.data.wait !== 'stored') return c.json({ accepted, rejected }, 202);
    const pending = (await receipt?.waitStored(query.data.wait_ms ?? WAIT_STORED_DEFAULT_MS)) ?? 0;
    if (pending === 0) return c.json({ accepted, rejected }, 200);
    return c.json({ accepted, rejected, pending }, 202);
  });
  return app;
}
