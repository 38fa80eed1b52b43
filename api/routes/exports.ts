// POST /reports/export queues an export job (report_admin, daily quota, Idempotency-Key); GET
// /reports/export/:job_id tells its creator how it goes and, once completed, hands out a signed download link.

import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type ExportJob, getJob } from '../../control/jobs.ts';
import { Forbidden, NotFound, ValidationError } from '../../core/errors.ts';
import { EXPORT_FORMATS, REPORT_TYPES } from '../../core/exports/formats.ts';
import { signedDownloadUrl } from '../../core/exports/link.ts';
import type { AppEnv } from '../env.ts';
import type { ExportDeps } from '../exports/deps.ts';
import { effectiveTeam, requireScope } from '../middleware/auth.ts';
import {
  checkRange,
  csvEscapeField,
  errorResponses,
  exportFormatField,
  idField,
  isCalendarDate,
  reportTypeField,
  SECURITY,
  severityField,
} from '../params.ts';
import { validationHook } from '../validation.ts';

const date = z
  .string({ error: 'must be a string' })
  .refine(isCalendarDate, { error: 'must be a calendar date YYYY-MM-DD (UTC, 1970..2148)' })
  .openapi({ format: 'date', example: '2025-01-01' });
const ExportRequest = z
  .strictObject({
    report_type: reportTypeField,
    format: exportFormatField,
    start_date: date.optional().openapi({ description: 'required for usage-summary' }),
    end_date: date.optional().openapi({ description: 'required for usage-summary' }),
    user_id: idField(256).optional().openapi({ description: 'usage-summary only' }),
    team_id: idField(256).optional().openapi({ description: 'usage-summary only' }),
    service: idField(128).optional(),
    severity: severityField.optional().openapi({ description: 'system-events only' }),
    csv_escape: csvEscapeField,
  })
  .openapi('ExportRequest');

const JobStatus = z.enum(['queued', 'processing', 'completed', 'failed']);

const ExportAccepted = z.object({ job_id: z.string(), status: JobStatus }).openapi('ExportAccepted');

const ExportJobStatus = z
  .object({
    job_id: z.string(),
    status: JobStatus,
    report_type: z.enum(REPORT_TYPES),
    format: z.enum(EXPORT_FORMATS),
    created_at: z.string().openapi({ description: 'UTC, RFC 3339' }),
    rows_written: z.number().int().optional().openapi({ description: 'rows written so far (processing)' }),
    row_count: z.number().int().optional().openapi({ description: 'rows in the file (completed)' }),
    bytes: z.number().int().optional().openapi({ description: 'size of the file (completed)' }),
    sha256: z.string().optional().openapi({ description: 'hex SHA-256 of the file (completed)' }),
    expires_at: z.string().optional().openapi({ description: 'when the file is deleted (completed)' }),
    download_url: z
      .string()
      .optional()
      .openapi({ description: 'absolute, signed, valid EXPORT_URL_TTL_SECONDS (completed, not expired)' }),
    error: z.string().optional().openapi({ description: 'why it failed (failed)' }),
  })
  .openapi('ExportJob');

const createJobRoute = createRoute({
  method: 'post',
  path: '/reports/export',
  summary: 'Queue an export job (CSV or Parquet)',
  description:
    'usage-summary: one row per (UTC date, team_id): date, team_id, active_users, total_sessions, total_users ' +
    '(start_date and end_date required). system-events: timestamp, severity, service, message, event_id, newest ' +
    'first. CSV cells starting with = + - @ tab or CR get a leading quote, unless csv_escape is none. EXPORT_JOBS_PER_DAY jobs per user ' +
    'per UTC day (429 with Retry-After past it). The same Idempotency-Key (same user) returns the same job ' +
    'without spending quota.',
  security: SECURITY,
  middleware: [requireScope('report_admin')] as const,
  request: {
    headers: z.object({
      'idempotency-key': z
        .string()
        .min(1)
        .max(256)
        .optional()
        .openapi({
          param: { name: 'idempotency-key', in: 'header' },
          description: 'Idempotency-Key: repeat-safe creation',
        }),
    }),
    body: { content: { 'application/json': { schema: ExportRequest } }, required: true },
  },
  responses: {
    202: {
      description: 'Queued (or the job of this Idempotency-Key)',
      content: { 'application/json': { schema: ExportAccepted } },
    },
    ...errorResponses(400, 401, 403, 413, 429, 500, 503),
  },
});

