// Scheduled exports (report_admin): create, list, read and delete one's own schedules, and list the export
// jobs a schedule produced. Someone else's schedule is indistinguishable from none (404).

import { randomBytes, randomUUID } from 'node:crypto';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { nextPeriodStart, periodStart } from '../../control/periods.ts';
import {
  createSchedule,
  deleteSchedule,
  type ExportSchedule,
  getSchedule,
  type RunWithJob,
  runsOf,
  schedulesOfUser,
} from '../../control/schedules.ts';
import { Forbidden, NotFound, ValidationError } from '../../core/errors.ts';
import { EXPORT_FORMATS, REPORT_TYPES } from '../../core/exports/formats.ts';
import { signedDownloadUrl } from '../../core/exports/link.ts';
import type { AppEnv, Identity } from '../env.ts';
import { effectiveTeam, requireScope } from '../middleware/auth.ts';
import {
  errorResponses,
  exportFormatField,
  idField,
  intParam,
  reportTypeField,
  SECURITY,
  severityField,
} from '../params.ts';
import type { ScheduleDeps } from '../schedules/deps.ts';
import { validationHook } from '../validation.ts';

const Filters = z
  .strictObject({
    user_id: idField(256).optional().openapi({ description: 'usage-summary only' }),
    team_id: idField(256).optional().openapi({ description: 'usage-summary only' }),
    service: idField(128).optional(),
    severity: severityField.optional().openapi({ description: 'system-events only' }),
  })
  .openapi('ScheduleFilters');

const Cadence = z.enum(['daily', 'weekly', 'monthly'], { error: 'must be daily, weekly or monthly' });

const ScheduleRequest = z
  .strictObject({
    report_type: reportTypeField,
    format: exportFormatField,
    cadence: Cadence,
    filters: Filters.optional(),
    webhook_url: z
      .string({ error: 'must be a string' })
      .max(2048, { error: 'must be at most 2048 characters' })
      .optional()
      .openapi({ description: 'http(s) URL whose host:port is on WEBHOOK_ALLOWED_HOSTS' }),
  })
  .openapi('ExportScheduleRequest');

const Schedule = z
  .object({
    schedule_id: z.string(),
    report_type: z.enum(REPORT_TYPES),
    format: z.enum(EXPORT_FORMATS),
    cadence: Cadence,
    filters: z.record(z.string(), z.string()),
    webhook_url: z.string().optional(),
    created_at: z.string().openapi({ description: 'UTC, RFC 3339' }),
    next_run_at: z
      .string()
      .openapi({ description: 'when the current period closes and its export job is created (UTC)' }),
    webhook_secret: z
      .string()
      .optional()
      .openapi({ description: 'HMAC key of X-Tally-Signature; returned once, on creation only' }),
  })
  .openapi('ExportSchedule');

const Run = z
  .object({
    job_id: z.string(),
    period_start: z.string().openapi({ format: 'date' }),
    period_end: z.string().openapi({ format: 'date' }),
    status: z.enum(['queued', 'processing', 'completed', 'failed']),
    created_at: z.string(),
    row_count: z.number().int().optional(),
    bytes: z.number().int().optional(),
    sha256: z.string().optional(),
    expires_at: z.string().optional(),
    download_url: z.string().optional(),
    error: z.string().optional(),
    webhook: z
      .object({
        state: z.enum(['pending', 'delivered', 'gave_up']),
        attempts: z.number().int().min(0),
        last_status: z
          .number()
          .int()
          .optional()
          .openapi({ description: "HTTP status of the receiver's last answer, if it answered" }),
        last_error: z.string().optional(),
      })
      .optional()
      .openapi({
        description:
          'The completion webhook of this run, once a dispatcher has recorded it (schedules with a webhook_url)',
      }),
  })
  .openapi('ExportScheduleRun');

const scheduleIdParam = z
  .string()
  .min(1)
  .max(64)
  .openapi({ param: { name: 'schedule_id', in: 'path' }, example: '7d0c2f1e-3c59-4f7e-9a53-3f0f3c1c9d11' });

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { 'application/json': { schema } },
});

