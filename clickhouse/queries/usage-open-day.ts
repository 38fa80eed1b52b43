// The open days of migration 0015: a family's last days with points from the first one not sealed under its
// current prefix (today under live traffic, and yesterday while its late events trickle in). The sealer keeps,
// for each of their points, the day of the entity's last point before them at every level (usage_open_points,
// under the base the days before had then); a read adds to the sealed pairs of the other days the open days'
// entities whose first point in its range is on an open day, looking up itself the few points the sealer has
// not reached yet. Exact for the same reason as the pairs: an entity counts in [a, b] once, at its first point
// there, and that point is on an open day exactly when it has a point on an open day in [a, b] and none on the
// sealed days in [a, b], i.e. its last point before the open days is before a. Those last points depend only on
// the days before the open ones, which are sealed and unchanged while the base is: an insert into an open day
// (late events for yesterday included) changes no row.
import { type ClickHouse, deleteWhere } from '../client.ts';
import { type Snapshot, UNVERSIONED } from '../derived-state.ts';
import type { UsageFilters } from './filters.ts';
import { toDayNumber } from './periods.ts';
import { engineHex, rows } from './query.ts';
import { type DayPrefix, type Family, levelOf } from './usage-pairs.ts';

/** A family's open days and the base their points' earlier points must have been computed under. */
export interface OpenWindow {
  family: Family;
  /** Its days with points from the first one not sealed, ascending (at most OPEN_DAYS_MAX). */
  days: string[];
  /** The family's counters summed over the days before days[0]. */
  base: number;
}

/**
 * The most days a family's open days may span: beyond it (a back-fill into an old day) reads fall back to the
 * daily rollup until the sealer has sealed them, rather than read many days of points per request.
 */
export const OPEN_DAYS_MAX = 7;

const NONE = '1970-01-01';
/** Family names by their Enum8 value (migration 0011). */
const FAMILY_OF: Record<number, Family> = { 1: 'seen', 2: 'active', 3: 'session' };

/** What an entity's earlier points look like: its last day before the open days per (team, service). */
type History = Map<string, Array<{ team: string; service: string; last: string }>>;

/**
 * Each family's open window: its days from the first one `isSealed` says is not, when that is among its last
 * OPEN_DAYS_MAX days with points (else none: the reads of those days fall back).
 */
export function openWindowsOf(
  prefixes: ReadonlyMap<Family, readonly DayPrefix[]>,
  isSealed: (family: Family, d: DayPrefix) => boolean,
): OpenWindow[] {
  const out: OpenWindow[] = [];
  for (const [family, days] of prefixes) {
    const first = days.findIndex((d) => !isSealed(family, d));
    if (first < 0 || days.length - first > OPEN_DAYS_MAX) continue;
    out.push({ family, days: days.slice(first).map((d) => d.day), base: days[first - 1]?.prefix ?? 0 });
  }
  return out;
}

/** The window's days as a parameter, and each point's bit: its day's position in them. */
function windowParams(w: OpenWindow, i: number, params: Record<string, string | number>) {
  params[`f${i}`] = w.family;
  params[`d${i}`] = `[${w.days.map((d) => `'${d}'`).join(',')}]`;
  params[`b${i}`] = w.base;
  return {
    days: `(family = {f${i}:String} AND has({d${i}:Array(Date)}, day))`,
    points: `(family = {f${i}:String} AND has({d${i}:Array(Date)}, day) AND kind = 1)`,
    counters: `(family = {f${i}:String} AND has({d${i}:Array(Date)}, day) AND kind = 0)`,
    base: `(family = {f${i}:String} AND has({d${i}:Array(Date)}, day) AND base = {b${i}:UInt64})`,
    bit: `toUInt64(bitShiftLeft(toUInt64(1), toUInt8(indexOf({d${i}:Array(Date)}, day) - 1)))`,
  };
}

// ---- earlier points ----------------------------------------------------------------------------------------

// Bounds the entities of one lookup: the array goes into the query text.
const LOOKUP_CHUNK = 5_000;

