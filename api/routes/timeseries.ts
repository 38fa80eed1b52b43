// GET /reports/usage-timeseries: active users and sessions per day, week (from Monday) or month, optionally
// per team or service, for BI charts; each row equals the usage summary of its clipped period and group.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { ClickHouse } from '../../clickhouse/client.ts';
import { ROUTE_TABLES } from '../../clickhouse/data-version.ts';
import { usageTimeseries } from '../../clickhouse/queries/usage-timeseries.ts';
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

const Row = z
  .object({
    period: z
      .string()
      .openapi({ format: 'date', description: 'first day of the period, clipped to start_date' }),
    team_id: z.string().optional().openapi({ description: 'with group_by=team' }),
    service: z.string().optional().openapi({ description: 'with group_by=service' }),
    active_users: z.number().int().min(0),
    total_sessions: z.number().int().min(0),
  })
  .openapi('UsageTimeseriesRow');

const Timeseries = z.object({ rows: z.array(Row) }).openapi('UsageTimeseries');

const route = createRoute({
  method: 'get',
  path: '/reports/usage-timeseries',
  summary: 'Active users and sessions per day, week or month (UTC days, both inclusive)',
  description:
    'One row per period (and group). period is the first day of the period (weeks start on Monday, UTC), ' +
    'clipped to the range, so the first row starts at start_date. Ungrouped, every period is listed (zeros ' +
    'included); grouped, the (period, group) cells with at least one active user, by period then group.',
  security: SECURITY,
  middleware: [requireScope('read:analytics')] as const,
  request: {
    query: z.strictObject({
      start_date: dateParam('start_date'),
      end_date: dateParam('end_date'),
      interval: z
        .enum(['day', 'week', 'month'], {
          error: (iss) => (iss.input === undefined ? 'is required' : 'must be day, week or month'),
        })
        .openapi({ param: { name: 'interval', in: 'query' } }),
      group_by: z
        .enum(['team', 'service'], { error: 'must be team or service' })
        .optional()
        .openapi({ param: { name: 'group_by', in: 'query' } }),
      user_id: idParam('user_id'),
      team_id: idParam('team_id'),
      service: idParam('service', 128),
      format: formatParam,
      csv_escape: csvEscapeParam,
    }),
  },
  responses: {
    200: {
      description: 'The series',
      content: { 'application/json': { schema: Timeseries }, ...CSV_CONTENT },
    },
    ...errorResponses(400, 401, 403, 429, 500, 503),
  },
});

export function timeseriesRoutes(ch: ClickHouse, cache?: ReadCache) {
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
      'usage-timeseries',
      ROUTE_TABLES.usage,
      { ...asked, team_id, csv },
      async (snap, reply) => {
        const rows = await usageTimeseries(ch, { ...q, team_id }, snap);
        if (csv) {
          const group = q.group_by === 'team' ? ['team_id'] : q.group_by === 'service' ? ['service'] : [];
          return csvResponse(
            reply,
            toCsv(['period', ...group, 'active_users', 'total_sessions'], rows, { escape: q.csv_escape }),
          );
        }
        return reply.json({ rows }, 200);
      },
    );
  });
  return app;
}
