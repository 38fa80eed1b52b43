// A 10-million-event dataset made inside the embedded engine (INSERT ... SELECT FROM numbers()), through the
// same raw tables and materialized views as real ingestion: 80% usage events, 20% system logs over 90 days,
// and 1% of the logs delivered twice (separate inserts) so reads must stay duplicate-proof.
import type { ClickHouse } from '../clickhouse/client.ts';
import { sealLogDays } from '../clickhouse/queries/log-day-counts.ts';
import { QuietDays, sealUsage } from '../clickhouse/sealer.ts';

export interface DatasetSpec {
  events: number;
  days: number;
  /** Share of events that are logs. */
  logShare: number;
  /** Share of logs re-sent in a later insert. */
  resentLogShare: number;
}

export const DEFAULT_SPEC: DatasetSpec = {
  events: 10_000_000,
  days: 90,
  logShare: 0.2,
  resentLogShare: 0.01,
};
const CHUNK = 1_000_000;

// Deterministic functions of the row number, so a re-sent log is byte-identical to its original.
// Deduplication is off for these inserts (see NO_DEDUP): a token left in the embedded engine's session by an
// earlier insert (migrations record themselves with one) would otherwise swallow every chunk after the first.
// Usage follows a product's shape: each day about 3,000 of 30,000 users are active (~30 events each, mostly in
// one service), so the daily rollup aggregates ~25 events per row, as it would on real traffic.
const usageInsert = (days: number) => `
  INSERT INTO usage_events (event_id, type, timestamp, user_id, team_id, service, session_id)
  SETTINGS insert_deduplicate = 0
  SELECT event_id, type, timestamp, user_id, team_id, service, session_id FROM (SELECT
    concat('ev-', toString(number)) AS event_id,
    multiIf(number % 100 < 2, 'user_registered', number % 100 < 40, 'session_start',
            number % 100 < 75, 'session_end', 'activity') AS type,
    cityHash64(number, 1) % ${days} AS d,
    (d * 331 + cityHash64(number, 2) % 3000) % 30000 AS u,
    toDateTime64('2025-01-01 00:00:00', 3, 'UTC') + toIntervalMillisecond(d * 86400000 + cityHash64(number, 7) % 86400000) AS timestamp,
    concat('user-', toString(u)) AS user_id,
    concat('team-', toString(u % 200)) AS team_id,
    ['billing', 'dashboard', 'exporter', 'search', 'auth'][1 + (u + if(cityHash64(number, 3) % 5 = 0, 1, 0)) % 5] AS service,
    if(type IN ('session_start', 'session_end'), concat('s-', toString(u), '-', toString(d), '-', toString(cityHash64(number, 8) % 3)), '') AS session_id
  FROM numbers({from:UInt64}, {count:UInt64}))`;

const logSelect = (days: number) => `
  SELECT
    concat('log-', toString(number)) AS event_id,
    toDateTime64('2025-01-01 00:00:00', 3, 'UTC') + toIntervalMillisecond(cityHash64(number, 4) % ${days * 86_400_000}) AS timestamp,
    multiIf(cityHash64(number, 5) % 100 < 80, 'info', cityHash64(number, 5) % 100 < 95, 'warning', 'error') AS severity,
    ['api', 'ingest-worker', 'exporter', 'scheduler', 'search', 'auth', 'billing', 'gateway'][1 + cityHash64(number, 6) % 8] AS service,
    concat('log line ', toString(number), ' of the synthetic benchmark') AS message
  FROM numbers({from:UInt64}, {count:UInt64})`;

// Restated on every insert: on the embedded engine per-query settings persist in the session.
const NO_DEDUP = { insert_deduplicate: 0, insert_deduplication_token: '' } as const;

async function count(ch: ClickHouse, sql: string): Promise<number> {
  const rs = await ch.client.query({ query: sql, format: 'JSONEachRow' });
  const [row] = await rs.json<{ n: string | number }>();
  return Number(row?.n ?? 0);
}