/** What the open days keep per engine handle (each test database has its own). */
interface OpenMemo {
  /**
   * Earlier points already looked up, by family, window, base and entity: they cannot change while the base
   * is the same (every day before the window is sealed under it), so a point the sealer has not covered yet
   * is looked up once per process, not once per request. Bounded; the oldest entries go first.
   */
  remembered: Map<string, Array<{ team: string; service: string; last: string }>>;
  /** Cells by their inputs (cellsOf), the least recently used dropped past CELL_ENTRIES_MAX entries. */
  cells: Map<string, OpenCells>;
  cellEntries: number;
  /** The windows' units at their last sync, by windows (unitsOf). */
  units: Map<string, UnitState>;
  /** The sync running, if any: one at a time. */
  syncing: Promise<unknown>;
  /**
   * Per window (family, first day, base), the counter of each of its days when this process last covered it:
   * the days a sealer round need not read again.
   */
  lastCovered: Map<string, Map<string, number>>;
}
const memos = new WeakMap<ClickHouse, OpenMemo>();

function memoOf(ch: ClickHouse): OpenMemo {
  let memo = memos.get(ch);
  if (!memo) {
    memo = {
      remembered: new Map(),
      cells: new Map(),
      cellEntries: 0,
      units: new Map(),
      syncing: Promise.resolve(),
      lastCovered: new Map(),
    };
    memos.set(ch, memo);
  }
  return memo;
}
const REMEMBERED_MAX = 200_000;

/**
 * The last point before the window of each entity, per (team, service) it has had points in: a key-range read
 * of usage_points per entity (its family, kind and entity lead the key).
 */
async function historyOf(ch: ClickHouse, w: OpenWindow, entities: readonly string[]): Promise<History> {
  const out: History = new Map();
  const first = w.days[0] as string;
  const prefix = `${w.family}|${first}|${w.base}|`;
  const missing: string[] = [];
  const { remembered } = memoOf(ch);
  for (const e of entities) {
    const known = remembered.get(prefix + e);
    if (known) out.set(e, known);
    else missing.push(e);
  }
  for (let i = 0; i < missing.length; i += LOOKUP_CHUNK) {
    const chunk = missing.slice(i, i + LOOKUP_CHUNK);
    const rs = await ch.client.query({
      query: `SELECT entity, team_id, service, toString(max(day)) AS last FROM usage_points
        WHERE family = {family:String} AND kind = 1 AND day < {day:Date} AND entity IN {entities:Array(String)}
        GROUP BY entity, team_id, service`,
      query_params: { family: w.family, day: first, entities: chunk },
      format: 'JSONEachRow',
    });
    const found = await rs.json<{ entity: string; team_id: string; service: string; last: string }>();
    for (const e of chunk) out.set(e, []);
    for (const r of found) out.get(r.entity)?.push({ team: r.team_id, service: r.service, last: r.last });
    for (const e of chunk) {
      remembered.set(prefix + e, out.get(e) ?? []);
      if (remembered.size > REMEMBERED_MAX) remembered.delete(remembered.keys().next().value as string);
    }
  }
  return out;
}

/** The latest `last` among an entity's earlier points that pass `keep` (NONE when there is none). */
function latest(
  history: History,
  entity: string,
  keep: (h: { team: string; service: string }) => boolean,
): string {
  let best = NONE;
  for (const h of history.get(entity) ?? []) if (keep(h) && h.last > best) best = h.last;
  return best;
}

// ---- the sealer's side -------------------------------------------------------------------------------------

/** Points of one window the sealer covers per round at most: a window's first round is the long one. */
const ROUND_POINTS = 50_000;

/**
 * Writes the earlier points of every open day's points not yet covered under the window's current base.
 * Returns the points covered. `prefixes` must have been read before this call, like a seal's: rows computed
 * after a later insert into a day before the window are filed under the base that insert has moved on from, so
 * they never count.
 */
