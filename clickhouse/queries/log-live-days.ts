// Logs of the days still taking them, held in memory per engine handle: each cell's ids with their timestamps.
// Under live traffic a day's counters move with every insert, and counting its cells again (in its raw logs:
// 15-20 ms at 100M events, more for a large day) fell on the first read after each insert. A day whose counters
// move twice within a minute is read whole once and held; after that a read adds only the rows of log_events'
// parts that hold blocks it has not read (a part's rows never change), so a held day's counts, its hours (which
// locate a page) and where its newest logs start (which narrows a first page) cost about what the inserts since
// brought. Those rows are read in the query of the day sums that tells which
// days moved (log-day-counts.ts, heldDelta): the first read after an insert then sends one query fewer.
// The rows' messages are held too, so a held day's first page comes from memory (heldPage): after an insert the
// page was read again from log_events, 5-13 ms of the 26-43 a first read after an insert took at 100M events.
// A day whose rows hold copies of a log in two cells or at two timestamps is not held: a page shows the newest
// copy alone, and the rows do not tell which one that is.
import type { ClickHouse } from '../client.ts';
import { mutationOf, type PartBlocks, partList } from './parts-read.ts';

/** A day's cell as log-day-counts.ts reads cells: its logs (newest copies, as a page shows them), and per UTC hour. */
export interface LiveCell {
  severity: string;
  service: string;
  logs: number;
  hours: readonly number[];
}

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
/** A day whose counters moved twice within this is held. */
const PROMOTE_MS = 60_000;
/** A held day whose counters have not moved for this is let go (sealed by then, its cells cost little). */
const RELEASE_MS = 600_000;
/** Ids held in all (about 100 bytes each); a day that would pass it is not held, the oldest-moved go first. */
const MAX_HELD_IDS = 500_000;
/** Characters of messages held in all; past it the largest days' messages go (their pages are read instead). */
const MAX_HELD_TEXT = 32_000_000;

interface HeldCell {
  severity: string;
  service: string;
  /** Each log's timestamp (ms). */
  ids: Map<string, number>;
  /** The timestamps ascending; dropped when a log is added. */
  sorted?: Float64Array | undefined;
}

interface HeldDay {
  cells: Map<string, HeldCell>;
  /** The cell of each log. */
  cellOf: Map<string, HeldCell>;
  /**
   * Copies of a log in two cells, or at two timestamps, were read: which of them a page shows (the newest, as
   * FINAL folds them) is not told by the rows, so the day is not held (log-day-counts.ts counts it in FINAL).
   */
  conflict: boolean;
  ids: number;
  movedAt: number;
  /**
   * Each log's message, while every copy of each log is the same row but for its insert (its re-sent copies
   * are); dropped for good when a copy differs in any column or is past MAX_HELD_TEXT, since which copy FINAL
   * shows is then the engine's to say.
   */
  texts: Map<string, string> | undefined;
  textChars: number;
}

/** An active part of log_events as system.parts lists it (log-day-counts.ts reads them with the day sums). */
export interface ListedPart extends PartBlocks {
  partition: string;
  min: number;
}

interface LiveMemo {
  held: Map<number, HeldDay>;
  /** log_events' active parts when the held days were last brought up to date (a part leaving them is a drop). */
  parts: readonly ListedPart[];
  /**
   * Every row of the held days in a part whose blocks are all at most this is held (a single node numbers blocks
   * from one counter per table, taken as each insert commits: parts-read.ts).
   */
  seenMax: number;
  /** The highest mutation version among those parts: a later one (a DELETE) lets every held day go. */
  mutation: number;
  /** When each day not held was last seen moving. */
  movedAt: Map<number, number>;
  /** Days not to hold (too large, or with copies that differ: HeldDay.conflict), until when. */
  unheld: Map<number, number>;
  /** The refresh running, if any: one at a time. */
  running: Promise<unknown>;
}

const memos = new WeakMap<ClickHouse, LiveMemo>();

function memoOf(ch: ClickHouse): LiveMemo {
  let m = memos.get(ch);
  if (!m) {
    m = {
      held: new Map(),
      parts: [],
      seenMax: -1,
      mutation: 0,
      movedAt: new Map(),
      unheld: new Map(),
      running: Promise.resolve(),
    };
    memos.set(ch, m);
  }
  return m;
}

