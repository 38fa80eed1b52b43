// Exact counts of system logs per UTC day, from sealed cells where they still hold and from the cells' id sets
// where they do not (migration 0010). A year of logs costs a few thousand small rows instead of a merge of
// every event_id stored; only cells changed since their last seal pay for their sets.
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
  type LogRow,
  liveCells,
  type Prefetched,
} from './log-live-days.ts';
import { type BuiltQuery, engineHex, rows } from './query.ts';

/** A day's count for a filter; shared by the data versions its day does not move in, so never changed. */
export interface DayCount {
  /** Start of the UTC day, ms since the epoch. */
  readonly dayMs: number;
  readonly n: number;
  /** Logs per UTC hour of the day (24, hour 0 first, adding up to n), where sealed. */
  readonly hours?: readonly number[] | undefined;
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

// ---- reads -------------------------------------------------------------------------------------------------
//
// What a read needs is each day's cells (severity, service) with their counters, sealed counts and sealed hours.
// A day's cells change only when its counters do, and counters only grow, so the sum of a day's counters tells
// whether anything reached it: each read asks for those sums (365 small rows for a year, ~4 ms at 100M events)
// and re-reads only the days whose sum moved since this process last read them, for every filter at once.
// Under live traffic that is today alone, instead of every day once per filter and data version; a filter seen
// for the first time is summed here from the cells, not read.

/**
 * The sum of every day's counters, by day number, and what tells that seals were written: on one node the
 * active parts of both seal tables (a seal comes with a new part), with log_events' parts and the rows the held
 * days (log-live-days.ts) took since they were last read, in the same read; on a cluster (parts are per shard
 * there) the seal tables' rows.
 */
export function buildDaySumsQuery(oneNode: boolean, delta?: DeltaSpec, listParts = true): BuiltQuery {
  const query = oneNode
    ? `SELECT toUInt32(day) AS d, toUInt64(sum(inserted)) AS c, '' AS t, '' AS name, '' AS pid, toInt64(0) AS mn,
        toInt64(0) AS mx, '' AS sev, '' AS svc, toInt64(0) AS ms, '' AS id, '' AS msg
      FROM log_cells_daily GROUP BY day
      ${
        listParts
          ? `UNION ALL
      SELECT 0, 0, table, name, partition_id, min_block_number, max_block_number, '', '', 0, '', '' FROM system.parts
      WHERE database = currentDatabase() AND table IN (${LISTED.map((t) => `'${t}'`).join(', ')}) AND active`
          : ''
      }
      ${delta ? `UNION ALL ${deltaBranch(delta)}` : ''}
      ${SMALL}`
    : `SELECT toUInt32(day) AS d, sum(inserted) AS c,
        toString((SELECT count() FROM log_day_seals) + (SELECT count() FROM log_hour_seals)) AS t
      FROM log_cells_daily GROUP BY day ${SMALL}`;
  return { query, query_params: {} };
}

/** The tables whose active parts a read of the day sums needs: log_events' (held days), the seals' (a mark). */
const LISTED = ['log_events', 'log_day_seals', 'log_hour_seals'] as const;

/** What the day sums' reader takes from the listing: log_events' parts, and the seal tables' as `table/name`. */
interface Listed {
  parts: ListedPart[];
  seals: string[];
}

/**
 * Those parts as the request's data version listed them (data-version.ts, partsAt), or undefined when there is
 * none to take them from (no version, a listing no longer held, a part name not parsed): the query then lists
 * them. A version's listing came before the query, as the query's own listing did: what is read with it
 * (liveCells) holds for either.
 */
function listedAt(version: string | undefined): Listed | undefined {
  if (version === undefined) return undefined;
  const out: Listed = { parts: [], seals: [] };
  for (const table of LISTED) {
    const parts = partsAt(version, table);
    if (!parts) return undefined;
    for (const p of parts.values()) {
      if (!p) return undefined;
      if (table !== 'log_events') out.seals.push(`${table}/${p.name}`);
      else out.parts.push({ name: p.name, partition: p.partition, min: p.min, max: p.max });
    }
  }
  return out;
}

interface DaySums {
  /** Counter sums by day number. */
  sums: Map<number, number>;
  /** Changes whenever a seal is written (and at times when none was: a merge of a seal table). */
  seals: string;
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
  if (listed && behindHeld(ch, listed.parts)) listed = undefined;
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
  }>(ch, buildDaySumsQuery(oneNode, oneNode ? delta : undefined, listed === undefined));
  const sums = new Map<number, number>();
  const seals = listed?.seals ?? [];
  const parts = listed?.parts ?? [];
  const held: LogRow[] = [];
  for (const r of found) {
    if (r.t === 'row') {
      held.push([Number(r.d), r.sev ?? '', r.svc ?? '', Number(r.ms), r.id ?? '', r.msg ?? '', Number(r.mx)]);
      continue;
    }
    if (r.t === '' || !oneNode) sums.set(Number(r.d), Number(r.c));
    if (!oneNode) seals[0] = r.t;
    else if (r.t === 'log_events')
      parts.push({
        name: r.name ?? '',
        partition: r.pid ?? '',
        min: Number(r.mn),
        max: Number(r.mx),
      });
    else if (r.t !== '') seals.push(`${r.t}/${r.name}`);
  }
  return {
    sums,
    seals: seals.sort().join(','),
    parts: oneNode ? parts : undefined,
    prefetched: oneNode && delta ? { spec: delta, rows: held } : undefined,
  };
}