export async function coverOpenDays(
  ch: ClickHouse,
  prefixes: ReadonlyMap<Family, readonly DayPrefix[]>,
  isSealed: (family: Family, d: DayPrefix) => boolean,
): Promise<number> {
  let covered = 0;
  for (const w of openWindowsOf(prefixes, isSealed)) {
    // Only the days whose counters moved since this process last covered them under this base: a new point
    // always moves its day's counter (they share a part), and a round with nothing new then reads nothing.
    const counters = dayCounters(prefixes.get(w.family) ?? [], w.days);
    const key = `${w.family}|${w.days[0]}|${w.base}`;
    const { lastCovered } = memoOf(ch);
    const seen = lastCovered.get(key);
    const days = w.days.filter((d) => seen?.get(d) !== counters.get(d));
    if (days.length === 0) continue;
    const params: Record<string, string | number> = {};
    const win = windowParams({ ...w, days }, 0, params);
    const points = await rows<{ point_day: string; team_id: string; service: string; entity: string }>(ch, {
      query: `SELECT toString(day) AS point_day, team_id, service, entity FROM usage_points_by_day
        WHERE ${win.points}
          AND (day, team_id, service, entity) NOT IN (
            SELECT day, team_id, service, entity FROM usage_open_points WHERE ${win.base})
        GROUP BY day, team_id, service, entity
        LIMIT ${ROUND_POINTS}`,
      query_params: params,
    });
    if (points.length > 0) {
      // Looked up after the points were listed, so every listed point's entity has all its earlier points.
      const history = await historyOf(ch, w, [...new Set(points.map((p) => p.entity))]);
      await ch.client.insert({
        table: 'usage_open_points',
        values: points.map((p) => ({
          family: w.family,
          day: p.point_day,
          base: w.base,
          team_id: p.team_id,
          service: p.service,
          entity: p.entity,
          prev_all: latest(history, p.entity, () => true),
          prev_team: latest(history, p.entity, (h) => h.team === p.team_id),
          prev_service: latest(history, p.entity, (h) => h.service === p.service),
          prev_team_service: latest(
            history,
            p.entity,
            (h) => h.team === p.team_id && h.service === p.service,
          ),
        })),
        format: 'JSONEachRow',
      });
      covered += points.length;
    }
    // A round cut short by its limit leaves the days to the next one.
    if (points.length < ROUND_POINTS) {
      const done = new Map(seen ?? []);
      for (const d of days) done.set(d, counters.get(d) as number);
      lastCovered.set(key, done);
      if (lastCovered.size > 64) lastCovered.delete(lastCovered.keys().next().value as string);
    }
  }
  return covered;
}

/** Each of `days`' own counter (its prefix less the previous day's). */
function dayCounters(all: readonly DayPrefix[], days: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  const wanted = new Set(days);
  all.forEach((d, i) => {
    if (wanted.has(d.day)) out.set(d.day, d.prefix - (all[i - 1]?.prefix ?? 0));
  });
  return out;
}

/**
 * Removes the rows of windows that are no longer open under that base (their days sealed since, or their base
 * moved on), once they have been left behind for a whole pruning interval: `staleBefore` is what the previous
 * call returned (rows stale then and still stale now go). A read that began under an older base meanwhile
 * finds its rows; one that loses them looks their points up itself. Returns the keys stale now.
 */
export async function pruneOpenPoints(
  ch: ClickHouse,
  current: readonly OpenWindow[],
  staleBefore: ReadonlySet<string>,
): Promise<{ stale: Set<string>; removed: number }> {
  const keyOf = (family: string, day: string, base: number | string) => `${family}|${day}|${base}`;
  const live = new Set(current.flatMap((w) => w.days.map((d) => keyOf(w.family, d, w.base))));
  const keys = await rows<{ family: Family; day: string; base: string | number; n: string | number }>(ch, {
    query: `SELECT family, toString(day) AS day, base, count() AS n FROM usage_open_points
      GROUP BY family, day, base`,
    query_params: {},
  });
  const stale = new Set<string>();
  const gone: Array<{ family: Family; day: string; base: number }> = [];
  let removed = 0;
  for (const k of keys) {
    const key = keyOf(k.family, k.day, k.base);
    if (live.has(key)) continue;
    stale.add(key);
    if (!staleBefore.has(key)) continue;
    gone.push({ family: k.family, day: k.day, base: Number(k.base) });
    removed += Number(k.n);
  }
  if (gone.length === 0) return { stale, removed: 0 };
  const params: Record<string, string | number> = {};
  const where = gone
    .map((g, i) => {
      params[`f${i}`] = g.family;
      params[`d${i}`] = g.day;
      params[`b${i}`] = g.base;
      return `(family = {f${i}:String} AND day = {d${i}:Date} AND base = {b${i}:UInt64})`;
    })
    .join(' OR ');
  await ch.client.command({
    query: `${deleteWhere(ch, 'usage_open_points')} ${where}`,
    query_params: params,
  });
  for (const g of gone) stale.delete(keyOf(g.family, g.day, g.base));
  return { stale, removed };
}

