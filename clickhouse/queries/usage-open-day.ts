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
import { listParts, partsAt, versionOf } from '../data-version.ts';
import { type Snapshot, UNVERSIONED } from '../derived-state.ts';
import type { UsageFilters } from './filters.ts';
import { toDayNumber } from './periods.ts';
import { rows } from './query.ts';
import {
  cellsFromUnits,
  type OpenCells,
  type PointsAt,
  READ_LOOKUP_LIMIT,
  unitsForRead,
  unitsOf,
} from './usage-open-units.ts';
import type { DayPrefix, Family } from './usage-pairs.ts';

export { READ_LOOKUP_LIMIT };

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

/** What the open days keep per engine handle (each test database has its own). */
interface OpenMemo {
  /** Cells by their inputs (cellsOf), the least recently used dropped past CELL_ENTRIES_MAX entries. */
  cells: Map<string, OpenCells>;
  cellEntries: number;
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
    memo = { cells: new Map(), cellEntries: 0, lastCovered: new Map() };
    memos.set(ch, memo);
  }
  return memo;
}

// ---- the sealer's side -------------------------------------------------------------------------------------

/**
 * Writes the earlier points of every open day's points not yet covered under the window's current base, one
 * statement per day, computed and written by the engine: the JSON encoding of those rows in this process held
 * its event loop 26-62 ms a round under live traffic at 100M events, and every request waited behind it.
 * Returns the days covered. `prefixes` must have been read before this call, like a seal's: rows computed after
 * a later insert into a day before the window are filed under the base that insert has moved on from, so they
 * never count.
 */
export async function coverOpenDays(
  ch: ClickHouse,
  prefixes: ReadonlyMap<Family, readonly DayPrefix[]>,
  isSealed: (family: Family, d: DayPrefix) => boolean,
): Promise<number> {
  let covered = 0;
  for (const w of openWindowsOf(prefixes, isSealed)) {
    // Only the days whose counters moved since this process last covered them under this base: a new point
    // always moves its day's counter (they share a part), and a round with nothing new then writes nothing.
    const counters = dayCounters(prefixes.get(w.family) ?? [], w.days);
    const key = `${w.family}|${w.days[0]}|${w.base}`;
    const { lastCovered } = memoOf(ch);
    const done = new Map(lastCovered.get(key) ?? []);
    for (const day of w.days) {
      if (done.get(day) === counters.get(day)) continue;
      await ch.client.command({
        query: COVER_DAY,
        query_params: { family: w.family, day, first: w.days[0] as string, base: w.base },
      });
      done.set(day, counters.get(day) as number);
      covered++;
    }
    lastCovered.set(key, done);
    if (lastCovered.size > 64) lastCovered.delete(lastCovered.keys().next().value as string);
  }
  return covered;
}

/**
 * One open day's points not covered under the base, each with its entity's last point before the window at
 * every level: the entity's earlier points are a key-range read of usage_points (family, kind and entity lead
 * its key), one row per (team, service) it had points in. An entity with none joins the default row, whose day
 * is 1970-01-01, "none" (Date's default, what maxIf also gives when no row passes). The points and the earlier
 * points are read by one statement; a point inserted since is covered by the next round.
 */
const COVER_DAY = `
  INSERT INTO usage_open_points
    (family, day, base, team_id, service, entity, prev_all, prev_team, prev_service, prev_team_service)
  WITH points AS (
    SELECT team_id, service, entity FROM usage_points_by_day
    WHERE family = {family:String} AND day = {day:Date} AND kind = 1
      AND (team_id, service, entity) NOT IN (
        SELECT team_id, service, entity FROM usage_open_points
        WHERE family = {family:String} AND day = {day:Date} AND base = {base:UInt64})
    GROUP BY team_id, service, entity
  )
  SELECT {family:String}, {day:Date}, {base:UInt64}, p.team_id, p.service, p.entity,
    max(h.last), maxIf(h.last, h.team_id = p.team_id), maxIf(h.last, h.service = p.service),
    maxIf(h.last, h.team_id = p.team_id AND h.service = p.service)
  FROM points AS p
  LEFT JOIN (
    SELECT entity, team_id, service, max(day) AS last FROM usage_points
    WHERE family = {family:String} AND kind = 1 AND day < {first:Date} AND entity IN (SELECT entity FROM points)
    GROUP BY entity, team_id, service
  ) AS h ON h.entity = p.entity
  GROUP BY p.team_id, p.service, p.entity
  SETTINGS join_use_nulls = 0`;

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
  // The cells follow from the windows' points and base alone, so they are kept by those (the units' stamp),
  // not by the data version (which every insert, sealer round and merge changes). Whether the points moved is
  // told by usage_points_by_day's parts in the version the request read, with no query: after an insert a
  // changed read reads only the new parts' points (a query of the windows' counters and parts before them
  // took 7.5-12 ms under live traffic at 100M events).
  const at = await pointsAt(ch, snap);
  const cells = await cellsOf(ch, r, windows, at);
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
 * usage_points_by_day as the snapshot's version saw it: on one node its parts, from that version's listing (or
 * listed now when there is none); on a cluster its content version.
 */
async function pointsAt(ch: ClickHouse, snap: Snapshot): Promise<PointsAt> {
  if (ch.cluster !== undefined) {
    const content = snap.version === undefined ? undefined : versionOf(snap.version, [`~${BY_DAY}`]);
    return { parts: undefined, content };
  }
  const parts =
    (snap.version === undefined ? undefined : partsAt(snap.version, BY_DAY)) ?? (await listParts(ch, BY_DAY));
  return { parts, content: undefined };
}

const BY_DAY = 'usage_points_by_day';

/** The cells of one read's level, filters and grouping, kept by the windows' units (their stamp). */
async function cellsOf(
  ch: ClickHouse,
  r: OpenRead,
  windows: unknown,
  at: PointsAt,
): Promise<OpenCells | undefined> {
  const synced = await unitsOf(ch, r.open, JSON.stringify(windows), at);
  if (!synced) return undefined;
  const key = JSON.stringify([
    r.filters.team_id ?? null,
    r.filters.service ?? null,
    r.groupBy ?? null,
    windows,
    synced.stamp,
  ]);
  const memo = memoOf(ch);
  const held = memo.cells.get(key);
  if (held) {
    memo.cells.delete(key);
    memo.cells.set(key, held);
    return held;
  }
  const cells = cellsFromUnits(unitsForRead(synced.units, r), r);
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