/** The held days and the blocks read of them, as they stood when a query read the rows added since. */
export interface DeltaSpec {
  days: readonly number[];
  seenMax: number;
}

/** Rows of the held days read with the day sums (deltaBranch), each with its part's highest block. */
export interface Prefetched {
  spec: DeltaSpec;
  rows: readonly LogRow[];
}

/** What a query of the day sums should read of the held days' rows (deltaBranch), or undefined: none held. */
export function heldDelta(ch: ClickHouse): DeltaSpec | undefined {
  const memo = memos.get(ch);
  if (!memo || memo.held.size === 0) return undefined;
  return { days: [...memo.held.keys()].sort((a, b) => a - b), seenMax: memo.seenMax };
}

// A part's highest block, from its name (partition_min_max_level[_mutation]; partition ids have no '_').
const PART_MAX = "toInt64(splitByChar('_', _part)[3])";

/**
 * A branch of the day sums' UNION ALL (log-day-counts.ts): the held days' rows in parts holding a block past
 * `seenMax`, as (d, 0, 'row', '', '', 0, part's max block, severity, service, ms, event_id, message), at most
 * MAX_HELD_IDS + 1. The engine prunes parts by the condition on `_part` before reading any. Day numbers and
 * the block number are this process's own integers: written into the text, nothing bound.
 */
export function deltaBranch(spec: DeltaSpec): string {
  return `SELECT * FROM (SELECT toUInt32(toDate(timestamp)) AS d, toUInt64(0) AS c, 'row' AS t, '' AS name,
      '' AS pid, toInt64(0) AS mn, ${PART_MAX} AS mx, toString(severity) AS sev, toString(service) AS svc,
      toUnixTimestamp64Milli(timestamp) AS ms, event_id AS id, message AS msg
    FROM log_events WHERE ${PART_MAX} > ${Math.trunc(spec.seenMax)} AND (${withinDays(spec.days)})
    LIMIT ${MAX_HELD_IDS + 1})`;
}

/**
 * The cells of the `moved` days (their counters moved since the caller last read them) that are held, or become
 * held now, brought up to date, and of held days given rows without a move; the other moved days are the
 * caller's to read from the cells. Called at every
 * new data version, moved or not: a DELETE or a drop moves no counter, yet lets the held days go. `prefetched`:
 * the held days' new rows, read with the listing of `parts` (used when nothing changed meanwhile). Never on a
 * cluster (parts are per shard there): undefined.
 */
export async function liveCells(
  ch: ClickHouse,
  moved: readonly number[],
  parts: readonly ListedPart[] | undefined,
  prefetched?: Prefetched,
  now = Date.now(),
): Promise<Map<number, LiveCell[]>> {
  if (parts === undefined) return new Map();
  const memo = memoOf(ch);
  const run = () => refresh(ch, memo, moved, parts, prefetched, now);
  const done = memo.running.then(run, run);
  memo.running = done;
  return done;
}