// ---- the reads ---------------------------------------------------------------------------------------------

/** The open days' contribution to one group of a report: entities counted once each. */
export interface OpenCounts {
  seen: number;
  active: number;
  session: number;
}

export interface OpenRead {
  /** The windows the read needs (of the families whose days it reads). */
  open: readonly OpenWindow[];
  /** The report's team / service filter. */
  filters: Pick<UsageFilters, 'team_id' | 'service'>;
  /** Grouped timeseries: the column each group is; the group's key is then that column's value. */
  groupBy?: 'team_id' | 'service' | 'team_service' | undefined;
  /** The range (a summary's, or one period's): active users and sessions count once in it. */
  since: string;
  until: string;
}

/**
 * Points not covered yet that a read looks up itself at most: beyond it (the sealer far behind, or stopped)
 * the read is answered from the daily rollup instead (undefined).
 */
export const READ_LOOKUP_LIMIT = 2_000;

/**
 * The windows' entities at one level, per group and family: how many there are with each (last point before
 * the window, days of the window they have points on as a bit mask). Any range's contribution is a sum over it,
 * so one computation serves every request of a data version that reads the same level.
 */
type OpenCells = Map<string, Map<Family, Array<{ prev: number; mask: number; n: number }>>>;

/**
 * The open days' contribution to each group ('' when ungrouped), or undefined when more than READ_LOOKUP_LIMIT
 * of their points are not covered yet. Computed once per data version and level.
 */
export async function openContribution(
  ch: ClickHouse,
  r: OpenRead,
  snap: Snapshot = UNVERSIONED,
): Promise<Map<string, OpenCounts> | undefined> {
  if (r.open.length === 0) return new Map();
  const windows = r.open.map((w) => [w.family, w.days, w.base]);
  // The cells follow from the windows' points and base alone, so they are kept by those, not by the data
  // version (which every insert, sealer round and merge changes): the windows' counters, read first, say
  // whether the points are still the same. Cells computed after a later insert are only ever asked for by
  // reads that saw it (the counters only grow), so none is ever stale.
  const counters = await snap.derive(JSON.stringify(['usage-open-counters', windows]), () =>
    windowCounters(ch, r.open),
  );
  let cells: OpenCells | undefined;
  // A team, a service, or both, is one group of the cells grouped by them, which serve every team's (service's,
  // pair's) reads until the points move: under live traffic they move every second or so, and a dashboard's
  // panels ask for many teams in between.
  if (r.groupBy === undefined && (r.filters.team_id !== undefined || r.filters.service !== undefined)) {
    const groupBy =
      r.filters.team_id === undefined
        ? 'service'
        : r.filters.service === undefined
          ? 'team_id'
          : 'team_service';
    const grouped = await cellsOf(ch, { ...r, filters: {}, groupBy }, windows, counters);
    if (!grouped) return undefined;
    const mine = grouped.get(groupOf(groupBy, r.filters.team_id ?? '', r.filters.service ?? ''));
    cells = new Map(mine ? [['', mine]] : []);
  } else cells = await cellsOf(ch, r, windows, counters);
  if (!cells) return undefined;
  const out = new Map<string, OpenCounts>();
  const masks = new Map(r.open.map((w) => [w.family, rangeMasks(w.days, r.since, r.until)]));
  const since = toDayNumber(r.since);
  for (const [grp, families] of cells) {
    const c: OpenCounts = { seen: 0, active: 0, session: 0 };
    for (const [family, list] of families) {
      const m = masks.get(family);
      if (!m) continue;
      for (const e of list) {
        // Seen: a user first seen on or before the range's end. Else: a first point in the range on an open day.
        const counts =
          family === 'seen'
            ? e.prev === 0 && (e.mask & m.upToEnd) !== 0
            : e.prev < since && (e.mask & m.inRange) !== 0;
        if (counts) c[family] += e.n;
      }
    }
    out.set(grp, c);
  }
  return out;
}

