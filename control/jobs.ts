// Export jobs and the export quota. Each step is one statement or one transaction: admission (Idempotency-Key,
// quota, insert) is one transaction; a claim is one UPDATE over a row chosen FOR UPDATE SKIP LOCKED; every
// later write names the lease it holds, so a worker that lost its lease changes nothing.

import type { ExportFormat, ReportType } from '../core/exports/formats.ts';
import type { Row, Sql } from './db.ts';

export type JobStatus = 'queued' | 'processing' | 'completed' | 'failed';
export type { ReportType };

/** A job as the service uses it (times in ms since the epoch, UTC). */
export interface ExportJob {
  job_id: string;
  user_id: string;
  /** UTC day of creation, YYYY-MM-DD (a scheduled job: its period's first day). */
  day: string;
  /** '' when the request had none. */
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
}

export const JOB_COLUMNS = `job_id, user_id, day::text AS day, coalesce(idempotency_key, '') AS idempotency_key,
  report_type, format, params, status, attempts, lease_owner, lease_expires_at, rows_written, bytes, sha256,
  file_name, expires_at, error, created_at, updated_at`;

export function jobFromRow(r: Row): ExportJob {
  return {
    job_id: String(r.job_id),
    user_id: String(r.user_id),
    day: String(r.day),
    idempotency_key: String(r.idempotency_key ?? ''),
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
  };
}

const one = async (rows: Promise<Row[]>) => {
  const [r] = await rows;
  return r ? jobFromRow(r) : undefined;
};

export function getJob(db: Sql, jobId: string): Promise<ExportJob | undefined> {
  return one(db.query(`SELECT ${JOB_COLUMNS} FROM export_jobs WHERE job_id = $1`, [jobId]));
}

export function findJobByIdempotencyKey(
  db: Sql,
  userId: string,
  key: string,
): Promise<ExportJob | undefined> {
  return one(
    db.query(`SELECT ${JOB_COLUMNS} FROM export_jobs WHERE user_id = $1 AND idempotency_key = $2`, [
      userId,
      key,
    ]),
  );
}

/** A new queued job's row: what the admission and the scheduler insert (the rest starts empty). */
export type NewJob = Pick<
  ExportJob,
  | 'job_id'
  | 'user_id'
  | 'day'
  | 'idempotency_key'
  | 'report_type'
  | 'format'
  | 'params'
  | 'file_name'
  | 'created_at'
>;

/** Inserts a queued job unless its id or (user, Idempotency-Key) is taken; the new job, or undefined. */
export function insertJob(db: Sql, j: NewJob): Promise<ExportJob | undefined> {
  return one(
    db.query(
      `INSERT INTO export_jobs (job_id, user_id, day, idempotency_key, report_type, format, params, status,
         file_name, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8, $9, $9)
       ON CONFLICT DO NOTHING
       RETURNING ${JOB_COLUMNS}`,
      [
        j.job_id,
        j.user_id,
        j.day,
        j.idempotency_key === '' ? null : j.idempotency_key,
        j.report_type,
        j.format,
        j.params,
        j.file_name,
        j.created_at,
      ],
    ),
  );
}

/**
 * Takes one job of `user`'s quota for `day` when fewer than `limit` are used: the conditional update is the
 * atomic step (concurrent transactions on the row queue behind each other's lock). The used count, or
 * undefined when the day is full.
 */
export async function takeQuota(
  tx: Sql,
  userId: string,
  day: string,
  limit: number,
): Promise<number | undefined> {
  await tx.query('INSERT INTO export_quota (user_id, day, used) VALUES ($1, $2, 0) ON CONFLICT DO NOTHING', [
    userId,
    day,
  ]);
  const [r] = await tx.query(
    'UPDATE export_quota SET used = used + 1 WHERE user_id = $1 AND day = $2 AND used < $3 RETURNING used',
    [userId, day, limit],
  );
  return r ? Number(r.used) : undefined;
}

/**
 * Claims the oldest job a worker may take (queued, or processing under an expired lease) in one statement:
 * the row is chosen FOR UPDATE SKIP LOCKED, so concurrent claims never take the same one. A job whose
 * attempts are spent is failed by the same statement instead (status 'failed' in the result).
 */
export function claimJob(
  db: Sql,
  owner: string,
  nowMs: number,
  leaseMs: number,
  maxAttempts: number,
): Promise<ExportJob | undefined> {
  return one(
    db.query(
      `WITH next AS (
         SELECT job_id AS next_id FROM export_jobs
         WHERE status = 'queued' OR (status = 'processing' AND lease_expires_at < $2)
         ORDER BY created_at, job_id LIMIT 1
         FOR UPDATE SKIP LOCKED)
       UPDATE export_jobs j SET
         status = CASE WHEN j.status = 'processing' AND j.attempts >= $4 THEN 'failed' ELSE 'processing' END,
         error = CASE WHEN j.status = 'processing' AND j.attempts >= $4
           THEN 'its worker stopped before finishing ' || j.attempts || ' times (lease expired); giving up'
           ELSE '' END,
         attempts = CASE WHEN j.status = 'processing' AND j.attempts >= $4 THEN j.attempts ELSE j.attempts + 1 END,
         lease_owner = CASE WHEN j.status = 'processing' AND j.attempts >= $4 THEN '' ELSE $1 END,
         lease_expires_at = CASE WHEN j.status = 'processing' AND j.attempts >= $4 THEN 0 ELSE $2 + $3 END,
         rows_written = 0, bytes = 0, updated_at = $2
       FROM next WHERE j.job_id = next.next_id
       RETURNING ${JOB_COLUMNS}`,
      [owner, nowMs, leaseMs, maxAttempts],
    ),
  );
}

