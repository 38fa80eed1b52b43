// The sealed pairs of one filter key (level, team, service), read once per data version and kept in memory:
// any range's summary, and any ungrouped timeseries, is then a scan of at most a few hundred thousand numbers
// instead of a query. A key's pairs grow with the days stored (at most ~days²/2 per family), not with events,
// so even the unfiltered key of a year of traffic is a few MB; DerivedState bounds the keys kept per version.
//
// Exactness is the pairs' own (usage-pairs.ts): only days sealed under their current prefix are loaded, and a
// read uses the index only when every day it needs is sealed (viewOf), else it falls back to SQL.
import { API_QUERY_PRIORITY, type ClickHouse } from '../client.ts';
import type { Snapshot } from '../derived-state.ts';
import { EXPORT_SETTINGS, jsonLines } from '../export-stream.ts';
import type { UsageFilters } from './filters.ts';
import { toDayNumber } from './periods.ts';
import type { BuiltQuery } from './query.ts';
import { type Family, levelOf, SEAL_TABLES, type SealedView, type SealState } from './usage-pairs.ts';

// A filter's pairs are read under the seal state's prefixes: the state's tables count too.
// Content versions (data-version.ts): the pairs are read FINAL, which no merge changes, so a merge of
// usage_pairs after a seal's write keeps the levels held.
const PAIRS_TABLES = [...SEAL_TABLES, '~usage_pairs'];

/** One family's pairs, day ordered: points on `day[i]` whose previous point is on `prev[i]` (0: none). */
interface FamilyPairs {
  day: Int32Array;
  prev: Int32Array;
  n: Float64Array;
}

export interface PairsIndex {
  seen: FamilyPairs;
  active: FamilyPairs;
  session: FamilyPairs;
  /** Bytes held, for the bound on what a version keeps. */
  bytes: number;
  /** The sealed days it was loaded under, with their prefixes (family * 65536 + day number -> prefix). */
  loaded: ReadonlyMap<number, number>;
}

/** Every sealed (family, day)'s current prefix, by family * 65536 + day number. */
function sealedPrefixes(state: SealState): Map<number, number> {
  const out = new Map<number, number>();
  for (const [family, days] of state.families) {
    for (const [day, prefix, sealed] of days) if (sealed) out.set(family * 65_536 + day, prefix);
  }
  return out;
}

/**
 * A key's pairs, one row per family with the columns as arrays. Seen pairs are only needed with no previous
 * point (a user's first day). FINAL folds a pair written twice by racing sealers. Every prefix a day was
 * sealed under comes back; the reader keeps the current one (a lookup here measured cheaper than transform()
 * over the seal state's arrays in SQL: 9 against 16 ms for one team at 20M events).
 */
export function buildPairsIndexQuery(f: Pick<UsageFilters, 'team_id' | 'service'>): BuiltQuery {
  const { level, team, service } = levelOf(f);
  const query = `
    SELECT toUInt8(family) AS family_n, groupArray(toUInt32(day)) AS days, groupArray(prefix) AS prefixes,
      groupArray(toUInt32(prev)) AS prevs, groupArray(n) AS ns
    FROM usage_pairs FINAL
    WHERE level = {level:String} AND team_id = {team:String} AND service = {service:String}
      AND (family != 'seen' OR prev = toDate('1970-01-01'))
    GROUP BY family
    SETTINGS max_threads = 1`;
  return { query, query_params: { level, team, service } };
}

const EMPTY: FamilyPairs = { day: new Int32Array(0), prev: new Int32Array(0), n: new Float64Array(0) };