/** Loads the dataset unless the database already holds it; returns the raw rows (usage, logs) stored. */
export async function ensureDataset(
  ch: ClickHouse,
  spec: DatasetSpec,
  log: (s: string) => void,
): Promise<{ usage: number; logs: number; seconds: number }> {
  const logs = Math.round(spec.events * spec.logShare * (1 - spec.resentLogShare));
  const resent = spec.events - Math.round(spec.events * (1 - spec.logShare)) - logs;
  const usage = spec.events - logs - resent;
  const have = await count(ch, 'SELECT count() AS n FROM usage_events');
  const t0 = performance.now();
  if (have !== usage) {
    if (have !== 0) throw new Error('the bench database holds another dataset; remove BENCH_DATA_DIR');
    for (let from = 0; from < usage; from += CHUNK) {
      const n = Math.min(CHUNK, usage - from);
      await ch.client.command({
        query: usageInsert(spec.days),
        query_params: { from, count: n },
        clickhouse_settings: NO_DEDUP,
      });
      log(`usage events ${from + n}/${usage}`);
    }
    const logInsert = `INSERT INTO log_events (event_id, timestamp, severity, service, message)
      SETTINGS insert_deduplicate = 0 ${logSelect(spec.days)}`;
    for (let from = 0; from < logs; from += CHUNK) {
      const n = Math.min(CHUNK, logs - from);
      await ch.client.command({
        query: logInsert,
        query_params: { from, count: n },
        clickhouse_settings: NO_DEDUP,
      });
      log(`logs ${from + n}/${logs}`);
    }
    // Re-sent logs: the first `resent` logs again, in inserts of their own.
    for (let from = 0; from < resent; from += CHUNK) {
      const n = Math.min(CHUNK, resent - from);
      await ch.client.command({
        query: logInsert,
        query_params: { from, count: n },
        clickhouse_settings: NO_DEDUP,
      });
    }
    log(`re-sent logs ${resent}`);
  }
  return { usage, logs: logs + resent, seconds: (performance.now() - t0) / 1000 };
}

/**
 * Seals what the service's sealer would have sealed by now on a settled dataset: every log day and every
 * usage day (after back-filling usage_points if the dataset predates them). Returns the seconds it took.
 */
export async function sealAll(ch: ClickHouse): Promise<number> {
  const t0 = performance.now();
  await sealLogDays(ch);
  await sealUsage(ch, new QuietDays(), 0, Date.now());
  return (performance.now() - t0) / 1000;
}

/** Merges the rollups' parts, as background merges leave them on a steady stream. */
export async function mergeRollups(ch: ClickHouse): Promise<void> {
  for (const table of [
    'usage_daily',
    'usage_first_seen',
    'log_counts_hourly',
    'log_cells_daily',
    'usage_points',
  ]) {
    await ch.client.command({ query: `OPTIMIZE TABLE ${table} FINAL` });
  }
}

/** The dataset's shape in one line: users, user-days, events per user-day, sessions, rollup rows. */
export async function describeDataset(ch: ClickHouse): Promise<string> {
  const rs = await ch.client.query({
    query: `SELECT
      (SELECT count() FROM usage_events) AS events,
      (SELECT uniqExact(user_id) FROM usage_events) AS users,
      (SELECT uniqExact(toDate(timestamp), user_id) FROM usage_events) AS user_days,
      (SELECT uniqExact(team_id) FROM usage_events) AS teams,
      (SELECT uniqExactIf(session_id, type = 'session_start') FROM usage_events) AS sessions,
      (SELECT count() FROM usage_daily) AS daily_rows`,
    format: 'JSONEachRow',
  });
  const [r] = await rs.json<Record<string, string | number>>();
  const n = (k: string) => Number(r?.[k] ?? 0);
  const us = (k: string) => n(k).toLocaleString('en-US');
  return (
    `${us('users')} users in ${us('teams')} teams, ${us('user_days')} user-days ` +
    `(${(n('events') / n('user_days')).toFixed(1)} usage events per user-day), ${us('sessions')} sessions; ` +
    `usage_daily rollup rows: ${us('daily_rows')}`
  );
}
