// Exact counts of system logs per UTC day, as pages show them: each (timestamp, event_id) once, as its newest
// copy, filtered after that choice (log_events FINAL). A day's counts per (severity, service) cell and UTC hour
// are sealed in log_day_counts at the day's counter (migration 0018), so a year of logs costs a few hundred
// small rows instead of a merge of every stored log; a day whose counter moved since its seal is counted from
// log_events FINAL, or from memory while it still takes logs (log-live-days.ts).
import { entry } from '../../core/maps.ts';
import type { ClickHouse } from '../client.ts';
import { partsAt, ROUTE_TABLES } from '../data-version.ts';
import { type Snapshot, UNVERSIONED } from '../derived-state.ts';
import type { QuietDays } from '../quiet-days.ts';
import type { LogFilters } from './filters.ts';
import {
  behindHeld,
  type DeltaSpec,
  deltaBranch,
  heldDelta,
  type ListedPart,
  type LiveCell,
  type LogRow,
  liveCells,
  type Prefetched,
} from './log-live-days.ts';
import { mutationOf } from './parts-read.ts';
import { type BuiltQuery, rows } from './query.ts';

/** A day's count for a filter; shared by the data versions its day does not move in, so never changed. */
export interface DayCount {
  /** Start of the UTC day, ms since the epoch. */
  readonly dayMs: number;
  readonly n: number;
  /** Logs per UTC hour of the day (24, hour 0 first, adding up to n). */
  readonly hours: readonly number[];
}

const DAY_MS = 86_400_000;

// Small queries over a few thousand rows: one thread answers sooner than a pool of them (measured ~40%), and
// leaves the other core to concurrent requests. Inline SETTINGS are scoped to the query on every engine.
const SMALL = 'SETTINGS max_threads = 1';

/** A day as a seal is matched to it: its number, its counter and its partition's generation. */
type DayAt = readonly [day: number, counter: number, generation: string];

/** Their day numbers as an Array(UInt32) parameter. */
const dayList = (at: readonly DayAt[]) => `[${at.map(([d]) => d).join(',')}]`;

/** Days as an Array(Tuple(UInt32, UInt64, String)) parameter (generations are digits and '_'). */
const daysAt = (at: readonly DayAt[]) =>
  `[${at.map(([d, c, g]) => `(${d},${c},'${g.replace(/[^0-9_]/g, '')}')`).join(',')}]`;

/**
 * Each partition's generation (migration 0018), from log_events' active parts: its lowest block and highest
 * mutation, '<min>_<mutation>'. Inserts add higher blocks and merges keep both, while a DELETE (a mutation of
 * every part) or a drop changes it. Undefined on a cluster (parts are per shard): every generation is ''.
 */
function generations(parts: readonly ListedPart[] | undefined): Map<string, string> | undefined {
  if (parts === undefined) return undefined;
  const low = new Map<string, [number, number]>();
  for (const p of parts) {
    const [min, mutation] = low.get(p.partition) ?? [p.min, 0];
    low.set(p.partition, [Math.min(min, p.min), Math.max(mutation, mutationOf(p.name))]);
  }
  return new Map([...low].map(([id, [min, mutation]]) => [id, `${min}_${mutation}`]));
}

/** The generation of a day's partition (PARTITION BY toYear), '' where its partition has no parts. */
const generationOf = (gens: Map<string, string> | undefined, d: number): string =>
  gens?.get(String(new Date(d * DAY_MS).getUTCFullYear())) ?? '';

/** The same, in a statement: the generations listed in a scalar subquery, evaluated before the statement reads. */
const GENERATIONS_SQL = `(SELECT groupArray((p, g)) FROM (
      SELECT partition_id AS p,
        concat(toString(min(min_block_number)), '_', toString(max(toUInt64OrZero(splitByChar('_', name)[5])))) AS g
      FROM system.parts WHERE database = currentDatabase() AND table = 'log_events' AND active
      GROUP BY partition_id))`;

// ---- reads -------------------------------------------------------------------------------------------------
//
// What a read needs is each day's cells (severity, service) with their counts and hours. Every copy of a log
// that reaches a day moves the day's counter (the sum of its cells' counters in log_cells_daily, which only
// grow), whichever cell the copy lands in, so the sum tells whether anything reached the day: each read asks
// for those sums (365 small rows for a year, ~4 ms at 100M events) and re-reads only the days whose sum moved
// since this process last read them, for every filter at once. Under live traffic that is today alone.

/**
 * The sum of every day's counters, by day number; on one node with log_events' active parts (for the days held
 * in memory, log-live-days.ts) and the rows those days took since they were last read, in the same read.
 */