/**
 * The given days' cells: each one's counter, and its sealed count and hours where a seal holds at that counter
 * (0 / empty where none does). One scan of the counters and one of each seal table, restricted to the days.
 */
export function buildDayCellsQuery(days: readonly number[]): BuiltQuery {
  const w = 'toUInt32(day) IN {days:Array(UInt32)}';
  const query = `
    SELECT toUInt32(day) AS d, toString(severity) AS severity, toString(service) AS service, inserted,
      s.sealed AS sealed, s.logs AS logs, h.sealed AS hours_sealed, h.hours AS hours
    FROM (
      SELECT day, severity, service, sum(inserted) AS inserted
      FROM log_cells_daily WHERE ${w}
      GROUP BY day, severity, service
    ) AS c
    LEFT JOIN (
      SELECT day, severity, service, inserted, any(logs) AS logs, toUInt8(1) AS sealed
      FROM log_day_seals WHERE ${w}
      GROUP BY day, severity, service, inserted
    ) AS s USING (day, severity, service, inserted)
    LEFT JOIN (
      SELECT day, severity, service, inserted, any(hours) AS hours, toUInt8(1) AS sealed
      FROM log_hour_seals WHERE ${w}
      GROUP BY day, severity, service, inserted
    ) AS h USING (day, severity, service, inserted)
    ${SMALL}`;
  return { query, query_params: { days: `[${days.join(',')}]` } };
}

/**
 * Distinct logs of cells with no seal at their counter. Of a day or two (today, under live traffic), counted in
 * their days' raw logs (the primary key leads with the timestamp, so a day is one range): log_cells_daily's
 * granules span days of large id sets (a day's ~30 cells of ~80 KB each), so merging one day's cells took
 * 47-205 ms at 100M events against 19-30 for the day's raw rows. Of more days (a back-fill), from the id sets,
 * which then cost less per day than the raw rows (31 days: 130-140 ms against 270-330). Cells as [day number,
 * severity, service]; a service is a producer's text, so it travels as hex (a parameter's text is unescaped
 * twice on its way to the engine).
 */
export function buildOpenCellsQuery(cells: ReadonlyArray<readonly [number, string, string]>): BuiltQuery {
  const days = [...new Set(cells.map((c) => c[0]))];
  const fromRaw = days.length <= RAW_COUNT_DAYS;
  const day = fromRaw ? 'toUInt32(toDate(timestamp))' : 'toUInt32(day)';
  // Aliases not named like columns: the WHERE would read them instead.
  const query = `
    SELECT ${day} AS d, toString(severity) AS sev, toString(service) AS svc,
      ${fromRaw ? 'uniqExact(event_id)' : 'uniqExactMerge(ids)'} AS n
    FROM ${fromRaw ? 'log_events' : 'log_cells_daily'}
    WHERE ${day} IN {days:Array(UInt32)}
      AND (${day}, toString(severity), hex(service)) IN {cells:Array(Tuple(UInt32, String, String))}
    GROUP BY d, sev, svc`;
  const tuples = cells.map(([d, sev, svc]) => `(${d},'${sev.replace(/[^a-z]/g, '')}','${engineHex(svc)}')`);
  return { query, query_params: { days: `[${days.join(',')}]`, cells: `[${tuples.join(',')}]` } };
}

/** Open cells of at most this many days are counted from the raw logs (buildOpenCellsQuery). */
const RAW_COUNT_DAYS = 3;