/** The key's pairs on days sealed under their current prefix (no other day's pairs are ever summed). */
export async function readPairsIndex(
  ch: ClickHouse,
  f: Pick<UsageFilters, 'team_id' | 'service'>,
  state: SealState,
): Promise<PairsIndex> {
  const rs = await ch.client.query({ ...buildPairsIndexQuery(f), format: 'JSONEachRow' });
  const rows = await rs.json<{
    family_n: number;
    days: number[];
    prefixes: Array<string | number>;
    prevs: number[];
    ns: Array<string | number>;
  }>();
  const current = sealedPrefixes(state);
  const index: PairsIndex = { seen: EMPTY, active: EMPTY, session: EMPTY, bytes: 0, loaded: current };
  for (const r of rows) {
    const family = Number(r.family_n);
    const keep: number[] = [];
    r.days.forEach((day, i) => {
      if (current.get(family * 65_536 + Number(day)) === Number(r.prefixes[i])) keep.push(i);
    });
    const pairs = sortedByDay({
      day: Int32Array.from(keep, (i) => Number(r.days[i])),
      prev: Int32Array.from(keep, (i) => Number(r.prevs[i])),
      n: Float64Array.from(keep, (i) => Number(r.ns[i])),
    });
    setFamily(index, family, pairs);
  }
  return index;
}

/** Puts a family's pairs (by its Enum8 value) on an index. */
function setFamily(index: PairsIndex, family: number, pairs: FamilyPairs): void {
  index.bytes += pairs.day.length * 16;
  if (family === 1) index.seen = pairs;
  else if (family === 2) index.active = pairs;
  else if (family === 3) index.session = pairs;
}

// groupArray keeps no order of its own across threads and parts: sorted here unless it came sorted.
function sortedByDay(p: FamilyPairs): FamilyPairs {
  let sorted = true;
  for (let i = 1; i < p.day.length && sorted; i++) sorted = (p.day[i - 1] as number) <= (p.day[i] as number);
  if (sorted) return p;
  const order = Array.from(p.day.keys()).sort((a, b) => (p.day[a] as number) - (p.day[b] as number));
  return {
    day: Int32Array.from(order, (i) => p.day[i] as number),
    prev: Int32Array.from(order, (i) => p.prev[i] as number),
    n: Float64Array.from(order, (i) => p.n[i] as number),
  };
}

const indexKey = (f: Pick<UsageFilters, 'team_id' | 'service'>): string => {
  const { level, team, service } = levelOf(f);
  return JSON.stringify(['usage-pairs', level, team, service]);
};

// A key's index holds the pairs of the days sealed under their current prefixes, and pairs sealed under a
// prefix never change (a day's seal is written after all its pairs). So an index stays right for as long as
// the sealed days and their prefixes are the same, across data versions: under live traffic the version moves
// every second (each insert into today, each merge) while the sealed days stay as they are until the sealer
// seals another. Kept per engine handle, by key, with the sealed days it was loaded under.
interface Held {
  sealed: string;
  index: PairsIndex;
}
interface IndexMemo {
  held: Map<string, Held>;
  /** Every group of a one-column level (all teams, or all services), under the sealed days it was loaded at. */
  levels: Map<GroupLevel, HeldLevel>;
  /** A level's load running, by level and the sealed days it loads. */
  loading: Map<string, Promise<HeldLevel>>;
  /** Times each key was asked for under the current sealed days (a key is loaded from its second). */
  asked: Map<string, number>;
  sealed: string;
  bytes: number;
}
const memos = new WeakMap<ClickHouse, IndexMemo>();
// Filter keys kept, and bytes (clients choose filters; an unfiltered year is a few MB).
const HELD_KEYS_MAX = 256;
const HELD_BYTES_MAX = 64 * 1024 * 1024;

function memoOf(ch: ClickHouse): IndexMemo {
  let m = memos.get(ch);
  if (!m) {
    m = { held: new Map(), levels: new Map(), loading: new Map(), asked: new Map(), sealed: '', bytes: 0 };
    memos.set(ch, m);
  }
  return m;
}

const signatures = new WeakMap<SealState, string>();

/** The sealed days and their prefixes, as text: equal text, same sealed pairs. */
function sealedSignature(state: SealState): string {
  let s = signatures.get(state);
  if (s === undefined) {
    const parts: string[] = [];
    for (const [family, days] of state.families)
      for (const [day, prefix, sealed] of days) if (sealed) parts.push(`${family}.${day}.${prefix}`);
    s = parts.join(',');
    signatures.set(state, s);
  }
  return s;
}