export function buildDaySumsQuery(delta?: DeltaSpec, listParts = false): BuiltQuery {
  const query = `SELECT toUInt32(day) AS d, toUInt64(sum(inserted)) AS c, '' AS t, '' AS name, '' AS pid,
        toInt64(0) AS mn, toInt64(0) AS mx, '' AS sev, '' AS svc, toInt64(0) AS ms, '' AS id, '' AS msg
      FROM log_cells_daily GROUP BY day
      ${
        listParts
          ? `UNION ALL
      SELECT 0, 0, 'part', name, partition_id, min_block_number, max_block_number, '', '', 0, '', '' FROM system.parts
      WHERE database = currentDatabase() AND table = 'log_events' AND active`
          : ''
      }
      ${delta ? `UNION ALL ${deltaBranch(delta)}` : ''}
      ${SMALL}`;
  return { query, query_params: {} };
}

/**
 * log_events' active parts as the request's data version listed them (data-version.ts, partsAt), or undefined
 * when there is none to take them from (no version, a listing no longer held, a part name not parsed): the
 * query then lists them. A version's listing came before the query, as the query's own listing did: what is
 * read with it (liveCells) holds for either.
 */
function listedAt(version: string | undefined): ListedPart[] | undefined {
  if (version === undefined) return undefined;
  const parts = partsAt(version, 'log_events');
  if (!parts) return undefined;
  const out: ListedPart[] = [];
  for (const p of parts.values()) {
    if (!p) return undefined;
    out.push({ name: p.name, partition: p.partition, min: p.min, max: p.max });
  }
  return out;
}

interface DaySums {
  /** Counter sums by day number. */
  sums: Map<number, number>;
  /** log_events' active parts, on one node. */
  parts: ListedPart[] | undefined;
  /** The held days' rows read with them, when `delta` was given (one node). */
  prefetched: Prefetched | undefined;
}

async function readDaySums(ch: ClickHouse, delta?: DeltaSpec, version?: string): Promise<DaySums> {
  const oneNode = ch.cluster === undefined;
  // On one node the version's listing spares the query its own (a system table: ~1 ms of each changed read),
  // unless it is behind the held days' (a request of an older version reading after a newer one): they would
  // take it for a drop and be let go, so the query lists the parts as they are now.
  let listed = oneNode ? listedAt(version) : undefined;
  if (listed && behindHeld(ch, listed)) listed = undefined;
  const found = await rows<{
    d: string | number;
    c: string | number;
    t: string;
    name?: string;
    pid?: string;
    mn?: string | number;
    mx?: string | number;
    sev?: string;
    svc?: string;
    ms?: string | number;
    id?: string;
    msg?: string;
  }>(ch, buildDaySumsQuery(oneNode ? delta : undefined, oneNode && listed === undefined));
  const sums = new Map<number, number>();
  const parts = listed ?? [];
  const held: LogRow[] = [];
  for (const r of found) {
    if (r.t === 'row')
      held.push([Number(r.d), r.sev ?? '', r.svc ?? '', Number(r.ms), r.id ?? '', r.msg ?? '', Number(r.mx)]);
    else if (r.t === 'part')
      parts.push({ name: r.name ?? '', partition: r.pid ?? '', min: Number(r.mn), max: Number(r.mx) });
    else sums.set(Number(r.d), Number(r.c));
  }
  return {
    sums,
    parts: oneNode ? parts : undefined,
    prefetched: oneNode && delta ? { spec: delta, rows: held } : undefined,
  };
}

/**
 * The cells of the given days as sealed at the given counters and generations, one seal per day (any of a
 * day's seals at those is right: copies of a seal, or seals of two processes). A day sealed with no logs (all
 * deleted, or its partition dropped) comes back as one row with k = 0, its severity given as text before the
 * join: the empty row's default tuple would hold the enum's value 0, which no name has.
 */
export function buildSealedDaysQuery(at: readonly DayAt[]): BuiltQuery {
  const query = `
    SELECT d, inserted, length(cs) AS k, c.1 AS sev, c.2 AS svc, c.3 AS logs, c.4 AS hours
    FROM (
      SELECT toUInt32(day) AS d, inserted,
        arrayMap(x -> (toString(x.severity), x.service, x.logs, x.hours), cells) AS cs
      FROM log_day_counts
      WHERE toUInt32(day) IN {days:Array(UInt32)}
        AND (toUInt32(day), inserted, generation) IN {at:Array(Tuple(UInt32, UInt64, String))}
      ORDER BY sealed_at DESC
      LIMIT 1 BY d
    )
    LEFT ARRAY JOIN cs AS c
    ${SMALL}`;
  return {
    query,
    query_params: { days: dayList(at), at: daysAt(at) },
  };
}

