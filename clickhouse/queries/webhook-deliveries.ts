// The webhook_deliveries table (the webhook outbox): every state change of a delivery is a new row version
// (ReplacingMergeTree), read back with FINAL, so every dispatcher sees the newest state after any restart.
import { type ClickHouse, INSERT_SETTINGS } from '../client.ts';
import type { JobStatus } from './exports-jobs.ts';
import type { BuiltQuery } from './query.ts';

export type DeliveryState = 'pending' | 'delivered' | 'gave_up';
export type WebhookEvent = 'export.completed' | 'export.failed';

/** One version of a delivery (times in ms since the epoch, UTC). */
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
  /** When the job finished: the retry time counts from here. */
  finished_at: number;
  next_attempt_at: number;
  lease_owner: string;
  lease_expires_at: number;
  last_status: number;
  last_error: string;
  created_at: number;
  updated_at: number;
  version: number;
}

/** A finished scheduled job whose webhook is due: never tried yet (`delivery` undefined) or pending and due. */
export interface DueDelivery {
  job_id: string;
  job_status: Extract<JobStatus, 'completed' | 'failed'>;
  /** The job's finishing time (its final version's updated_at). */
  finished_at: number;
  schedule_id: string;
  user_id: string;
  webhook_url: string;
  /** 1 when the schedule has been deleted since. */
  schedule_deleted: number;
  delivery: WebhookDelivery | undefined;
}

const COLUMNS = `job_id, delivery_id, schedule_id, user_id, toString(event) AS event, url,
  toString(state) AS state, attempts, toUnixTimestamp64Milli(finished_at) AS finished_at,
  toUnixTimestamp64Milli(next_attempt_at) AS next_attempt_at, lease_owner,
  toUnixTimestamp64Milli(lease_expires_at) AS lease_expires_at, last_status, last_error,
  toUnixTimestamp64Milli(created_at) AS created_at, toUnixTimestamp64Milli(updated_at) AS updated_at, version`;

/** The newest version of a job's delivery. The filter runs inside: the outer aliases would shadow the columns. */
export function buildDeliveryByJobQuery(jobId: string): BuiltQuery {
  return {
    query: `SELECT ${COLUMNS} FROM (SELECT * FROM webhook_deliveries FINAL WHERE job_id = {job_id:String})`,
    query_params: { job_id: jobId },
  };
}

/**
 * The oldest deliveries a dispatcher may claim now: jobs that finished (completed or failed) since `sinceMs`,
 * belong to a schedule with a webhook_url and have no delivery row yet (the worker's hook may never have run:
 * a crash right after the job's final write), and pending deliveries whose next attempt is due and whose claim
 * (if any) has expired, however old their job. Delivered and given-up deliveries never come back.
 */
