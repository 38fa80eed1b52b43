// Export schedules and their runs. A run is the row (schedule, period): its primary key makes "one job per
// period" a constraint, and the run and its job are inserted in one transaction, so a period is either done
// (with its job, or skipped on purpose) or not started, whatever number of schedulers race on it.
import type { ExportFormat } from '../core/exports/formats.ts';
import type { Row, Sql } from './db.ts';
import { type ExportJob, insertJob, type JobStatus, type NewJob, type ReportType } from './jobs.ts';

export type Cadence = 'daily' | 'weekly' | 'monthly';

export interface ExportSchedule {
  schedule_id: string;
  user_id: string;
  report_type: ReportType;
  format: ExportFormat;
  cadence: Cadence;
  /** The validated filters, JSON, without dates (each run adds its period's). */
  params: string;
  webhook_url: string;
  webhook_secret: string;
  created_at: number;
}

export interface ScheduleRun {
  schedule_id: string;
  period_start: string;
  period_end: string;
  /** '' for a period skipped on purpose. */
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
  /** The job's webhook delivery, once its job finished; '' before (or without a webhook). */
  webhook_state: '' | 'pending' | 'delivered' | 'gave_up';
  webhook_attempts: number;
  webhook_last_status: number;
  webhook_last_error: string;
}

const COLUMNS =
  'schedule_id, user_id, report_type, format, cadence, params, webhook_url, webhook_secret, created_at';

function fromRow(r: Row): ExportSchedule {
  return {
    schedule_id: String(r.schedule_id),
    user_id: String(r.user_id),
    report_type: String(r.report_type) as ReportType,
    format: String(r.format) as ExportFormat,
    cadence: String(r.cadence) as Cadence,
    params: String(r.params),
    webhook_url: String(r.webhook_url),
    webhook_secret: String(r.webhook_secret),
    created_at: Number(r.created_at),
  };
}

export async function getSchedule(db: Sql, scheduleId: string): Promise<ExportSchedule | undefined> {
  const [r] = await db.query(
    `SELECT ${COLUMNS} FROM export_schedules WHERE schedule_id = $1 AND NOT deleted`,
    [scheduleId],
  );
  return r ? fromRow(r) : undefined;
}

/** A user's live schedules, newest first. */
export async function schedulesOfUser(db: Sql, userId: string): Promise<ExportSchedule[]> {
  const rows = await db.query(
    `SELECT ${COLUMNS} FROM export_schedules WHERE user_id = $1 AND NOT deleted
     ORDER BY created_at DESC, schedule_id`,
    [userId],
  );
  return rows.map(fromRow);
}

/** Every live schedule: what the scheduler walks each tick. */
export async function liveSchedules(db: Sql): Promise<ExportSchedule[]> {
  const rows = await db.query(
    `SELECT ${COLUMNS} FROM export_schedules WHERE NOT deleted ORDER BY created_at, schedule_id`,
  );
  return rows.map(fromRow);
}

/**
 * Creates a schedule unless its owner has `perUser` live ones already: false then. The owner's advisory lock
 * (transaction-scoped) makes the count and the insert one step across processes.
 */
export function createSchedule(
  db: { transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> },
  s: ExportSchedule,
  perUser: number,
): Promise<boolean> {
  return db.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock(hashtext('schedules:' || $1))", [s.user_id]);
    const [n] = await tx.query(
      'SELECT count(*) AS n FROM export_schedules WHERE user_id = $1 AND NOT deleted',
      [s.user_id],
    );
    if (Number(n?.n ?? 0) >= perUser) return false;
    await tx.query(`INSERT INTO export_schedules (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, [
      s.schedule_id,
      s.user_id,
      s.report_type,
      s.format,
      s.cadence,
      s.params,
      s.webhook_url,
      s.webhook_secret,
      s.created_at,
    ]);
    return true;
  });
}

export async function deleteSchedule(db: Sql, scheduleId: string): Promise<void> {
  await db.query('UPDATE export_schedules SET deleted = true WHERE schedule_id = $1', [scheduleId]);
}

/** The periods of each live schedule that have a run row (done, or skipped on purpose). */
export async function donePeriods(db: Sql): Promise<Map<string, Set<string>>> {
  const rows = await db.query(
    `SELECT r.schedule_id, r.period_start::text AS period_start FROM export_schedule_runs r
     JOIN export_schedules s ON s.schedule_id = r.schedule_id WHERE NOT s.deleted`,
  );
  const out = new Map<string, Set<string>>();
  for (const r of rows) {
    const id = String(r.schedule_id);
    const set = out.get(id) ?? new Set<string>();
    set.add(String(r.period_start));
    out.set(id, set);
  }
  return out;
}

/**
 * One period's run and its job, in one transaction: the run row is inserted first and, when another scheduler
 * has it already, nothing else happens (false). `job` undefined records the period as skipped.
 */
export function startRun(
  db: { transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> },
  run: Omit<ScheduleRun, 'job_id'>,
  job: NewJob | undefined,
): Promise<boolean> {
  return db.transaction(async (tx) => {
    const inserted = await tx.query(
      `INSERT INTO export_schedule_runs (schedule_id, period_start, period_end, job_id, user_id, created_at)
       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING schedule_id`,
      [run.schedule_id, run.period_start, run.period_end, job?.job_id ?? null, run.user_id, run.created_at],
    );
    if (inserted.length === 0) return false;
    if (job && !(await insertJob(tx, job)))
      throw new Error(`scheduled job ${job.job_id} exists without its run`);
    return true;
  });
}

/** A schedule's runs that made a job, newest period first, each with its job's state and its webhook's. */
export async function runsOf(db: Sql, scheduleId: string, limit: number): Promise<RunWithJob[]> {
  const rows = await db.query(
    `SELECT r.schedule_id, r.period_start::text AS period_start, r.period_end::text AS period_end, r.job_id,
       r.user_id, r.created_at, j.status, j.rows_written, j.bytes, j.sha256, j.expires_at, j.error,
       coalesce(d.state, '') AS webhook_state, coalesce(d.attempts, 0) AS webhook_attempts,
       coalesce(d.last_status, 0) AS webhook_last_status, coalesce(d.last_error, '') AS webhook_last_error
     FROM export_schedule_runs r
     JOIN export_jobs j ON j.job_id = r.job_id
     LEFT JOIN webhook_deliveries d ON d.job_id = r.job_id
     WHERE r.schedule_id = $1
     ORDER BY r.period_start DESC LIMIT $2`,
    [scheduleId, limit],
  );
  return rows.map((r) => ({
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
    webhook_state: String(r.webhook_state) as RunWithJob['webhook_state'],
    webhook_attempts: Number(r.webhook_attempts),
    webhook_last_status: Number(r.webhook_last_status),
    webhook_last_error: String(r.webhook_last_error),
  }));
}

export type { ExportJob };