/**
 * Logs per day, cell and UTC hour in log_events FINAL: each (timestamp, event_id) once, in its newest copy's
 * cell, as a page shows it. Rows of (day, sev, svc, logs, hours[24]). Aliases not named like columns: the WHERE
 * would read them instead.
 */
const finalCounts = (days: string) => `
  SELECT day, sev, svc, sum(n) AS logs,
    arrayMap(i -> toUInt32(arrayFirst(p -> p.1 = i, groupArray((hh, n))).2), range(24)) AS hours
  FROM (
    SELECT toDate(timestamp) AS day, toString(severity) AS sev, toString(service) AS svc, toHour(timestamp) AS hh,
      count() AS n
    FROM log_events FINAL
    WHERE toUInt32(toDate(timestamp)) IN ${days}
    GROUP BY day, sev, svc, hh
  )
  GROUP BY day, sev, svc`;

/** The given days' cells counted in log_events FINAL (days with no seal at their counter). */
export function buildFinalDaysQuery(days: readonly number[]): BuiltQuery {
  return {
    query: `SELECT toUInt32(day) AS d, sev, svc, logs, hours FROM (${finalCounts('{days:Array(UInt32)}')})`,
    query_params: { days: `[${days.join(',')}]` },
  };
}

type Cell = LiveCell;

interface DayCells {
  /** The sum of the day's counters these were counted at. */
  sum: number;
  /** The generation of the day's partition they were counted at. */
  generation: string;
  cells: Cell[];
}

/** Per ClickHouse handle: the days' cells as last read. */
interface CellsMemo {
  days: Map<number, DayCells>;
}

const memos = new WeakMap<ClickHouse, CellsMemo>();

function memoOf(ch: ClickHouse): CellsMemo {
  let m = memos.get(ch);
  if (!m) {
    m = { days: new Map() };
    memos.set(ch, m);
  }
  return m;
}

/**
 * Every day's cells, reading again only the days whose counters moved since the last read, or whose partition
 * lost logs (a DELETE or a drop: its generation changed).
 */
async function readCells(ch: ClickHouse, version: string | undefined): Promise<Map<number, DayCells>> {
  const memo = memoOf(ch);
  const { sums, parts, prefetched } = await readDaySums(ch, heldDelta(ch), version);
  const gens = generations(parts);
  const at = (d: number): DayAt => [d, sums.get(d) ?? 0, generationOf(gens, d)];
  const stale = [...sums]
    .filter(([d, c]) => {
      const was = memo.days.get(d);
      return was?.sum !== c || was.generation !== generationOf(gens, d);
    })
    .map(([d]) => d);
  // Days read before whose counters moved since (a first read of a day is no move).
  const moved = stale.filter((d) => memo.days.has(d));
  for (const d of memo.days.keys()) if (!sums.has(d)) memo.days.delete(d);
  // Days still taking logs are held in memory (log-live-days.ts): their cells cost what came since.
  const live = await liveCells(ch, moved, parts, prefetched);
  for (const [d, cells] of live) {
    const [, sum, generation] = at(d);
    if (sums.has(d)) memo.days.set(d, { sum, generation, cells });
  }
  const toRead = stale.filter((d) => !live.has(d));
  if (toRead.length > 0) for (const [d, day] of await readDays(ch, toRead.map(at))) memo.days.set(d, day);
  return memo.days;
}

/**
 * The days' cells from their seals where one holds at the day's counter and generation, else from log_events
 * FINAL. Counted after the sums were read: every row the sums counted, and maybe rows inserted since (newer,
 * never older); a read that finds the same sum again saw no insert into the day since, so the counts are kept
 * under it.
 */
async function readDays(ch: ClickHouse, days: readonly DayAt[]): Promise<Map<number, DayCells>> {
  const out = new Map<number, DayCells>();
  const byDay = new Map(days.map((a) => [a[0], a]));
  const dayOf = (d: number) =>
    entry(out, d, () => {
      const [, sum, generation] = byDay.get(d) ?? [d, 0, ''];
      return { sum, generation, cells: [] };
    });
  for (const r of await rows<{
    d: string | number;
    k: string | number;
    sev: string;
    svc: string;
    logs: string | number;
    hours: Array<string | number>;
  }>(ch, buildSealedDaysQuery(days))) {
    const day = dayOf(Number(r.d));
    if (Number(r.k) > 0) day.cells.push(cellOf(r.sev, r.svc, r.logs, r.hours));
  }
  const unsealed = days.map(([d]) => d).filter((d) => !out.has(d));
  if (unsealed.length > 0) {
    for (const d of unsealed) dayOf(d);
    for (const r of await rows<{
      d: string | number;
      sev: string;
      svc: string;
      logs: string | number;
      hours: Array<string | number>;
    }>(ch, buildFinalDaysQuery(unsealed)))
      dayOf(Number(r.d)).cells.push(cellOf(r.sev, r.svc, r.logs, r.hours));
  }
  return out;
}