/**
 * The group a filter's cells are in, in the cells grouped by `groupBy`: a (team, service) pair's is both as hex
 * of their bytes (either is a producer's text, so no separator is safe).
 */
function groupOf(groupBy: 'team_id' | 'service' | 'team_service', team: string, service: string): string {
  if (groupBy === 'team_id') return team;
  if (groupBy === 'service') return service;
  return `${engineHex(team)}:${engineHex(service)}`;
}

/** The cells of one read's level, filters and grouping, kept by the windows' points (their counters). */
async function cellsOf(
  ch: ClickHouse,
  r: OpenRead,
  windows: unknown,
  counters: string,
): Promise<OpenCells | undefined> {
  const key = JSON.stringify([
    r.filters.team_id ?? null,
    r.filters.service ?? null,
    r.groupBy ?? null,
    windows,
    counters,
  ]);
  const memo = memoOf(ch);
  const held = memo.cells.get(key);
  if (held) {
    memo.cells.delete(key);
    memo.cells.set(key, held);
    return held;
  }
  const units = await unitsOf(ch, r.open, JSON.stringify(windows), counters);
  if (!units) return undefined;
  const cells = cellsFromUnits(units, r);
  remember(memo, key, cells);
  return cells;
}

const CELL_ENTRIES_MAX = 500_000;

const entriesOf = (cells: OpenCells): number => {
  let n = 1;
  for (const families of cells.values()) for (const list of families.values()) n += list.length;
  return n;
};

function remember(memo: OpenMemo, key: string, cells: OpenCells): void {
  if (memo.cells.has(key)) return;
  memo.cells.set(key, cells);
  memo.cellEntries += entriesOf(cells);
  while (memo.cellEntries > CELL_ENTRIES_MAX && memo.cells.size > 1) {
    const [oldest, value] = memo.cells.entries().next().value as [string, OpenCells];
    memo.cells.delete(oldest);
    memo.cellEntries -= entriesOf(value);
  }
}

/** The windows' day counters in usage_points_by_day: they move whenever a window's points do. */
async function windowCounters(ch: ClickHouse, open: readonly OpenWindow[]): Promise<string> {
  const params: Record<string, string | number> = {};
  const where = open.map((w, i) => windowParams(w, i, params).counters).join(' OR ');
  // Not aliased `day`: the WHERE would read the alias (text) instead of the column.
  const found = await rows<{ f: number; d: string; c: string | number }>(ch, {
    query: `SELECT toUInt8(family) AS f, toString(day) AS d, sum(inserted) AS c FROM usage_points_by_day
      WHERE ${where} GROUP BY f, d ORDER BY f, d`,
    query_params: params,
  });
  return found.map((x) => `${x.f}:${x.d}:${x.c}`).join(',');
}

/** The bits of the window's days in [since, until], and of those up to `until`. */
function rangeMasks(days: readonly string[], since: string, until: string) {
  let inRange = 0;
  let upToEnd = 0;
  days.forEach((d, i) => {
    if (d <= until) upToEnd |= 1 << i;
    if (d >= since && d <= until) inRange |= 1 << i;
  });
  return { inRange, upToEnd };
}

// ---- the open days' units, kept across inserts -------------------------------------------------------------

/**
 * An entity's points in one (team, service) of the windows: the days it has points on (a bit per window day)
 * and its last point before the window at each level (day numbers, 0 for none), which depend only on the base.
 */
interface Unit {
  team: string;
  service: string;
  mask: number;
  /** At the levels all, team, service, team_service. */
  prev: [number, number, number, number];
}

/** The windows' units: by family number, then entity. */
type Units = Map<number, Map<string, Unit[]>>;

interface UnitState {
  units: Units;
  /** The windows' day counters the units were synced at (at least: a later insert may be in them too). */
  counters: Map<string, number>;
  /**
   * usage_points_by_day's active parts listed before the units were last read: every point they hold is in
   * the units (a part's rows never change; one merged away before that read left its rows in a part the read
   * did read). Undefined on a cluster (parts are per shard there): every change of the points reads them all.
   */
  parts: string[] | undefined;
  /** The highest mutation version among those parts: a later mutation (a DELETE of points) reads them all. */
  mutation: number;
}

