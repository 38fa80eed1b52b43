// The export_jobs table's reads and writes: every state change is a new row version (ReplacingMergeTree), read
// back with FINAL so the newest version of each job is what every replica and worker sees.
import { type ClickHouse, INSERT_SETTINGS } from '../client.ts';
import type { BuiltQuery } from './query.ts';

export type JobStatus = 'queued' | 'processing' | 'completed' | 'failed';
export type ReportType = 'usage-summary' | 'system-events';
export type ExportFormat = 'csv' | 'parquet';

/** One version of a job, as the service uses it (times in ms since the epoch, UTC). */
export interface ExportJob {
  job_id: string;
  user_id: string;
  /** UTC day of creation, YYYY-MM-DD: what the daily quota counts. */
  day: string;
  idempotency_key: string;
  report_type: ReportType;
  format: ExportFormat;
  /** The validated filters, JSON. */
  params: string;
  status: JobStatus;
  attempts: number;
  lease_owner: string;
  lease_expires_at: number;
  rows_written: number;
  bytes: number;
  sha256: string;
  file_name: string;
  expires_at: number;
  error: string;
  created_at: number;
  updated_at: number;
  version: number;
}

const COLUMNS = `job_id, user_id, toString(day) AS day, idempotency_key, toString(report_type) AS report_type,
  toString(format) AS format, params, toString(status) AS status, attempts, lease_owner,
  toUnixTimestamp64Milli(lease_expires_at) AS lease_expires_at, rows_written, bytes, sha256, file_name,
  toUnixTimestamp64Milli(expires_at) AS expires_at, error, toUnixTimestamp64Milli(created_at) AS created_at,
  toUnixTimestamp64Milli(updated_at) AS updated_at, version`;

/**
 * The newest version of the jobs matching `where`, as ExportJob columns. The filter runs in an inner query:
 * the outer aliases (times as ms, enums as text) would otherwise shadow the columns inside WHERE.
 */
function selectJobs(where: string, tail = ''): string {
  return `SELECT ${COLUMNS} FROM (SELECT * FROM export_jobs FINAL WHERE ${where} ${tail})`;
}

export function buildJobByIdQuery(jobId: string): BuiltQuery {
  return {
    query: selectJobs('job_id = {job_id:String}'),
    query_params: { job_id: jobId },
  };
}

export function buildJobByIdempotencyKeyQuery(userId: string, key: string): BuiltQuery {
  return {
    query: selectJobs(
      "user_id = {user_id:String} AND idempotency_key = {key:String} AND idempotency_key != ''",
      'ORDER BY created_at LIMIT 1',
    ),
    query_params: { user_id: userId, key },
  };
}

/** Jobs a user created on a UTC day, whatever became of them: each one spent quota. */
export function buildJobsOnDayQuery(userId: string, day: string): BuiltQuery {
  return {
    query: 'SELECT count() AS n FROM export_jobs FINAL WHERE user_id = {user_id:String} AND day = {day:Date}',
    query_params: { user_id: userId, day },
  };
}

/** The oldest job a worker may take: queued, or processing under a lease that has run out (its worker died). */
export function buildClaimableQuery(nowMs: number): BuiltQuery {
  return {
    query: selectJobs(
      "status = 'queued' OR (status = 'processing' AND lease_expires_at < fromUnixTimestamp64Milli({now_ms:Int64}, 'UTC'))",
      'ORDER BY created_at, job_id LIMIT 1',
    ),
    query_params: { now_ms: nowMs },
  };
}

/** Files that must stay: completed and not expired, or being written under a live lease. */
export function buildLiveFilesQuery(nowMs: number): BuiltQuery {
  return {
    query: `SELECT job_id, toString(status) AS status_text, file_name FROM export_jobs FINAL
      WHERE (status = 'completed' AND expires_at >= fromUnixTimestamp64Milli({now_ms:Int64}, 'UTC'))
         OR status IN ('queued', 'processing')`,
    query_params: { now_ms: nowMs },
  };
}

type Raw = Record<keyof ExportJob, string | number>;

function fromRaw(r: Raw): ExportJob {
  return {
    job_id: String(r.job_id),
    user_id: String(r.user_id),
    day: String(r.day),
    idempotency_key: String(r.idempotency_key),
    report_type: String(r.report_type) as ReportType,
    format: String(r.format) as ExportFormat,
    params: String(r.params),
    status: String(r.status) as JobStatus,
    attempts: Number(r.attempts),
    lease_owner: String(r.lease_owner),
    lease_expires_at: Number(r.lease_expires_at),
    rows_written: Number(r.rows_written),
    bytes: Number(r.bytes),
    sha256: String(r.sha256),
    file_name: String(r.file_name),
    expires_at: Number(r.expires_at),
    error: String(r.error),
    created_at: Number(r.created_at),
    updated_at: Number(r.updated_at),
    version: Number(r.version),
  };
}

async function many(ch: ClickHouse, q: BuiltQuery): Promise<ExportJob[]> {
  const rs = await ch.client.query({ ...q, format: 'JSONEachRow' });
  return (await rs.json<Raw>()).map(fromRaw);
}

export async function getJob(ch: ClickHouse, jobId: string): Promise<ExportJob | undefined> {
  return (await many(ch, buildJobByIdQuery(jobId)))[0];
}

export async function findJobByIdempotencyKey(
  ch: ClickHouse,
  userId: string,
  key: string,
): Promise<ExportJob | undefined> {
  return (await many(ch, buildJobByIdempotencyKeyQuery(userId, key)))[0];
}

export async function countJobsOnDay(ch: ClickHouse, userId: string, day: string): Promise<number> {
  const rs = await ch.client.query({ ...buildJobsOnDayQuery(userId, day), format: 'JSONEachRow' });
  const [row] = await rs.json<{ n: string | number }>();
  return Number(row?.n ?? 0);
}

export async function nextClaimableJob(ch: ClickHouse, nowMs: number): Promise<ExportJob | undefined> {
  return (await many(ch, buildClaimableQuery(nowMs)))[0];
}

export async function liveFiles(
  ch: ClickHouse,
  nowMs: number,
): Promise<Array<{ job_id: string; status: JobStatus; file_name: string }>> {
  const rs = await ch.client.query({ ...buildLiveFilesQuery(nowMs), format: 'JSONEachRow' });
  const rows = await rs.json<{ job_id: string; status_text: JobStatus; file_name: string }>();
  return rows.map((r) => ({ job_id: r.job_id, status: r.status_text, file_name: r.file_name }));
}

let lastVersion = 0;

/** Versions increase within a process even when the clock does not move (microseconds, then +1). */
export function nextVersion(nowMs: number = Date.now()): number {
  lastVersion = Math.max(lastVersion + 1, nowMs * 1000);
  return lastVersion;
}

const time = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('Z', '');

/** Writes a new version of a job (its `version` must exceed the previous one's). */
export async function writeJob(ch: ClickHouse, job: ExportJob): Promise<void> {
  await ch.client.insert({
    table: 'export_jobs',
    values: [
      {
        ...job,
        lease_expires_at: time(job.lease_expires_at),
        expires_at: time(job.expires_at),
        created_at: time(job.created_at),
        updated_at: time(job.updated_at),
      },
    ],
    format: 'JSONEachRow',
    // No dedup window on this table, so an empty token changes nothing; stated so no earlier token leaks in.
    clickhouse_settings: { ...INSERT_SETTINGS, insert_deduplication_token: '' },
  });
}
