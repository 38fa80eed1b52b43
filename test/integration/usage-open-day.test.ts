// The open day (migration 0015, usage-open-day.ts) against the generator's truth on the real engine: every day
// sealed but the last one, which keeps taking events as today does under live traffic. Reports whose range
// reaches it are exact whether its points are not covered yet (the read looks them up), covered by the sealer,
// or partly both; covered rows computed under an older base (a late insert into an earlier day since) are never
// used; and the answers do not come from the daily rollup (they stay exact with usage_daily emptied).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClickHouse } from '../../clickhouse/client.ts';
import type { DataVersionSource } from '../../clickhouse/data-version.ts';
import { DerivedState } from '../../clickhouse/derived-state.ts';
import { insertEvents } from '../../clickhouse/inserts.ts';
import { coverOpenDays, openWindowsOf, pruneOpenPoints } from '../../clickhouse/queries/usage-open-day.ts';
import {
  type DayPrefix,
  dayPrefixes,
  FAMILIES,
  type Family,
  sealedView,
  sealState,
  sealsWritten,
  sealUsageDays,
  unsealedDays,
  viewOf,
} from '../../clickhouse/queries/usage-pairs.ts';
import { pairsIndex } from '../../clickhouse/queries/usage-pairs-index.ts';
import { usageSummary } from '../../clickhouse/queries/usage-summary.ts';
import { usageTimeseries } from '../../clickhouse/queries/usage-timeseries.ts';
import { QuietDays, sealUsage } from '../../clickhouse/sealer.ts';
import { describeWorld, generateDataset } from '../../ingest/loadgen/generate.ts';
import type { SummaryQuery, TimeseriesQuery } from '../../ingest/loadgen/queries.ts';
import { Truth } from '../../ingest/loadgen/truth.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { rowsOf } from '../helpers/rows.ts';

const LAST = '2025-01-30';
// The UTC day (timestamps may carry an offset).
const dayOf = (e: { timestamp: string }) => new Date(e.timestamp).toISOString().slice(0, 10);
const all = generateDataset({ events: 20_000, seed: 41, days: 30, duplicateRate: 0.02 }).events.filter(
  (e) => dayOf(e) <= LAST,
);
const before = all.filter((e) => dayOf(e) < LAST);
const today = all.filter((e) => dayOf(e) === LAST);
const world = describeWorld(41);
const team = world.teams[0] as string;
const service = world.usageServices[0] as string;

// Hand-made entities whose previous points the generator would not reliably give: a user back after ten days
// (whose previous point a late event moves into the middle of a range), a session resumed across midnight,
// and a user first seen today.
const usage = (id: string, day: string, time: string, user: string, type: string, session?: string) => ({
  event_id: `open-${id}`,
  type,
  timestamp: `${day}T${time}Z`,
  user_id: user,
  team_id: team,
  service,
  ...(session ? { session_id: session } : {}),
});
const returning = [usage('v1', '2025-01-20', '10:00:00.000', 'open-v', 'session_start', 'open-sv1')];
const returningToday = [usage('v2', LAST, '09:00:00.000', 'open-v', 'session_start', 'open-sv2')];
const returningLate = [usage('v3', '2025-01-27', '11:00:00.000', 'open-v', 'activity')];
const resumed = [
  usage('r1', '2025-01-29', '23:50:00.000', 'open-r', 'session_start', 'open-sr'),
  usage('r2', LAST, '00:10:00.000', 'open-r', 'session_start', 'open-sr'),
];
const newcomer = [usage('n1', LAST, '12:00:00.000', 'open-n', 'session_start', 'open-sn')];

