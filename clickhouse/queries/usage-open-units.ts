// The open days' units (usage-open-day.ts reads through them): each entity's days with points in each team and
// service of the open days, and its last day before them at every level, kept per engine handle while the
// windows and their base stay the same. Under live traffic the points move every second or so; a sync then
// reads only the open-day points of usage_points_by_day's parts written since and looks up the entities new to
// the windows, instead of every point of the open days again for each grouping (20-90 ms per grouping at 100M
// events). Every filter's and grouping's cells are derived from the units in memory; the earlier points of
// units the sealer has not covered yet are looked up here (the sealer's covering computes the same in the
// engine: usage-open-day.ts).
import { entry } from '../../core/maps.ts';
import type { ClickHouse } from '../client.ts';
import { keptRows, type PartListing } from '../data-version.ts';
import { type PartBlocks, partList, partsRead } from './parts-read.ts';
import { toDayNumber } from './periods.ts';
import { engineHex, rows } from './query.ts';
import type { OpenRead, OpenWindow } from './usage-open-day.ts';
import { type Family, levelOf } from './usage-pairs.ts';

const NONE = '1970-01-01';
/** Family names by their Enum8 value (migration 0011). */
const FAMILY_OF: Record<number, Family> = { 1: 'seen', 2: 'active', 3: 'session' };

/** What an entity's earlier points look like: its last day before the open days per (team, service). */
export type History = Map<string, Array<{ team: string; service: string; last: string }>>;

