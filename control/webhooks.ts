// The webhook outbox. A delivery row is written by the trigger of migration 0001 in the transaction that
// finishes its job; dispatchers claim due rows one at a time with one statement (FOR UPDATE SKIP LOCKED, a
// lease), make the attempt, and record its outcome under that lease. A dispatcher that dies mid-attempt leaves
// the lease to expire; another then makes the attempt again with the same delivery id (at least once).
import type { Row, Sql } from './db.ts';
import { type ExportJob, JOB_COLUMNS, jobFromRow } from './jobs.ts';

export type DeliveryState = 'pending' | 'delivered' | 'gave_up';
export type WebhookEvent = 'export.completed' | 'export.failed';

export interface WebhookDelivery {
  job_id: string;
  /** X-Tally-Delivery: `<job_id>:<status>`, the same on every attempt. */
  delivery_id: string;
  schedule_id: string;
  user_id: string;
  event: WebhookEvent;
  url: string;
  state: DeliveryState;
  attempts: number;
  finished_at: number;
  next_attempt_at: number;
  lease_owner: string;
  lease_expires_at: number;
  last_status: number;
  last_error: string;
}

/** What an attempt needs besides the delivery: the job, its period and the schedule's current target. */
export interface ClaimedDelivery {
  delivery: WebhookDelivery;
  job: ExportJob;
  period_start: string;
  period_end: string;
  /** '' when the schedule was deleted since (or has no webhook any more). */
  webhook_url: string;
  webhook_secret: string;
}

const COLUMNS = `job_id, delivery_id, schedule_id, user_id, event, url, state, attempts, finished_at,
  next_attempt_at, lease_owner, lease_expires_at, last_status, last_error`;

function fromRow(r: Row): WebhookDelivery {
  return {
    job_id: String(r.job_id),
    delivery_id: String(r.delivery_id),
    schedule_id: String(r.schedule_id),
    user_id: String(r.user_id),
    event: String(r.event) as WebhookEvent,
    url: String(r.url),
    state: String(r.state) as DeliveryState,
    attempts: Number(r.attempts),
    finished_at: Number(r.finished_at),
    next_attempt_at: Number(r.next_attempt_at),
    lease_owner: String(r.lease_owner),
    lease_expires_at: Number(r.lease_expires_at),
    last_status: Number(r.last_status),
    last_error: String(r.last_error),
  };
}

export async function getDelivery(db: Sql, jobId: string): Promise<WebhookDelivery | undefined> {
  const [r] = await db.query(`SELECT ${COLUMNS} FROM webhook_deliveries WHERE job_id = $1`, [jobId]);
  return r ? fromRow(r) : undefined;
}

/** Claims the delivery due longest (pending, due, no live lease) in one statement; undefined when none is. */
export async function claimDelivery(
  db: Sql,
  owner: string,
  nowMs: number,
  leaseMs: number,
): Promise<ClaimedDelivery | undefined> {
  const [d] = await db.query(
    `WITH next AS (
       SELECT job_id AS next_id FROM webhook_deliveries
       WHERE state = 'pending' AND next_attempt_at <= $2 AND lease_expires_at < $2
       ORDER BY next_attempt_at, job_id LIMIT 1
       FOR UPDATE SKIP LOCKED)
     UPDATE webhook_deliveries SET lease_owner = $1, lease_expires_at = $2 + $3, updated_at = $2
     FROM next WHERE job_id = next.next_id
     RETURNING ${COLUMNS}`,
    [owner, nowMs, leaseMs],
  );
  if (!d) return undefined;
  const delivery = fromRow(d);
  const [j] = await db.query(`SELECT ${JOB_COLUMNS} FROM export_jobs WHERE job_id = $1`, [delivery.job_id]);
  const [r] = await db.query(
    `SELECT r.period_start::text AS period_start, r.period_end::text AS period_end,
       CASE WHEN s.deleted THEN '' ELSE s.webhook_url END AS webhook_url, s.webhook_secret
     FROM export_schedule_runs r JOIN export_schedules s ON s.schedule_id = r.schedule_id WHERE r.job_id = $1`,
    [delivery.job_id],
  );
  if (!j) throw new Error(`webhook delivery ${delivery.delivery_id} names no job`);
  return {
    delivery,
    job: jobFromRow(j),
    period_start: String(r?.period_start ?? ''),
    period_end: String(r?.period_end ?? ''),
    webhook_url: String(r?.webhook_url ?? ''),
    webhook_secret: String(r?.webhook_secret ?? ''),
  };
}

/** Records an attempt's outcome under the claim `owner` holds; false when the claim was lost meanwhile. */
export async function recordDelivery(
  db: Sql,
  jobId: string,
  owner: string,
  nowMs: number,
  o: {
    state: DeliveryState;
    attempts: number;
    nextAttemptAt?: number;
    lastStatus: number;
    lastError: string;
  },
): Promise<boolean> {
  const rows = await db.query(
    `UPDATE webhook_deliveries SET state = $3, attempts = $4, next_attempt_at = coalesce($5, next_attempt_at),
       lease_owner = '', lease_expires_at = 0, last_status = $6, last_error = $7, updated_at = $8
     WHERE job_id = $1 AND lease_owner = $2 RETURNING job_id`,
    [
      jobId,
      owner,
      o.state,
      o.attempts,
      o.nextAttemptAt === undefined ? null : Math.ceil(o.nextAttemptAt),
      o.lastStatus,
      o.lastError,
      Math.round(nowMs),
    ],
  );
  return rows.length === 1;
}
