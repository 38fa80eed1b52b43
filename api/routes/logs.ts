// GET /logs/system-events: system logs newest first (timestamp, then event_id, descending), each log once,
// by page (offset semantics) or by the opaque cursor of the previous answer. Platform-wide: a token bound to
// a team may not read them (403).

import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { ClickHouse } from '../../clickhouse/client.ts';
import { ROUTE_TABLES } from '../../clickhouse/data-version.ts';
import { systemEvents } from '../../clickhouse/queries/system-events.ts';
import { Forbidden, ValidationError } from '../../core/errors.ts';
import { SEVERITIES } from '../../core/events.ts';
import { csvResponse, toCsv, wantsCsv } from '../csv.ts';
import { cursorBinding, decodeCursor, encodeCursor } from '../cursor.ts';
import type { AppEnv } from '../env.ts';
import { requireScope } from '../middleware/auth.ts';
import {
  CSV_CONTENT,
  checkRange,
  csvEscapeParam,
  errorResponses,
  formatParam,
  idParam,
  intParam,
  MAX_PAGE,
  optionalDateParam,
  SECURITY,
  severityField,
} from '../params.ts';
import { cachedAnswer, type ReadCache } from '../read-cache.ts';
import { validationHook } from '../validation.ts';

const SystemEvent = z
  .object({
    timestamp: z.string().openapi({ example: '2025-05-21T10:15:30.000Z', description: 'UTC, milliseconds' }),
    severity: z.enum(SEVERITIES),
    message: z.string(),
    service: z.string(),
    event_id: z.string(),
  })
  .openapi('SystemEvent');

const SystemEventsPage = z
  .object({
    events: z.array(SystemEvent),
    page: z.number().int().min(1),
    total_pages: z.number().int().min(0),
    next_cursor: z
      .string()
      .optional()
      .openapi({ description: 'pass back as cursor for the next page; absent on the last page' }),
  })
  .openapi('SystemEventsPage');

export const CSV_COLUMNS = ['timestamp', 'severity', 'service', 'message', 'event_id'] as const;

const route = createRoute({
  method: 'get',
  path: '/logs/system-events',
  summary: 'System logs, newest first, paged (page/limit or cursor)',
  description:
    'Newest first: timestamp, then event_id, both descending; each log once however often it was delivered. ' +
    'total_pages = ceil(matching / limit); a page past the end has no events. next_cursor, passed back as ' +
    'cursor with the same filters and limit, walks the same order without offsets. Platform-wide: a token ' +
    'bound to a team gets 403. CSV answers carry X-Page, X-Total-Pages and (when more follow) X-Next-Cursor.',
  security: SECURITY,
  middleware: [requireScope('read:analytics')] as const,
  request: {
    query: z.strictObject({
      limit: intParam('limit', 1, 1000, 100),
      page: intParam('page', 1, MAX_PAGE, 1),
      severity: severityField.optional().openapi({ param: { name: 'severity', in: 'query' } }),
      service: idParam('service', 128),
      start_date: optionalDateParam('start_date'),
      end_date: optionalDateParam('end_date'),
      cursor: z
        .string()
        .min(1, { error: 'must not be empty' })
        .max(1024, { error: 'is not a cursor this API issued' })
        .optional()
        .openapi({ param: { name: 'cursor', in: 'query' }, description: 'next_cursor of the previous page' }),
      format: formatParam,
      csv_escape: csvEscapeParam,
    }),
  },
  responses: {
    200: {
      description: 'One page of logs',
      content: { 'application/json': { schema: SystemEventsPage }, ...CSV_CONTENT },
    },
    ...errorResponses(400, 401, 403, 429, 500, 503),
  },
});

export function logRoutes(ch: ClickHouse, cache?: ReadCache) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(route, async (c) => {
    if (c.get('identity').teamId !== undefined) {
      throw new Forbidden('system logs are platform-wide; a token bound to a team may not read them');
    }
    const q = c.req.valid('query');
    checkRange(q.start_date, q.end_date);
    const limit = q.limit ?? 100;
    const filters = {
      severity: q.severity,
      service: q.service,
      start_date: q.start_date,
      end_date: q.end_date,
    };
    const binding = cursorBinding(filters, limit);
    let page = q.page ?? 1;
    let after: ReturnType<typeof decodeCursor>['after'] | undefined;
    if (q.cursor !== undefined) {
      if (q.page !== undefined)
        throw new ValidationError('page', 'cannot be combined with cursor (the cursor knows its page)');
      const state = decodeCursor(q.cursor);
      if (state.binding !== binding) {
        throw new ValidationError(
          'cursor',
          'was issued for other filters or another limit; repeat them unchanged',
        );
      }
      page = state.page;
      after = state.after;
    }
    const csv = wantsCsv(c, q.format);
    // The question as resolved: the decoded page and position, not the cursor's text.
    const question = { ...filters, limit, page, after_ms: after?.ms, after_id: after?.event_id, csv };
    return cachedAnswer(
      cache,
      c,
      'system-events',
      ROUTE_TABLES.logs,
      { ...question, csv_escape: q.csv_escape },
      async (snap, reply) => {
        const result = await systemEvents(ch, { ...filters, limit, page, after }, snap);
        const last = result.events.at(-1);
        const next_cursor =
          last && result.events.length === limit && page * limit < result.total
            ? encodeCursor({ after: { ms: last.ms, event_id: last.event_id }, page: page + 1, binding })
            : undefined;
        const events = result.events.map(({ ms: _ms, ...e }) => e);
        if (csv) {
          reply.header('X-Page', String(page));
          reply.header('X-Total-Pages', String(result.total_pages));
          if (next_cursor) reply.header('X-Next-Cursor', next_cursor);
          return csvResponse(reply, toCsv(CSV_COLUMNS, events, { escape: q.csv_escape }));
        }
        return reply.json(
          { events, page, total_pages: result.total_pages, ...(next_cursor ? { next_cursor } : {}) },
          200,
        );
      },
    );
  });
  return app;
}
