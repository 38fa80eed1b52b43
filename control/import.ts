// The one-time import of the state an earlier version kept in ClickHouse (export jobs, schedules, runs, webhook
// deliveries) and in API_KEYS_FILE (API keys), in one transaction under the migrations' advisory lock, with a
// marker row: a crash mid-import leaves nothing half done, and a second process (or start) imports nothing.
// Jobs and deliveries that were leased go back to the queue; the day's quota is rebuilt from the jobs made
// through POST /reports/export (a scheduled job's day is its period's, never its creation day).
import type { ApiKeyRecord } from '../core/api-keys.ts';
import type { Db, Row } from './db.ts';
import { insertKey } from './keys.ts';
import { MIGRATION_LOCK } from './migrate.ts';

export interface LegacyState {
  jobs: Row[];
  schedules: Row[];
  runs: Row[];
  deliveries: Row[];
}

export interface ImportSummary {
  jobs: number;
  schedules: number;
  runs: number;
  deliveries: number;
  keys: number;
}

const MARKER = 'clickhouse-control-v1';

/** True once the import has committed (in this store). */
export async function imported(db: Db): Promise<boolean> {
  return (await db.query('SELECT 1 FROM control_imports WHERE source = $1', [MARKER])).length > 0;
}

/**
 * Imports `read()`'s rows and `keys` unless done before; returns what it imported (undefined when a marker was
 * there). `read` is called under the lock only when an import is due.
 */