// The units are kept per engine handle and windows (families, days, base) at their last sync. Under live
// traffic the points move every second or so; a sync then reads only the parts written since (a few rows) and
// looks up the earlier points of the entities new to the windows, instead of every point of the open days again
// for each grouping (20-90 ms per grouping at 100M events).
const WINDOW_STATES_MAX = 4;

/** Parses windowCounters' text: `family:day` → counter. */
function countersOf(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const item of text.split(',')) {
    if (item === '') continue;
    const at = item.lastIndexOf(':');
    out.set(item.slice(0, at), Number(item.slice(at + 1)));
  }
  return out;
}

/** Whether `now` is `was` plus inserts only: no counter went down or away (a truncate or drop would). */
const onlyGrew = (was: ReadonlyMap<string, number>, now: ReadonlyMap<string, number>): boolean =>
  [...was].every(([k, c]) => (now.get(k) ?? -1) >= c);

const sameCounters = (a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number>): boolean =>
  a.size === b.size && [...a].every(([k, c]) => b.get(k) === c);

/** A part name's mutation version (`partition_min_max_level[_mutation]`), 0 when none was applied. */
const mutationOf = (part: string): number => {
  const bits = part.split('_');
  return bits.length >= 5 ? Number(bits[bits.length - 1]) : 0;
};

async function activeParts(ch: ClickHouse): Promise<string[]> {
  const found = await rows<{ name: string }>(ch, {
    query: `SELECT name FROM system.parts
      WHERE database = currentDatabase() AND table = 'usage_points_by_day' AND active`,
    query_params: {},
  });
  return found.map((p) => p.name);
}

/**
 * The windows' units at `counters` (or later), or undefined when more than READ_LOOKUP_LIMIT entities have
 * points the sealer has not covered (the read then falls back to the daily rollup). One sync at a time per
 * handle: concurrent reads of one change wait for the same one.
 */
async function unitsOf(
  ch: ClickHouse,
  open: readonly OpenWindow[],
  windowsKey: string,
  countersText: string,
): Promise<Units | undefined> {
  const memo = memoOf(ch);
  const sync = () => syncUnits(ch, memo.units, open, windowsKey, countersOf(countersText));
  const run = memo.syncing.then(sync, sync);
  memo.syncing = run;
  return run;
}

async function syncUnits(
  ch: ClickHouse,
  states: Map<string, UnitState>,
  open: readonly OpenWindow[],
  windowsKey: string,
  counters: Map<string, number>,
): Promise<Units | undefined> {
  const held = states.get(windowsKey);
  if (held && sameCounters(held.counters, counters)) return held.units;
  if (held?.parts && onlyGrew(held.counters, counters) && (await addNewPoints(ch, open, held))) {
    held.counters = counters;
    return held.units;
  }
  states.delete(windowsKey);
  const loaded = await loadUnits(ch, open);
  if (!loaded) return undefined;
  loaded.counters = counters;
  states.set(windowsKey, loaded);
  if (states.size > WINDOW_STATES_MAX) states.delete(states.keys().next().value as string);
  return loaded.units;
}

/** Which level's earlier point each prev slot is, and the filter of earlier points it takes. */
const LEVEL_KEEPS: Array<
  (u: { team: string; service: string }, h: { team: string; service: string }) => boolean
> = [
  () => true,
  (u, h) => h.team === u.team,
  (u, h) => h.service === u.service,
  (u, h) => h.team === u.team && h.service === u.service,
];

/** An uncovered unit's earlier points at every level, from its entity's looked-up history. */
function prevsFrom(history: History, entity: string, u: { team: string; service: string }): Unit['prev'] {
  const at = (i: number) =>
    toDayNumber(latest(history, entity, (h) => (LEVEL_KEEPS[i] as (typeof LEVEL_KEEPS)[0])(u, h)));
  return [at(0), at(1), at(2), at(3)];
}

