// The open day of migration 0015: a family's last day with points while it is not sealed (today, under live
// traffic). The sealer keeps, for each of its points, the day of the entity's previous point at every level
// (usage_open_points, under the base the previous days had then); a read adds the open day's entities whose
// previous point is before its range to the sealed pairs of the other days, looking up itself the few points
// the sealer has not reached yet. Exact for the same reason as the pairs: a distinct count over [a, b] is the
// number of points in it whose entity's previous point is before a, and an open day's previous points depend
// only on the days before it, which are sealed and unchanged while the base is.
import { type ClickHouse, quoteIdent } from '../client.ts';
import { type Snapshot, UNVERSIONED } from '../derived-state.ts';
import type { UsageFilters } from './filters.ts';
import type { BuiltQuery } from './query.ts';
import { type DayPrefix, type Family, levelOf } from './usage-pairs.ts';

/** An open (family, day) and the base its previous points must have been computed under. */
export interface OpenDay {
  family: Family;
  day: string;
  /** The family's counters summed over the days before `day`. */
  base: number;
}

const NONE = '1970-01-01';
/** Family names by their Enum8 value (migration 0011). */
const FAMILY_OF: Record<number, Family> = { 1: 'seen', 2: 'active', 3: 'session' };

/** What an entity's earlier points look like: its last day before the open day per (team, service). */
type History = Map<string, Array<{ team: string; service: string; last: string }>>;

async function rows<T>(ch: ClickHouse, q: BuiltQuery): Promise<T[]> {
  const rs = await ch.client.query({ ...q, format: 'JSONEachRow' });
  return rs.json<T>();
}

// Bounds the entities of one lookup: the array goes into the query text.
const LOOKUP_CHUNK = 5_000;

/**
 * Earlier points already looked up, by family, open day, base and entity: they cannot change while the base
 * is the same (every day before the open one is sealed under it), so a point the sealer has not covered yet
 * is looked up once per process, not once per request. Bounded; the oldest entries go first.
 */
const remembered = new Map<string, Array<{ team: string; service: string; last: string }>>();
const REMEMBERED_MAX = 200_000;

/**
 * The last point before `day` of each entity, per (team, service) it has had points in: a key-range read of
 * usage_points per entity (its family, kind and entity lead the key).
 */
