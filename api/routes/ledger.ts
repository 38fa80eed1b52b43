// GET /ingest/ledger: per (day, team, service), the events received, stored, dropped as duplicates and rejected
// (by reason), from Kafka and POST /events alike, so a producer can see whether its events arrived.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { ClickHouse } from '../../clickhouse/client.ts';
import { ROUTE_TABLES } from '../../clickhouse/data-version.ts';
import { ingestLedger, type LedgerRow } from '../../clickhouse/queries/ingest-ledger.ts';
import { csvResponse, toCsv, wantsCsv } from '../csv.ts';
import type { AppEnv } from '../env.ts';
import { effectiveTeam, requireScope } from '../middleware/auth.ts';
import {
  CSV_CONTENT,
  checkRange,
  csvEscapeParam,
  dateParam,
  errorResponses,
  formatParam,
  idParam,
  SECURITY,
} from '../params.ts';
import { cachedAnswer, type ReadCache } from '../read-cache.ts';
import { validationHook } from '../validation.ts';

const count = (description: string) => z.number().int().min(0).openapi({ description });

const Row = z
  .object({
    day: z.string().openapi({
      format: 'date',
      description: "the event's UTC day (the day it arrived when it had no valid timestamp)",
    }),
    team_id: z.string().openapi({ description: '(logs) for log events, (none) without a valid team_id' }),
    service: z.string().openapi({ description: '(none) without a valid service' }),
    received: count('distinct events that arrived, valid or not'),
    stored: count('distinct events stored (back-fills included)'),
    duplicates: count('further arrivals of valid events already received, dropped as duplicates'),
    rejected: count('distinct events rejected (dead-lettered, or named in `rejected` by POST /events)'),
    rejected_by_reason: z.record(z.string(), z.number().int()).openapi({
      description: 'distinct rejected events per reason category (not_json, field_timestamp, ...)',
    }),
  })
  .openapi('IngestLedgerRow');

const Ledger = z.object({ rows: z.array(Row) }).openapi('IngestLedger');

const route = createRoute({
  method: 'get',
  path: '/ingest/ledger',
  summary: 'Ingestion ledger: events received, stored, duplicated and rejected per day, team and service',
  description:
    'Exact counts from Kafka and POST /events. Each event_id counts once per outcome, so a replayed batch or ' +
    'request changes received, stored and rejected not at all; a further arrival of a valid event (another ' +
    'Kafka message or request) counts as a duplicate. An event without a valid event_id is identified by where ' +
    'it came from (its Kafka offset, or its request and index). A team-bound credential sees its own team only; ' +
    'everything it posts counts under its team. CSV: rejected_by_reason as reason=count pairs joined by ";".',
  security: SECURITY,
  middleware: [requireScope('read:analytics')] as const,
  request: {
    query: z.strictObject({
      start_date: dateParam('start_date'),
      end_date: dateParam('end_date'),
      team_id: idParam('team_id'),
      service: idParam('service', 128),
      format: formatParam,
      csv_escape: csvEscapeParam,
    }),
  },
  responses: {
    200: {
      description: 'One row per (day, team_id, service) with any arrival or stored event, ordered by them',
      content: { 'application/json': { schema: Ledger }, ...CSV_CONTENT },
    },
    ...errorResponses(400, 401, 403, 429, 500, 503),
  },
});

const CSV_COLUMNS = [
  'day',
  'team_id',
  'service',
  'received',
  'stored',
  'duplicates',
  'rejected',
  'rejected_by_reason',
];

function csvRow(r: LedgerRow): Record<string, unknown> {
  const reasons = Object.entries(r.rejected_by_reason)
    .map(([reason, n]) => `${reason}=${n}`)
    .join(';');
  return { ...r, rejected_by_reason: reasons };
}

export function ledgerRoutes(ch: ClickHouse, cache?: ReadCache) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(route, async (c) => {
    const q = c.req.valid('query');
    checkRange(q.start_date, q.end_date);
    const team_id = effectiveTeam(c.get('identity'), q.team_id);
    const csv = wantsCsv(c, q.format);
    const { format: _format, ...asked } = q;
    return cachedAnswer(
      cache,
      c,
      'ingest-ledger',
      ROUTE_TABLES.ledger,
      { ...asked, team_id, csv },
      async (_snap, reply) => {
        const rows = await ingestLedger(ch, { ...q, team_id });
        if (csv) {
          return csvResponse(reply, toCsv(CSV_COLUMNS, rows.map(csvRow), { escape: q.csv_escape }));
        }
        return reply.json({ rows }, 200);
      },
    );
  });
  return app;
}
