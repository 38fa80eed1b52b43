// GET /logs/system-events: newest-first pages of system logs, each log once. Counting and locating a page come
// from the sealed daily cells (log-day-counts.ts); the rows come from log_events FINAL read only within the
// days that hold the page, so page 1,000 costs about what page 1 does, and a year little more than a day.
import type { Severity } from '../../core/events.ts';
import type { ClickHouse } from '../client.ts';
import { type Snapshot, UNVERSIONED } from '../derived-state.ts';
import { retainedStart } from '../retention.ts';
import { type LogFilters, logFilterClause } from './filters.ts';
import { logDayCounts } from './log-day-counts.ts';
import type { BuiltQuery } from './query.ts';

export type { LogFilters } from './filters.ts';
export type { Severity };

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

/** Logs counted in a time bucket (a UTC day here) that starts at `startMs` (ms since the epoch). */
export interface Bucket {
  startMs: number;
  n: number;
}

const DAY_MS = 86_400_000;

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
 * The window holding rows [offset, offset + limit) of the newest-first order, from counts per bucket of
 * `widthMs` (newest first): the buckets from the one holding row `offset` down to the one
 * holding the page's last row.
 */
export function locatePage(
  buckets: readonly Bucket[],
  offset: number,
  limit: number,
  widthMs: number,
): PageWindow | undefined {
  let before = 0;
  let i = 0;
  while (i < buckets.length && before + (buckets[i] as Bucket).n <= offset)
    before += (buckets[i++] as Bucket).n;
  if (i >= buckets.length) return undefined;
  const top = buckets[i] as Bucket;
  let seen = before;
  let j = i;
  while (j < buckets.length - 1 && seen + (buckets[j] as Bucket).n < offset + limit)
    seen += (buckets[j++] as Bucket).n;
  return {
    toMs: top.startMs + widthMs,
    fromMs: (buckets[j] as Bucket).startMs,
    skip: offset - before,
    limit,
  };
}

/**
 * The window after a cursor: from the cursor's bucket down to the first earlier bucket by which at least
 * `limit` more logs exist (the cursor's own bucket may hold none of them, so it is not counted).
 */
export function locateAfter(
  buckets: readonly Bucket[],
  after: LogKey,
  limit: number,
  widthMs: number,
): PageWindow {
  const cursorBucket = Math.floor(after.ms / widthMs) * widthMs;
  let seen = 0;
  let fromMs: number | undefined;
  for (const h of buckets) {
    if (h.startMs >= cursorBucket) continue;
    seen += h.n;
    if (seen >= limit) {
      fromMs = h.startMs;
      break;
    }
  }
  return { fromMs, after, skip: 0, limit };
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

const HOUR_MS = 3_600_000;

/**
 * From how many logs in its day a one-day window is narrowed to hours. Below it, reading the day costs less than
 * merging its hourly id sets first (8.8 against 13.6 ms at 22,000 logs a day); above it, the day's read grows
 * with its traffic while the hourly merge stays a fraction of it (see bench/RESULTS.md, "Scale").
 */
export const HOURLY_FROM = 20_000;

/** Distinct logs per hour of one day matching the filters, newest first (log_counts_hourly's id sets). */
export function buildHourCountsQuery(f: LogFilters, dayMs: number): BuiltQuery {
  const c = logFilterClause({ severity: f.severity, service: f.service }, 'day');
  const query = `
    SELECT toUnixTimestamp(hour) AS hour_s, sum(n) AS n FROM (
      SELECT hour, uniqExactMerge(ids) AS n
      FROM log_counts_hourly
      WHERE hour >= toDateTime({day_s:UInt32}, 'UTC') AND hour < toDateTime({day_s:UInt32} + 86400, 'UTC')${c.sql}
      GROUP BY hour, severity, service
    )
    GROUP BY hour_s ORDER BY hour_s DESC
    SETTINGS max_threads = 1`;
  return { query, query_params: { ...c.params, day_s: dayMs / 1000 } };
}

/**
 * The window of `w` (within the day starting at `dayMs`) narrowed to the hours that hold its rows, or undefined
 * when the hours hold fewer rows than it skips (an insert or delete landed since the day counts were read):
 * the day's window is then read as it was.
 */
async function refineToHours(
  ch: ClickHouse,
  f: LogFilters,
  dayMs: number,
  w: PageWindow,
): Promise<PageWindow | undefined> {
  const rs = await ch.client.query({ ...buildHourCountsQuery(f, dayMs), format: 'JSONEachRow' });
  const hours = (await rs.json<{ hour_s: string | number; n: string | number }>()).map((h) => ({
    startMs: Number(h.hour_s) * 1000,
    n: Number(h.n),
  }));
  // Rows past the last hour counted are none of this day's: the window then ends at that hour, as the day's
  // would hold no more either.
  return locatePage(hours, w.skip, w.limit, HOUR_MS);
}

/**
 * All the logs of a day, whatever their severity and service: what reading its window costs (FINAL reads every
 * row in the window before filtering). From the unfiltered day counts when shared per data version; else the
 * filtered count, a lower bound, rather than a query more per request.
 */
async function logsOfDay(ch: ClickHouse, f: LogFilters, day: Bucket, snap: Snapshot): Promise<number> {
  if (snap.version === undefined || (f.severity === undefined && f.service === undefined)) return day.n;
  const all = await logDayCounts(ch, {}, snap);
  return all.find((d) => d.dayMs === day.startMs)?.n ?? day.n;
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

export async function systemEvents(
  ch: ClickHouse,
  query: SystemEventsQuery,
  snap: Snapshot = UNVERSIONED,
  /** Logs in a day from which a one-day window is narrowed to hours (tests set it low). */
  hourlyFrom = HOURLY_FROM,
): Promise<SystemEventsResult> {
  // Under RETENTION_DAYS, only whole days that no TTL has touched: counts and rows then agree.
  const q = { ...query, start_date: retainedStart(ch, query.start_date) };
  const days = (await logDayCounts(ch, q, snap)).map((d) => ({ startMs: d.dayMs, n: d.n }));
  const total = days.reduce((s, d) => s + d.n, 0);
  const total_pages = Math.ceil(total / q.limit);
  // The page is read from the days that hold it, skipping within them. A window of one large day is narrowed
  // to its hours first (refineToHours): reading a whole day of logs grows with the day's traffic.
  let window = q.after
    ? locateAfter(days, q.after, q.limit, DAY_MS)
    : locatePage(days, (q.page - 1) * q.limit, q.limit, DAY_MS);
  if (window && !q.after) {
    const top = days.find((d) => d.startMs + DAY_MS === window?.toMs);
    if (top && window.fromMs === top.startMs && (await logsOfDay(ch, q, top, snap)) >= hourlyFrom) {
      window = (await refineToHours(ch, q, top.startMs, window)) ?? window;
    }
  }
  const events = window ? await readLogPage(ch, q, window) : [];
  return { events, page: q.page, total_pages, total };
}