/** The SQL of the windows' points, their bits and (for loadUnits) their covered rows. */
function windowsSql(open: readonly OpenWindow[]) {
  const params: Record<string, string | number> = {};
  const wins = open.map((w, i) => windowParams(w, i, params));
  return {
    params,
    onDays: wins.map((w) => w.points).join(' OR '),
    underBase: wins.map((w) => w.base).join(' OR '),
    bit: `multiIf(${wins.map((w, i) => `family = {f${i}:String}, ${w.bit}`).join(', ')}, toUInt64(0))`,
  };
}

/**
 * Every unit of the windows' points, in one pass over the points and the rows the sealer has covered (a unit
 * is covered when any of its points is: its earlier points are the same for all of them); the uncovered ones
 * are looked up. The parts are listed before the points are read (UnitState.parts).
 */
async function loadUnits(ch: ClickHouse, open: readonly OpenWindow[]): Promise<UnitState | undefined> {
  const parts = ch.cluster === undefined ? await activeParts(ch) : undefined;
  const { params, onDays, underBase, bit } = windowsSql(open);
  // Compact rows (a unit per row, tens of thousands of them): about half the bytes to parse of JSONEachRow.
  const rs = await ch.client.query({
    query: `SELECT f, entity, team_id, service, toUInt8(groupBitOr(bit)) AS mask, max(src) AS covered,
        max(pa), max(pt), max(ps), max(pts)
      FROM (
        SELECT toUInt8(family) AS f, entity, team_id, service, ${bit} AS bit, toUInt8(0) AS src,
          toUInt16(0) AS pa, toUInt16(0) AS pt, toUInt16(0) AS ps, toUInt16(0) AS pts
        FROM usage_points_by_day WHERE ${onDays}
        UNION ALL
        SELECT toUInt8(family) AS f, entity, team_id, service, toUInt64(0) AS bit, toUInt8(1) AS src,
          toUInt16(prev_all) AS pa, toUInt16(prev_team) AS pt, toUInt16(prev_service) AS ps,
          toUInt16(prev_team_service) AS pts
        FROM usage_open_points WHERE ${underBase}
      )
      GROUP BY f, entity, team_id, service
      HAVING mask != 0`,
    query_params: params,
    format: 'JSONCompactEachRow',
  });
  type Row = [number, string, string, string, number, number, number, number, number, number];
  const units: Units = new Map();
  const uncovered: Array<{ f: number; entity: string; unit: Unit }> = [];
  for (const [f, entity, team, service, mask, covered, pa, pt, ps, pts] of await rs.json<Row>()) {
    const unit: Unit = { team, service, mask, prev: [pa, pt, ps, pts] };
    addUnit(units, f, entity, unit);
    if (covered !== 1) uncovered.push({ f, entity, unit });
  }
  if (!(await lookUpPrevs(ch, open, uncovered))) return undefined;
  return { units, counters: new Map(), parts, mutation: Math.max(0, ...(parts ?? []).map(mutationOf)) };
}

function addUnit(units: Units, f: number, entity: string, unit: Unit): void {
  const byEntity = units.get(f) ?? new Map<string, Unit[]>();
  units.set(f, byEntity);
  const list = byEntity.get(entity);
  if (list) list.push(unit);
  else byEntity.set(entity, [unit]);
}

/** Sets the earlier points of units no covered row gave, looked up; false past READ_LOOKUP_LIMIT entities. */
async function lookUpPrevs(
  ch: ClickHouse,
  open: readonly OpenWindow[],
  units: ReadonlyArray<{ f: number; entity: string; unit: Unit }>,
): Promise<boolean> {
  if (new Set(units.map((u) => `${u.f}|${u.entity}`)).size > READ_LOOKUP_LIMIT) return false;
  for (const w of open) {
    const mine = units.filter((u) => FAMILY_OF[u.f] === w.family);
    if (mine.length === 0) continue;
    const history = await historyOf(ch, w, [...new Set(mine.map((u) => u.entity))]);
    for (const u of mine) u.unit.prev = prevsFrom(history, u.entity, u.unit);
  }
  return true;
}

/**
 * Adds the points of the parts written since the last sync: false when that is not known to be exact (a
 * mutation since, or too many new entities to look up), and the caller loads every unit again.
 */