describe('the open day: reports reaching a last day that is still taking events', () => {
  let engine: TestEngine;
  const truth = new Truth();
  let batch = 0;
  const insert = async (list: readonly unknown[]) => {
    await insertEvents(engine.ch, rowsOf(list), `open/${batch++}`);
    truth.addAll(list);
  };
  // Ranges that reach the last day: every filter but the user's, starts from far back to the day itself.
  const starts = ['2025-01-01', '2025-01-09', '2025-01-21', '2025-01-25', '2025-01-28', LAST];
  const filters = [{}, { team_id: team }, { service }, { team_id: team, service }];
  const summaries: SummaryQuery[] = starts.flatMap((start_date) =>
    filters.map((f) => ({ start_date, end_date: LAST, ...f })),
  );
  const series: TimeseriesQuery[] = (['day', 'week', 'month'] as const).flatMap((interval) =>
    [undefined, 'team' as const, 'service' as const].flatMap((group_by) =>
      [{}, { team_id: team }, { service }].map((f) => ({
        start_date: '2025-01-08',
        end_date: LAST,
        interval,
        ...(group_by ? { group_by } : {}),
        ...f,
      })),
    ),
  );
  // Every answer from state shared per data version, as the API computes it (the open day's previous points
  // read once per version and level, whatever the range), and a third of them, a different third each round,
  // also on their own: the path taken when no data version can be read, a dozen SQL statements per answer
  // (~250 ms each here), which asked of every question took most of this file's five minutes in CI.
  const derived = new DerivedState();
  let round = 0;
  const alsoOwn = (i: number) => (i + round) % 3 === 0;
  const expectExact = async () => {
    round++;
    const snap = derived.at(await version.read());
    // Shared, the summaries sum the sealed days from each filter's index (loaded first, as a dashboard's filter
    // is from its second request, and kept while the sealed days stay the same); on their own (a handle of
    // their own, which holds no index), in SQL.
    const state = await sealState(engine.ch, snap);
    if (viewOf(state, '2025-01-01', LAST))
      for (const f of filters) await pairsIndex(engine.ch, f, state, snap);
    for (const [i, q] of summaries.entries()) {
      const want = truth.usageSummary(q);
      if (alsoOwn(i)) expect({ q, got: await usageSummary({ ...engine.ch }, q) }).toEqual({ q, got: want });
      expect({ q, shared: await usageSummary(engine.ch, q, snap) }).toEqual({ q, shared: want });
    }
    for (const [i, q] of series.entries()) {
      const want = truth.usageTimeseries(q);
      if (alsoOwn(i))
        expect({ q, got: await usageTimeseries({ ...engine.ch }, q) }).toEqual({ q, got: want });
      expect({ q, shared: await usageTimeseries(engine.ch, q, snap) }).toEqual({ q, shared: want });
    }
  };
  /** The open days a read of the whole range sees (none when it falls back to the daily rollup). */
  const openDays = async () => (await sealedView(engine.ch, '2025-01-01', LAST))?.open.map((o) => o.family);
  /** Each family's open days, as a read of the whole range sees them. */
  const windows = async () =>
    (await sealedView(engine.ch, '2025-01-01', LAST))?.open
      .sort((a, b) => a.family.localeCompare(b.family))
      .map((o) => o.days);
  const coveredRows = async () => {
    const rs = await engine.ch.client.query({
      query: 'SELECT count() AS n FROM usage_open_points',
      format: 'JSONEachRow',
    });
    return Number((await rs.json<{ n: string }>())[0]?.n);
  };
  // Seals settled days (all of them: quiet time 0) or none (an hour, which a changed day never reaches here);
  // each round also covers the open days' points.
  const sealAll = () => sealUsage(engine.ch, new QuietDays(), 0, Date.now());
  const never = new QuietDays();
  const coverOnly = () => sealUsage(engine.ch, never, 3_600_000, Date.now());

  let version: DataVersionSource;
  beforeAll(async () => {
    engine = await openTestEngine();
    version = engine.ch.dataVersion();
  });

  it('answers from the open day alone when it is the only day with data (a first day)', async () => {
    const first = before.filter((e) => dayOf(e) === '2025-01-01');
    await insert(first.slice(0, 300));
    expect(await openDays()).toBeUndefined(); // no round of the sealer yet: nothing back-filled
    await coverOnly();
    expect(await coveredRows()).toBeGreaterThan(10);
    await insert(first.slice(300));
    expect((await openDays())?.sort()).toEqual([...FAMILIES].sort());
    await expectExact();
    await coverOnly();
    await expectExact();
    // The rest of the month before the last day, all of it sealed.
    const rest = before.filter((e) => dayOf(e) !== '2025-01-01');
    for (let i = 0; i < rest.length; i += 5_000) await insert(rest.slice(i, i + 5_000));
    await insert([...returning, resumed[0]]);
    expect(await sealAll()).toBeGreaterThan(60);
    expect(await openDays()).toEqual([]);
  });
  afterAll(async () => {
    version?.close();
    await engine?.dispose();
  });

  it('answers exactly while none of the open day is covered: the read looks its points up', async () => {
    expect(today.length).toBeGreaterThan(300);
    const earlier = await coveredRows();
    await insert([...today.slice(0, 400), ...returningToday, resumed[1], ...newcomer]);
    expect((await openDays())?.sort()).toEqual([...FAMILIES].sort());
    expect(await coveredRows()).toBe(earlier);
    await expectExact();
  });

  it('covers the open day in the sealer, then partly, and stays exact through re-sent events', async () => {
    expect(await coverOnly()).toBe(0);
    const covered = await coveredRows();
    expect(covered).toBeGreaterThan(100);
    expect((await openDays())?.length).toBe(3);
    await expectExact();
    // More of today: covered points and new ones together.
    await insert(today.slice(400));
    expect(await coveredRows()).toBe(covered);
    await expectExact();
    await coverOnly();
    expect(await coveredRows()).toBeGreaterThan(covered);
    await expectExact();
    // Re-sent events of today and of earlier days: counters move, answers do not.
    await insert([...today.slice(0, 50), ...returningToday]);
    await expectExact();
  });

  it('takes late events for earlier days as open days too, exactly, covered or not', async () => {
    await coverOnly();
    const covered = await coveredRows();
    // open-v was last seen on 01-20 when today's rows were computed; now also on 01-27 (inside 01-25..today):
    // 01-27 and every later day are open, under the base before 01-27, and today's rows under the old one are
    // never used (else open-v would count twice in 01-25..today).
    await insert(returningLate);
    const late = ['2025-01-27', '2025-01-28', '2025-01-29', LAST];
    // By family name (active, seen, session): an activity event moves no session.
    expect(await windows()).toEqual([late, late, [LAST]]);
    // The indexes loaded before the late event (under other sealed days) still serve these reads: every day
    // they sum is sealed under the prefix they were loaded with, and the reopened days are in the windows.
    const snap = derived.at(await version.read());
    for (const q of summaries)
      expect({ q, held: await usageSummary(engine.ch, q, snap) }).toEqual({ q, held: truth.usageSummary(q) });
    await expectExact();
    // A day inside the window may be sealed while an earlier one is not (each day is sealed once it settles):
    // it still counts through the window, and never twice (its pairs stay out of the sealed sums).
    const prefixes = await dayPrefixes(engine.ch);
    for (const family of ['active', 'seen'] as const)
      await sealUsageDays(
        engine.ch,
        family,
        (prefixes.get(family) ?? []).filter((d) => d.day === '2025-01-28' || d.day === '2025-01-29'),
      );
    expect(await windows()).toEqual([late, late, [LAST]]);
    await expectExact();
    await coverOnly();
    expect(await coveredRows()).toBeGreaterThan(covered);
    await expectExact();
    // Late events for an open day (yesterday's stragglers): its rows still hold, its new points are looked up.
    const before = await coveredRows();
    await insert(
      generateDataset({ events: 600, seed: 43, start: '2025-01-29', days: 1, duplicateRate: 0 }).events,
    );
    expect(await coveredRows()).toBe(before);
    await expectExact();
    await coverOnly();
    await expectExact();
  });

  it('never uses rows computed under a base a late event has moved on from', async () => {
    // open-v gets another point on 01-26, before every open day; seal the days before today so that today is
    // the only open day again, now under a new base, with no row computed under it yet.
    await insert([usage('v4', '2025-01-26', '08:00:00.000', 'open-v', 'activity')]);
    const prefixes = await dayPrefixes(engine.ch);
    const unsealed = unsealedDays(prefixes, await sealsWritten(engine.ch));
    for (const [family, days] of unsealed)
      await sealUsageDays(
        engine.ch,
        family,
        days.filter((d) => d.day < LAST),
      );
    // Sealed now: every day before today, and whatever was sealed already.
    const sealedNow = (f: Family, d: DayPrefix) =>
      d.day < LAST || !unsealed.get(f)?.some((u) => u.day === d.day);
    expect(openWindowsOf(prefixes, sealedNow).map((w) => w.days)).toEqual(FAMILIES.map(() => [LAST]));
    expect(await windows()).toEqual(FAMILIES.map(() => [LAST]));
    // Today's rows are all under older bases: the read looks every point up again.
    const q = { start_date: '2025-01-25', end_date: LAST, team_id: team };
    expect(await usageSummary(engine.ch, q)).toEqual(truth.usageSummary(q));
    await expectExact();
    await coverOpenDays(engine.ch, prefixes, sealedNow);
    await expectExact();
    // Rows under the older bases are removed once left behind for a whole pruning interval (two calls), and
    // the current window's are kept.
    const current = openWindowsOf(prefixes, sealedNow);
    const rowsBefore = await coveredRows();
    const first = await pruneOpenPoints(engine.ch, current, new Set());
    expect(first.removed).toBe(0);
    expect(first.stale.size).toBeGreaterThan(0);
    const second = await pruneOpenPoints(engine.ch, current, first.stale);
    expect(second.removed).toBeGreaterThan(0);
    expect(await coveredRows()).toBe(rowsBefore - second.removed);
    await expectExact();
  });

  it("keeps the open day's units across inserts: a read after one reads only the parts written since", async () => {
    // A handle of its own that records what it sends (the units are kept per handle).
    const sent: string[] = [];
    const done: string[] = [];
    const client = new Proxy(engine.ch.client, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver);
        if (prop !== 'query' || typeof v !== 'function') return v;
        return (arg: { query: string; query_params?: Record<string, unknown> }) => {
          sent.push(arg.query);
          if (arg.query.includes('_part NOT IN')) done.push(String(arg.query_params?.done));
          return (v as (a: unknown) => unknown).call(target, arg);
        };
      },
    });
    const ch = { ...engine.ch, client } as ClickHouse;
    const fullLoads = () => sent.filter((q) => q.includes('FROM usage_open_points WHERE')).length;
    const increments = () => sent.filter((q) => q.includes('_part NOT IN')).length;
    // What the units were read at comes from the version the read saw: no query lists or counts the points.
    const byDayReads = () => sent.filter((q) => q.includes('usage_points_by_day')).length;
    const askAll = async () => {
      const snap = derived.at(await version.read());
      for (const q of summaries)
        expect({ q, got: await usageSummary(ch, q, snap) }).toEqual({ q, got: truth.usageSummary(q) });
      for (const q of series)
        expect({ q, got: await usageTimeseries(ch, q, snap) }).toEqual({ q, got: truth.usageTimeseries(q) });
    };
    const more = (seed: number, events: number) =>
      generateDataset({ events, seed, start: LAST, days: 1, duplicateRate: 0.05 }).events;
    await insert(more(51, 200));
    await askAll();
    expect(fullLoads()).toBeGreaterThan(0);
    // New points of today, new entities among them: only the parts written since are read, and the new
    // entities' earlier points looked up.
    sent.length = 0;
    await insert(more(52, 200));
    await askAll();
    expect(increments()).toBeGreaterThan(0);
    expect(fullLoads()).toBe(0);
    expect(byDayReads()).toBe(increments());
    // Nothing new: the units serve as held, with no read of the points at all.
    sent.length = 0;
    await askAll();
    expect(byDayReads()).toBe(0);
    // Merged since (the parts already read are gone into a new one): left out of the next increment, whose
    // new part alone is read; counted once.
    await engine.ch.client.command({ query: 'OPTIMIZE TABLE usage_points_by_day FINAL' });
    const listed = await engine.ch.client.query({
      query:
        "SELECT name FROM system.parts WHERE database = currentDatabase() AND table = 'usage_points_by_day' AND active",
      format: 'JSONEachRow',
    });
    const merged = (await listed.json<{ name: string }>()).map((p) => p.name);
    sent.length = 0;
    done.length = 0;
    await insert(more(53, 200));
    await askAll();
    expect(increments()).toBeGreaterThan(0);
    expect(fullLoads()).toBe(0);
    for (const name of merged) expect(done[0]).toContain(`'${name}'`);
    // Two open days: a late point yesterday opens it again (a full load under the new base), then the same
    // user today adds the later day's bit to a unit already held.
    await insert([usage('w1', '2025-01-29', '23:00:00.000', 'two-days', 'activity')]);
    expect((await windows())?.[0]).toEqual(['2025-01-29', LAST]);
    await askAll();
    sent.length = 0;
    await insert([usage('w2', LAST, '01:00:00.000', 'two-days', 'activity')]);
    await askAll();
    expect(increments()).toBeGreaterThan(0);
    expect(fullLoads()).toBe(0);
    // An entity whose id needs escaping, with an earlier point: its lookup finds it (else it would count as
    // first seen today, twice in total_users). Its earlier day is sealed again first, so today is the only
    // open day again (a full load under the new base), then its point today comes in as an increment.
    const odd = `o'dd\\"user`;
    await insert([usage('q1', '2025-01-12', '10:00:00.000', odd, 'session_start', 'odd-s1')]);
    const prefixes = await dayPrefixes(engine.ch);
    for (const [family, days] of unsealedDays(prefixes, await sealsWritten(engine.ch)))
      await sealUsageDays(
        engine.ch,
        family,
        days.filter((d) => d.day < LAST),
      );
    await askAll();
    sent.length = 0;
    await insert([usage('q2', LAST, '10:00:00.000', odd, 'activity')]);
    await askAll();
    expect(increments()).toBeGreaterThan(0);
    expect(fullLoads()).toBe(0);
    // A DELETE (here of no point at all) makes every part again under a mutation version: what it removed is
    // not told by the parts, so every point is read again.
    await engine.ch.client.command({
      query: "DELETE FROM usage_points_by_day WHERE entity = 'no such entity'",
    });
    sent.length = 0;
    await askAll();
    expect(fullLoads()).toBeGreaterThan(0);
    expect(increments()).toBe(0);
    // A part dropped (DROP PART / PARTITION and TRUNCATE remove parts and make none): the listing is then a
    // subset of the units' own, as an older one is, but its points are gone, so every point is read again, and
    // the answers are those of a handle that holds nothing. Its rows are kept aside and put back after.
    const run = (query: string, query_params: Record<string, unknown> = {}) =>
      engine.ch.client.command({ query, query_params });
    const [newest] = await (
      await engine.ch.client.query({
        query: `SELECT name FROM system.parts WHERE database = currentDatabase() AND table = 'usage_points_by_day'
          AND active ORDER BY max_block_number DESC LIMIT 1`,
        format: 'JSONEachRow',
      })
    ).json<{ name: string }>();
    await run('CREATE TABLE kept_part AS usage_points_by_day');
    await run('INSERT INTO kept_part SELECT * FROM usage_points_by_day WHERE _part = {name:String}', {
      name: newest?.name,
    });
    await run(`ALTER TABLE usage_points_by_day DROP PART '${newest?.name}'`);
    sent.length = 0;
    const snap = derived.at(await version.read());
    for (const q of summaries)
      expect({ q, held: await usageSummary(ch, q, snap) }).toEqual({
        q,
        held: await usageSummary({ ...engine.ch }, q),
      });
    expect(fullLoads()).toBeGreaterThan(0);
    await run('INSERT INTO usage_points_by_day SETTINGS insert_deduplicate = 0 SELECT * FROM kept_part');
    await run('DROP TABLE kept_part');
  });

  it('answers without the daily rollup: exact with usage_daily emptied', async () => {
    await coverOnly();
    expect((await openDays())?.length).toBe(3);
    await engine.ch.client.command({ query: 'TRUNCATE TABLE usage_daily' });
    await expectExact();
  });
});