export function buildDueDeliveriesQuery(nowMs: number, sinceMs: number, limit: number): BuiltQuery {
  return {
    query: `SELECT j.job_id AS job_id, toString(j.status) AS job_status,
        toUnixTimestamp64Milli(j.updated_at) AS finished_at, r.schedule_id AS schedule_id,
        r.user_id AS user_id, s.webhook_url AS webhook_url, s.deleted AS schedule_deleted,
        d.job_id != '' AS has_delivery, d.delivery_id AS d_delivery_id, d.schedule_id AS d_schedule_id,
        d.user_id AS d_user_id, toString(d.event) AS d_event, d.url AS d_url, toString(d.state) AS d_state,
        d.attempts AS d_attempts, toUnixTimestamp64Milli(d.finished_at) AS d_finished_at,
        toUnixTimestamp64Milli(d.next_attempt_at) AS d_next_attempt_at, d.lease_owner AS d_lease_owner,
        toUnixTimestamp64Milli(d.lease_expires_at) AS d_lease_expires_at, d.last_status AS d_last_status,
        d.last_error AS d_last_error, toUnixTimestamp64Milli(d.created_at) AS d_created_at,
        toUnixTimestamp64Milli(d.updated_at) AS d_updated_at, d.version AS d_version
      FROM (
        SELECT job_id, status, updated_at FROM export_jobs FINAL
        WHERE status IN ('completed', 'failed')
          AND (updated_at >= fromUnixTimestamp64Milli({since_ms:Int64}, 'UTC')
               OR job_id IN (SELECT job_id FROM webhook_deliveries FINAL WHERE state = 'pending'))
      ) AS j
      INNER JOIN (
        SELECT job_id, schedule_id, user_id FROM export_schedule_runs FINAL WHERE job_id != ''
      ) AS r ON r.job_id = j.job_id
      INNER JOIN (
        SELECT schedule_id, webhook_url, deleted FROM export_schedules FINAL WHERE webhook_url != ''
      ) AS s ON s.schedule_id = r.schedule_id
      LEFT JOIN (SELECT * FROM webhook_deliveries FINAL) AS d ON d.job_id = j.job_id
      WHERE d.job_id = ''
         OR (d.state = 'pending'
             AND d.next_attempt_at <= fromUnixTimestamp64Milli({now_ms:Int64}, 'UTC')
             AND d.lease_expires_at < fromUnixTimestamp64Milli({now_ms:Int64}, 'UTC'))
      ORDER BY j.updated_at, j.job_id
      LIMIT {limit:UInt32}
      SETTINGS join_use_nulls = 0`,
    query_params: { now_ms: nowMs, since_ms: sinceMs, limit },
  };
}

type Raw = Record<keyof WebhookDelivery, string | number>;

function fromRaw(r: Raw): WebhookDelivery {
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
    created_at: Number(r.created_at),
    updated_at: Number(r.updated_at),
    version: Number(r.version),
  };
}

export async function getDelivery(ch: ClickHouse, jobId: string): Promise<WebhookDelivery | undefined> {
  const rs = await ch.client.query({ ...buildDeliveryByJobQuery(jobId), format: 'JSONEachRow' });
  const [row] = await rs.json<Raw>();
  return row ? fromRaw(row) : undefined;
}

export async function dueDeliveries(
  ch: ClickHouse,
  nowMs: number,
  sinceMs: number,
  limit: number,
): Promise<DueDelivery[]> {
  const rs = await ch.client.query({
    ...buildDueDeliveriesQuery(nowMs, sinceMs, limit),
    format: 'JSONEachRow',
  });
  const rows = await rs.json<Record<string, string | number | boolean>>();
  return rows.map((r) => {
    const d: Partial<Raw> = {};
    for (const [k, v] of Object.entries(r)) {
      if (k.startsWith('d_')) (d as Record<string, string | number>)[k.slice(2)] = v as string | number;
    }
    return {
      job_id: String(r.job_id),
      job_status: String(r.job_status) as DueDelivery['job_status'],
      finished_at: Number(r.finished_at),
      schedule_id: String(r.schedule_id),
      user_id: String(r.user_id),
      webhook_url: String(r.webhook_url),
      schedule_deleted: Number(r.schedule_deleted),
      delivery: Number(r.has_delivery) ? fromRaw({ ...d, job_id: String(r.job_id) } as Raw) : undefined,
    };
  });
}

const time = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('Z', '');

/** Writes a new version of a delivery (its `version` must exceed the previous one's). */
export async function writeDelivery(ch: ClickHouse, d: WebhookDelivery): Promise<void> {
  await ch.client.insert({
    table: 'webhook_deliveries',
    values: [
      {
        ...d,
        finished_at: time(d.finished_at),
        next_attempt_at: time(d.next_attempt_at),
        lease_expires_at: time(d.lease_expires_at),
        created_at: time(d.created_at),
        updated_at: time(d.updated_at),
      },
    ],
    format: 'JSONEachRow',
    // No dedup window on this table, so an empty token changes nothing; stated so no earlier token leaks in.
    clickhouse_settings: { ...INSERT_SETTINGS, insert_deduplication_token: '' },
  });
}
