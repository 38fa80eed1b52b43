// GET /downloads/:job_id?exp&kid&sig: the signed link of a completed export, served without further auth.
// The file is found through the job record (never a path from the request), streamed with Content-Length,
// and single byte ranges are honoured (206 / 416) so large files can be fetched in parts or resumed.
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { getJob } from '../../control/jobs.ts';
import { Forbidden } from '../../core/errors.ts';
import { verifyLink } from '../../core/exports/signing.ts';
import type { AppEnv } from '../env.ts';
import type { ExportDeps } from '../exports/deps.ts';
import { ErrorSchema, errorResponses } from '../params.ts';
import { validationHook } from '../validation.ts';

const CONTENT_TYPE = { csv: 'text/csv; charset=utf-8', parquet: 'application/vnd.apache.parquet' } as const;

const FILE_HEADERS = {
  'Content-Disposition': { schema: { type: 'string' as const }, description: 'attachment; filename=...' },
  'Content-Length': { schema: { type: 'integer' as const } },
  'Cache-Control': { schema: { type: 'string' as const }, description: 'no-store' },
  'Accept-Ranges': { schema: { type: 'string' as const }, description: 'bytes' },
};
const FILE_CONTENT = {
  'text/csv': { schema: z.string().openapi({ description: 'CSV with a header row' }) },
  'application/vnd.apache.parquet': { schema: z.string().openapi({ format: 'binary' }) },
};

const route = createRoute({
  method: 'get',
  path: '/downloads/{job_id}',
  summary: 'Download a completed export through its signed link (no other auth)',
  description:
    'The download_url of GET /reports/export/{job_id}. A tampered, foreign or expired link is 403 (the ' +
    'signature is checked before any lookup). At most DOWNLOAD_RATE_LIMIT_PER_MINUTE requests per client ' +
    'address in any minute (429 with Retry-After). ' +
    'Range: bytes=a-b (one range) answers 206; a range past the end 416.',
  security: [],
  request: {
    params: z.object({
      job_id: z
        .string()
        .min(1)
        .max(64)
        .openapi({ param: { name: 'job_id', in: 'path' } }),
    }),
    query: z.object({
      exp: z
        .string()
        .regex(/^[0-9]{1,12}$/, { error: 'must be a Unix time in seconds' })
        .openapi({ param: { name: 'exp', in: 'query' } }),
      kid: z
        .string()
        .min(1)
        .max(64)
        .openapi({ param: { name: 'kid', in: 'query' } }),
      sig: z
        .string()
        .min(1)
        .max(128)
        .openapi({ param: { name: 'sig', in: 'query' } }),
    }),
  },
  responses: {
    200: { description: 'The whole file', headers: FILE_HEADERS, content: FILE_CONTENT },
    206: {
      description: 'The requested byte range',
      headers: {
        ...FILE_HEADERS,
        'Content-Range': { schema: { type: 'string' as const }, description: 'bytes a-b/size' },
      },
      content: FILE_CONTENT,
    },
    416: {
      description: 'Range not satisfiable',
      headers: { 'Content-Range': { schema: { type: 'string' as const }, description: 'bytes */size' } },
      content: { 'application/json': { schema: ErrorSchema } },
    },
    ...errorResponses(400, 403, 429, 500, 503),
  },
});

export type ByteRange = { start: number; end: number } | 'unsatisfiable' | undefined;

/** One `bytes=` range against a size; undefined (serve it all) for none, several, or a malformed header. */
export function parseRange(header: string | undefined, size: number): ByteRange {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}

/** A download name of safe characters only, whatever the report. */
function attachmentName(reportType: string, jobId: string, ext: string): string {
  return `tally-${reportType}-${jobId}.${ext}`.replace(/[^A-Za-z0-9._-]/g, '_');
}

export function downloadRoutes(deps: ExportDeps) {
  const now = deps.now ?? Date.now;
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(route, async (c) => {
    const { job_id } = c.req.valid('param');
    const { exp, kid, sig } = c.req.valid('query');
    const denied =
      'this download link is invalid or has expired; ask GET /reports/export/{job_id} for a new one';
    // The signature and expiry first: a forged or stale link never reaches the storage.
    const check = verifyLink(deps.keys, job_id, { exp: Number(exp), kid, sig }, now());
    if (check !== 'ok' || !/^[0-9a-f-]{36}$/.test(job_id)) throw new Forbidden(denied);
    const job = await getJob(deps.control, job_id);
    if (job?.status !== 'completed' || job.expires_at <= now()) throw new Forbidden(denied);
    const size = deps.store.size(job.file_name);
    if (size === undefined) throw new Forbidden(denied);
    const range = parseRange(c.req.header('range'), size);
    c.header('Content-Type', CONTENT_TYPE[job.format]);
    c.header(
      'Content-Disposition',
      `attachment; filename="${attachmentName(job.report_type, job.job_id, job.format)}"`,
    );
    c.header('Cache-Control', 'no-store');
    c.header('Accept-Ranges', 'bytes');
    c.header('ETag', `"${job.sha256}"`);
    if (range === 'unsatisfiable') {
      c.header('Content-Range', `bytes */${size}`);
      c.header('Content-Type', 'application/json');
      return c.json({ error: 'Range Not Satisfiable', message: `the file has ${size} bytes` }, 416);
    }
    const { start, end } = range ?? { start: 0, end: size - 1 };
    const path = deps.store.path(job.file_name);
    const body =
      size === 0
        ? new ReadableStream<Uint8Array>({ start: (ctl) => ctl.close() })
        : (Readable.toWeb(createReadStream(path, { start, end })) as ReadableStream<Uint8Array>);
    c.header('Content-Length', String(Math.max(end - start + 1, 0)));
    if (range) {
      c.header('Content-Range', `bytes ${start}-${end}/${size}`);
      return c.body(body, 206);
    }
    return c.body(body, 200);
  });
  return app;
}
