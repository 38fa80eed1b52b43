// Periods a scheduler skipped on purpose (the schedule's owner is an API key that was revoked or has expired):
// recorded as export_schedule_runs rows with an empty job_id, so that no scheduler ever makes them later, even
// if the key became usable again. Written with a dedup token of the (schedule, period), read with FINAL.
import type { ClickHouseSettings } from '@clickhouse/client';
import { type ClickHouse, INSERT_SETTINGS } from '../client.ts';
import type { BuiltQuery } from './query.ts';

export interface SkippedRun {
  schedule_id: string;
  period_start: string;
  period_end: string;
  user_id: string;
  created_at: number;
}

/** The skipped periods of each schedule. */
export function buildSkippedPeriodsQuery(): BuiltQuery {
  return {
    query: `SELECT schedule_id, groupArray(toString(period_start)) AS periods
      FROM export_schedule_runs FINAL
      WHERE job_id = ''
      GROUP BY schedule_id`,
    query_params: {},
  };
}

export async function skippedPeriods(ch: ClickHouse): Promise<Map<string, Set<string>>> {
  const rs = await ch.client.query({ ...buildSkippedPeriodsQuery(), format: 'JSONEachRow' });
  const rows = await rs.json<{ schedule_id: string; periods: string[] }>();
  return new Map(rows.map((r) => [r.schedule_id, new Set(r.periods)]));
}

const time = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('Z', '');

// All insert settings stated: the embedded engine keeps per-query settings for the session.
const tokenSettings = (token: string): ClickHouseSettings => ({
  ...INSERT_SETTINGS,
  insert_deduplication_token: token,
});

/** Marks a period skipped: a run row without a job. */
export async function writeSkippedRun(ch: ClickHouse, run: SkippedRun): Promise<void> {
  await ch.client.insert({
    table: 'export_schedule_runs',
    values: [{ ...run, job_id: '', created_at: time(run.created_at) }],
    format: 'JSONEachRow',
    clickhouse_settings: tokenSettings(`skip/${run.schedule_id}/${run.period_start}`),
  });
}
