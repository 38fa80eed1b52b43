// Exact counts of system logs per UTC day, from sealed cells where they still hold and from the cells' id sets
// where they do not (migration 0010). A year of logs costs a few thousand small rows instead of a merge of
// every event_id stored; only cells changed since their last seal pay for their sets.
import type { ClickHouse } from '../client.ts';
import { type Snapshot, UNVERSIONED } from '../derived-state.ts';
import { type LogFilters, logFilterClause } from './filters.ts';
import type { BuiltQuery } from './query.ts';

export interface DayCount {
  /** Start of the UTC day, ms since the epoch. */
  dayMs: number;
  n: number;
  /** Logs per UTC hour of the day (24, hour 0 first, adding up to n), where sealed. */
  hours?: number[] | undefined;
}

const DAY_MS = 86_400_000;

// A cell's counter and a seal with the same counter value: the seal's count is the cell's count. Counters
// only grow, so equality means no row has reached the cell since the seal's scan.
const sealedCells = (where: string) => `
      SELECT day, severity, service, inserted, any(s.logs) AS logs
      FROM (
        SELECT day, severity, service, sum(inserted) AS inserted
        FROM log_cells_daily WHERE 1 = 1${where}
        GROUP BY day, severity, service
      ) AS c
      INNER JOIN (
        SELECT day, severity, service, inserted, logs
        FROM log_day_seals WHERE 1 = 1${where}
      ) AS s USING (day, severity, service, inserted)
      GROUP BY day, severity, service, inserted`;

// Small queries over a few thousand rows: one thread answers sooner than a pool of them (measured ~40%), and
// leaves the other core to concurrent requests. Inline SETTINGS are scoped to the query on every engine.
const SMALL = 'SETTINGS max_threads = 1';

/**
 * Per day, newest first: the sealed cells' counts, how many of its cells have no valid seal, and its logs per
 * UTC hour when every cell of the day has hours sealed at its current counter (`hourless` = 0). One scan of the
 * counters and one of each seal table, whatever the range: no id set is read.
 */
export function buildSealedDaysQuery(f: LogFilters): BuiltQuery {
  const w = logFilterClause(f, 'day');
  const query = `
    SELECT toUnixTimestamp(toDateTime(day, 'UTC')) AS day_s, sum(s.logs) AS logs, countIf(s.sealed = 0) AS open,
      countIf(h.sealed = 0) AS hourless, sumForEach(h.hours) AS hours
    FROM (
      SELECT day, severity, service, sum(inserted) AS inserted
      FROM log_cells_daily WHERE 1 = 1${w.sql}
      GROUP BY day, severity, service
    ) AS c
    LEFT JOIN (
      SELECT day, severity, service, inserted, any(logs) AS logs, toUInt8(1) AS sealed
      FROM log_day_seals WHERE 1 = 1${w.sql}
      GROUP BY day, severity, service, inserted
    ) AS s USING (day, severity, service, inserted)
    LEFT JOIN (
      SELECT day, severity, service, inserted, any(hours) AS hours, toUInt8(1) AS sealed
      FROM log_hour_seals WHERE 1 = 1${w.sql}
      GROUP BY day, severity, service, inserted
    ) AS h USING (day, severity, service, inserted)
    GROUP BY day_s ORDER BY day_s DESC
    ${SMALL}`;
  return { query, query_params: w.params };
}

/** Distinct logs of the given days (those with an unsealed cell), from their id sets. */
export function buildOpenDaysQuery(f: LogFilters, days: readonly string[]): BuiltQuery {
  const w = logFilterClause(f, 'day');
  const query = `
    SELECT toUnixTimestamp(toDateTime(day, 'UTC')) AS day_s, sum(n) AS n FROM (
      SELECT day, uniqExactMerge(ids) AS n
      FROM log_cells_daily
      WHERE day IN {open_days:Array(Date)}${w.sql}
      GROUP BY day, severity, service
    )
    GROUP BY day_s`;
  // An array parameter in ClickHouse's text form; the values are our own YYYY-MM-DD strings.
  return { query, query_params: { ...w.params, open_days: `[${days.map((d) => `'${d}'`).join(',')}]` } };
}

/**
 * Distinct logs per day matching the filters, newest day first; days without logs are left out. With a data
 * version, the days of a (severity, service) filter are read once per version over every date, and each
 * request's date range is applied to them here: the same whole UTC days the SQL bounds of logFilterClause keep.
 */
export async function logDayCounts(
  ch: ClickHouse,
  f: LogFilters,
  snap: Snapshot = UNVERSIONED,
): Promise<DayCount[]> {
  if (snap.version === undefined) return readLogDayCounts(ch, f);
  const key = JSON.stringify(['log-days', f.severity ?? null, f.service ?? null]);
  const all = await snap.derive(key, () =>
    readLogDayCounts(ch, { severity: f.severity, service: f.service }),
  );
  const from =
    f.start_date === undefined ? Number.NEGATIVE_INFINITY : Date.parse(`${f.start_date}T00:00:00Z`);
  const to = f.end_date === undefined ? Number.POSITIVE_INFINITY : Date.parse(`${f.end_date}T00:00:00Z`);
  return all.filter((d) => d.dayMs >= from && d.dayMs <= to);
}