async function historyOf(ch: ClickHouse, open: OpenDay, entities: readonly string[]): Promise<History> {
  const out: History = new Map();
  const prefix = `${open.family}|${open.day}|${open.base}|`;
  const missing: string[] = [];
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
      query_params: { family: open.family, day: open.day, entities: chunk },
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

// ---- the sealer's side ---------------------------------------------------------------------------------------

/** Points of one open day the sealer covers per round at most: a day's first round is the long one. */
const ROUND_POINTS = 50_000;

/**
 * Writes the previous points of every open day's points not yet covered under its current base, for each
 * family whose last day with points is not sealed under its current prefix. Returns the points covered.
 * `prefixes` must have been read before this call, like a seal's: rows computed after a later insert into an
 * earlier day are filed under the base that insert has moved on from, so they never count.
 */
export async function coverOpenDays(
  ch: ClickHouse,
  prefixes: ReadonlyMap<Family, readonly DayPrefix[]>,
  isSealed: (family: Family, d: DayPrefix) => boolean,
): Promise<number> {
  let covered = 0;
  for (const open of openDaysOf(prefixes, isSealed)) {
    const points = await rows<{ team_id: string; service: string; entity: string }>(ch, {
      query: `SELECT team_id, service, entity FROM usage_points_by_day
        WHERE family = {family:String} AND day = {day:Date}
          AND (team_id, service, entity) NOT IN (
            SELECT team_id, service, entity FROM usage_open_points
            WHERE family = {family:String} AND day = {day:Date} AND base = {base:UInt64})
        GROUP BY team_id, service, entity
        LIMIT {limit:UInt32}`,
      query_params: { ...open, limit: ROUND_POINTS },
    });
    if (points.length === 0) continue;
    // Looked up after the points were listed, so every listed point's entity has all its earlier points here.
    const history = await historyOf(ch, open, [...new Set(points.map((p) => p.entity))]);
    await ch.client.insert({
      table: 'usage_open_points',
      values: points.map((p) => ({
        family: open.family,
        day: open.day,
        base: open.base,
        team_id: p.team_id,
        service: p.service,
        entity: p.entity,
        prev_all: latest(history, p.entity, () => true),
        prev_team: latest(history, p.entity, (h) => h.team === p.team_id),
        prev_service: latest(history, p.entity, (h) => h.service === p.service),
        prev_team_service: latest(history, p.entity, (h) => h.team === p.team_id && h.service === p.service),
      })),
      format: 'JSONEachRow',
    });
    covered += points.length;
  }
  return covered;
}

/** Each family's last day with points, when it is not sealed under its current prefix, with its base. */
export function openDaysOf(
  prefixes: ReadonlyMap<Family, readonly DayPrefix[]>,
  isSealed: (family: Family, d: DayPrefix) => boolean,
): OpenDay[] {
  const out: OpenDay[] = [];
  for (const [family, days] of prefixes) {
    const last = days.at(-1);
    if (!last || isSealed(family, last)) continue;
    out.push({ family, day: last.day, base: days.at(-2)?.prefix ?? 0 });
  }
  return out;
}

/**
 * Removes the rows of days that are no longer open under that base (sealed since, or their base moved on), once
 * they have been left behind for a whole pruning interval: `staleBefore` is what the previous call returned
 * (rows stale then and still stale now go). A read that began under an older base meanwhile finds its rows; one
 * that loses them looks their points up itself. Returns the keys stale now, for the next call.
 */
export async function pruneOpenPoints(
  ch: ClickHouse,
  current: readonly OpenDay[],
  staleBefore: ReadonlySet<string>,
): Promise<{ stale: Set<string>; removed: number }> {
  const keyOf = (o: { family: string; day: string; base: number | string }) =>
    `${o.family}|${o.day}|${o.base}`;
  const live = new Set(current.map(keyOf));
  const keys = await rows<{ family: Family; day: string; base: string | number; n: string | number }>(ch, {
    query: `SELECT family, toString(day) AS day, base, count() AS n FROM usage_open_points
      GROUP BY family, day, base`,
    query_params: {},
  });
  const stale = new Set<string>();
  const gone: Array<{ family: Family; day: string; base: number }> = [];
  let removed = 0;
  for (const k of keys) {
    const key = keyOf(k);
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
  // On a cluster the rows live in the shard-local tables, reached ON CLUSTER.
  const target = ch.cluster
    ? `ALTER TABLE ${quoteIdent(ch.database)}.usage_open_points_local ON CLUSTER ${quoteIdent(ch.cluster)} DELETE WHERE`
    : 'DELETE FROM usage_open_points WHERE';
  await ch.client.command({ query: `${target} ${where}`, query_params: params });
  for (const g of gone) stale.delete(keyOf(g));
  return { stale, removed };
}

// ---- the reads -----------------------------------------------------------------------------------------------

/** The open day's contribution to one group of a report: entities counted once each. */
export interface OpenCounts {
  seen: number;
  active: number;
  session: number;
}

export interface OpenRead {
  /** The open days the read needs (those in its range; seen on or before its end). */
  open: readonly OpenDay[];
  /** The report's team / service filter. */
  filters: Pick<UsageFilters, 'team_id' | 'service'>;
  /** Grouped timeseries: the column each group is; the group's key is then that column's value. */
  groupBy?: 'team_id' | 'service' | undefined;
  /** Active users and sessions count when their previous point is before this day (the range's or period's). */
  since: string;
}

/**
 * Uncovered points a read looks up itself at most: beyond it (the sealer far behind, or stopped) the read is
 * answered from the daily rollup instead (undefined).
 */
export const READ_LOOKUP_LIMIT = 2_000;

/**
 * The open days' entities at one level, per group: how many have their previous point on each day (NONE: no
 * earlier point). Any range's contribution is then a sum over the days before its start, so one computation
 * serves every request of a data version that reads the same level and days.
 */
type OpenPairs = Map<string, Map<Family, Map<string, number>>>;

/**
 * The open days' contribution to each group ('' when ungrouped), or undefined when more than
 * READ_LOOKUP_LIMIT of their points are not covered yet. Computed once per data version and level.
 */
export async function openContribution(
  ch: ClickHouse,
  r: OpenRead,
  snap: Snapshot = UNVERSIONED,
): Promise<Map<string, OpenCounts> | undefined> {
  if (r.open.length === 0) return new Map();
  const key = JSON.stringify([
    'usage-open-pairs',
    r.filters.team_id ?? null,
    r.filters.service ?? null,
    r.groupBy ?? null,
    r.open.map((o) => [o.family, o.day, o.base]),
  ]);
  const pairs = await snap.derive(
    key,
    () => openPairs(ch, r),
    (v) => {
      let entries = 0;
      for (const families of v?.values() ?? []) for (const prevs of families.values()) entries += prevs.size;
      return 1_024 + entries * 64;
    },
  );
  if (!pairs) return undefined;
  const out = new Map<string, OpenCounts>();
  for (const [grp, families] of pairs) {
    const c: OpenCounts = { seen: 0, active: 0, session: 0 };
    for (const [family, prevs] of families) {
      for (const [prev, n] of prevs) if (family === 'seen' ? prev === NONE : prev < r.since) c[family] += n;
    }
    out.set(grp, c);
  }
  return out;
}

async function openPairs(ch: ClickHouse, r: OpenRead): Promise<OpenPairs | undefined> {
  const { level } = levelOf({
    team_id: r.filters.team_id ?? (r.groupBy === 'team_id' ? '' : undefined),
    service: r.filters.service ?? (r.groupBy === 'service' ? '' : undefined),
  });
  const prevColumn = {
    all: 'prev_all',
    team: 'prev_team',
    service: 'prev_service',
    team_service: 'prev_team_service',
  }[level];
  const params: Record<string, string | number> = {};
  const onDay: string[] = [];
  const underBase: string[] = [];
  r.open.forEach((o, i) => {
    params[`f${i}`] = o.family;
    params[`d${i}`] = o.day;
    params[`b${i}`] = o.base;
    onDay.push(`(family = {f${i}:String} AND day = {d${i}:Date})`);
    underBase.push(`(family = {f${i}:String} AND day = {d${i}:Date} AND base = {b${i}:UInt64})`);
  });
  let filter = '';
  for (const col of ['team_id', 'service'] as const) {
    const v = r.filters[col];
    if (v === undefined) continue;
    filter += ` AND ${col} = {${col}:String}`;
    params[col] = v;
  }
  const grp = r.groupBy ?? "''";
  const covered = await rows<{ f: number; grp: string; prev: string; n: string | number }>(ch, {
    query: `SELECT toUInt8(family) AS f, ${grp} AS grp, toString(${prevColumn}) AS prev, uniqExact(entity) AS n
      FROM usage_open_points
      WHERE (${underBase.join(' OR ')})${filter}
      GROUP BY f, grp, prev`,
    query_params: params,
  });
  // A unit (entity and group) is covered when any of its points is: its previous point is the same for all.
  const uncovered = await rows<{ f: number; entity: string; grp: string }>(ch, {
    query: `SELECT toUInt8(family) AS f, entity, ${grp} AS grp
      FROM usage_points_by_day
      WHERE (${onDay.join(' OR ')})${filter}
        AND (family, entity, ${grp}) NOT IN (
          SELECT family, entity, ${grp} FROM usage_open_points WHERE (${underBase.join(' OR ')})${filter})
      GROUP BY f, entity, grp
      LIMIT ${READ_LOOKUP_LIMIT + 1}`,
    query_params: params,
  });
  if (uncovered.length > READ_LOOKUP_LIMIT) return undefined;
  const out: OpenPairs = new Map();
  const add = (g: string, family: Family, prev: string, n: number) => {
    const families = out.get(g) ?? new Map<Family, Map<string, number>>();
    const prevs = families.get(family) ?? new Map<string, number>();
    prevs.set(prev, (prevs.get(prev) ?? 0) + n);
    families.set(family, prevs);
    out.set(g, families);
  };
  for (const c of covered) add(c.grp, FAMILY_OF[Number(c.f)] as Family, c.prev, Number(c.n));
  for (const open of r.open) {
    const mine = uncovered.filter((u) => FAMILY_OF[Number(u.f)] === open.family);
    if (mine.length === 0) continue;
    const history = await historyOf(ch, open, [...new Set(mine.map((u) => u.entity))]);
    for (const u of mine) {
      // The unit's previous point at the read's level: its team / service fixed by the filter or the group.
      const team = r.groupBy === 'team_id' ? u.grp : r.filters.team_id;
      const service = r.groupBy === 'service' ? u.grp : r.filters.service;
      const prev = latest(
        history,
        u.entity,
        (h) => (team === undefined || h.team === team) && (service === undefined || h.service === service),
      );
      add(u.grp, open.family, prev, 1);
    }
  }
  return out;
}