const createScheduleRoute = createRoute({
  method: 'post',
  path: '/reports/export-schedules',
  summary: 'Create a recurring export (daily, weekly or monthly, UTC)',
  description:
    'After each period closes (UTC day; ISO week, Monday first; calendar month) exactly one export job for the ' +
    'whole period is queued, missed periods included. The first period is the one the schedule is created in. ' +
    'Scheduled jobs do not count against EXPORT_JOBS_PER_DAY. With webhook_url, each finished job is POSTed ' +
    'there, signed with X-Tally-Signature (webhook_secret, shown only in this response), at least once ' +
    '(deduplicate on X-Tally-Delivery). A schedule created with an API key stops making jobs once the key is ' +
    'revoked or expires: periods not exported by then are skipped, never caught up.',
  security: SECURITY,
  middleware: [requireScope('report_admin')] as const,
  request: { body: { content: { 'application/json': { schema: ScheduleRequest } }, required: true } },
  responses: {
    201: json(Schedule, 'Created'),
    ...errorResponses(400, 401, 403, 413, 429, 500, 503),
  },
});

const listRoute = createRoute({
  method: 'get',
  path: '/reports/export-schedules',
  summary: "The caller's export schedules, newest first",
  security: SECURITY,
  middleware: [requireScope('report_admin')] as const,
  responses: {
    200: json(z.object({ schedules: z.array(Schedule) }).openapi('ExportScheduleList'), 'The schedules'),
    ...errorResponses(401, 403, 429, 500, 503),
  },
});

const getRoute = createRoute({
  method: 'get',
  path: '/reports/export-schedules/{schedule_id}',
  summary: 'An export schedule (its creator only; anyone else gets 404)',
  security: SECURITY,
  middleware: [requireScope('report_admin')] as const,
  request: { params: z.object({ schedule_id: scheduleIdParam }) },
  responses: { 200: json(Schedule, 'The schedule'), ...errorResponses(400, 401, 403, 404, 429, 500, 503) },
});

const deleteRoute = createRoute({
  method: 'delete',
  path: '/reports/export-schedules/{schedule_id}',
  summary: 'Delete an export schedule: no further jobs; jobs already made stay',
  security: SECURITY,
  middleware: [requireScope('report_admin')] as const,
  request: { params: z.object({ schedule_id: scheduleIdParam }) },
  responses: { 204: { description: 'Deleted' }, ...errorResponses(400, 401, 403, 404, 429, 500, 503) },
});

const runsRoute = createRoute({
  method: 'get',
  path: '/reports/export-schedules/{schedule_id}/runs',
  summary: 'The export jobs a schedule produced, newest period first, with status and download link',
  security: SECURITY,
  middleware: [requireScope('report_admin')] as const,
  request: {
    params: z.object({ schedule_id: scheduleIdParam }),
    query: z.object({ limit: intParam('limit', 1, 1000, 100) }),
  },
  responses: {
    200: json(z.object({ runs: z.array(Run) }).openapi('ExportScheduleRuns'), 'The runs'),
    ...errorResponses(400, 401, 403, 404, 429, 500, 503),
  },
});

type Body = z.infer<typeof ScheduleRequest>;