function hold(ch: ClickHouse, key: string, sealed: string, index: PairsIndex): void {
  const m = memoOf(ch);
  const was = m.held.get(key);
  if (was) {
    m.held.delete(key);
    m.bytes -= was.index.bytes;
  }
  m.held.set(key, { sealed, index });
  m.bytes += index.bytes;
  for (const [k, h] of m.held) {
    if (m.held.size <= 1 || (m.held.size <= HELD_KEYS_MAX && m.bytes <= HELD_BYTES_MAX)) break;
    m.held.delete(k);
    m.bytes -= h.index.bytes;
  }
}

// A dashboard asks for many teams (or services), each a few times: each key loaded alone is its own query,
// and a key asked once is summed in SQL. So each filtered level (team, service, team and service) is loaded
// whole, every group at once, one family a query (at 100M events, pairs used: team 283,000 for 200 teams,
// 1.36M for 500 teams in a long-tail shape; team and service 565,000, and 4.87M for 2,500 pairs of them; 16
// bytes each). The levels held share LEVELS_BOUND: a level that would pass it is left to its keys, one at a
// time (a key summed in SQL took 13-22 ms at 4.87M pairs, the level held 1.9 ms a request).
type GroupLevel = 'team' | 'service' | 'team_service';
interface HeldLevel {
  sealed: string;
  /** undefined: too many pairs to hold (the level's keys are loaded one by one instead). */
  groups: Map<string, PairsIndex> | undefined;
  /** A group with no pairs on the days loaded. */
  none: PairsIndex;
  /** Pairs held. */
  pairs: number;
}
/** Pairs the levels hold in all: 8M, 128 MB (an object, so a test can lower it). */
export const LEVELS_BOUND = { pairs: 8_000_000 };

/** The level and group of a one-column filter (team only, or service only), else undefined. */
function groupOf(
  f: Pick<UsageFilters, 'team_id' | 'service'>,
): { level: GroupLevel; group: string } | undefined {
  const { level, team, service } = levelOf(f);
  if (level === 'all') return undefined;
  return { level, group: groupKey(team, service) };
}

// A group's key within its level: its team and service ('' for the one a level does not fix), as JSON (both
// are a producer's text, so no separator is safe).
const groupKey = (team: string, service: string): string => JSON.stringify([team, service]);

/**
 * Every group's pairs of one level and family on the days sealed under their current prefixes (the prefix
 * checked in SQL here: one lookup table for a whole level), one row per group. One family a query: each
 * family's result is a third of the memory in the engine and of the text to parse.
 *
 * A level's load is read beside the API's reads (ch.exportSource(LOAD_SETTINGS): a chdb session of its own, or
 * the server's main client), not on their connection: it is seconds of the engine (the active family of 5,000
 * teams, 3.5M pairs: 2.2 s), and there every request queued behind it (one query at a time on a connection, and
 * chdb runs the bound ones of the whole process one at a time): the first team-filtered request under live
 * traffic took 2.3 s, the next ones 0.4 s (wide shape, 5M events). Its values go in as data, unbound.
 */
export function buildLevelIndexQuery(
  level: GroupLevel,
  family: Family,
  current: ReadonlyMap<number, number>,
): BuiltQuery {
  // Sorted by day here (a tuple sort in the engine), not in JavaScript: a level's groups are millions of pairs.
  const query = `
    SELECT team_id, service, arrayMap(p -> p.1, s) AS days, arrayMap(p -> p.2, s) AS prevs,
      arrayMap(p -> p.3, s) AS ns
    FROM (
      SELECT team_id, service, arraySort(groupArray((toUInt32(day), toUInt32(prev), toFloat64(n)))) AS s
      FROM usage_pairs FINAL
      WHERE family = {family:String} AND level = {level:String}
        AND (family != 'seen' OR prev = toDate('1970-01-01'))
        AND prefix = transform(toUInt64(toUInt8(family)) * 65536 + toUInt32(day), {keys:Array(UInt64)},
          {prefixes:Array(UInt64)}, toUInt64(0))
      GROUP BY team_id, service
    )
    SETTINGS max_threads = 1`;
  return {
    query,
    query_params: {
      level,
      family,
      keys: `[${[...current.keys()].join(',')}]`,
      prefixes: `[${[...current.values()].join(',')}]`,
    },
  };
}