/** The window's days as a parameter, and each point's bit: its day's position in them. */
function windowParams(w: OpenWindow, i: number, params: Record<string, string | number>) {
  params[`f${i}`] = w.family;
  params[`d${i}`] = `[${w.days.map((d) => `'${d}'`).join(',')}]`;
  params[`b${i}`] = w.base;
  return {
    points: `(family = {f${i}:String} AND has({d${i}:Array(Date)}, day) AND kind = 1)`,
    base: `(family = {f${i}:String} AND has({d${i}:Array(Date)}, day) AND base = {b${i}:UInt64})`,
    bit: `toUInt64(bitShiftLeft(toUInt64(1), toUInt8(indexOf({d${i}:Array(Date)}, day) - 1)))`,
  };
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
export type OpenCells = Map<string, Map<Family, Array<{ prev: number; mask: number; n: number }>>>;

// ---- earlier points ----------------------------------------------------------------------------------------

// Bounds the entities of one lookup: the array goes into the query text.
const LOOKUP_CHUNK = 5_000;

/** What the units and lookups keep per engine handle (each test database has its own). */
interface UnitsMemo {
  /**
   * Earlier points already looked up, by family, window, base and entity: they cannot change while the base
   * is the same (every day before the window is sealed under it), so a point the sealer has not covered yet
   * is looked up once per process, not once per request. Bounded; the oldest entries go first.
   */
  remembered: Map<string, Array<{ team: string; service: string; last: string }>>;
  /** The windows' units at their last sync, by windows (unitsOf). */
  units: Map<string, UnitState>;
  /** The sync running, if any: one at a time. */
  syncing: Promise<unknown>;
}
const memos = new WeakMap<ClickHouse, UnitsMemo>();

function memoOf(ch: ClickHouse): UnitsMemo {
  let memo = memos.get(ch);
  if (!memo) {
    memo = { remembered: new Map(), units: new Map(), syncing: Promise.resolve() };
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

// ---- the units ---------------------------------------------------------------------------------------------

/**
 * An entity's points in one (team, service) of the windows: the days it has points on (a bit per window day)
 * and its last point before the window at each level (day numbers, 0 for none), which depend only on the base.
 */
export interface Unit {
  team: string;
  service: string;
  mask: number;
  /** At the levels all, team, service, team_service. */
  prev: [number, number, number, number];
}

/** The windows' units: by family number, then entity. */
export type Units = Map<number, Map<string, Unit[]>>;

/**
 * The windows' units, and the same units (the same objects) by team and by service: a read filtered on one
 * derives its cells from those alone (unitsForRead), at a cost that grows with its own units. Deriving the
 * cells of every team (service, pair) at once and serving the reads of each from them cost all the units for
 * the first read of each grouping after every insert: with 5,000 teams and 60 services, the pairs' grouping was
 * 300,000 groups and the main thread's largest share under live traffic (wide shape, CPU profile).
 */
export interface UnitSet {
  all: Units;
  byTeam: Map<string, Units>;
  byService: Map<string, Units>;
}

export const newUnitSet = (): UnitSet => ({ all: new Map(), byTeam: new Map(), byService: new Map() });

/** Adds a unit of family `f` and `entity` to the set and to its team's and service's. */
export function addUnit(set: UnitSet, f: number, entity: string, unit: Unit): void {
  addTo(set.all, f, entity, unit);
  addTo(entry(set.byTeam, unit.team, newMap<number, Map<string, Unit[]>>), f, entity, unit);
  addTo(entry(set.byService, unit.service, newMap<number, Map<string, Unit[]>>), f, entity, unit);
}

function addTo(units: Units, f: number, entity: string, unit: Unit): void {
  const byEntity = entry(units, f, newMap<string, Unit[]>);
  const list = byEntity.get(entity);
  if (list) list.push(unit);
  else byEntity.set(entity, [unit]);
}

const NO_UNITS: Units = new Map();

/**
 * The units a read's cells come from: those of its team or its service when it filters on one (the fewer of
 * the two when on both), else all.
 */
export function unitsForRead(set: UnitSet, r: Pick<OpenRead, 'filters'>): Units {
  const { team_id: team, service } = r.filters;
  const ofTeam = team === undefined ? undefined : (set.byTeam.get(team) ?? NO_UNITS);
  const ofService = service === undefined ? undefined : (set.byService.get(service) ?? NO_UNITS);
  if (ofTeam && ofService) return entities(ofTeam) <= entities(ofService) ? ofTeam : ofService;
  return ofTeam ?? ofService ?? set.all;
}

const entities = (units: Units): number => {
  let n = 0;
  for (const byEntity of units.values()) n += byEntity.size;
  return n;
};

/**
 * What the units are brought up to: usage_points_by_day as a data version read before the call saw it (or as
 * listed then, when there is no version).
 */
export interface PointsAt {
  /**
   * Its active parts (one node). Undefined on a cluster (parts are per shard there): any change of the points
   * then reads them all.
   */
  parts: PartListing | undefined;
  /** On a cluster, its content version (data-version.ts: the same across merges), when a version was read. */
  content: string | undefined;
}

interface UnitState {
  units: UnitSet;
  /**
   * Changes with every change of the units (never repeats in a process): what is derived from them (the
   * cells) is kept by it.
   */
  stamp: number;
  /**
   * What the units were last read at: every point its parts hold is in the units (a part's rows never
   * change; one merged away before that read left its rows in a part the read did read), and a later insert's
   * may be too.
   */
  at: PointsAt;
}

let stamps = 0;

/** Windows whose units are kept per handle (a day opening or sealing makes new windows). */
const WINDOW_STATES_MAX = 4;

/**
 * The windows' units at `at` (or later), with their stamp, or undefined when more than READ_LOOKUP_LIMIT
 * entities have points the sealer has not covered (the read then falls back to the daily rollup). One sync
 * at a time per handle: concurrent reads of one change wait for the same one.
 */
export async function unitsOf(
  ch: ClickHouse,
  open: readonly OpenWindow[],
  windowsKey: string,
  at: PointsAt,
): Promise<{ units: UnitSet; stamp: number } | undefined> {
  const memo = memoOf(ch);
  const sync = () => syncUnits(ch, memo.units, open, windowsKey, at);
  const run = memo.syncing.then(sync, sync);
  memo.syncing = run;
  return run;
}

/**
 * Held units serve as they are when `at` lists their parts or merges of them (on a cluster: the same content
 * version); when it adds inserts to those, the parts that hold blocks they have not read are read; else (a
 * delete, a drop, or a listing older than theirs) every point is read again.
 */
async function syncUnits(
  ch: ClickHouse,
  states: Map<string, UnitState>,
  open: readonly OpenWindow[],
  windowsKey: string,
  at: PointsAt,
): Promise<UnitState | undefined> {
  const held = states.get(windowsKey);
  if (held) {
    const was = held.at;
    // Only forward: parts that left with no merge holding their rows are a drop, whichever listing is newer (an
    // older one lacks the newer's inserts the same way), so the units are then read again.
    if (at.parts && was.parts && keptRows(was.parts, at.parts)) {
      const read = partsRead(blocksOf(was.parts), blocksOf(at.parts));
      // Merges alone since: every part listed holds blocks read already, and the units stand as they are.
      if (read.length === at.parts.size) {
        held.at = at;
        return held;
      }
      if (await addNewPoints(ch, open, held, read)) {
        held.at = at;
        held.stamp = ++stamps;
        return held;
      }
    } else if (at.content !== undefined && at.content === was.content) return held;
  }
  states.delete(windowsKey);
  const loaded = await loadUnits(ch, open, at);
  if (!loaded) return undefined;
  states.set(windowsKey, loaded);
  if (states.size > WINDOW_STATES_MAX) states.delete(states.keys().next().value as string);
  return loaded;
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
 * are looked up. `at` was read before the points are (UnitState.at).
 */
async function loadUnits(
  ch: ClickHouse,
  open: readonly OpenWindow[],
  at: PointsAt,
): Promise<UnitState | undefined> {
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
  const units = newUnitSet();
  const uncovered: Array<{ f: number; entity: string; unit: Unit }> = [];
  for (const [f, entity, team, service, mask, covered, pa, pt, ps, pts] of await rs.json<Row>()) {
    const unit: Unit = { team, service, mask, prev: [pa, pt, ps, pts] };
    addUnit(units, f, entity, unit);
    if (covered !== 1) uncovered.push({ f, entity, unit });
  }
  if (!(await lookUpPrevs(ch, open, uncovered))) return undefined;
  return { units, stamp: ++stamps, at };
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
 * Adds the points of the parts not in `read` (the parts listed now whose blocks the units hold: the others hold
 * inserts since): false when too many new entities are to be looked up, and the caller loads every unit again.
 */
async function addNewPoints(
  ch: ClickHouse,
  open: readonly OpenWindow[],
  st: UnitState,
  read: readonly string[],
): Promise<boolean> {
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
    query_params: { ...params, done: `[${partList(read)}]` },
  });
  const fresh: Array<{ f: number; entity: string; unit: Unit }> = [];
  for (const r of found) {
    const f = Number(r.f);
    const unit = st.units.all
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
  return true;
}

/** A listing's parts by name and highest block (parts-read.ts). */
function blocksOf(listing: PartListing): PartBlocks[] {
  const out: PartBlocks[] = [];
  for (const p of listing.values()) if (p) out.push({ name: p.name, max: p.max });
  return out;
}

/**
 * One read's cells from the units: each entity's units that pass its filters, grouped by its grouping (an
 * entity counts once per group), with the earlier point of the read's level.
 *
 * Under live traffic the points move about every second, and the first read of each filter and grouping after
 * that runs this over its units (unitsForRead: without a filter, every unit of the open days, tens of
 * thousands at 100M events). It allocates nothing per unit or entity: with a Map, an object and a string key
 * per entity and a pair key hexed per unit, it held the main thread 45-90 ms at a time, most of the live
 * summary's slowest requests (CPU profile of the long-tail scale bench).
 */
export function cellsFromUnits(units: Units, r: OpenRead): OpenCells {
  const { level } = levelOf({
    team_id: r.filters.team_id ?? (r.groupBy === 'team_id' || r.groupBy === 'team_service' ? '' : undefined),
    service: r.filters.service ?? (r.groupBy === 'service' || r.groupBy === 'team_service' ? '' : undefined),
  });
  const slot = { all: 0, team: 1, service: 2, team_service: 3 }[level];
  const team = r.filters.team_id;
  const service = r.filters.service;
  const groupOfUnit = unitGrouping(r.groupBy);
  // group → family → cell key (MASK_SPAN) → entities
  const counts = new Map<string, Map<Family, Map<number, number>>>();
  // One entity's groups (usually one), reused from entity to entity.
  const groups: string[] = [];
  const masks: number[] = [];
  const prevs: number[] = [];
  for (const [f, byEntity] of units) {
    const family = FAMILY_OF[f] as Family;
    for (const list of byEntity.values()) {
      let k = 0;
      for (const u of list) {
        if ((team !== undefined && u.team !== team) || (service !== undefined && u.service !== service))
          continue;
        const g = groupOfUnit(u);
        const prev = u.prev[slot] as number;
        let i = 0;
        while (i < k && groups[i] !== g) i++;
        if (i < k) {
          masks[i] = (masks[i] as number) | u.mask;
          prevs[i] = Math.max(prevs[i] as number, prev);
        } else {
          groups[k] = g;
          masks[k] = u.mask;
          prevs[k] = prev;
          k++;
        }
      }
      for (let i = 0; i < k; i++) {
        const g = groups[i] as string;
        const cells = entry(
          entry(counts, g, newMap<Family, Map<number, number>>),
          family,
          newMap<number, number>,
        );
        const key = (prevs[i] as number) * MASK_SPAN + (masks[i] as number);
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
        [...cells].map(([key, n]) => ({ prev: Math.floor(key / MASK_SPAN), mask: key % MASK_SPAN, n })),
      );
    }
    out.set(g, byFamily);
  }
  return out;
}

/**
 * A cell's key is its earlier point (a UInt16 day number) above its mask, whose bits are a window's days (at
 * most OPEN_DAYS_MAX, 7; loadUnits reads masks as UInt8): below 2^24, a small integer, so a Map keyed by it
 * boxes nothing.
 */
const MASK_SPAN = 256;

/**
 * A unit's group under a grouping: a pair's is both as hex (groupOf in usage-open-day.ts), each name hexed once
 * per call and each pair's key made once, not per unit.
 */
function unitGrouping(groupBy: OpenRead['groupBy']): (u: Unit) => string {
  if (groupBy === 'team_id') return (u) => u.team;
  if (groupBy === 'service') return (u) => u.service;
  if (groupBy !== 'team_service') return () => '';
  const pairs = new Map<string, Map<string, string>>();
  const hexes = new Map<string, string>();
  // Called only for a pair not seen yet in this call, so its closure is not made per unit.
  const hex = (s: string): string => entry(hexes, s, () => engineHex(s));
  return (u) => {
    const byService = entry(pairs, u.team, newMap<string, string>);
    let key = byService.get(u.service);
    if (key === undefined) {
      key = `${hex(u.team)}:${hex(u.service)}`;
      byService.set(u.service, key);
    }
    return key;
  };
}

const newMap = <K, V>(): Map<K, V> => new Map<K, V>();