async function readLogDayCounts(ch: ClickHouse, f: LogFilters): Promise<DayCount[]> {
  const rs = await ch.client.query({ ...buildSealedDaysQuery(f), format: 'JSONEachRow' });
  const rows = await rs.json<{
    day_s: string | number;
    logs: string | number;
    open: string | number;
    hourless: string | number;
    hours: Array<string | number>;
  }>();
  const days = rows.map((r) => {
    const n = Number(r.logs);
    const hours = r.hours.map(Number);
    const whole = Number(r.hourless) === 0 && hours.length === 24 && hours.reduce((a, b) => a + b, 0) === n;
    return { dayMs: Number(r.day_s) * 1000, n, open: Number(r.open) > 0, hours: whole ? hours : undefined };
  });
  const open = days.filter((d) => d.open);
  if (open.length > 0) {
    // A day with any open cell is counted whole from its sets (its sealed cells' counts are set aside), and
    // paged by whole day.
    const q = buildOpenDaysQuery(
      f,
      open.map((d) => isoDay(d.dayMs)),
    );
    const merged = await ch.client.query({ ...q, format: 'JSONEachRow' });
    const rowsByDay = await merged.json<{ day_s: string | number; n: string | number }>();
    const byDay = new Map(rowsByDay.map((r) => [Number(r.day_s) * 1000, Number(r.n)]));
    for (const d of open) {
      d.n = byDay.get(d.dayMs) ?? 0;
      d.hours = undefined;
    }
  }
  return days.filter((d) => d.n > 0).map(({ dayMs, n, hours }) => ({ dayMs, n, hours }));
}

/**
 * Seals every cell whose counter has moved since its last seal (or that has none): its exact count and the
 * counter value, read in one scan of log_cells_daily so the pair is consistent however inserts interleave.
 * Safe to run in any number of processes at once, and to stop at any point: every seal row is right on its
 * own, and an unsealed cell is only slower to read.
 */
export const SEAL_LOG_DAYS = `
  INSERT INTO log_day_seals (day, severity, service, logs, inserted, sealed_at)
  SELECT day, severity, service, uniqExactMerge(ids) AS logs, sum(inserted) AS inserted, now64(3, 'UTC')
  FROM log_cells_daily
  WHERE (day, severity, service) NOT IN (SELECT day, severity, service FROM (${sealedCells('')}
  ))
  GROUP BY day, severity, service`;

/**
 * Each sealed cell's logs per UTC hour, at the counter value of its current seal, for the cells that have none
 * yet. The counter and the hourly sets are read in one statement but from two tables, so an insert can be
 * half-way through its views between the two reads: hours are kept only when they add up to the sealed count
 * (a row the counter counts and the hours miss, or the reverse, makes them differ; a row counted by neither
 * moves the counter, which retires this seal anyway).
 */
export const SEAL_LOG_HOURS = `
  INSERT INTO log_hour_seals (day, severity, service, inserted, hours, sealed_at)
  WITH todo AS (
    SELECT day, severity, service, inserted, logs FROM (${sealedCells('')}
    )
    WHERE (day, severity, service, inserted) NOT IN (SELECT day, severity, service, inserted FROM log_hour_seals)
  )
  SELECT day, severity, service, t.inserted, h.hours, now64(3, 'UTC')
  FROM todo AS t
  INNER JOIN (
    SELECT day, severity, service,
      arrayMap(i -> toUInt32(arrayFirst(p -> p.1 = i, groupArray((hh, n))).2), range(24)) AS hours
    FROM (
      SELECT toDate(hour) AS day, severity, service, toHour(hour) AS hh, uniqExactMerge(ids) AS n
      FROM log_counts_hourly
      WHERE toDate(hour) IN (SELECT day FROM todo)
      GROUP BY hour, severity, service
    )
    GROUP BY day, severity, service
  ) AS h USING (day, severity, service)
  WHERE arraySum(h.hours) = t.logs`;

/** Seals the changed cells, then their hours; returns how many cells were sealed. */
export async function sealLogDays(ch: ClickHouse): Promise<number> {
  const rs = await ch.client.query({
    query: `SELECT count() AS n FROM (
      SELECT day, severity, service FROM log_cells_daily GROUP BY day, severity, service
    ) WHERE (day, severity, service) NOT IN (SELECT day, severity, service FROM (${sealedCells('')}))`,
    format: 'JSONEachRow',
  });
  const [row] = await rs.json<{ n: string | number }>();
  const open = Number(row?.n ?? 0);
  if (open > 0) await ch.client.command({ query: SEAL_LOG_DAYS });
  const hourless = await ch.client.query({
    query: `SELECT count() AS n FROM (${sealedCells('')})
      WHERE (day, severity, service, inserted) NOT IN (SELECT day, severity, service, inserted FROM log_hour_seals)`,
    format: 'JSONEachRow',
  });
  const [h] = await hourless.json<{ n: string | number }>();
  if (Number(h?.n ?? 0) > 0) await ch.client.command({ query: SEAL_LOG_HOURS });
  return open;
}

export const dayStartMs = (ms: number): number => Math.floor(ms / DAY_MS) * DAY_MS;
export const isoDay = (ms: number): string => new Date(ms).toISOString().slice(0, 10);