interface Cell {
  severity: string;
  service: string;
  inserted: number;
  /** Distinct logs where a seal holds at `inserted`. */
  logs?: number | undefined;
  /** Logs per UTC hour where an hour seal holds at `inserted`. */
  hours?: number[] | undefined;
}

interface DayCells {
  /** The sum of the cells' counters these were read at. */
  sum: number;
  cells: Cell[];
}

/** Per ClickHouse handle: the days' cells as last read, and counts of unsealed cells by their counters. */
interface CellsMemo {
  days: Map<number, DayCells>;
  /** The seals' mark (DaySums.seals) when the days were last read. */
  seals: string;
  open: Map<string, number>;
}

const memos = new WeakMap<ClickHouse, CellsMemo>();
// Unsealed cells' counts kept (each a few dozen bytes); past it the oldest go first.
const OPEN_COUNTS_MAX = 50_000;

function memoOf(ch: ClickHouse): CellsMemo {
  let m = memos.get(ch);
  if (!m) {
    m = { days: new Map(), seals: '', open: new Map() };
    memos.set(ch, m);
  }
  return m;
}

const openKey = (day: number, sev: string, svc: string, inserted: number) =>
  `${day}|${sev}|${svc}|${inserted}`;

/** Every day's cells, reading again only the days whose counters moved since the last read. */
async function readCells(ch: ClickHouse, version: string | undefined): Promise<Map<number, DayCells>> {
  const memo = memoOf(ch);
  const { sums, seals, parts, prefetched } = await readDaySums(ch, heldDelta(ch), version);
  const stale = [...sums].filter(([d, c]) => memo.days.get(d)?.sum !== c).map(([d]) => d);
  // Days read before whose counters moved since (a first read of a day is no move).
  const moved = stale.filter((d) => memo.days.has(d));
  // A day read while some of its cells had no seal (or no hours) at their counters is read again once seals
  // have been written: its counts were right, but its unsealed cells cost a merge of their id sets and the day
  // can only be paged whole until its hours are known.
  if (seals !== memo.seals) {
    for (const [d, day] of memo.days)
      if (sums.get(d) === day.sum && day.cells.some((c) => c.logs === undefined || !c.hours)) stale.push(d);
  }
  for (const d of memo.days.keys()) if (!sums.has(d)) memo.days.delete(d);
  // Days still taking logs are held in memory (log-live-days.ts): their cells cost what came since.
  const live = await liveCells(ch, moved, parts, prefetched);
  for (const [d, cells] of live) {
    const sum = sums.get(d);
    if (sum !== undefined) memo.days.set(d, { sum, cells: cells.map((c) => ({ ...c, inserted: 0 })) });
  }
  const toRead = stale.filter((d) => !live.has(d));
  if (toRead.length > 0) {
    const read = new Map<number, Cell[]>();
    for (const r of await rows<{
      d: string | number;
      severity: string;
      service: string;
      inserted: string | number;
      sealed: number;
      logs: string | number;
      hours_sealed: number;
      hours: Array<string | number>;
    }>(ch, buildDayCellsQuery(toRead))) {
      const d = Number(r.d);
      const list = read.get(d) ?? [];
      list.push({
        severity: r.severity,
        service: r.service,
        inserted: Number(r.inserted),
        logs: Number(r.sealed) === 1 ? Number(r.logs) : undefined,
        hours: Number(r.hours_sealed) === 1 && r.hours.length === 24 ? r.hours.map(Number) : undefined,
      });
      read.set(d, list);
    }
    // Kept under the sum of the counters read with them (an insert since the sums were read makes it newer).
    for (const d of toRead) {
      const cells = read.get(d);
      if (cells) memo.days.set(d, { sum: cells.reduce((s, c) => s + c.inserted, 0), cells });
      else memo.days.delete(d);
    }
  }
  memo.seals = seals;
  return memo.days;
}

