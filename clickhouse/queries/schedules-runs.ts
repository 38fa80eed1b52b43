// The export_schedule_runs table, and the first row of a scheduled export job: both written with a dedup token
// derived from the job id, so a second scheduler writing the same period adds nothing.
import type { ClickHouseSettings } from '@clickhouse/client';
import { type ClickHouse, INSERT_SETTINGS } from '../client.ts';
import type { ExportJob, JobStatus } from './exports-jobs.ts';
import type { BuiltQuery } from './query.ts';

export interface ScheduleRun {
  schedule_id: string;
  period_start: string;
  period_end: string;
  job_id: string;
  user_id: string;
  created_at: number;
}

/** A run with its job's current state, for GET /reports/export-schedules/:id/runs. */
export interface RunWithJob extends ScheduleRun {
  status: JobStatus;
  rows_written: number;
  bytes: number;
  sha256: string;
  expires_at: number;
  error: string;
  /** The job's webhook delivery (webhook_deliveries), once a dispatcher has recorded one; '' before. */
  webhook_state: '' | 'pending' | 'delivered' | 'gave_up';
  webhook_attempts: number;
  webhook_last_status: number;
  webhook_last_error: string;
}

/** Periods of each live schedule whose run row and job both exist: the ones a scheduler must not redo. */
export function buildDonePeriodsQuery(): BuiltQuery {
  return {
    query: `SELECT schedule_id, groupArray(toString(period_start)) AS periods
      FROM export_schedule_runs FINAL
      WHERE job_id IN (SELECT job_id FROM export_jobs)
      GROUP BY schedule_id`,
    query_params: {},
  };
}

/** A schedule's runs, newest period first, each with its job's newest version. */
export function buildRunsQuery(scheduleId: string, limit: number): BuiltQuery {
  return {
    query: `SELECT r.schedule_id AS schedule_id, toString(r.period_start) AS period_start,
        toString(r.period_end) AS period_end, r.job_id AS job_id, r.user_id AS user_id,
        toUnixTimestamp64Milli(r.created_at) AS created_at, toString(j.status) AS status,
        j.rows_written AS rows_written, j.bytes AS bytes, j.sha256 AS sha256,
        toUnixTimestamp64Milli(j.expires_at) AS expires_at, j.error AS error,
        d.state AS webhook_state, d.attempts AS webhook_attempts, d.last_status AS webhook_last_status,
        d.last_error AS webhook_last_error
      FROM (SELECT * FROM export_schedule_runs FINAL WHERE schedule_id = {id:String}) AS r
      INNER JOIN (
        SELECT * FROM export_jobs FINAL
        WHERE job_id IN (SELECT job_id FROM export_schedule_runs WHERE schedule_id = {id:String})
      ) AS j ON j.job_id = r.job_id
      LEFT JOIN (
        SELECT job_id, toString(state) AS state, attempts, last_status, last_error FROM webhook_deliveries FINAL
        WHERE job_id IN (SELECT job_id FROM export_schedule_runs WHERE schedule_id = {id:String})
      ) AS d ON d.job_id = r.job_id
      ORDER BY r.period_start DESC
      LIMIT {limit:UInt32}
      SETTINGS join_use_nulls = 0`,
    query_params: { id: scheduleId, limit },
  };
}

/** The run (and so the schedule) that produced a job, if any. */
export function buildRunOfJobQuery(jobId: string): BuiltQuery {
  return {
    query: `SELECT schedule_id, toString(period_start) AS period_start, toString(period_end) AS period_end,
        job_id, user_id, toUnixTimestamp64Milli(created_at) AS created_at
      FROM export_schedule_runs FINAL WHERE job_id = {job_id:String} LIMIT 1`,
    query_params: { job_id: jobId },
  };
}

export async function donePeriods(ch: ClickHouse): Promise<Map<string, Set<string>>> {
  const rs = await ch.client.query({ ...buildDonePeriodsQuery(), format: 'JSONEachRow' });
  const rows = await rs.json<{ schedule_id: string; periods: string[] }>();
  return new Map(rows.map((r) => [r.schedule_id, new Set(r.periods)]));
}

type RawRun = Record<keyof RunWithJob, string | number>;

export async function runsOf(ch: ClickHouse, scheduleId: string, limit: number): Promise<RunWithJob[]> {
  const rs = await ch.client.query({ ...buildRunsQuery(scheduleId, limit), format: 'JSONEachRow' });
  return (await rs.json<RawRun>()).map((r) => ({
    schedule_id: String(r.schedule_id),
    period_start: String(r.period_start),
    period_end: String(r.period_end),
    job_id: String(r.job_id),
    user_id: String(r.user_id),
    created_at: Number(r.created_at),
    status: String(r.status) as JobStatus,
    rows_written: Number(r.rows_written),
    bytes: Number(r.bytes),
    sha256: String(r.sha256),
    expires_at: Number(r.expires_at),
    error: String(r.error),
    webhook_state: String(r.webhook_state ?? '') as RunWithJob['webhook_state'],
    webhook_attempts: Number(r.webhook_attempts ?? 0),
    webhook_last_status: Number(r.webhook_last_status ?? 0),
    webhook_last_error: String(r.webhook_last_error ?? ''),
  }));
}

export async function runOfJob(ch: ClickHouse, jobId: string): Promise<ScheduleRun | undefined> {
  const rs = await ch.client.query({ ...buildRunOfJobQuery(jobId), format: 'JSONEachRow' });
  const [r] = await rs.json<Record<keyof ScheduleRun, string | number>>();
  if (!r) return undefined;
  return {
    schedule_id: String(r.schedule_id),
    period_start: String(r.period_start),
    period_end: String(r.period_end),
    job_id: String(r.job_id),
    user_id: String(r.user_id),
    created_at: Number(r.created_at),
  };
}

const time = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('Z', '');

// Every setting these inserts rely on, stated in full: the embedded engine keeps per-query settings for the
// session, and a token left over from one insert must never apply to another.
const tokenSettings = (token: string): ClickHouseSettings => ({
  ...INSERT_SETTINGS,
  insert_deduplication_token: token,
});

export async function writeRun(ch: ClickHouse, run: ScheduleRun): Promise<void> {
  await ch.client.insert({
    table: 'export_schedule_runs',
    values: [{ ...run, created_at: time(run.created_at) }],
    format: 'JSONEachRow',
    clickhouse_settings: tokenSettings(`run/${run.job_id}`),
  });
}

/**
 * The first row of a scheduled job. Its version is 1, below every version a worker writes (microsecond
 * timestamps), so a duplicate of this row, written at any later time by a scheduler that lost a race, can
 * never hide the job's real state; the token (with the table's dedup window) usually keeps it from being
 * stored at all.
 */
export async function insertScheduledJob(ch: ClickHouse, job: ExportJob): Promise<void> {
  await ch.client.insert({
    table: 'export_jobs',
    values: [
      {
        ...job,
        version: 1,
        lease_expires_at: time(job.lease_expires_at),
        expires_at: time(job.expires_at),
        created_at: time(job.created_at),
        updated_at: time(job.updated_at),
      },
    ],
    format: 'JSONEachRow',
    clickhouse_settings: tokenSettings(`job/${job.job_id}`),
  });
}
