// Sealing and reading the usage pairs of migration 0011: exact distinct users and sessions over any day range
// from per-day counts of (day, previous day) pairs, valid while the counters of the days they depend on are
// unchanged. The reports fall back to the daily rollup whenever a day they need is not sealed.
import { createHash } from 'node:crypto';
import { type ClickHouse, deleteWhere } from '../client.ts';
import { type Snapshot, UNVERSIONED } from '../derived-state.ts';
import type { UsageFilters } from './filters.ts';
import { fromDayNumber, toDayNumber } from './periods.ts';
import { type BuiltQuery, rows } from './query.ts';
import { OPEN_DAYS_MAX, type OpenWindow } from './usage-open-day.ts';

export type Family = 'seen' | 'active' | 'session';
export const FAMILIES: readonly Family[] = ['seen', 'active', 'session'];
/** The families' Enum8 values in migration 0011. */
const FAMILY_NUMBER: Record<Family, number> = { seen: 1, active: 2, session: 3 };
export type Level = 'all' | 'team' | 'service' | 'team_service';

/** The level and key of a team / service filter (a user filter has no pairs: the reports fall back). */
export function levelOf(f: Pick<UsageFilters, 'team_id' | 'service'>): {
  level: Level;
  team: string;
  service: string;
} {
  const team = f.team_id ?? '';
  const service = f.service ?? '';
  const level: Level =
    f.team_id !== undefined
      ? f.service !== undefined
        ? 'team_service'
        : 'team'
      : f.service !== undefined
        ? 'service'
        : 'all';
  return { level, team, service };
}

export interface DayPrefix {
  day: string;
  prefix: number;
}

/** Per family, every day with points and the running sum of its counters up to that day (day ordered). */
export async function dayPrefixes(ch: ClickHouse): Promise<Map<Family, DayPrefix[]>> {
  // Numbers, compact rows, ordered here: read on every changed usage request, this way took 6.2 ms p50 against
  // 6.9 with named rows, text days and ORDER BY in the engine (1,100 counters at 100M events).
  const rs = await ch.client.query({
    query: `SELECT toUInt8(family) AS f, toUInt16(day) AS d, sum(inserted) AS c FROM usage_points WHERE kind = 0
      GROUP BY f, d SETTINGS max_threads = 1`,
    format: 'JSONCompactEachRow',
  });
  const counters = (await rs.json<[number, number, string | number]>()).sort(
    (a, b) => a[0] - b[0] || a[1] - b[1],
  );
  const out = new Map<Family, DayPrefix[]>(FAMILIES.map((f) => [f, []]));
  const running = new Map<Family, number>();
  for (const [f, d, c] of counters) {
    const family = FAMILIES[f - 1] as Family;
    const prefix = (running.get(family) ?? 0) + Number(c);
    running.set(family, prefix);
    out.get(family)?.push({ day: fromDayNumber(d), prefix });
  }
  return out;
}

const sealKey = (family: string, day: string, prefix: number | string) => `${family}|${day}|${prefix}`;

/** The (family, day, prefix) seals written so far. */
export async function sealsWritten(ch: ClickHouse): Promise<Set<string>> {
  const r = await rows<{ family: string; day: string; prefix: string | number }>(ch, {
    query: 'SELECT family, toString(day) AS day, prefix FROM usage_day_seals SETTINGS max_threads = 1',
    query_params: {},
  });
  return new Set(r.map((s) => sealKey(s.family, s.day, s.prefix)));
}

/**
 * What the back-fill has completed: usage_points families, 'user_days' for usage_user_days and 'by_day' for
 * usage_points_by_day (migration 0015).
 */
type Covered = Family | 'user_days' | 'by_day';

/** Families back-filled, with the first day their pairs cover. */
export async function coverage(ch: ClickHouse): Promise<Map<Covered, string>> {
  const r = await rows<{ family: Covered; from_day: string }>(ch, {
    query: 'SELECT family, toString(max(from_day)) AS from_day FROM usage_points_coverage GROUP BY family',
    query_params: {},
  });
  return new Map(r.map((c) => [c.family, c.from_day]));
}

const FAMILY_ENUM = "'Enum8(\\'seen\\' = 1, \\'active\\' = 2, \\'session\\' = 3)'";