async function refresh(
  ch: ClickHouse,
  memo: LiveMemo,
  moved: readonly number[],
  listed: readonly ListedPart[],
  prefetched: Prefetched | undefined,
  now: number,
): Promise<Map<number, LiveCell[]>> {
  for (const [d, h] of memo.held) if (now - h.movedAt > RELEASE_MS) memo.held.delete(d);
  for (const [d, at] of memo.movedAt) if (now - at > PROMOTE_MS) memo.movedAt.delete(d);
  for (const [d, until] of memo.unheld) if (now > until) memo.unheld.delete(d);
  const promote: number[] = [];
  let anyHeld = false;
  for (const d of moved) {
    const h = memo.held.get(d);
    if (h) {
      h.movedAt = now;
      anyHeld = true;
    } else if (memo.movedAt.has(d) && !memo.unheld.has(d)) promote.push(d);
    else memo.movedAt.set(d, now);
  }
  // Part names are [0-9a-z_] (they go into the text of readRows): with any other, nothing is held.
  if (listed.some((p) => !/^[0-9A-Za-z_-]+$/.test(p.name))) {
    memo.held.clear();
    return new Map();
  }
  // A DELETE or a drop shows in the listing (a mutation version, a part gone with nothing covering its blocks).
  const mutation = Math.max(0, ...listed.map((p) => mutationOf(p.name)));
  if (mutation > memo.mutation || vanished(memo.parts, listed)) {
    // Rows may have left (a DELETE, a dropped part): the held days that moved are read whole again, the others
    // let go (their rows and pages are read from the engine until they are held again).
    for (const d of memo.held.keys()) if (moved.includes(d) && !promote.includes(d)) promote.push(d);
    memo.held.clear();
    anyHeld = false;
    if (promote.length === 0) {
      memo.parts = listed;
      memo.mutation = mutation;
      return new Map();
    }
  }
  // Rows of held days read with the day sums, with no move of their counters: a read between the commits of an
  // insert's parts (log_events' part first, as seen here, or its views' first: the engine promises no order).
  // Held now, the day's counts and first page show them at once (as a read of log_events would), and a read
  // that finds the move later has none left.
  // Read with the day sums of the held state as it is (the mutation check above may have let it go).
  const fresh = prefetched !== undefined && sameDelta(prefetched.spec, memo);
  if (!anyHeld && promote.length === 0 && !(fresh && prefetched.rows.length > 0)) return new Map();
  let read: readonly LogRow[];
  let seenMax: number;
  if (fresh && promote.length === 0) {
    // Every part holding a block past seenMax was read, in one snapshot; a part whose rows came back was in it,
    // and so was every part of lower blocks (committed before it): the blocks up to the highest such are read.
    // A part with no row of the held days is read again next time, for nothing (its day prunes it).
    read = prefetched.rows;
    seenMax = read.reduce((m, r) => Math.max(m, Number(r[6])), memo.seenMax);
  } else {
    // Listed (with the day sums) before these rows are read: a part merged away in between left its rows in one
    // this read reads, so every part listed holds only rows this read or an earlier one read.
    const seen = listed.filter((p) => p.max <= memo.seenMax).map((p) => p.name);
    const delta = memo.held.size > 0 && seen.length < listed.length ? [...memo.held.keys()] : [];
    read = await readRows(ch, delta, seen, promote);
    seenMax = Math.max(-1, ...listed.map((p) => p.max));
  }
  for (const d of promote) memo.movedAt.delete(d);
  if (read.length > MAX_HELD_IDS) {
    // Past the bound (a large back-fill into a held day, or a day too large): nothing held, the caller reads
    // the days from their seals or log_events FINAL.
    for (const d of promote) memo.unheld.set(d, now + RELEASE_MS);
    memo.held.clear();
    return new Map();
  }

  const adding = new Map<number, HeldDay>();
  for (const d of promote)
    adding.set(d, {
      cells: new Map(),
      cellOf: new Map(),
      conflict: false,
      ids: 0,
      movedAt: now,
      texts: new Map(),
      textChars: 0,
    });
  // The days given rows, moved or not: an insert's parts commit one table after another, in no order the
  // engine promises (a view's part can come first), so rows can reach a held day after its counters moved.
  const given = new Set(moved);
  for (const [d, sev, svc, ms, id, message] of read) {
    const day = memo.held.get(Number(d)) ?? adding.get(Number(d));
    if (!day) continue;
    addLog(day, sev, svc, Number(ms), id, message);
    given.add(Number(d));
  }
  for (const [d, day] of adding) {
    if (day.ids > MAX_HELD_IDS / 2 || day.conflict) memo.unheld.set(d, now + RELEASE_MS);
    else memo.held.set(d, day);
  }
  for (const [d, day] of memo.held)
    if (day.conflict) {
      memo.held.delete(d);
      memo.unheld.set(d, now + RELEASE_MS);
    }
  // Bounded: the days that moved longest ago go first.
  let total = [...memo.held.values()].reduce((s, h) => s + h.ids, 0);
  for (const [d, h] of [...memo.held].sort((a, b) => a[1].movedAt - b[1].movedAt)) {
    if (total <= MAX_HELD_IDS) break;
    memo.held.delete(d);
    total -= h.ids;
  }
  let chars = 0;
  for (const h of memo.held.values()) chars += h.textChars;
  for (const h of [...memo.held.values()].sort((a, b) => b.textChars - a.textChars)) {
    if (chars <= MAX_HELD_TEXT) break;
    chars -= h.textChars;
    h.texts = undefined;
    h.textChars = 0;
  }
  memo.parts = listed;
  memo.seenMax = seenMax;
  memo.mutation = mutation;

  const out = new Map<number, LiveCell[]>();
  for (const d of given) {
    const day = memo.held.get(d);
    if (day) out.set(d, cellsOf(d, day));
  }
  return out;
}

