// JSON Schema files of the event schema, generated from its one zod source (core/events.ts), for producers
// that are not TypeScript: written to schemas/*.json by `npm run schemas` and served at /schemas/<name>.json.
// A test keeps the checked-in files equal to what this generates. The zod source owns the shapes and limits;
// this adds what JSON Schema can say and zod's output does not (formats, the session_id rule, descriptions).
import { z } from 'zod';
import { LIMITS, logSchema, MAX_FUTURE_MS, usageSchema } from './events.ts';

export const SCHEMA_NAMES = ['event', 'usage-event', 'log-event'] as const;
export type SchemaName = (typeof SCHEMA_NAMES)[number];

type Json = Record<string, unknown>;

const TIMESTAMP =
  'RFC 3339 date-time with a zone (Z or ±hh:mm), e.g. 2025-01-02T10:00:00Z; any instant from ' +
  `2000-01-01T00:00:00Z up to ${MAX_FUTURE_MS / 3_600_000} hours ahead of the receiving clock. Stored in UTC ` +
  'with millisecond precision.';

const DESCRIPTIONS: Record<string, string> = {
  event_id: `Identifies the event (1 to ${LIMITS.eventId} characters): the same event delivered twice, in any batch, request or partition, never changes any answer.`,
  user_id: 'The user; the Kafka message key of usage events.',
  team_id: 'The team the user belongs to.',
  service: 'The service that emits the event (the Kafka message key of log events).',
  session_id: 'Required for session_start and session_end; optional for activity.',
  attributes: `Free-form string to string pairs, at most ${LIMITS.attributes} entries.`,
  message: 'The log message (may be empty).',
  severity: 'info, warning or error.',
};

function fromZod(schema: z.ZodType): Json {
  // `input`: what a producer sends; unknown fields are allowed there (they are ignored, not refused).
  const out = z.toJSONSchema(schema, { io: 'input' }) as Json;
  const properties = out.properties as Record<string, Json>;
  for (const [name, prop] of Object.entries(properties)) {
    const description = DESCRIPTIONS[name];
    if (description) prop.description = description;
    else delete prop.description;
  }
  properties.timestamp = { type: 'string', format: 'date-time', description: TIMESTAMP };
  return out;
}

function usageEvent(): Json {
  const s = fromZod(usageSchema);
  const props = s.properties as Record<string, Json>;
  props.type = { ...props.type, description: 'What happened.' };
  (props.attributes as Json).maxProperties = LIMITS.attributes;
  return {
    $schema: s.$schema,
    $id: 'usage-event.json',
    title: 'UsageEvent',
    description:
      'A usage event: Kafka topic analytics.sessions, message key user_id, one JSON object per message (UTF-8; ' +
      "Confluent's wire format is accepted too), or an item of POST /events. Unknown fields are ignored.",
    type: 'object',
    properties: props,
    required: s.required,
    allOf: [
      {
        if: { properties: { type: { enum: ['session_start', 'session_end'] } }, required: ['type'] },
        // biome-ignore lint/suspicious/noThenProperty: the JSON Schema keyword is named `then`.
        then: { required: ['session_id'] },
      },
    ],
  };
}

function logEvent(): Json {
  const s = fromZod(logSchema);
  return {
    $schema: s.$schema,
    $id: 'log-event.json',
    title: 'LogEvent',
    description:
      'A log event: Kafka topic analytics.logs, message key service, one JSON object per message, or an item of ' +
      'POST /events. Unknown fields are ignored.',
    type: 'object',
    properties: s.properties,
    required: s.required,
  };
}

/** Every schema file by name (without `.json`), as the files hold them. */
export function eventJsonSchemas(): Record<SchemaName, Json> {
  const usage = usageEvent();
  return {
    event: {
      $schema: usage.$schema,
      $id: 'event.json',
      title: 'Event',
      description: 'Any event Tally takes: a usage event or a log event (told apart by `type`).',
      oneOf: [{ $ref: 'usage-event.json' }, { $ref: 'log-event.json' }],
    },
    'usage-event': usage,
    'log-event': logEvent(),
  };
}

/** A schema file's exact text (two-space JSON and a final newline). */
export function schemaFileText(schema: Json): string {
  return `${JSON.stringify(schema, null, 2)}\n`;
}

/** The examples of the contract (CONTRACT.md, Events), shown by the OpenAPI document. */
const EXAMPLES = {
  UsageEvent: {
    event_id: 'e-1',
    type: 'session_start',
    timestamp: '2025-01-02T10:00:00Z',
    user_id: 'u1',
    team_id: 't1',
    service: 'billing',
    session_id: 's1',
  },
  LogEvent: {
    event_id: 'l-1',
    type: 'log',
    timestamp: '2025-05-21T10:15:30Z',
    severity: 'warning',
    service: 'exporter',
    message: 'Report export failed due to timeout',
  },
} as const;

/**
 * The OpenAPI 3.1 components `UsageEvent` and `LogEvent`: the schema files' own schemas (OpenAPI 3.1 schemas are
 * JSON Schema 2020-12), without the file's `$schema` and `$id`, with the contract's example. Derived here rather
 * than written again in the route, so the published files and the API document cannot drift apart.
 */
export function eventOpenApiSchemas(): Record<keyof typeof EXAMPLES, Json> {
  const files = eventJsonSchemas();
  const component = (file: Json, name: keyof typeof EXAMPLES): Json => {
    const { $schema: _schema, $id: _id, ...rest } = file;
    return { ...rest, title: name, example: EXAMPLES[name] };
  };
  return {
    UsageEvent: component(files['usage-event'], 'UsageEvent'),
    LogEvent: component(files['log-event'], 'LogEvent'),
  };
}