/** Extends the lease and records progress; false when the lease is no longer this worker's. */
export async function heartbeat(
  db: Sql,
  jobId: string,
  owner: string,
  nowMs: number,
  leaseMs: number,
  progress: { rows: number; bytes: number },
): Promise<boolean> {
  const rows = await db.query(
    `UPDATE export_jobs SET lease_expires_at = $3, rows_written = $4, bytes = $5, updated_at = $6
     WHERE job_id = $1 AND lease_owner = $2 AND status = 'processing' RETURNING job_id`,
    [jobId, owner, nowMs + leaseMs, progress.rows, progress.bytes, nowMs],
  );
  return rows.length === 1;
}

/** Marks a job this worker holds completed; undefined when its lease was lost meanwhile. */
export function completeJob(
  db: Sql,
  jobId: string,
  owner: string,
  nowMs: number,
  r: { rows: number; bytes: number; sha256: string; expiresAt: number },
): Promise<ExportJob | undefined> {
  return one(
    db.query(
      `UPDATE export_jobs SET status = 'completed', rows_written = $3, bytes = $4, sha256 = $5, expires_at = $6,
         lease_owner = '', lease_expires_at = 0, updated_at = $7
       WHERE job_id = $1 AND lease_owner = $2 AND status = 'processing' RETURNING ${JOB_COLUMNS}`,
      [jobId, owner, r.rows, r.bytes, r.sha256, r.expiresAt, nowMs],
    ),
  );
}

/** Marks a job this worker holds failed with the reason; undefined when its lease was lost meanwhile. */
export function failJob(
  db: Sql,
  jobId: string,
  owner: string,
  nowMs: number,
  why: string,
): Promise<ExportJob | undefined> {
  return one(
    db.query(
      `UPDATE export_jobs SET status = 'failed', error = $3, lease_owner = '', lease_expires_at = 0, updated_at = $4
       WHERE job_id = $1 AND lease_owner = $2 AND status = 'processing' RETURNING ${JOB_COLUMNS}`,
      [jobId, owner, why, nowMs],
    ),
  );
}

/** Gives a job back to the queue without spending its attempt (the worker is shutting down). */
export async function handBackJob(db: Sql, jobId: string, owner: string, nowMs: number): Promise<void> {
  await db.query(
    `UPDATE export_jobs SET status = 'queued', attempts = greatest(0, attempts - 1), lease_owner = '',
       lease_expires_at = 0, rows_written = 0, bytes = 0, updated_at = $3
     WHERE job_id = $1 AND lease_owner = $2 AND status = 'processing'`,
    [jobId, owner, nowMs],
  );
}

/** Files that must stay: completed and not expired, or queued / being written. */
export async function liveFiles(
  db: Sql,
  nowMs: number,
): Promise<Array<{ job_id: string; status: JobStatus; file_name: string }>> {
  const rows = await db.query(
    `SELECT job_id, status, file_name FROM export_jobs
     WHERE (status = 'completed' AND expires_at >= $1) OR status IN ('queued', 'processing')`,
    [nowMs],
  );
  return rows.map((r) => ({
    job_id: String(r.job_id),
    status: String(r.status) as JobStatus,
    file_name: String(r.file_name),
  }));
}

/** What an admission came to: a job (new, or the one of an Idempotency-Key seen before), or a full day. */
export type AdmitResult = { job: ExportJob; created: boolean } | { full: true };

class KeyTaken extends Error {}

/**
 * Admits a new job in one transaction: a job already made for the (user, Idempotency-Key) is the answer;
 * otherwise one job of the day's quota is taken and the job inserted. A concurrent request that inserted the
 * same key first makes this insert do nothing: the transaction is rolled back (the quota it took with it) and
 * that request's job is the answer.
 */
export async function admitJob(
  db: { transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T>; query: Sql['query'] },
  j: NewJob,
  limit: number,
): Promise<AdmitResult> {
  const key = j.idempotency_key;
  try {
    return await db.transaction(async (tx): Promise<AdmitResult> => {
      if (key !== '') {
        const prior = await findJobByIdempotencyKey(tx, j.user_id, key);
        if (prior) return { job: prior, created: false };
      }
      if ((await takeQuota(tx, j.user_id, j.day, limit)) === undefined) {
        // The day is full, but a request with this key may have made its job meanwhile (after our first look).
        const prior = key !== '' ? await findJobByIdempotencyKey(tx, j.user_id, key) : undefined;
        return prior ? { job: prior, created: false } : { full: true };
      }
      const job = await insertJob(tx, j);
      if (!job) throw new KeyTaken();
      return { job, created: true };
    });
  } catch (err) {
    if (!(err instanceof KeyTaken)) throw err;
    const prior = await findJobByIdempotencyKey(db, j.user_id, key);
    if (!prior) throw new Error('an Idempotency-Key conflict left no job', { cause: err });
    return { job: prior, created: false };
  }
}