function addLog(
  day: HeldDay,
  severity: string,
  service: string,
  ms: number,
  id: string,
  message: string,
): void {
  const key = `${severity}\u0000${service}`;
  let cell = day.cells.get(key);
  if (!cell) {
    cell = { severity, service, ids: new Map() };
    day.cells.set(key, cell);
  }
  const owner = day.cellOf.get(id);
  if (owner !== undefined && (owner !== cell || cell.ids.get(id) !== ms)) {
    day.conflict = true;
    return;
  }
  if (day.texts) {
    const text = day.texts.get(id);
    if (text === undefined) {
      day.texts.set(id, message);
      day.textChars += id.length + message.length;
    } else if (text !== message) {
      // A copy with another message (which one FINAL shows is the engine's to say).
      day.texts = undefined;
      day.textChars = 0;
    }
  }
  if (owner === undefined) {
    cell.ids.set(id, ms);
    day.cellOf.set(id, cell);
    cell.sorted = undefined;
    day.ids++;
  }
}

function cellsOf(d: number, day: HeldDay): LiveCell[] {
  return [...day.cells.values()].map((c) => {
    const hours = Array.from({ length: 24 }, () => 0);
    for (const ms of c.ids.values()) (hours[Math.floor((ms - d * DAY_MS) / HOUR_MS)] as number)++;
    return { severity: c.severity, service: c.service, logs: c.ids.size, hours };
  });
}

/** Whether `spec` was taken of the memo as it is: the same held days, read up to the same block. */
function sameDelta(spec: DeltaSpec, memo: LiveMemo): boolean {
  return (
    spec.seenMax === memo.seenMax &&
    spec.days.length === memo.held.size &&
    spec.days.every((d) => memo.held.has(d))
  );
}

/**
 * Whether `parts` (log_events' active parts as some listing gave them) lack a part the held days were last
 * brought up to date with, and anything covering it: a listing older than that one, or one after a drop,
 * either of which would let the held days go (vanished).
 */
export function behindHeld(ch: ClickHouse, parts: readonly ListedPart[]): boolean {
  const memo = memos.get(ch);
  return memo !== undefined && vanished(memo.parts, parts);
}

/** Whether a part listed before has left with no part now covering its blocks (a drop or a truncate). */
function vanished(before: readonly ListedPart[], now: readonly ListedPart[]): boolean {
  const names = new Set(now.map((p) => p.name));
  return before.some(
    (b) =>
      !names.has(b.name) && !now.some((p) => p.partition === b.partition && p.min <= b.min && p.max >= b.max),
  );
}

/** Day number, severity, service, ms, event_id, message, and (read with the day sums) the part's highest block. */
export type LogRow = [number, string, string, number | string, string, string, (number | string)?];

const withinDays = (days: readonly number[]) =>
  days
    .map(
      (d) =>
        `(timestamp >= fromUnixTimestamp64Milli(${d * DAY_MS}, 'UTC') AND timestamp < fromUnixTimestamp64Milli(${(d + 1) * DAY_MS}, 'UTC'))`,
    )
    .join(' OR ');

/**
 * The rows of the `delta` days in parts other than `seen` (whose rows are held), and every row of the days to
 * promote; at most MAX_HELD_IDS + 1, to tell it is past. Day numbers are this process's own integers and part
 * names are [0-9A-Za-z_-]: written into the text, nothing bound.
 */
