// GET /logs/system-events: newest-first pages of system logs, each log once. Counting and locating a page come
// from each day's counts per cell and UTC hour (log-day-counts.ts); the rows come from log_events FINAL read
// only within the hours that hold the page, so page 1,000 costs about what page 1 does, and a year little more
// than an hour.
import type { Severity } from '../../core/events.ts';
import type { ClickHouse } from '../client.ts';
import { ROUTE_TABLES } from '../data-version.ts';
import { type Snapshot, UNVERSIONED } from '../derived-state.ts';
import { retainedStart } from '../retention.ts';
import { type LogFilters, logFilterClause } from './filters.ts';
import { type DayCount, datesMs, logDays } from './log-day-counts.ts';
import { heldPage, newestFrom } from './log-live-days.ts';
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

/** Logs counted in a time bucket [startMs, endMs) (ms since the epoch): a UTC hour. */
export interface Bucket {
  startMs: number;
  endMs: number;
  n: number;
}

/**
 * Buckets newest first, not overlapping, held in one Float64Array (start, end, count per bucket) rather than
 * as objects: a year of hours is ~8,760 buckets for each filter asked, kept across requests, and as objects
 * (each with two boxed doubles) they were ~1M of a serving process's ~1.7M heap objects at 100M events, all of
 * which every full collection marks while the loop waits.
 */
export class Buckets {
  readonly length: number;
  private readonly v: Float64Array;

  constructor(v: Float64Array) {
    this.v = v;
    this.length = v.length / 3;
  }

  static of(list: readonly Bucket[]): Buckets {
    return new Buckets(Float64Array.from(list.flatMap((b) => [b.startMs, b.endMs, b.n])));
  }

  startMs(i: number): number {
    return this.v[i * 3] as number;
  }

  endMs(i: number): number {
    return this.v[i * 3 + 1] as number;
  }

  n(i: number): number {
    return this.v[i * 3 + 2] as number;
  }
}

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;

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