function cellOf(
  severity: string,
  service: string,
  logs: string | number,
  hours: Array<string | number>,
): Cell {
  return {
    severity,
    service,
    logs: Number(logs),
    hours: hours.map(Number),
  };
}

/**
 * Logs per day matching the filters, newest day first; days without logs are left out. A day's count is the
 * sum of its matching cells', and so are its hours. With a data version, the cells
 * are read once per version for every filter, each severity and service's days are summed once per version
 * (0.7-1.0 ms a request over a year of days at 100M events), and each request's dates pick from them.
 */
export async function logDayCounts(
  ch: ClickHouse,
  f: LogFilters,
  snap: Snapshot = UNVERSIONED,
): Promise<DayCount[]> {
  const all = await logDays(ch, f, snap);
  const { fromMs, toMs } = datesMs(f);
  return all.filter((d) => d.dayMs >= fromMs && d.dayMs < toMs);
}

/** The filters' dates as [fromMs, toMs): the start of start_date to the end of end_date, unbounded if unset. */
export function datesMs(f: Pick<LogFilters, 'start_date' | 'end_date'>): { fromMs: number; toMs: number } {
  return {
    fromMs: f.start_date === undefined ? Number.NEGATIVE_INFINITY : Date.parse(`${f.start_date}T00:00:00Z`),
    toMs:
      f.end_date === undefined ? Number.POSITIVE_INFINITY : Date.parse(`${f.end_date}T00:00:00Z`) + DAY_MS,
  };
}

/**
 * Every day's count of the filter's severity and service, newest day first (logDayCounts without the dates):
 * one array per data version and filter, shared by the requests that read that version (never to be changed).
 */
export function logDays(
  ch: ClickHouse,
  f: Pick<LogFilters, 'severity' | 'service'>,
  snap: Snapshot = UNVERSIONED,
): Promise<readonly DayCount[]> {
  return snap.derive(
    JSON.stringify(['log-day-counts', f.severity ?? null, f.service ?? null]),
    ROUTE_TABLES.logs,
    () => countDays(ch, f, snap),
    // A day also holds its hours' share of the filter's buckets (system-events.ts), up to 24 of them.
    (days) => 64 + (256 + 24 * 64) * days.length,
  );
}

// A day's count for a filter, kept with the day's cells (the count depends on those cells alone). readCells
// replaces a day's cells only when the day moves, so under live traffic a new data version recounts today, not
// the year: counted again per version and filter, the days' counts and their hours were most of the garbage of
// the logs route (GC pauses of up to 24 ms in the live case at 100M).
const countsByCells = new WeakMap<DayCells, Map<string, DayCount | null>>();

/** Every day's count of the filter's severity and service, newest day first (logDays). */
async function countDays(
  ch: ClickHouse,
  f: Pick<LogFilters, 'severity' | 'service'>,
  snap: Snapshot,
): Promise<DayCount[]> {
  // The logs route's tables: the cells' counters, log_events (FINAL, and its parts for the days held in memory).
  const days = await snap.derive('log-cells', ROUTE_TABLES.logs, () =>
    readCells(ch, snap.version).then((m) => new Map(m)),
  );
  const filter = JSON.stringify([f.severity ?? null, f.service ?? null]);
  const out: DayCount[] = [];
  for (const [d, day] of days) {
    const kept = entry(countsByCells, day, () => new Map<string, DayCount | null>());
    let count = kept.get(filter);
    if (count === undefined) {
      count = countOf(d, day.cells, f);
      kept.set(filter, count);
    }
    if (count) out.push(count);
  }
  return out.sort((a, b) => b.dayMs - a.dayMs);
}

/** A day's count and hours among the cells the filter matches; null when none holds a log. */
function countOf(
  d: number,
  cells: readonly Cell[],
  f: Pick<LogFilters, 'severity' | 'service'>,
): DayCount | null {
  let n = 0;
  const hours = Array.from({ length: 24 }, () => 0);
  for (const c of cells) {
    if (
      (f.severity !== undefined && c.severity !== f.severity) ||
      (f.service !== undefined && c.service !== f.service)
    )
      continue;
    n += c.logs;
    for (let h = 0; h < 24; h++) (hours[h] as number) += c.hours[h] as number;
  }
  return n > 0 ? { dayMs: d * DAY_MS, n, hours } : null;
}