async function addNewPoints(ch: ClickHouse, open: readonly OpenWindow[], st: UnitState): Promise<boolean> {
  const parts = await activeParts(ch);
  const mutation = Math.max(0, ...parts.map(mutationOf));
  if (mutation > st.mutation) return false;
  const { params, onDays, bit } = windowsSql(open);
  const found = await rows<{
    f: number;
    entity: string;
    team_id: string;
    service: string;
    mask: string | number;
  }>(ch, {
    query: `SELECT toUInt8(family) AS f, entity, team_id, service, groupBitOr(${bit}) AS mask
        FROM usage_points_by_day
        WHERE (${onDays}) AND _part NOT IN {done:Array(String)}
        GROUP BY f, entity, team_id, service`,
    // Part names are [0-9a-z_]: nothing in them for the binding to escape.
    query_params: { ...params, done: `[${(st.parts ?? []).map((p) => `'${p}'`).join(',')}]` },
  });
  const fresh: Array<{ f: number; entity: string; unit: Unit }> = [];
  for (const r of found) {
    const f = Number(r.f);
    const unit = st.units
      .get(f)
      ?.get(r.entity)
      ?.find((u) => u.team === r.team_id && u.service === r.service);
    if (unit) {
      unit.mask |= Number(r.mask);
      continue;
    }
    // Rows are units (grouped by them): each one new here is new once.
    fresh.push({
      f,
      entity: r.entity,
      unit: { team: r.team_id, service: r.service, mask: Number(r.mask), prev: [0, 0, 0, 0] },
    });
  }
  // Looked up before any is added: a failed lookup leaves the units as they were.
  if (!(await lookUpPrevs(ch, open, fresh))) return false;
  for (const u of fresh) addUnit(st.units, u.f, u.entity, u.unit);
  st.parts = parts;
  return true;
}

/**
 * One read's cells from the units: each entity's units that pass its filters, grouped by its grouping (an
 * entity counts once per group), with the earlier point of the read's level.
 */
function cellsFromUnits(units: Units, r: OpenRead): OpenCells {
  const { level } = levelOf({
    team_id: r.filters.team_id ?? (r.groupBy === 'team_id' || r.groupBy === 'team_service' ? '' : undefined),
    service: r.filters.service ?? (r.groupBy === 'service' || r.groupBy === 'team_service' ? '' : undefined),
  });
  const slot = { all: 0, team: 1, service: 2, team_service: 3 }[level];
  const team = r.filters.team_id;
  const service = r.filters.service;
  const groupOfUnit = (u: Unit): string =>
    r.groupBy === 'team_id'
      ? u.team
      : r.groupBy === 'service'
        ? u.service
        : r.groupBy === 'team_service'
          ? `${engineHex(u.team)}:${engineHex(u.service)}`
          : '';
  // group → family → `prev:mask` → entities
  const counts = new Map<string, Map<Family, Map<string, number>>>();
  for (const [f, byEntity] of units) {
    const family = FAMILY_OF[f] as Family;
    for (const list of byEntity.values()) {
      let mine: Map<string, { mask: number; prev: number }> | undefined;
      for (const u of list) {
        if ((team !== undefined && u.team !== team) || (service !== undefined && u.service !== service))
          continue;
        mine ??= new Map();
        const g = groupOfUnit(u);
        const had = mine.get(g);
        const prev = u.prev[slot] as number;
        if (had) {
          had.mask |= u.mask;
          had.prev = Math.max(had.prev, prev);
        } else mine.set(g, { mask: u.mask, prev });
      }
      if (!mine) continue;
      for (const [g, e] of mine) {
        const families = counts.get(g) ?? new Map<Family, Map<string, number>>();
        counts.set(g, families);
        const cells = families.get(family) ?? new Map<string, number>();
        families.set(family, cells);
        const key = `${e.prev}:${e.mask}`;
        cells.set(key, (cells.get(key) ?? 0) + 1);
      }
    }
  }
  const out: OpenCells = new Map();
  for (const [g, families] of counts) {
    const byFamily = new Map<Family, Array<{ prev: number; mask: number; n: number }>>();
    for (const [family, cells] of families) {
      byFamily.set(
        family,
        [...cells].map(([key, n]) => {
          const at = key.indexOf(':');
          return { prev: Number(key.slice(0, at)), mask: Number(key.slice(at + 1)), n };
        }),
      );
    }
    out.set(g, byFamily);
  }
  return out;
}