// The two views' SELECTs of migration 0011 (points and their counter rows), run over everything stored.
const SESSION_POINTS = `
  SELECT CAST('session', ${FAMILY_ENUM}) AS family, toUInt8(1 - grouping(entity)) AS kind, entity, day,
    team_id, service, if(grouping(entity) = 1, count(), 0) AS inserted
  FROM (
    SELECT session_id AS entity, toDate(timestamp) AS day, team_id, service
    FROM usage_events WHERE type = 'session_start'
  )
  GROUP BY GROUPING SETS ((entity, day, team_id, service), (day))`;
const USER_POINTS = `
  SELECT family, toUInt8(1 - grouping(entity)) AS kind, entity, day, team_id, service,
    if(grouping(entity) = 1, count(), 0) AS inserted
  FROM (
    SELECT CAST(arrayJoin(if(active = 1, ['seen', 'active'], ['seen'])), ${FAMILY_ENUM}) AS family,
      user_id AS entity, day, team_id, service
    FROM usage_daily
  )
  GROUP BY GROUPING SETS ((family, entity, day, team_id, service), (family, day))`;

/**
 * Fills usage_points from what was stored before migration 0011, once: users from usage_daily (kept forever),
 * sessions from the raw events (which RETENTION_DAYS may have thinned: session pairs then cover only the days
 * after the first raw day). Idempotent and resumable: points are deduplicated by their key, and the coverage
 * row is written last.
 */
export async function backfillPoints(ch: ClickHouse, todayIso: string): Promise<boolean> {
  const done = await coverage(ch);
  if (FAMILIES.every((f) => done.has(f)) && done.has('user_days')) {
    if (done.has('by_day')) return false;
    await backfillByDay(ch);
    return true;
  }
  // Sets and maxima: copying a row again changes nothing.
  await ch.client.command({
    query: `INSERT INTO usage_user_days SETTINGS insert_deduplicate = 0
      SELECT user_id, day, team_id, service, sessions, active FROM usage_daily`,
  });
  await ch.client.command({
    query: `INSERT INTO usage_points SETTINGS insert_deduplicate = 0 ${USER_POINTS}`,
  });
  await ch.client.command({
    query: `INSERT INTO usage_points SETTINGS insert_deduplicate = 0 ${SESSION_POINTS}`,
  });
  const [m] = await rows<{ raw: number; raw_min: string; daily: number; daily_min: string }>(ch, {
    query: `SELECT
      (SELECT count() FROM usage_events) > 0 AS raw,
      (SELECT toString(min(toDate(timestamp))) FROM usage_events) AS raw_min,
      (SELECT count() FROM usage_daily) > 0 AS daily,
      (SELECT toString(min(day)) FROM usage_daily) AS daily_min`,
    query_params: {},
  });
  let sessionsFrom = '1970-01-01';
  if (m && Number(m.daily) > 0) {
    if (Number(m.raw) === 0) sessionsFrom = todayIso;
    // The earliest raw day may be partly dropped by a TTL already: only the next one is whole.
    else if (m.daily_min < m.raw_min) sessionsFrom = addDays(m.raw_min, 1);
  }
  await ch.client.insert({
    table: 'usage_points_coverage',
    values: [...FAMILIES, 'user_days'].map((family) => ({
      family,
      from_day: family === 'session' ? sessionsFrom : '1970-01-01',
      done_at: Date.now(),
    })),
    format: 'JSONEachRow',
  });
  if (!done.has('by_day')) await backfillByDay(ch);
  return true;
}

/**
 * Copies usage_points into usage_points_by_day (migration 0015) once, for what was stored before its view: a
 * point copied twice is one row once merged, and its counters only tell when a day's points change.
 */
async function backfillByDay(ch: ClickHouse): Promise<void> {
  await ch.client.command({
    query: `INSERT INTO usage_points_by_day SETTINGS insert_deduplicate = 0
      SELECT family, day, kind, team_id, service, entity, inserted FROM usage_points`,
  });
  await ch.client.insert({
    table: 'usage_points_coverage',
    values: [{ family: 'by_day', from_day: '1970-01-01', done_at: Date.now() }],
    format: 'JSONEachRow',
  });
}

const LEVEL_TUPLES =
  "[('all', '', ''), ('team', team_id, ''), ('service', '', toString(service)), ('team_service', team_id, toString(service))]";