// ---- sealing -----------------------------------------------------------------------------------------------

/**
 * Seals the days of `at`: their cells counted in log_events FINAL, written with the counter read in the same
 * statement, and only where that is still the given one (a day that moved since is left for a later round). On
 * one node the generation is listed before the statement reads the logs (a scalar subquery), so a DELETE
 * between the two leaves a seal of the older generation, which no read takes. A day with no logs left
 * (deleted) is sealed with no cells.
 */
export function buildSealDaysQuery(at: readonly DayAt[], oneNode: boolean): BuiltQuery {
  const query = `
    INSERT INTO log_day_counts (day, inserted, generation, cells, sealed_at)
    WITH ${oneNode ? GENERATIONS_SQL : "CAST([], 'Array(Tuple(String, String))')"} AS gens
    SELECT day, s.inserted, arrayFirst(x -> x.1 = toString(toYear(day)), gens).2, c.cells, now64(3, 'UTC')
    FROM (
      SELECT day, sum(inserted) AS inserted FROM log_cells_daily
      WHERE toUInt32(day) IN {days:Array(UInt32)}
      GROUP BY day
      HAVING (toUInt32(day), inserted) IN {at:Array(Tuple(UInt32, UInt64))}
    ) AS s
    LEFT JOIN (
      SELECT day, groupArray((sev, svc, logs, hours)) AS cells FROM (${finalCounts('{days:Array(UInt32)}')})
      GROUP BY day
    ) AS c USING (day)`;
  return {
    query,
    query_params: {
      days: dayList(at),
      at: `[${at.map(([d, c]) => `(${d},${c})`).join(',')}]`,
    },
  };
}

/**
 * Rows counted per statement of the sealer, at most (a day's counter, copies included, stands for its rows;
 * a day larger than this is sealed alone): each statement holds the embedded engine from the API's reads for
 * its length, ~70 ms at this size on this machine (every day of 100M events, 366 of them, took 3.4 s).
 */
const SEAL_ROWS = 2_000_000;

// Per engine handle: the days a round may seal, with their counters and generations, at the start of the last
// round that found nothing to seal. While they are the same, nothing has reached any day and no seal is missing, so a round then
// costs that one small read instead of a look at the seals (every 5 s, held from the API's reads).
const settled = new WeakMap<ClickHouse, string>();

/**
 * Seals every day whose counter has moved since its last seal (or that has none); returns how many days were
 * to seal. With `quiet`, only the days whose counters have not moved for `quietMs` (the service's sealer);
 * without, every day (tests, benchmarks). Safe to run in any number of processes at once, and to stop at any
 * point: every seal is right on its own, and an unsealed day is only slower to read.
 */
export async function sealLogDays(
  ch: ClickHouse,
  quiet?: { days: QuietDays; quietMs: number; now: number },
): Promise<number> {
  const { sums, parts } = await readDaySums(ch);
  const gens = generations(parts);
  // A day still taking logs is left unsealed until it settles: sealing it counts the day in log_events FINAL
  // (tens of ms of the engine at 100M events, held from the API's reads) for a seal the next insert retires a
  // second later; meanwhile it is counted from memory or from log_events, exactly.
  const ready = [...sums]
    .filter(([d, c]) => !quiet || quiet.days.quiet(`log|${d}`, c, quiet.quietMs, quiet.now))
    .sort((a, b) => a[0] - b[0])
    .map(([d, c]): DayAt => [d, c, generationOf(gens, d)]);
  const key = JSON.stringify(ready);
  if (ready.length === 0 || settled.get(ch) === key) return 0;
  const valid = new Set(
    (
      await rows<{ d: string | number }>(ch, {
        query: `SELECT DISTINCT toUInt32(day) AS d FROM log_day_counts
          WHERE (toUInt32(day), inserted, generation) IN {at:Array(Tuple(UInt32, UInt64, String))} ${SMALL}`,
        query_params: { at: daysAt(ready) },
      })
    ).map((r) => Number(r.d)),
  );
  const todo = ready.filter(([d]) => !valid.has(d));
  let batch: DayAt[] = [];
  let size = 0;
  for (const [i, at] of todo.entries()) {
    batch.push(at);
    size += at[1];
    if (size >= SEAL_ROWS || i === todo.length - 1) {
      await ch.client.command(buildSealDaysQuery(batch, ch.cluster === undefined));
      batch = [];
      size = 0;
    }
  }
  if (todo.length === 0) settled.set(ch, key);
  else settled.delete(ch);
  return todo.length;
}
