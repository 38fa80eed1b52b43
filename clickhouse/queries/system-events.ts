// GET /logs/system-events: newest-first pages of system logs, each log once. Counting and locating a page
// come from the hourly rollup log_counts_hourly (exact sets of event_id); the rows come from log_events FINAL
// read only within the hours that hold the page, so page 1,000 costs about what page 1 does.
import type { ClickHouse } from '../client.ts';
import { retainedStart } from '../retention.ts';
import type { BuiltQuery } from './query.ts';

export type Severity = 'info' | 'warning' | 'error';

export interface LogFilters {
  severity?: Severity | undefined;
  service?: string | undefined;
  /** First UTC day, inclusive. */
  start_date?: string | undefined;
  /** Last UTC day, inclusive. */
  end_date?: string | undefined;
}

/** A position in the newest-first order: the last log a page showed. */
export interface LogKey {
  /** Milliseconds since the epoch (UTC). */
  ms: number;
  event_id: string;
}

export interface SystemEvent {
  timestamp: string;
  severity: Severity;
  message: string;
  service: string;
  event_id: string;
}

export interface HourCount {
  /** Start of the hour, ms since the epoch. */
  hourMs: number;
  n: number;
}

const HOUR_MS = 3_600_000;

/** Fixed fragments for the filters given; `col` is the timestamp column of the table read. */
function logFilterClause(
  f: LogFilters,
  col: 'timestamp' | 'hour',
): { sql: string; params: Record<string, string> } {
  let sql = '';
  const params: Record<string, string> = {};
  if (f.severity !== undefined) {
    sql += ' AND severity = {severity:String}';
    params.severity = f.severity;
  }
  if (f.service !== undefined) {
    sql += ' AND service = {service:String}';
    params.service = f.service;
  }
  if (f.start_date !== undefined) {
    sql += ` AND ${col} >= toDateTime({start_date:Date}, 'UTC')`;
    params.start_date = f.start_date;
  }
  if (f.end_date !== undefined) {
    sql += ` AND ${col} < toDateTime({end_date:Date} + 1, 'UTC')`;
    params.end_date = f.end_date;
  }
  return { sql, params };
}

/** Distinct logs per hour matching the filters, newest hour first. */
export function buildLogHourCountsQuery(f: LogFilters): BuiltQuery {
  const w = logFilterClause(f, 'hour');
  // Each log belongs to exactly one (hour, severity, service) cell, so per-cell exact counts add up exactly.
  const query = `
    SELECT toUnixTimestamp(hour) AS hour_s, sum(n) AS n FROM (
      SELECT hour, severity, service, uniqExactMerge(ids) AS n
      FROM log_counts_hourly
      WHERE 1 = 1${w.sql}
      GROUP BY hour, severity, service
    )
    GROUP BY hour ORDER BY hour DESC`;
  return { query, query_params: w.params };
}

export interface PageWindow {
  /** Lower bound (inclusive) of timestamp, ms; undefined: none beyond the filters. */
  fromMs?: number | undefined;
  /** Upper bound (exclusive) of timestamp, ms; undefined: none beyond the filters. */
  toMs?: number | undefined;
  /** Only logs strictly after this key in newest-first order (a cursor). */
  after?: LogKey | undefined;
  skip: number;
  limit: number;
}

/** One page of logs within a bounded window, newest first; FINAL so a re-sent log shows once. */
export function buildLogPageQuery(f: LogFilters, w: PageWindow): BuiltQuery {
  const c = logFilterClause(f, 'timestamp');
  const params: Record<string, string | number> = { ...c.params, limit: w.limit, skip: w.skip };
  let sql = c.sql;
  if (w.fromMs !== undefined) {
    sql += " AND timestamp >= fromUnixTimestamp64Milli({from_ms:Int64}, 'UTC')";
    params.from_ms = w.fromMs;
  }
  if (w.toMs !== undefined) {
    sql += " AND timestamp < fromUnixTimestamp64Milli({to_ms:Int64}, 'UTC')";
    params.to_ms = w.toMs;
  }
  if (w.after !== undefined) {
    // The plain bound on timestamp lets the primary key prune; the tuple makes ties on timestamp exact.
    sql +=
      " AND timestamp <= fromUnixTimestamp64Milli({after_ms:Int64}, 'UTC')" +
      " AND (timestamp, event_id) < (fromUnixTimestamp64Milli({after_ms:Int64}, 'UTC'), {after_id:String})";
    params.after_ms = w.after.ms;
    params.after_id = w.after.event_id;
  }
  const query = `
    SELECT toUnixTimestamp64Milli(timestamp) AS ms, toString(severity) AS severity, message, toString(service) AS service, event_id
    FROM log_events FINAL
    WHERE 1 = 1${sql}
    ORDER BY timestamp DESC, event_id DESC
    LIMIT {limit:UInt32} OFFSET {skip:UInt64}`;
  return { query, query_params: params };
}