async function readRows(
  ch: ClickHouse,
  delta: readonly number[],
  seen: readonly string[],
  promote: readonly number[],
): Promise<LogRow[]> {
  const branches: string[] = [];
  if (delta.length > 0) branches.push(`(_part NOT IN (${partList(seen)}) AND (${withinDays(delta)}))`);
  if (promote.length > 0) branches.push(`(${withinDays(promote)})`);
  if (branches.length === 0) return [];
  const rs = await ch.client.query({
    query: `SELECT toUInt32(toDate(timestamp)) AS d, toString(severity) AS sev, toString(service) AS svc,
        toUnixTimestamp64Milli(timestamp) AS ms, event_id, message
      FROM log_events WHERE ${branches.join(' OR ')}
      LIMIT ${MAX_HELD_IDS + 1}`,
    format: 'JSONCompactEachRow',
  });
  return rs.json<LogRow>();
}

/** The severity and service a page asks for, where it asks for one. */
interface CellFilter {
  severity?: string | undefined;
  service?: string | undefined;
}

const passes = (c: HeldCell, f: CellFilter) =>
  (f.severity === undefined || c.severity === f.severity) &&
  (f.service === undefined || c.service === f.service);

/**
 * The timestamp (ms) of the `k`-th newest log before `beforeMs` of a held day, among the cells that pass the
 * filters: a first page ending at `beforeMs` lies within [that, beforeMs). Undefined when the day is not held or
 * holds fewer such logs. What is held may be newer than the caller's counts; the caller checks that the
 * narrowed window does hold a page (system-events.ts).
 */
export function newestFrom(
  ch: ClickHouse,
  dayNumber: number,
  f: CellFilter,
  k: number,
  beforeMs: number,
): number | undefined {
  const day = memos.get(ch)?.held.get(dayNumber);
  if (!day || k < 1) return undefined;
  const tops: number[] = [];
  for (const c of day.cells.values()) {
    if (!passes(c, f)) continue;
    c.sorted ??= Float64Array.from(c.ids.values()).sort();
    // Each cell's newest k before beforeMs: the k-th newest of all is among them.
    let end = c.sorted.length;
    let lo = 0;
    while (lo < end) {
      const mid = (lo + end) >>> 1;
      if ((c.sorted[mid] as number) < beforeMs) lo = mid + 1;
      else end = mid;
    }
    for (let i = lo - 1; i >= 0 && i >= lo - k; i--) tops.push(c.sorted[i] as number);
  }
  if (tops.length < k) return undefined;
  tops.sort((a, b) => b - a);
  return tops[k - 1];
}

/** A log of a held day's page, as system-events.ts reads one from log_events. */
export interface HeldLog {
  ms: number;
  severity: string;
  service: string;
  message: string;
  event_id: string;
}

/**
 * The newest `limit` logs of a held day within [fromMs, toMs) among the cells that pass the filters, newest
 * first (timestamp, then event_id, descending): what the page's read of log_events FINAL gives, the held rows
 * being every row of the day up to the blocks last read (at least the caller's data version: its counts brought
 * the day up to date). Undefined when the day is not held, its messages are not (a copy that differs, or past
 * the bound), or two logs of one millisecond have an id whose order here might not be the engine's (a character
 * this process could not decode).
 */
export function heldPage(
  ch: ClickHouse,
  dayNumber: number,
  f: CellFilter,
  fromMs: number,
  toMs: number,
  limit: number,
): HeldLog[] | undefined {
  const day = memos.get(ch)?.held.get(dayNumber);
  const texts = day?.texts;
  if (!day || !texts) return undefined;
  const found: HeldLog[] = [];
  for (const c of day.cells.values()) {
    if (!passes(c, f)) continue;
    for (const [id, ms] of c.ids) {
      if (ms < fromMs || ms >= toMs) continue;
      const message = texts.get(id) as string;
      found.push({ ms, severity: c.severity, service: c.service, message, event_id: id });
    }
  }
  let unsure = false;
  found.sort((a, b) => {
    if (a.ms !== b.ms) return b.ms - a.ms;
    if (a.event_id.includes('\uFFFD') || b.event_id.includes('\uFFFD')) unsure = true;
    return byteOrder(b.event_id, a.event_id);
  });
  return unsure ? undefined : found.slice(0, limit);
}

/**
 * The engine's order of two strings (their UTF-8 bytes, which is code point order), from their UTF-16 code
 * units: a surrogate (a code point past U+FFFF) sorts after U+E000-U+FFFF in code points, before them in units.
 * (The generator's truth has its own, ingest/loadgen/truth.ts: the truth stays independent of what it checks.)
 */
export function byteOrder(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}