/**
 * Distinct logs per day matching the filters, newest day first; days without logs are left out. A day's
 * count is the sum of its matching cells' (sealed, or from the id sets of a cell with no seal at its counter);
 * its hours are known when every matching cell has hours sealed at its counter. With a data version, the cells
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
    // A day with hours also holds its hours' share of the filter's buckets (system-events.ts), up to 24 of them.
    (days) => 64 + 256 * days.length + days.reduce((b, d) => b + (d.hours ? 24 * 64 : 64), 0),
  );
}

// A day's count for a filter, kept with the day's cells where every matching cell is sealed (the count then
// depends on those cells alone). readCells replaces a day's cells only when the day moves, so under live traffic
// a new data version recounts today, not the year: counted again per version and filter, the days' counts and
// their hours were most of the garbage of the logs route (GC pauses of up to 24 ms in the live case at 100M).
const countsByCells = new WeakMap<DayCells, Map<string, DayCount | null>>();

function keep(day: DayCells, filter: string, count: DayCount | null): void {
  entry(countsByCells, day, () => new Map<string, DayCount | null>()).set(filter, count);
}

/** Every day's count of the filter's severity and service, newest day first (logDays). */
async function countDays(
  ch: ClickHouse,
  f: Pick<LogFilters, 'severity' | 'service'>,
  snap: Snapshot,
): Promise<DayCount[]> {
  // The logs route's tables: the cells, their seals, and log_events' parts for the days held in memory.
  const days = await snap.derive('log-cells', ROUTE_TABLES.logs, () =>
    readCells(ch, snap.version).then((m) => new Map(m)),
  );
  const matching = (c: Cell) =>
    (f.severity === undefined || c.severity === f.severity) &&
    (f.service === undefined || c.service === f.service);
  const filter = JSON.stringify([f.severity ?? null, f.service ?? null]);
  const out: DayCount[] = [];
  const picked: Picked[] = [];
  for (const [d, day] of days) {
    const kept = countsByCells.get(day)?.get(filter);
    if (kept !== undefined) {
      if (kept) out.push(kept);
      continue;
    }
    const cells = day.cells.filter(matching);
    if (cells.length > 0) picked.push({ d, day, cells });
    else keep(day, filter, null);
  }
  const counts = await openCounts(ch, picked);
  for (const { d, day, cells } of picked) {
    let n = 0;
    let hours: number[] | undefined = Array.from({ length: 24 }, () => 0);
    for (const c of cells) {
      n += c.logs ?? (counts.get(openKey(d, c.severity, c.service, c.inserted)) as number);
      if (c.logs === undefined || !c.hours) hours = undefined;
      else if (hours) for (let h = 0; h < 24; h++) (hours[h] as number) += c.hours[h] as number;
    }
    if (hours && hours.reduce((a, b) => a + b, 0) !== n) hours = undefined;
    const count = n > 0 ? { dayMs: d * DAY_MS, n, hours } : null;
    if (cells.every((c) => c.logs !== undefined)) keep(day, filter, count);
    if (count) out.push(count);
  }
  return out.sort((a, b) => b.dayMs - a.dayMs);
}

/** A day whose count a filter needs: its number, its cells, and those of them the filter matches. */
interface Picked {
  d: number;
  day: DayCells;
  cells: readonly Cell[];
}

/** Counts of the picked cells that have no seal at their counter: kept by counter, merged once per counter. */
async function openCounts(ch: ClickHouse, picked: readonly Picked[]): Promise<Map<string, number>> {
  const memo = memoOf(ch);
  const out = new Map<string, number>();
  const missing: Array<[number, string, string]> = [];
  for (const { d, cells } of picked)
    for (const c of cells) {
      if (c.logs !== undefined) continue;
      const key = openKey(d, c.severity, c.service, c.inserted);
      const n = memo.open.get(key);
      if (n === undefined) missing.push([d, c.severity, c.service]);
      else out.set(key, n);
    }
  if (missing.length === 0) return out;
  const counted = await rows<{ d: string | number; sev: string; svc: string; n: string | number }>(
    ch,
    buildOpenCellsQuery(missing),
  );
  const byCell = new Map(counted.map((r) => [`${Number(r.d)}|${r.sev}|${r.svc}`, Number(r.n)]));
  for (const { d, cells } of picked)
    for (const c of cells) {
      if (c.logs !== undefined) continue;
      const key = openKey(d, c.severity, c.service, c.inserted);
      if (out.has(key)) continue;
      // Counted after the cell was listed at this counter: every row the listing saw, and maybe rows inserted
      // since (newer, never older). A read that lists the cell again at this counter saw no insert into it
      // since, so the count is kept under it.
      const n = byCell.get(`${d}|${c.severity}|${c.service}`) ?? 0;
      out.set(key, n);
      memo.open.set(key, n);
    }
  while (memo.open.size > OPEN_COUNTS_MAX) memo.open.delete(memo.open.keys().next().value as string);
  return out;
}

/**
 * Seals every cell whose counter has moved since its last seal (or that has none): its exact count and the
 * counter value, read in one scan of log_cells_daily so the pair is consistent however inserts interleave.
 * Safe to run in any number of processes at once, and to stop at any point: every seal row is right on its
 * own, and an unsealed cell is only slower to read.
 */