const FAMILY_NUMBER: Record<Family, number> = { seen: 1, active: 2, session: 3 };

async function readLevelIndex(
  ch: ClickHouse,
  level: GroupLevel,
  state: SealState,
  others: number,
): Promise<HeldLevel> {
  const sealed = sealedSignature(state);
  const loaded = sealedPrefixes(state);
  const none: PairsIndex = { seen: EMPTY, active: EMPTY, session: EMPTY, bytes: 0, loaded };
  const source = ch.exportSource(LOAD_SETTINGS);
  try {
    // The pairs a load would hold (any prefix: a bound, not the count).
    let count = 0;
    for await (const [n] of jsonLines<[string | number]>(source, {
      query: `SELECT count() FROM usage_pairs
        WHERE level = {level:String} AND (family != 'seen' OR prev = toDate('1970-01-01'))`,
      query_params: { level },
    }))
      count = Number(n);
    if (count + others > LEVELS_BOUND.pairs) return { sealed, groups: undefined, none, pairs: 0 };
    const groups = new Map<string, PairsIndex>();
    let pairs = 0;
    let since = performance.now();
    for (const family of ['seen', 'active', 'session'] as const) {
      const lines = jsonLines<[string, string, number[], number[], number[]]>(
        source,
        buildLevelIndexQuery(level, family, loaded),
      );
      for await (const [team, service, days, prevs, ns] of lines) {
        const grp = groupKey(team, service);
        const index = groups.get(grp) ?? { seen: EMPTY, active: EMPTY, session: EMPTY, bytes: 0, loaded };
        const familyPairs = sortedByDay({
          day: Int32Array.from(days),
          prev: Int32Array.from(prevs),
          n: Float64Array.from(ns),
        });
        pairs += familyPairs.day.length;
        setFamily(index, FAMILY_NUMBER[family], familyPairs);
        groups.set(grp, index);
        // A level is seconds of parsing at 100M events (the main thread was held 1.4 s in one piece): given
        // back to the event loop every few milliseconds, so requests meanwhile wait that long, not the load.
        if (performance.now() - since > YIELD_EVERY_MS) {
          await new Promise<void>((ok) => setImmediate(ok));
          since = performance.now();
        }
      }
    }
    return { sealed, groups, none, pairs };
  } finally {
    source.close();
  }
}

const YIELD_EVERY_MS = 4;

/**
 * A level load's bounds: an export's (one thread, nice 19, 1 GiB), at the API's priority. At an export's
 * priority it paused at every read, and under live traffic the team level took 12.3 s instead of 5.6 (wide
 * shape, 5M events), every team-filtered request meanwhile summed in SQL; the reads' p99 was no better.
 */
const LOAD_SETTINGS = { ...EXPORT_SETTINGS, priority: API_QUERY_PRIORITY };
/** The level's groups under the state's sealed days: held, or loaded once (concurrent asks share the load). */
function levelGroups(
  ch: ClickHouse,
  level: GroupLevel,
  state: SealState,
  snap: Snapshot,
): Promise<HeldLevel> {
  const m = memoOf(ch);
  const sealed = sealedSignature(state);
  const held = m.levels.get(level);
  if (held?.sealed === sealed) return Promise.resolve(held);
  const key = `${level}|${sealed}`;
  let load = m.loading.get(key);
  if (!load) {
    // What the other levels hold counts against the bound (this one's is replaced by the load).
    let others = 0;
    for (const [l, h] of m.levels) if (l !== level) others += h.pairs;
    load = readLevelIndex(ch, level, state, others).then((l) => {
      m.levels.set(level, l);
      return l;
    });
    m.loading.set(key, load);
    const done = () => m.loading.delete(key);
    load.then(done, done);
  }
  // Through the snapshot, so a shutdown waits for it before the engine closes (DerivedState.idle).
  return snap.derive(JSON.stringify(['usage-pairs-level', key]), PAIRS_TABLES, () => load);
}

