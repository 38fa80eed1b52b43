// GET /reports/usage-summary: users, active users and sessions for a date range, from the daily rollups.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { ClickHouse } from '../../clickhouse/client.ts';
import { ROUTE_TABLES } from '../../clickhouse/data-version.ts';
import { usageSummary } from '../../clickhouse/queries/usage-summary.ts';
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

const UsageSummary = z
  .object({
    total_users: z
      .number()
      .int()
      .openapi({ description: 'distinct users with any usage event on or before end_date' }),
    active_users: z
      .number()
      .int()
      .openapi({ description: 'distinct users with session or activity events in range' }),
    total_sessions: z
      .number()
      .int()
      .openapi({ description: 'distinct session ids with a session_start in range' }),
  })
  .openapi('UsageSummary');

const summaryRoute = createRoute({
  method: 'get',
  path: '/reports/usage-summary',
  summary: 'Usage summary for a date range (UTC days, both inclusive)',
  security: SECURITY,
  middleware: [requireScope('read:analytics')] as const,
  request: {
    query: z.strictObject({
      start_date: dateParam('start_date'),
      end_date: dateParam('end_date'),
      user_id: idParam('user_id'),
      team_id: idParam('team_id'),
      service: idParam('service', 128),
      format: formatParam,
      csv_escape: csvEscapeParam,
    }),
  },
  responses: {
    200: {
      description: 'The summary',
      content: { 'application/json': { schema: UsageSummary }, ...CSV_CONTENT },
    },
    ...errorResponses(400, 401, 403, 429, 500, 503),
  },
});

export function usageRoutes(ch: ClickHouse, cache?: ReadCache) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(summaryRoute, async (c) => {
    const q = c.req.valid('query');
    checkRange(q.start_date, q.end_date);
    const team_id = effectiveTeam(c.get('identity'), q.team_id);
    const csv = wantsCsv(c, q.format);
    const { format: _format, ...asked } = q;
    return cachedAnswer(
      cache,
      c,
      'usage-summary',
      ROUTE_TABLES.usage,
      { ...asked, team_id, csv },
      async (snap, reply) => {
        const summary = await usageSummary(ch, { ...q, team_id }, snap);
        if (csv) {
          return csvResponse(
            reply,
            toCsv(['total_users', 'active_users', 'total_sessions'], [{ ...summary }], {
              escape: q.csv_escape,
            }),
          );
        }
        return reply.json(summary, 200);
      },
    );
  });
  return app;
}