/**
 * One page of logs within a bounded window, newest first; FINAL so a re-sent log shows once, as its newest
 * copy, with the filters applied to that copy (what the export shows too). LIMIT 1 BY the sorting key was
 * faster within an hour spanning all of a year's parts (p50 11-15 against 21-33 ms at 100M, load 16), but it
 * filters before it folds copies, so a log re-sent with another severity showed under both.
 *
 * optimize_move_to_prewhere_if_final: the window's bounds on timestamp (and a cursor's on the sorting key) are
 * applied before the copies are folded, so only the window's rows are merged, not every row of the granules
 * that hold it (a middle page at 100M: 12.6-14.6 -> 8.6-9.3 ms). With FINAL the engine moves only conditions
 * on sorting-key columns, which every copy of a log shares (it shares (timestamp, event_id)); severity and
 * service stay after the fold (EXPLAIN: "Prewhere filter column" holds the timestamp bounds alone).
 *
 * max_threads = 1: a window is an hour or a few (~2,000 logs an hour at 100M events), which one thread reads as
 * fast (150 alternating runs at 100M: an hour's page p50 4.4-5.2 ms either way; a whole day's, 8,500 logs,
 * 6.4 -> 5.3, p99 11.7 -> 8.2), leaving the other core to concurrent requests.
 */
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
    LIMIT {limit:UInt32} OFFSET {skip:UInt64}
    SETTINGS optimize_move_to_prewhere_if_final = 1, max_threads = 1`;
  return { query, query_params: params };
}

/**
 * The window holding rows [offset, offset + limit) of the newest-first order, from counts per bucket (newest
 * first, not overlapping), among buckets [from, to): the buckets from the one holding row `offset` down to the
 * one holding the page's last row.
 */
export function locatePage(
  buckets: Buckets,
  offset: number,
  limit: number,
  from = 0,
  to = buckets.length,
): PageWindow | undefined {
  let before = 0;
  let i = from;
  while (i < to && before + buckets.n(i) <= offset) before += buckets.n(i++);
  if (i >= to) return undefined;
  let seen = before;
  let j = i;
  while (j < to - 1 && seen + buckets.n(j) < offset + limit) seen += buckets.n(j++);
  return { toMs: buckets.endMs(i), fromMs: buckets.startMs(j), skip: offset - before, limit };
}

/**
 * The window after a cursor: from the cursor's bucket down to the first earlier bucket by which at least
 * `limit` more logs exist (the cursor's own bucket may hold none of them, so it is not counted), among buckets
 * [from, to).
 */
export function locateAfter(
  buckets: Buckets,
  after: LogKey,
  limit: number,
  from = 0,
  to = buckets.length,
): PageWindow {
  let seen = 0;
  let fromMs: number | undefined;
  for (let i = from; i < to; i++) {
    if (buckets.endMs(i) > after.ms) continue;
    seen += buckets.n(i);
    if (seen >= limit) {
      fromMs = buckets.startMs(i);
      break;
    }
  }
  return { fromMs, after, skip: 0, limit };
}

/** Newest first: each day's hours that hold logs. */
function bucketsOf(days: readonly DayCount[]): Buckets {
  let length = 0;
  for (const d of days) for (const n of d.hours) if (n > 0) length++;
  const v = new Float64Array(length * 3);
  let k = 0;
  const put = (startMs: number, endMs: number, n: number) => {
    v[k++] = startMs;
    v[k++] = endMs;
    v[k++] = n;
  };
  for (const d of days)
    for (let h = d.hours.length - 1; h >= 0; h--) {
      const n = d.hours[h] as number;
      const startMs = d.dayMs + h * HOUR_MS;
      if (n > 0) put(startMs, startMs + HOUR_MS, n);
    }
  return new Buckets(v);
}

// Each filter's buckets, made once from its days (logDays: one array per data version and filter) and shared by
// the requests that read that version, each taking its dates' range of them: made per request, a year's ~8,760
// hour buckets were most of a logs request's garbage (logs cases had 3-5x the GC pauses of usage ones). Made
// again at a new version from the days' hours: a loop over ~8,760 numbers, with no garbage but the array.
const bucketsByDays = new WeakMap<readonly DayCount[], Buckets>();

function bucketsOfAll(days: readonly DayCount[]): Buckets {
  let buckets = bucketsByDays.get(days);
  if (!buckets) {
    buckets = bucketsOf(days);
    bucketsByDays.set(days, buckets);
  }
  return buckets;
}

/** The first index in [0, buckets.length] whose bucket starts before `ms` (buckets newest first). */
function firstBefore(buckets: Buckets, ms: number): number {
  let lo = 0;
  let hi = buckets.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (buckets.startMs(mid) < ms) hi = mid;
    else lo = mid + 1;
  }
  return lo;
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

/** A window's page: read from log_events, or made from a held day's rows for a first page that ends there. */
async function readWindow(
  ch: ClickHouse,
  f: LogFilters,
  w: PageWindow,
  snap: Snapshot,
): Promise<Array<SystemEvent & { ms: number }>> {
  // A first page ending in a day held in memory (one still taking logs: log-live-days.ts) starts at its
  // `limit`-th newest log there: ~100 rows read instead of its hour's thousands. If the window holds fewer (the
  // held rows may be newer than the counts that located the window), the whole window is read.
  if (w.skip === 0 && w.toMs !== undefined && w.after === undefined) {
    const fromMs = newestFrom(ch, Math.floor((w.toMs - 1) / DAY_MS), f, w.limit, w.toMs);
    if (fromMs !== undefined && (w.fromMs === undefined || fromMs > w.fromMs)) {
      const newest = await newestPage(ch, f, { ...w, fromMs }, snap);
      if (newest.length === w.limit) return newest;
    }
  }
  return readLogPage(ch, f, w);
}

/**
 * The newest page of a held day, shared per version of the log tables: a dashboard's panels ask for page 1 of
 * many ranges ending today, and with the same severity and service each one's page is the same window
 * [fromMs, toMs) of today (the range changes only total_pages). So the page is kept by those filters and the
 * window, and made without the dates, which hold the window: the open day's first pages are made once per
 * filter and insert, not once per request (in a probe of live traffic at 100M events, 96% of them came between
 * two inserts, each reading its page for 7-12 ms). Made from the held rows (log-live-days.ts, heldPage) where
 * they tell the engine's answer, else read.
 */
function newestPage(
  ch: ClickHouse,
  f: LogFilters,
  w: PageWindow,
  snap: Snapshot,
): Promise<Array<SystemEvent & { ms: number }>> {
  const undated = { severity: f.severity, service: f.service };
  const key = JSON.stringify([
    'log-newest-page',
    undated.severity ?? null,
    undated.service ?? null,
    w.fromMs,
    w.toMs,
    w.limit,
  ]);
  return snap.derive(
    key,
    ROUTE_TABLES.logs,
    async () => {
      const held =
        w.fromMs === undefined || w.toMs === undefined
          ? undefined
          : heldPage(ch, Math.floor((w.toMs - 1) / DAY_MS), undated, w.fromMs, w.toMs, w.limit);
      if (!held) return readLogPage(ch, undated, w);
      return held.map((r) => ({
        ...r,
        severity: r.severity as Severity,
        timestamp: new Date(r.ms).toISOString(),
      }));
    },
    weighPage,
  );
}

/** A page's bytes, roughly: its messages and ids as UTF-16, and a row's fixed share. */
function weighPage(rows: ReadonlyArray<SystemEvent>): number {
  let bytes = 0;
  for (const r of rows) bytes += 200 + 2 * (r.message.length + r.event_id.length + r.service.length);
  return bytes;
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
): Promise<SystemEventsResult> {
  // Under RETENTION_DAYS, only whole days that no TTL has touched: counts and rows then agree.
  const q = { ...query, start_date: retainedStart(ch, query.start_date) };
  const days = await logDays(ch, q, snap);
  // The dates' days: buckets never straddle a day, so those of [fromMs, toMs) are one run of them.
  const { fromMs, toMs } = datesMs(q);
  let total = 0;
  for (const d of days) if (d.dayMs >= fromMs && d.dayMs < toMs) total += d.n;
  const total_pages = Math.ceil(total / q.limit);
  // The page is read from the hours that hold it: ~2,000 logs an hour at 100M events, where a whole day's
  // 54,000 read with FINAL took most of a request's time.
  const buckets = bucketsOfAll(days);
  const from = firstBefore(buckets, toMs);
  const to = firstBefore(buckets, fromMs);
  const window = q.after
    ? locateAfter(buckets, q.after, q.limit, from, to)
    : locatePage(buckets, (q.page - 1) * q.limit, q.limit, from, to);
  const events = window ? await readWindow(ch, q, window, snap) : [];
  return { events, page: q.page, total_pages, total };
}