/**
 * The window holding rows [offset, offset + limit) of the newest-first order, from hourly counts (newest
 * first): the hours from the one holding row `offset` down to the one holding the page's last row.
 */
export function locatePage(
  hours: readonly HourCount[],
  offset: number,
  limit: number,
): PageWindow | undefined {
  let before = 0;
  let i = 0;
  while (i < hours.length && before + (hours[i] as HourCount).n <= offset)
    before += (hours[i++] as HourCount).n;
  if (i >= hours.length) return undefined;
  const top = hours[i] as HourCount;
  let seen = before;
  let j = i;
  while (j < hours.length - 1 && seen + (hours[j] as HourCount).n < offset + limit)
    seen += (hours[j++] as HourCount).n;
  return { toMs: top.hourMs + HOUR_MS, fromMs: (hours[j] as HourCount).hourMs, skip: offset - before, limit };
}

/**
 * The window after a cursor: from the cursor's hour down to the first earlier hour by which at least `limit`
 * more logs exist (the cursor's own hour may hold none of them, so it is not counted).
 */
export function locateAfter(hours: readonly HourCount[], after: LogKey, limit: number): PageWindow {
  const cursorHour = Math.floor(after.ms / HOUR_MS) * HOUR_MS;
  let seen = 0;
  let fromMs: number | undefined;
  for (const h of hours) {
    if (h.hourMs >= cursorHour) continue;
    seen += h.n;
    if (seen >= limit) {
      fromMs = h.hourMs;
      break;
    }
  }
  return { fromMs, after, skip: 0, limit };
}

export async function logHourCounts(ch: ClickHouse, f: LogFilters): Promise<HourCount[]> {
  const rs = await ch.client.query({ ...buildLogHourCountsQuery(f), format: 'JSONEachRow' });
  const rows = await rs.json<{ hour_s: string | number; n: string | number }>();
  return rows.map((r) => ({ hourMs: Number(r.hour_s) * 1000, n: Number(r.n) }));
}

export async function readLogPage(
  ch: ClickHouse,
  f: LogFilters,
  w: PageWindow,
): Promise<Array<SystemEvent & { ms: number }>> {
  const rs = await ch.client.query({ ...buildLogPageQuery(f, w), format: 'JSONEachRow' });
  const rows = await rs.json<{
    ms: string | number;
    severity: Severity;
    message: string;
    service: string;
    event_id: string;
  }>();
  return rows.map((r) => {
    const ms = Number(r.ms);
    return {
      ms,
      timestamp: new Date(ms).toISOString(),
      severity: r.severity,
      message: r.message,
      service: r.service,
      event_id: r.event_id,
    };
  });
}

export interface SystemEventsQuery extends LogFilters {
  limit: number;
  /** Page number (1-based); ignored when `after` is given, which then only labels the answer. */
  page: number;
  after?: LogKey | undefined;
}

export interface SystemEventsResult {
  events: Array<SystemEvent & { ms: number }>;
  page: number;
  total_pages: number;
  /** Matching logs in all. */
  total: number;
}

export async function systemEvents(ch: ClickHouse, query: SystemEventsQuery): Promise<SystemEventsResult> {
  // Under RETENTION_DAYS, only whole days that no TTL has touched: counts and rows then agree.
  const q = { ...query, start_date: retainedStart(ch, query.start_date) };
  const hours = await logHourCounts(ch, q);
  const total = hours.reduce((s, h) => s + h.n, 0);
  const total_pages = Math.ceil(total / q.limit);
  const window = q.after
    ? locateAfter(hours, q.after, q.limit)
    : locatePage(hours, (q.page - 1) * q.limit, q.limit);
  const events = window ? await readLogPage(ch, q, window) : [];
  return { events, page: q.page, total_pages, total };
}
