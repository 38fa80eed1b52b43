// Reads the control-plane tables that versions before the PostgreSQL control store kept in ClickHouse
// (migrations 0006-0008; retired by 0012), once, for the import into the control store (control/import.ts).
// Newest version of each row (FINAL); times as epoch milliseconds; absent tables read as empty.
import type { ClickHouse } from '../client.ts';

export interface LegacyControl {
  jobs: Record<string, unknown>[];
  schedules: Record<string, unknown>[];
  runs: Record<string, unknown>[];
  deliveries: Record<string, unknown>[];
}

const ms = (c: string) => `toUnixTimestamp64Milli(${c}) AS ${c}`;

const QUERIES: Record<keyof LegacyControl, [table: string, select: string]> = {
  jobs: [
    'export_jobs',
    `SELECT job_id, user_id, toString(day) AS day, idempotency_key, toString(report_type) AS report_type,
       toString(format) AS format, params, toString(status) AS status, attempts, lease_owner,
       ${ms('lease_expires_at')}, rows_written, bytes, sha256, file_name, ${ms('expires_at')}, error,
       ${ms('created_at')}, ${ms('updated_at')}
     FROM export_jobs FINAL`,
  ],
  schedules: [
    'export_schedules',
    `SELECT schedule_id, user_id, toString(report_type) AS report_type, toString(format) AS format,
       toString(cadence) AS cadence, params, webhook_url, webhook_secret, ${ms('created_at')}, deleted
     FROM export_schedules FINAL`,
  ],
  runs: [
    'export_schedule_runs',
    `SELECT schedule_id, toString(period_start) AS period_start, toString(period_end) AS period_end, job_id,
       user_id, ${ms('created_at')}
     FROM export_schedule_runs FINAL`,
  ],
  deliveries: [
    'webhook_deliveries',
    `SELECT job_id, delivery_id, schedule_id, user_id, toString(event) AS event, url, toString(state) AS state,
       attempts, ${ms('finished_at')}, ${ms('next_attempt_at')}, lease_owner, ${ms('lease_expires_at')},
       last_status, last_error, ${ms('created_at')}, ${ms('updated_at')}
     FROM webhook_deliveries FINAL`,
  ],
};

export async function readLegacyControl(ch: ClickHouse): Promise<LegacyControl> {
  const rs = await ch.client.query({
    query: 'SELECT name FROM system.tables WHERE database = currentDatabase()',
    format: 'JSONEachRow',
  });
  const present = new Set((await rs.json<{ name: string }>()).map((r) => r.name));
  const out: LegacyControl = { jobs: [], schedules: [], runs: [], deliveries: [] };
  for (const [key, [table, query]] of Object.entries(QUERIES) as [keyof LegacyControl, [string, string]][]) {
    if (!present.has(table)) continue;
    const r = await ch.client.query({ query, format: 'JSONEachRow' });
    out[key] = await r.json<Record<string, unknown>>();
  }
  return out;
}