const sealLogDaysSql = (skip: string) => `
  INSERT INTO log_day_seals (day, severity, service, logs, inserted, sealed_at)
  SELECT day, severity, service, uniqExactMerge(ids) AS logs, sum(inserted) AS inserted, now64(3, 'UTC')
  FROM log_cells_daily
  WHERE (day, severity, service) NOT IN (SELECT day, severity, service FROM (${sealedCells('')}
  ))${skip}
  GROUP BY day, severity, service`;

/**
 * Each sealed cell's logs per UTC hour, at the counter value of its current seal, for the cells that have none
 * yet. The counter and the hourly sets are read in one statement but from two tables, so an insert can be
 * half-way through its views between the two reads: hours are kept only when they add up to the sealed count
 * (a row the counter counts and the hours miss, or the reverse, makes them differ; a row counted by neither
 * moves the counter, which retires this seal anyway).
 */
const sealLogHoursSql = (skip: string) => `
  INSERT INTO log_hour_seals (day, severity, service, inserted, hours, sealed_at)
  WITH todo AS (
    SELECT day, severity, service, inserted, logs FROM (${sealedCells('')}
    )
    WHERE (day, severity, service, inserted) NOT IN (SELECT day, severity, service, inserted FROM log_hour_seals)${skip}
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

// Per engine handle: the day sums and seal rows (buildDaySumsQuery) at the start of the last round that found
// nothing to seal. While they are the same, nothing has reached any cell and no seal has been written since, so
// there is still nothing to seal: a round then costs that one small read instead of two joins over every cell
// (37-66 ms of the engine at 100M events, every 5 s, held from the API's reads).
const settled = new WeakMap<ClickHouse, string>();

/**
 * Seals the changed cells, then their hours; returns how many cells were sealed. With `quiet`, only the days
 * whose counters have not moved for `quietMs` (the service's sealer); without, every day (tests, benchmarks).
 */
export async function sealLogDays(
  ch: ClickHouse,
  quiet?: { days: QuietDays; quietMs: number; now: number },
): Promise<number> {
  const { sums: daySums, seals } = await readDaySums(ch);
  const sumRows = [...daySums].map(([d, c]) => ({ d, c }));
  // A day still taking logs is left unsealed until it settles: sealing it merges the day's id sets (50-200 ms
  // of the engine at 100M events, held from the API's reads) for a seal the next insert retires a second later,
  // and its cells are counted from the raw logs meanwhile (openCounts), exactly.
  const busy = quiet
    ? sumRows
        .filter((r) => !quiet.days.quiet(`log|${Number(r.d)}`, Number(r.c), quiet.quietMs, quiet.now))
        .map((r) => Number(r.d))
    : [];
  // The days this round may seal: a busy day moving (today under live traffic) does not make it a whole one.
  const sums = JSON.stringify([seals, sumRows.filter((r) => !busy.includes(r.d))]);
  if (settled.get(ch) === sums) return 0;
  // Day numbers are this process's own integers: written into the text, nothing bound.
  const skip = busy.length > 0 ? ` AND toUInt32(day) NOT IN (${busy.join(',')})` : '';
  const rs = await ch.client.query({
    query: `SELECT count() AS n FROM (
      SELECT day, severity, service FROM log_cells_daily GROUP BY day, severity, service
    ) WHERE (day, severity, service) NOT IN (SELECT day, severity, service FROM (${sealedCells('')}))${skip}`,
    format: 'JSONEachRow',
  });
  const [row] = await rs.json<{ n: string | number }>();
  const open = Number(row?.n ?? 0);
  if (open > 0) await ch.client.command({ query: sealLogDaysSql(skip) });
  const hourless = await ch.client.query({
    query: `SELECT count() AS n FROM (${sealedCells('')})
      WHERE (day, severity, service, inserted) NOT IN (SELECT day, severity, service, inserted FROM log_hour_seals)${skip}`,
    format: 'JSONEachRow',
  });
  const [h] = await hourless.json<{ n: string | number }>();
  if (Number(h?.n ?? 0) > 0) await ch.client.command({ query: sealLogHoursSql(skip) });
  // A busy day that settles joins the sums, so the next round after it is a whole one.
  if (open === 0 && Number(h?.n ?? 0) === 0) settled.set(ch, sums);
  else settled.delete(ch);
  return open;
}

export const dayStartMs = (ms: number): number => Math.floor(ms / DAY_MS) * DAY_MS;
export const isoDay = (ms: number): string => new Date(ms).toISOString().slice(0, 10);