export function importLegacy(
  db: Db,
  read: () => Promise<LegacyState>,
  keys: () => ApiKeyRecord[],
  o: { nowMs?: number; retryForMs?: number } = {},
): Promise<ImportSummary | undefined> {
  const nowMs = o.nowMs ?? Date.now();
  const since = nowMs - (o.retryForMs ?? 3_600_000);
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    if ((await tx.query('SELECT 1 FROM control_imports WHERE source = $1', [MARKER])).length > 0)
      return undefined;
    const state = await read();
    const n: ImportSummary = { jobs: 0, schedules: 0, runs: 0, deliveries: 0, keys: 0 };
    for (const s of state.schedules) {
      const r = await tx.query(
        `INSERT INTO export_schedules (schedule_id, user_id, report_type, format, cadence, params, webhook_url,
           webhook_secret, created_at, deleted)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING RETURNING 1`,
        [
          s.schedule_id,
          s.user_id,
          s.report_type,
          s.format,
          s.cadence,
          s.params,
          s.webhook_url,
          s.webhook_secret,
          Number(s.created_at),
          Number(s.deleted) === 1,
        ],
      );
      n.schedules += r.length;
    }
    for (const j of state.jobs) {
      // A job leased when the old version stopped goes back to the queue, its interrupted attempt not counted.
      const leased = j.status === 'processing';
      const r = await tx.query(
        `INSERT INTO export_jobs (job_id, user_id, day, idempotency_key, report_type, format, params, status,
           attempts, lease_owner, lease_expires_at, rows_written, bytes, sha256, file_name, expires_at, error,
           created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, '', 0, $10, $11, $12, $13, $14, $15, $16, $17)
         ON CONFLICT DO NOTHING RETURNING 1`,
        [
          j.job_id,
          j.user_id,
          j.day,
          j.idempotency_key === '' ? null : j.idempotency_key,
          j.report_type,
          j.format,
          j.params,
          leased ? 'queued' : j.status,
          Math.max(0, Number(j.attempts) - (leased ? 1 : 0)),
          leased ? 0 : Number(j.rows_written),
          leased ? 0 : Number(j.bytes),
          j.sha256,
          j.file_name,
          Number(j.expires_at),
          j.error,
          Number(j.created_at),
          Number(j.updated_at),
        ],
      );
      n.jobs += r.length;
    }
    const known = new Set(state.schedules.map((s) => String(s.schedule_id)));
    for (const run of state.runs) {
      if (!known.has(String(run.schedule_id))) continue;
      const r = await tx.query(
        `INSERT INTO export_schedule_runs (schedule_id, period_start, period_end, job_id, user_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING 1`,
        [
          run.schedule_id,
          run.period_start,
          run.period_end,
          run.job_id === '' ? null : run.job_id,
          run.user_id,
          Number(run.created_at),
        ],
      );
      n.runs += r.length;
    }
    for (const d of state.deliveries) {
      const r = await tx.query(
        `INSERT INTO webhook_deliveries (job_id, delivery_id, schedule_id, user_id, event, url, state, attempts,
           finished_at, next_attempt_at, lease_owner, lease_expires_at, last_status, last_error, created_at, updated_at)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, '', 0, $11, $12, $13, $14
         WHERE EXISTS (SELECT 1 FROM export_jobs WHERE job_id = $1)
         ON CONFLICT DO NOTHING RETURNING 1`,
        [
          d.job_id,
          d.delivery_id,
          d.schedule_id,
          d.user_id,
          d.event,
          d.url,
          d.state,
          Number(d.attempts),
          Number(d.finished_at),
          Number(d.next_attempt_at),
          Number(d.last_status),
          d.last_error,
          Number(d.created_at),
          Number(d.updated_at),
        ],
      );
      n.deliveries += r.length;
    }
    // Finished scheduled jobs whose webhook the old dispatchers had not picked up yet: their outbox rows, as
    // the finishing transaction writes them now (only within the retry time, as the old dispatchers looked).
    const late = await tx.query(
      `INSERT INTO webhook_deliveries (job_id, delivery_id, schedule_id, user_id, event, url, state, finished_at,
         next_attempt_at, created_at, updated_at)
       SELECT j.job_id, j.job_id || ':' || j.status, s.schedule_id, s.user_id,
              CASE WHEN j.status = 'completed' THEN 'export.completed' ELSE 'export.failed' END,
              s.webhook_url, 'pending', j.updated_at, j.updated_at, $1, $1
       FROM export_jobs j JOIN export_schedule_runs r ON r.job_id = j.job_id
       JOIN export_schedules s ON s.schedule_id = r.schedule_id
       WHERE j.status IN ('completed', 'failed') AND s.webhook_url <> '' AND NOT s.deleted AND j.updated_at >= $2
       ON CONFLICT DO NOTHING RETURNING 1`,
      [nowMs, since],
    );
    n.deliveries += late.length;
    // The quota of each (user, day): jobs of POST /reports/export, whose day is their creation's UTC day.
    await tx.query(
      `INSERT INTO export_quota (user_id, day, used)
       SELECT user_id, day, count(*) FROM export_jobs
       WHERE day = (to_timestamp(created_at / 1000.0) AT TIME ZONE 'UTC')::date
         AND job_id NOT IN (SELECT job_id FROM export_schedule_runs WHERE job_id IS NOT NULL)
       GROUP BY user_id, day
       ON CONFLICT (user_id, day) DO UPDATE SET used = greatest(export_quota.used, excluded.used)`,
    );
    for (const k of keys()) if (await insertKey(tx, k)) n.keys += 1;
    await tx.query('INSERT INTO control_imports (source, imported_at, summary) VALUES ($1, $2, $3)', [
      MARKER,
      nowMs,
      JSON.stringify(n),
    ]);
    return n;
  });
}

/**
 * Keys of API_KEYS_FILE that the store does not have yet are added, and a revocation written in the file is
 * applied (at every start): the file stays a way to provision keys; `npm run keys` writes the store.
 */
export async function syncKeyFile(db: Db, records: readonly ApiKeyRecord[]): Promise<number> {
  let added = 0;
  for (const k of records) {
    if (await insertKey(db, k)) added += 1;
    else if (k.revoked_at)
      await db.query('UPDATE api_keys SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1', [
        k.id,
        k.revoked_at,
      ]);
  }
  return added;
}