/** The index of the filter's key under the state's sealed days, loading it if it is not held yet. */
export async function pairsIndex(
  ch: ClickHouse,
  f: Pick<UsageFilters, 'team_id' | 'service'>,
  state: SealState,
  snap: Snapshot,
): Promise<PairsIndex> {
  const g = groupOf(f);
  if (g) {
    const level = await levelGroups(ch, g.level, state, snap);
    if (level.groups) return level.groups.get(g.group) ?? level.none;
  }
  const key = indexKey(f);
  const sealed = sealedSignature(state);
  const held = memoOf(ch).held.get(key);
  if (held?.sealed === sealed) return held.index;
  return snap.derive(
    key,
    PAIRS_TABLES,
    async () => {
      const index = await readPairsIndex(ch, f, state);
      hold(ch, key, sealed, index);
      return index;
    },
    (i) => i.bytes,
  );
}

/**
 * The filter's index when it is held under the current sealed days; else undefined (the caller sums the range
 * in SQL), and from the second time its key is asked for, its load starts in the background for the requests
 * after this one. A one-off filter never pays for an index (loading a key costs more than one range in SQL:
 * all its days), no request waits for one, and a dashboard's filters are summed in memory from about their
 * third request.
 */
export function readyIndex(
  ch: ClickHouse,
  f: Pick<UsageFilters, 'team_id' | 'service'>,
  state: SealState,
  snap: Snapshot,
  view?: SealedView,
): PairsIndex | undefined {
  const sealed = sealedSignature(state);
  const m = memoOf(ch);
  // An index loaded under other sealed days still answers a read whose days (those it sums: the sealed ones
  // before each family's open days) were all loaded under their current prefixes: a day that has since been
  // reopened is in an open window, where the sums stop. So a day going from sealed to open (today's first
  // event, under live traffic) does not make a level load again.
  const serves = (index: PairsIndex) => view !== undefined && loadedUnder(index.loaded, view);
  const g = groupOf(f);
  if (g) {
    const level = m.levels.get(g.level);
    if (level?.groups) {
      const index = level.groups.get(g.group) ?? level.none;
      if (level.sealed === sealed || serves(index)) return index;
    }
    if (level?.sealed === sealed) return keyIndex(ch, f, state, snap, sealed, m, serves);
    // Not held for these days: loaded in the background for the requests after this one, one load of a
    // level at a time (while the sealer is sealing many days, each round would otherwise start one).
    const busy = [...m.loading.keys()].some((k) => k.startsWith(`${g.level}|`));
    if (!busy) levelGroups(ch, g.level, state, snap).catch(() => undefined);
    return undefined;
  }
  return keyIndex(ch, f, state, snap, sealed, m, serves);
}

/** Whether every day the view sums was loaded under the prefix it is sealed under now. */
function loadedUnder(loaded: ReadonlyMap<number, number>, view: SealedView): boolean {
  for (let i = 0; i < view.keys.length; i++)
    if (loaded.get(view.keys[i] as number) !== view.prefixes[i]) return false;
  return true;
}