/**
 * The pairs of `days` (each with the prefix read before this call) for one family and level: for every point
 * on those days, the day of its entity's previous point at that level (1970-01-01 when none). Only entities
 * with a point on those days are walked, over all their days up to the last one sealed: each entity's days
 * gathered, sorted and paired with their predecessors (a hash aggregation: 2-4x faster than a window over the
 * same rows sorted, measured on 20M events, with equal pairs).
 */
export function buildPairsInsert(family: Family, level: Level, days: readonly DayPrefix[]): BuiltQuery {
  const token = createHash('sha256')
    .update(`${family}|${level}|${days.map((d) => `${d.day}:${d.prefix}`).join(',')}`)
    .digest('hex');
  const last =
    days
      .map((d) => d.day)
      .sort()
      .at(-1) ?? '1970-01-01';
  const query = `
    INSERT INTO usage_pairs (family, level, team_id, service, day, prefix, prev, n)
    SETTINGS insert_deduplication_token = '${token}', max_threads = 1,
      max_bytes_before_external_sort = 268435456, max_bytes_before_external_group_by = 268435456
    SELECT {family:String}, {level:String}, tk, sk, day,
      transform(day, {days:Array(Date)}, {prefixes:Array(UInt64)}, toUInt64(0)) AS prefix, prev, count() AS n
    FROM (
      SELECT lv.2 AS tk, lv.3 AS sk, arraySort(groupUniqArray(day)) AS days_of
      FROM usage_points
      ARRAY JOIN arrayFilter(x -> x.1 = {level:String}, ${LEVEL_TUPLES}) AS lv
      WHERE family = {family:String} AND kind = 1 AND day <= {last:Date}
        AND entity IN (
          SELECT entity FROM usage_points
          WHERE family = {family:String} AND kind = 1 AND day IN {days:Array(Date)}
        )
      GROUP BY tk, sk, entity
    )
    ARRAY JOIN days_of AS day, arrayPushFront(arrayPopBack(days_of), toDate('1970-01-01')) AS prev
    WHERE day IN {days:Array(Date)}
    GROUP BY tk, sk, day, prev`;
  return {
    query,
    query_params: {
      family,
      level,
      last,
      days: `[${days.map((d) => `'${d.day}'`).join(',')}]`,
      prefixes: `[${days.map((d) => d.prefix).join(',')}]`,
    },
  };
}

const LEVELS: readonly Level[] = ['all', 'team', 'service', 'team_service'];

/** Seals `days` of one family: the pairs at every level, then the seal rows that make them count. */
export async function sealUsageDays(
  ch: ClickHouse,
  family: Family,
  days: readonly DayPrefix[],
): Promise<void> {
  if (days.length === 0) return;
  for (const level of LEVELS) await ch.client.command(buildPairsInsert(family, level, days));
  await ch.client.insert({
    table: 'usage_day_seals',
    values: days.map((d) => ({ family, day: d.day, prefix: d.prefix, sealed_at: Date.now() })),
    format: 'JSONEachRow',
  });
}

/**
 * Removes the pairs a later seal of the same day has replaced (and any left by a sealing that never finished
 * under an older prefix), once that later seal is a minute old: no report still reads the older prefix then.
 * Returns the rows removed. A lightweight delete, so it runs only when there is something to remove.
 */
export async function pruneReplacedPairs(ch: ClickHouse, minAgeMs = 60_000): Promise<number> {
  const tops = await rows<{ key: string | number; top: string | number }>(ch, {
    query: `SELECT toUInt64(toUInt8(family)) * 65536 + toUInt32(day) AS key, max(prefix) AS top
      FROM usage_day_seals WHERE sealed_at <= now64(3, 'UTC') - toIntervalMillisecond({age:UInt64})
      GROUP BY family, day`,
    query_params: { age: minAgeMs },
  });
  if (tops.length === 0) return 0;
  const where = `prefix < transform(toUInt64(toUInt8(family)) * 65536 + toUInt32(day), {keys:Array(UInt64)},
    {tops:Array(UInt64)}, toUInt64(0))`;
  const query_params = {
    keys: `[${tops.map((t) => t.key).join(',')}]`,
    tops: `[${tops.map((t) => t.top).join(',')}]`,
  };
  const [stale] = await rows<{ n: string | number }>(ch, {
    query: `SELECT count() AS n FROM usage_pairs WHERE ${where}`,
    query_params,
  });
  const n = Number(stale?.n ?? 0);
  if (n === 0) return 0;
  await ch.client.command({ query: `${deleteWhere(ch, 'usage_pairs')} ${where}`, query_params });
  return n;
}