const jobIdParam = z
  .string()
  .min(1)
  .max(64)
  .openapi({ param: { name: 'job_id', in: 'path' }, example: '0b6c2f1e-3c59-4f7e-9a53-3f0f3c1c9d11' });

const statusRoute = createRoute({
  method: 'get',
  path: '/reports/export/{job_id}',
  summary: 'An export job: status, progress and, when completed, a signed download link',
  description: 'Only the job creator sees it; anyone else gets 404.',
  security: SECURITY,
  middleware: [requireScope('report_admin')] as const,
  request: { params: z.object({ job_id: jobIdParam }) },
  responses: {
    200: { description: 'The job', content: { 'application/json': { schema: ExportJobStatus } } },
    ...errorResponses(400, 401, 403, 404, 429, 500, 503),
  },
});

const iso = (ms: number) => new Date(ms).toISOString();

function describe(deps: ExportDeps, job: ExportJob, nowMs: number): z.infer<typeof ExportJobStatus> {
  const base = {
    job_id: job.job_id,
    status: job.status,
    report_type: job.report_type,
    format: job.format,
    created_at: iso(job.created_at),
  };
  switch (job.status) {
    case 'queued':
      return base;
    case 'processing':
      return { ...base, rows_written: job.rows_written };
    case 'failed':
      return { ...base, error: job.error || 'the export failed' };
    case 'completed': {
      const live = job.expires_at > nowMs;
      return {
        ...base,
        row_count: job.rows_written,
        bytes: job.bytes,
        sha256: job.sha256,
        expires_at: iso(job.expires_at),
        ...(live
          ? { download_url: signedDownloadUrl(deps, job, nowMs).url }
          : { error: 'the file has expired' }),
      };
    }
  }
}

type ExportBody = z.infer<typeof ExportRequest>;

/** The filters the worker replays, checked against the report type and the caller's team binding. */
function jobParams(body: ExportBody, teamBound: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  const put = (k: string, v: string | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  checkRange(body.start_date, body.end_date);
  if (body.report_type === 'usage-summary') {
    if (body.start_date === undefined)
      throw new ValidationError('start_date', 'is required for usage-summary');
    if (body.end_date === undefined) throw new ValidationError('end_date', 'is required for usage-summary');
    if (body.severity !== undefined) throw new ValidationError('severity', 'applies to system-events only');
    put('start_date', body.start_date);
    put('end_date', body.end_date);
    put('user_id', body.user_id);
    put('team_id', teamBound);
    put('service', body.service);
    if (body.csv_escape === 'none') put('csv_escape', 'none');
    return out;
  }
  if (body.user_id !== undefined) throw new ValidationError('user_id', 'applies to usage-summary only');
  if (body.team_id !== undefined) throw new ValidationError('team_id', 'applies to usage-summary only');
  put('severity', body.severity);
  put('service', body.service);
  put('start_date', body.start_date);
  put('end_date', body.end_date);
  if (body.csv_escape === 'none') put('csv_escape', 'none');
  return out;
}

export function exportRoutes(deps: ExportDeps) {
  const now = deps.now ?? Date.now;
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

  app.openapi(createJobRoute, async (c) => {
    const body = c.req.valid('json');
    const identity = c.get('identity');
    if (body.report_type === 'system-events' && identity.teamId !== undefined) {
      throw new Forbidden('system logs are platform-wide; a token bound to a team may not export them');
    }
    const team = body.report_type === 'usage-summary' ? effectiveTeam(identity, body.team_id) : undefined;
    const params = jobParams(body, team);
    const { job, created } = await deps.admission.admit(
      {
        userId: identity.id,
        reportType: body.report_type,
        format: body.format,
        params,
        idempotencyKey: c.req.valid('header')['idempotency-key'],
      },
      (jobId) => deps.store.fileName(jobId, body.format),
    );
    if (created) deps.onQueued?.();
    return c.json({ job_id: job.job_id, status: job.status }, 202);
  });

  app.openapi(statusRoute, async (c) => {
    const { job_id } = c.req.valid('param');
    const job = await getJob(deps.control, job_id);
    // Someone else's job is indistinguishable from no job.
    if (!job || job.user_id !== c.get('identity').id) throw new NotFound(`no export job ${job_id}`);
    c.header('Cache-Control', 'no-store');
    return c.json(describe(deps, job, now()), 200);
  });
  return app;
}
