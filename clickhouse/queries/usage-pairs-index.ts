// The sealed pairs of one filter key (level, team, service), read once per data version and kept in memory:
// any range's summary, and any ungrouped timeseries, is then a scan of at most a few hundred thousand numbers
// instead of a query. A key's pairs grow with the days stored (at most ~days²/2 per family), not with events,
// so even the unfiltered key of a year of traffic is a few MB; DerivedState bounds the keys kept per version.
//
// Exactness is the pairs' own (usage-pairs.ts): only days sealed under their current prefix are loaded, and a
// read uses the index only when every day it needs is sealed (viewOf), else it falls back to SQL.
import type { ClickHouse } from '../client.ts';
import type { Snapshot } from '../derived-state.ts';
import type { UsageFilters } from './filters.ts';
import { toDayNumber } from './periods.ts';
import type { BuiltQuery } from './query.ts';
import { levelOf, type SealState } from './usage-pairs.ts';

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
  const index: PairsIndex = { seen: EMPTY, active: EMPTY, session: EMPTY, bytes: 0 };
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
    index.bytes += pairs.day.length * 16;
    if (family === 1) index.seen = pairs;
    else if (family === 2) index.active = pairs;
    else if (family === 3) index.session = pairs;
  }
  return index;
}

// groupArray keeps no order of its own across threads and parts: sort here rather than trust it.
function sortedByDay(p: FamilyPairs): FamilyPairs {
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

/** The index of the filter's key at the snapshot's version, loading it if it is not yet. */
export function pairsIndex(
  ch: ClickHouse,
  f: Pick<UsageFilters, 'team_id' | 'service'>,
  state: SealState,
  snap: Snapshot,
): Promise<PairsIndex> {
  return snap.derive(
    indexKey(f),
    () => readPairsIndex(ch, f, state),
    (i) => i.bytes,
  );
}

/**
 * The filter's index when it is loaded at this version; else undefined (the caller sums the range in SQL), and
 * from the second time its key is asked for, its load starts in the background for the requests after this
 * one. A one-off filter never pays for an index (loading a key costs more than one range in SQL: all its days),
 * no request waits for one, and a dashboard's filters are summed in memory from about their third request.
 */
export function readyIndex(
  ch: ClickHouse,
  f: Pick<UsageFilters, 'team_id' | 'service'>,
  state: SealState,
  snap: Snapshot,
): PairsIndex | undefined {
  const key = indexKey(f);
  const ready = snap.ready<PairsIndex>(key);
  if (ready) return ready;
  if (snap.ask(key) >= 2) pairsIndex(ch, f, state, snap).catch(() => undefined);
  return undefined;
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

/** Points on days in [from, to] whose previous point is before `from`: the distinct entities of the range. */
function distinctIn(p: FamilyPairs, from: number, to: number): number {
  let sum = 0;
  for (let i = firstAtOrAfter(p.day, from); i < p.day.length && (p.day[i] as number) <= to; i++) {
    if ((p.prev[i] as number) < from) sum += p.n[i] as number;
  }
  return sum;
}

/** The summary of [start, end] (the caller has checked every day it needs is sealed). */
export function summaryFromIndex(
  index: PairsIndex,
  start: string,
  end: string,
): { total_users: number; active_users: number; total_sessions: number } {
  const from = toDayNumber(start);
  const to = toDayNumber(end);
  // Seen pairs were loaded with no previous point only: every one on or before `to` is a user first seen then.
  let total_users = 0;
  for (let i = 0; i < index.seen.day.length && (index.seen.day[i] as number) <= to; i++)
    total_users += index.seen.n[i] as number;
  return {
    total_users,
    active_users: distinctIn(index.active, from, to),
    total_sessions: distinctIn(index.session, from, to),
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
): Array<{ active_users: number; total_sessions: number }> {
  const firsts = starts.map(toDayNumber);
  const to = toDayNumber(end);
  const per = (p: FamilyPairs): number[] => {
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
  const active = per(index.active);
  const sessions = per(index.session);
  return firsts.map((_, k) => ({
    active_users: active[k] as number,
    total_sessions: sessions[k] as number,
  }));
}