/** Days of each family that have points and no seal under their current prefix. */
export function unsealedDays(
  prefixes: Map<Family, DayPrefix[]>,
  seals: Set<string>,
): Map<Family, DayPrefix[]> {
  const out = new Map<Family, DayPrefix[]>();
  for (const [family, days] of prefixes) {
    out.set(
      family,
      days.filter((d) => !seals.has(sealKey(family, d.day, d.prefix))),
    );
  }
  return out;
}

/** Whether usage_user_days holds everything usage_daily does (back-filled), so user filters may read it. */
export async function userDaysReady(ch: ClickHouse, snap: Snapshot = UNVERSIONED): Promise<boolean> {
  return (await snap.derive('usage-coverage', COVERAGE_TABLES, () => coverage(ch))).has('user_days');
}

export function addDays(iso: string, n: number): string {
  return new Date(Date.parse(`${iso}T00:00:00Z`) + n * 86_400_000).toISOString().slice(0, 10);
}

// ---- reads -------------------------------------------------------------------------------------------------

/**
 * The days a read needs, under their current prefixes, when every one of them is sealed but each family's
 * last few (open: usage-open-day.ts adds their points).
 */
export interface SealedView {
  /** The sealed days: family * 65536 + day number, for transform(): a hash lookup per pair row. */
  keys: number[];
  prefixes: number[];
  open: OpenWindow[];
}

/** Every day with points, per family: its current prefix and whether it is sealed under it. */
export interface SealState {
  /** By family number (the Enum8 value): [day number, prefix, sealed] in day order. */
  families: Map<number, Array<[number, number, boolean]>>;
  /** What the back-fill has completed, with the first day each family's pairs cover. */
  covered: Map<string, string>;
}

const SEAL_STATE = 'usage-seal-state';

/**
 * What the seal state is read from. Content versions (data-version.ts): no merge changes a counter's sum, a
 * seal's presence or a coverage's latest day, so a merge of these tables (under live traffic, about a third of
 * usage_points' new versions) leaves the state held.
 */
export const SEAL_TABLES = ['~usage_points', '~usage_day_seals', '~usage_points_coverage'] as const;
const COVERAGE_TABLES = ['~usage_points_coverage'] as const;

/**
 * The current prefix of every (family, day) with points and whether it is sealed under it, at the snapshot's
 * version (read once per version of its tables), from what the sealer reads too. Its parts are each kept by
 * their own tables' version: under live traffic an insert re-reads the counters alone (the counters, seals and
 * coverage in one query took 11.4 ms at 100M events, idle; the counters alone 6.9). Read apart, a seal and a
 * counter may be seen at different moments; a seal states that a day's pairs are complete under one prefix, so
 * it counts only where the counters show that prefix, whichever was read first.
 */
export function sealState(ch: ClickHouse, snap: Snapshot = UNVERSIONED): Promise<SealState> {
  return snap.derive(SEAL_STATE, SEAL_TABLES, async () => {
    const [prefixes, seals, covered] = await Promise.all([
      snap.derive('usage-day-prefixes', ['~usage_points'], () => dayPrefixes(ch)),
      snap.derive('usage-seals', ['~usage_day_seals'], () => sealsWritten(ch)),
      snap.derive('usage-coverage', COVERAGE_TABLES, () => coverage(ch)),
    ]);
    const families = new Map<number, Array<[number, number, boolean]>>();
    for (const [family, days] of prefixes) {
      if (days.length === 0) continue;
      families.set(
        FAMILY_NUMBER[family],
        days.map((d): [number, number, boolean] => [
          toDayNumber(d.day),
          d.prefix,
          seals.has(sealKey(family, d.day, d.prefix)),
        ]),
      );
    }
    return { families, covered };
  });
}

/**
 * The days a summary of [start, end] needs (active and session days in the range, seen days up to `end`) under
 * their current prefixes, or undefined when one of them is not sealed or the back-fill has not covered the
 * range (the caller falls back to the daily rollup).
 */