/** The filters each run replays, checked against the report type and the caller's team binding. */
function scheduleFilters(body: Body, identity: Identity): Record<string, string> {
  const f = body.filters ?? {};
  const out: Record<string, string> = {};
  const put = (k: string, v: string | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  if (body.report_type === 'usage-summary') {
    if (f.severity !== undefined)
      throw new ValidationError('filters.severity', 'applies to system-events only');
    put('user_id', f.user_id);
    put('team_id', effectiveTeam(identity, f.team_id));
    put('service', f.service);
    return out;
  }
  if (identity.teamId !== undefined) {
    throw new Forbidden('system logs are platform-wide; a token bound to a team may not export them');
  }
  if (f.user_id !== undefined) throw new ValidationError('filters.user_id', 'applies to usage-summary only');
  if (f.team_id !== undefined) throw new ValidationError('filters.team_id', 'applies to usage-summary only');
  put('severity', f.severity);
  put('service', f.service);
  return out;
}

const iso = (ms: number) => new Date(ms).toISOString();

function show(s: ExportSchedule, nowMs: number, secret?: string): z.infer<typeof Schedule> {
  return {
    schedule_id: s.schedule_id,
    report_type: s.report_type,
    format: s.format,
    cadence: s.cadence,
    filters: JSON.parse(s.params) as Record<string, string>,
    ...(s.webhook_url ? { webhook_url: s.webhook_url } : {}),
    created_at: iso(s.created_at),
    next_run_at: iso(nextPeriodStart(s.cadence, periodStart(s.cadence, nowMs))),
    ...(secret ? { webhook_secret: secret } : {}),
  };
}

function showRun(deps: ScheduleDeps, r: RunWithJob, nowMs: number): z.infer<typeof Run> {
  const base = {
    job_id: r.job_id,
    period_start: r.period_start,
    period_end: r.period_end,
    status: r.status,
    created_at: iso(r.created_at),
    ...(r.webhook_state
      ? {
          webhook: {
            state: r.webhook_state,
            attempts: r.webhook_attempts,
            ...(r.webhook_last_status ? { last_status: r.webhook_last_status } : {}),
            ...(r.webhook_last_error ? { last_error: r.webhook_last_error } : {}),
          },
        }
      : {}),
  };
  if (r.status === 'failed') return { ...base, error: r.error || 'the export failed' };
  if (r.status !== 'completed') return base;
  const done = {
    ...base,
    row_count: r.rows_written,
    bytes: r.bytes,
    sha256: r.sha256,
    expires_at: iso(r.expires_at),
  };
  if (r.expires_at <= nowMs) return { ...done, error: 'the file has expired' };
  return { ...done, download_url: signedDownloadUrl(deps.exports, r, nowMs).url };
}

export function scheduleRoutes(deps: ScheduleDeps) {
  const now = deps.now ?? Date.now;
  const db = deps.exports.control;
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

  // The caller's own schedule, or 404 whether it is missing or someone else's.
  const own = async (scheduleId: string, identity: Identity) => {
    const s = await getSchedule(db, scheduleId);
    if (!s || s.user_id !== identity.id) throw new NotFound(`no export schedule ${scheduleId}`);
    return s;
  };

  app.openapi(createScheduleRoute, async (c) => {
    const body = c.req.valid('json');
    const identity = c.get('identity');
    const params = scheduleFilters(body, identity);
    if (body.webhook_url !== undefined) {
      const refused = deps.allow.refuseUrl(body.webhook_url);
      if (refused) throw new ValidationError('webhook_url', refused);
    }
    const t = now();
    const secret = body.webhook_url ? `whsec_${randomBytes(32).toString('base64url')}` : '';
    const schedule: ExportSchedule = {
      schedule_id: randomUUID(),
      user_id: identity.id,
      report_type: body.report_type,
      format: body.format,
      cadence: body.cadence,
      params: JSON.stringify(params),
      webhook_url: body.webhook_url ?? '',
      webhook_secret: secret,
      created_at: t,
    };
    // The count and the insert are one transaction under the owner's advisory lock: exact in any number of processes.
    if (!(await createSchedule(db, schedule, deps.perUser))) {
      throw new Forbidden(`at most ${deps.perUser} export schedules per user; delete one first`);
    }
    return c.json(show(schedule, t, secret || undefined), 201);
  });

  app.openapi(listRoute, async (c) => {
    const t = now();
    const list = await schedulesOfUser(db, c.get('identity').id);
    return c.json({ schedules: list.map((s) => show(s, t)) }, 200);
  });

  app.openapi(getRoute, async (c) => {
    const s = await own(c.req.valid('param').schedule_id, c.get('identity'));
    return c.json(show(s, now()), 200);
  });

  app.openapi(deleteRoute, async (c) => {
    const s = await own(c.req.valid('param').schedule_id, c.get('identity'));
    await deleteSchedule(db, s.schedule_id);
    return c.body(null, 204);
  });

  app.openapi(runsRoute, async (c) => {
    const s = await own(c.req.valid('param').schedule_id, c.get('identity'));
    const runs = await runsOf(db, s.schedule_id, c.req.valid('query').limit ?? 100);
    const t = now();
    c.header('Cache-Control', 'no-store');
    return c.json({ runs: runs.map((r) => showRun(deps, r, t)) }, 200);
  });
  return app;
}
