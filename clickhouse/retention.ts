// RETENTION_DAYS as table TTLs on the raw tables, and on log_counts_hourly, which pages the raw logs. The usage
// rollups are kept: summaries of dropped days still answer.
//
// A TTL drops rows when a merge gets to them, table by table, so for a while the raw logs and their hourly
// counts disagree about an expiring day. The system-events reads therefore stop at the first whole UTC day
// that no TTL can have touched yet (firstRetainedDay): below it the answer would depend on merge timing.
//
// In a cluster the TTL belongs to the shard-local tables (a Distributed table stores nothing), altered ON
// CLUSTER so that every shard and replica expires the same days.
import { type ClickHouse, quoteIdent } from './client.ts';

const TABLES = {
  usage_events: 'toDateTime(timestamp)',
  log_events: 'toDateTime(timestamp)',
  // One day more than the raw logs: an hour's counts outlive every log they count, and the reads never go
  // below firstRetainedDay anyway.
  log_counts_hourly: 'hour',
  // The daily cells and their seals likewise (migration 0010): they count logs the reads still page.
  log_cells_daily: 'day',
  log_day_seals: 'day',
  log_hour_seals: 'day',
  log_day_counts: 'day',
} as const;
type Table = keyof typeof TABLES;

const DAY_MS = 86_400_000;

/** Days a table keeps its rows for a retention of `days`. */
function keptDays(table: Table, days: number): number {
  return table === 'usage_events' || table === 'log_events' ? days : days + 1;
}

/** Where the rows of a table live, and the ALTER target that reaches all of them. */
function storage(
  ch: Pick<ClickHouse, 'cluster' | 'database'>,
  table: Table,
): { name: string; alter: string } {
  if (ch.cluster === undefined) return { name: table, alter: table };
  const name = `${table}_local`;
  // Qualified: ON CLUSTER DDL runs on the other hosts, whose current database is not ours.
  return {
    name,
    alter: `${quoteIdent(ch.database)}.${name} ON CLUSTER ${quoteIdent(ch.cluster)}`,
  };
}

/** The ALTER that sets (days > 0) or removes (days = 0) a table's TTL. */
export function retentionStatement(
  ch: Pick<ClickHouse, 'cluster' | 'database'>,
  table: Table,
  days: number,
): string {
  const { alter } = storage(ch, table);
  // days is an integer from validated config, not request input.
  return days > 0
    ? `ALTER TABLE ${alter} MODIFY TTL ${TABLES[table]} + INTERVAL ${keptDays(table, Math.trunc(days))} DAY`
    : `ALTER TABLE ${alter} REMOVE TTL`;
}

/** Sets (days > 0) or removes (days = 0) the TTLs; a no-op where already so. */
export async function applyRetention(ch: ClickHouse, days: number): Promise<void> {
  for (const table of Object.keys(TABLES) as Table[]) {
    // This host's copy is checked: an ON CLUSTER ALTER stays queued for hosts that were down and reaches them
    // when they return, so one host's state is the cluster's.
    const rs = await ch.client.query({
      query:
        'SELECT create_table_query FROM system.tables WHERE database = currentDatabase() AND name = {t:String}',
      query_params: { t: storage(ch, table).name },
      format: 'JSONEachRow',
    });
    const [row] = await rs.json<{ create_table_query: string }>();
    const hasTtl = row ? /\bTTL\b/.test(row.create_table_query) : false;
    if (days > 0) {
      const want = `${TABLES[table]} + toIntervalDay(${keptDays(table, Math.trunc(days))})`;
      if (hasTtl && row?.create_table_query.includes(want)) continue;
      await ch.client.command({ query: retentionStatement(ch, table, days) });
    } else if (hasTtl) {
      await ch.client.command({ query: retentionStatement(ch, table, 0) });
    }
  }
  ch.retention.record(days);
}

/**
 * The first UTC day (YYYY-MM-DD) whose logs no TTL can have dropped yet at `nowMs`, for a retention of `days`;
 * undefined when everything is kept. A row goes once its timestamp is `days` days old, so the day after the
 * one `days` days ago is still whole.
 */
export function firstRetainedDay(days: number, nowMs: number): string | undefined {
  if (days <= 0) return undefined;
  const cutoffDay = Math.floor((nowMs - days * DAY_MS) / DAY_MS) + 1;
  return new Date(cutoffDay * DAY_MS).toISOString().slice(0, 10);
}

/** The later of a requested first day and the first retained day of this storage. */
export function retainedStart(
  ch: Pick<ClickHouse, 'retention'>,
  start_date: string | undefined,
  nowMs = Date.now(),
): string | undefined {
  const first = firstRetainedDay(ch.retention.days, nowMs);
  if (first === undefined) return start_date;
  return start_date === undefined || start_date < first ? first : start_date;
}