export function viewOf(state: SealState, start: string, end: string): SealedView | undefined {
  // No points at all: nothing to walk, and nothing to answer from either.
  if (state.families.size === 0) return undefined;
  const sessionsFrom = state.covered.get('session');
  if (!FAMILIES.every((f) => state.covered.has(f)) || sessionsFrom === undefined || sessionsFrom > start)
    return undefined;
  const from = toDayNumber(start);
  const to = toDayNumber(end);
  const byDay = state.covered.has('by_day');
  const view: SealedView = { keys: [], prefixes: [], open: [] };
  for (const [family, days] of state.families) {
    const seen = family === FAMILY_NUMBER.seen;
    const needed = (day: number) => day <= to && (seen || day >= from);
    // The family's open days (usage-open-day.ts): from its first day not sealed, when few enough.
    const first = days.findIndex((d) => !d[2]);
    const windowAt = first >= 0 && byDay && days.length - first <= OPEN_DAYS_MAX ? first : days.length;
    for (let i = 0; i < windowAt; i++) {
      const [day, prefix, sealed] = days[i] as [number, number, boolean];
      if (!needed(day)) continue;
      if (!sealed) return undefined;
      view.keys.push(family * 65_536 + day);
      view.prefixes.push(prefix);
    }
    const open = days.slice(windowAt);
    // Days after the window's first count through it, sealed or not; a range that ends before it needs none.
    if (open.length > 0 && (open[0] as [number, number, boolean])[0] <= to) {
      view.open.push({
        family: FAMILIES.find((f) => FAMILY_NUMBER[f] === family) as Family,
        days: open.map(([d]) => fromDayNumber(d)),
        base: days[windowAt - 1]?.[1] ?? 0,
      });
    }
  }
  return view;
}

/** The sealed view of [start, end], or undefined when a day it needs is not sealed (the caller falls back). */
export async function sealedView(
  ch: ClickHouse,
  start: string,
  end: string,
  snap: Snapshot = UNVERSIONED,
): Promise<SealedView | undefined> {
  return viewOf(await sealState(ch, snap), start, end);
}

/** The summary's three numbers from the pairs sealed under the view's prefixes. */
export function buildPairsSummaryQuery(
  start: string,
  end: string,
  f: Pick<UsageFilters, 'team_id' | 'service'>,
  view: SealedView,
): BuiltQuery {
  const { level, team, service } = levelOf(f);
  // Only pairs under the prefix the view read count (older seals of a day are left behind); FINAL folds a
  // pair written twice by racing sealers.
  const query = `
    SELECT
      sumIf(n, family = 'seen') AS total_users,
      sumIf(n, family = 'active') AS active_users,
      sumIf(n, family = 'session') AS total_sessions
    FROM usage_pairs FINAL
    WHERE level = {level:String} AND team_id = {team:String} AND service = {service:String}
      AND ((family = 'seen' AND day <= {end_date:Date} AND prev = toDate('1970-01-01'))
        OR (family != 'seen' AND day BETWEEN {start_date:Date} AND {end_date:Date} AND prev < {start_date:Date}))
      AND prefix = transform(toUInt64(toUInt8(family)) * 65536 + toUInt32(day), {keys:Array(UInt64)},
        {prefixes:Array(UInt64)}, toUInt64(0))
    SETTINGS max_threads = 1`;
  return {
    query,
    query_params: {
      level,
      team,
      service,
      start_date: start,
      end_date: end,
      keys: `[${view.keys.join(',')}]`,
      prefixes: `[${view.prefixes.join(',')}]`,
    },
  };
}

/** The summary's three numbers from the pairs under the view's prefixes, in SQL. */
export async function pairsSummary(
  ch: ClickHouse,
  start: string,
  end: string,
  f: Pick<UsageFilters, 'team_id' | 'service'>,
  view: SealedView,
): Promise<{ total_users: number; active_users: number; total_sessions: number }> {
  const [r] = await rows<Record<string, string | number>>(ch, buildPairsSummaryQuery(start, end, f, view));
  return {
    total_users: Number(r?.total_users ?? 0),
    active_users: Number(r?.active_users ?? 0),
    total_sessions: Number(r?.total_sessions ?? 0),
  };
}