/** A key's own index when held under the sealed days; else counted, and loaded from its second ask. */
function keyIndex(
  ch: ClickHouse,
  f: Pick<UsageFilters, 'team_id' | 'service'>,
  state: SealState,
  snap: Snapshot,
  sealed: string,
  m: IndexMemo,
  serves: (index: PairsIndex) => boolean,
): PairsIndex | undefined {
  const key = indexKey(f);
  const held = m.held.get(key);
  if (held && (held.sealed === sealed || serves(held.index))) {
    // Most recently used last: Map keeps insertion order.
    m.held.delete(key);
    m.held.set(key, held);
    return held.index;
  }
  if (m.sealed !== sealed) {
    m.sealed = sealed;
    m.asked.clear();
  }
  const asked = (m.asked.get(key) ?? 0) + 1;
  if (m.asked.size >= 16 * HELD_KEYS_MAX) m.asked.clear();
  m.asked.set(key, asked);
  if (asked >= 2) pairsIndex(ch, f, state, snap).catch(() => undefined);
  return undefined;
}

/** The last day a family's sum reads: its days from its first open one are counted by usage-open-day.ts. */
function lastSealed(
  to: number,
  family: Family,
  open: ReadonlyArray<{ family: Family; days: readonly string[] }>,
): number {
  const first = open.find((w) => w.family === family)?.days[0];
  return first === undefined ? to : Math.min(to, toDayNumber(first) - 1);
}

/** The first position whose day is >= `day` (binary search). */
function firstAtOrAfter(days: Int32Array, day: number): number {
  let lo = 0;
  let hi = days.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((days[mid] as number) < day) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Points on days in [from, to] whose previous point is before `from`: the distinct entities of the range (of
 * its sealed days: a family's open days are added by usage-open-day.ts).
 */
function distinctIn(p: FamilyPairs, from: number, to: number): number {
  let sum = 0;
  for (let i = firstAtOrAfter(p.day, from); i < p.day.length && (p.day[i] as number) <= to; i++) {
    if ((p.prev[i] as number) < from) sum += p.n[i] as number;
  }
  return sum;
}

/**
 * The summary of [start, end] from the sealed days before each family's open days (`open`: the first open day
 * of each family that has any; the caller has checked every day it needs before them is sealed).
 */
export function summaryFromIndex(
  index: PairsIndex,
  start: string,
  end: string,
  open: ReadonlyArray<{ family: Family; days: readonly string[] }> = [],
): { total_users: number; active_users: number; total_sessions: number } {
  const from = toDayNumber(start);
  const to = toDayNumber(end);
  const upTo = (family: Family) => lastSealed(to, family, open);
  // Seen pairs were loaded with no previous point only: every one on or before `to` is a user first seen then.
  const seenTo = upTo('seen');
  let total_users = 0;
  for (let i = 0; i < index.seen.day.length && (index.seen.day[i] as number) <= seenTo; i++)
    total_users += index.seen.n[i] as number;
  return {
    total_users,
    active_users: distinctIn(index.active, from, upTo('active')),
    total_sessions: distinctIn(index.session, from, upTo('session')),
  };
}

/**
 * Active users and sessions of each clipped period (`starts`, ascending, the first being the range's start):
 * a point counts in its period when its previous point is before the period's first day.
 */
export function timeseriesFromIndex(
  index: PairsIndex,
  starts: readonly string[],
  end: string,
  open: ReadonlyArray<{ family: Family; days: readonly string[] }> = [],
): Array<{ active_users: number; total_sessions: number }> {
  const firsts = starts.map(toDayNumber);
  const per = (p: FamilyPairs, family: Family): number[] => {
    const to = lastSealed(toDayNumber(end), family, open);
    const out = firsts.map(() => 0);
    let k = 0;
    for (let i = firstAtOrAfter(p.day, firsts[0] ?? to + 1); i < p.day.length; i++) {
      const day = p.day[i] as number;
      if (day > to) break;
      while (k + 1 < firsts.length && (firsts[k + 1] as number) <= day) k++;
      if ((p.prev[i] as number) < (firsts[k] as number)) out[k] = (out[k] as number) + (p.n[i] as number);
    }
    return out;
  };
  const active = per(index.active, 'active');
  const sessions = per(index.session, 'session');
  return firsts.map((_, k) => ({
    active_users: active[k] as number,
    total_sessions: sessions[k] as number,
  }));
}
