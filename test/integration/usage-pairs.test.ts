// Sealed usage pairs (migration 0011) against the generator's truth on the real engine: every summary filter
// but the user's answers from the pairs once its days are sealed, exactly; a back-fill straight into
// usage_events reopens the days it touches and every later one; re-sent events change nothing; and inserts
// racing the sealer never make a summary miss a stored event.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClickHouse } from '../../clickhouse/client.ts';
import { type DataVersionSource, versionOf } from '../../clickhouse/data-version.ts';
import { DerivedState } from '../../clickhouse/derived-state.ts';
import { insertEvents } from '../../clickhouse/inserts.ts';
import {
  pruneReplacedPairs,
  sealedView,
  sealState,
  userDaysReady,
  viewOf,
} from '../../clickhouse/queries/usage-pairs.ts';
import { LEVELS_BOUND, pairsIndex } from '../../clickhouse/queries/usage-pairs-index.ts';
import { usageSummary } from '../../clickhouse/queries/usage-summary.ts';
import { usageTimeseries } from '../../clickhouse/queries/usage-timeseries.ts';
import { QuietDays, sealUsage } from '../../clickhouse/sealer.ts';
import { generateDataset } from '../../ingest/loadgen/generate.ts';
import type { SummaryQuery, TimeseriesQuery } from '../../ingest/loadgen/queries.ts';
import { Truth } from '../../ingest/loadgen/truth.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { rowsOf } from '../helpers/rows.ts';

const base = generateDataset({ events: 20_000, seed: 31, days: 50, duplicateRate: 0.03 }).events;
// More events for the same days and users, as a late producer or a back-fill would bring them.
const late = generateDataset({ events: 5_000, seed: 32, days: 50, duplicateRate: 0, logShare: 0 }).events;

describe('sealed usage pairs', () => {
  let engine: TestEngine;
  const truth = new Truth();
  const quiet = new QuietDays();
  const seal = () => sealUsage(engine.ch, quiet, 0, Date.now());
  const insert = async (list: readonly unknown[], token: string) => {
    await insertEvents(engine.ch, rowsOf(list), token);
    truth.addAll(list);
  };
  // Filtered by team, service, both or neither (the user filter always reads the daily rollup).
  const queries = (n: number, seed: number): SummaryQuery[] =>
    truth.sampleQueries(n, seed).map((q) => ({ ...q, user_id: undefined }));
  // Every answer twice: computed on its own, and from state shared per data version as the API computes it
  // (the seal state, and the filter's pairs summed in memory: a filter asked for again loads them in the
  // background; here they are loaded first when the range is sealed, so the answer is the in-memory one).
  const derived = new DerivedState();
  const shared = async (q: { start_date: string; end_date: string; team_id?: string; service?: string }) => {
    const snap = derived.at(await version.read());
    const state = await sealState(engine.ch, snap);
    if (viewOf(state, q.start_date, q.end_date)) await pairsIndex(engine.ch, q, state, snap);
    return snap;
  };
  // Each question once per call: the samples repeat some after their user filter is dropped (the whole range
  // three times among a summary sample's fixed cases), and the same question again on the same data asks the
  // same statements with the same state, so it can only give the same answer.
  const distinct = <Q extends object>(qs: Q[]): Q[] => [
    ...new Map(qs.map((q) => [JSON.stringify(q, Object.keys(q).sort()), q])).values(),
  ];
  const expectExact = async (qs: SummaryQuery[]) => {
    for (const q of distinct(qs)) {
      expect({ q, got: await usageSummary(engine.ch, q) }).toEqual({ q, got: truth.usageSummary(q) });
      const snap = await shared(q);
      expect({ q, shared: await usageSummary(engine.ch, q, snap) }).toEqual({
        q,
        shared: truth.usageSummary(q),
      });
    }
  };
  const whole = { start_date: '2025-01-01', end_date: '2025-02-19' };
  // Every interval and grouping, filtered by team / service or not (a user filter reads the daily rollup).
  const series = (n: number, seed: number): TimeseriesQuery[] =>
    truth.sampleTimeseriesQueries(n, seed).map((q) => ({ ...q, user_id: undefined }));
  const expectSeries = async (qs: TimeseriesQuery[]) => {
    for (const q of distinct(qs)) {
      expect({ q, got: await usageTimeseries(engine.ch, q) }).toEqual({ q, got: truth.usageTimeseries(q) });
      const snap = await shared(q);
      expect({ q, shared: await usageTimeseries(engine.ch, q, snap) }).toEqual({
        q,
        shared: truth.usageTimeseries(q),
      });
    }
  };

  let version: DataVersionSource;
  beforeAll(async () => {
    engine = await openTestEngine();
    version = engine.ch.dataVersion();
    for (let i = 0; i < base.length; i += 5_000) await insert(base.slice(i, i + 5_000), `pairs/base/${i}`);
  });
  afterAll(async () => {
    version?.close();
    await engine?.dispose();
  });

  it('back-fills, seals every day, and answers every filter exactly from the pairs', async () => {
    expect(await sealedView(engine.ch, whole.start_date, whole.end_date)).toBeUndefined();
    await expectExact(queries(10, 1)); // from the daily rollup
    expect(await seal()).toBeGreaterThan(100);
    expect(await seal()).toBe(0);
    expect(await sealedView(engine.ch, whole.start_date, whole.end_date)).toBeDefined();
    const qs = queries(40, 2);
    expect(new Set(qs.map((q) => `${q.team_id !== undefined}/${q.service !== undefined}`)).size).toBe(4);
    expect(qs.filter((q) => truth.usageSummary(q).total_sessions > 20).length).toBeGreaterThan(10);
    await expectExact(qs);
    const ts = series(40, 2);
    expect(new Set(ts.map((q) => `${q.interval}/${q.group_by}`)).size).toBeGreaterThanOrEqual(7);
    await expectSeries(ts);
    // User filters read usage_user_days once the back-fill has copied usage_daily into it.
    expect(await userDaysReady(engine.ch)).toBe(true);
    const byUser = truth.sampleQueries(60, 8).filter((q) => q.user_id !== undefined);
    expect(byUser.length).toBeGreaterThan(10);
    expect(byUser.filter((q) => truth.usageSummary(q).total_sessions > 0).length).toBeGreaterThan(3);
    await expectExact(byUser);
    await expectSeries(truth.sampleTimeseriesQueries(60, 8).filter((q) => q.user_id !== undefined));
  });

  it('reads the seal state again only where its tables changed: counters on an insert, seals on a seal, nothing on a merge', async () => {
    // A handle of its own that tells the counters' read from the seals'.
    const sent: string[] = [];
    const client = new Proxy(engine.ch.client, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver);
        if (prop !== 'query') return value;
        return (arg: { query: string }) => {
          sent.push(arg.query);
          return value.call(target, arg);
        };
      },
    });
    const watched = { ...engine.ch, client };
    const derivedHere = new DerivedState();
    const read = async () => {
      sent.length = 0;
      const at = await version.read();
      const state = await sealState(watched, derivedHere.at(at));
      return {
        at,
        state,
        counters: sent.filter((q) => q.includes('FROM usage_points WHERE kind = 0')).length,
        seals: sent.filter((q) => q.includes('FROM usage_day_seals')).length,
      };
    };
    await seal();
    const first = await read();
    expect(first).toMatchObject({ counters: 1, seals: 1 });
    expect(viewOf(first.state, whole.start_date, whole.end_date)).toBeDefined();
    // A merge changes no counter's sum nor any seal: the state is held, nothing is read.
    await engine.ch.client.command({ query: 'OPTIMIZE TABLE usage_points FINAL' });
    await engine.ch.client.command({ query: 'OPTIMIZE TABLE usage_day_seals FINAL' });
    const merged = await read();
    expect(versionOf(merged.at, ['usage_points'])).not.toBe(versionOf(first.at, ['usage_points']));
    expect(merged).toMatchObject({ counters: 0, seals: 0 });
    expect(merged.state).toBe(first.state);
    // An insert into a sealed day moves its prefix and every later day's: the counters are read again, the
    // seals are not, and the range is no longer sealed.
    const pattern = base.find((e) => (e as { type?: string }).type === 'session_start') as Record<
      string,
      string
    >;
    await insert(
      [
        {
          ...pattern,
          event_id: 'pairs-seal-state-1',
          timestamp: '2025-01-20T10:00:00Z',
          user_id: 'pairs-seal-state-user',
          session_id: 'pairs-seal-state-session',
        },
      ],
      'pairs/seal-state',
    );
    const inserted = await read();
    expect(inserted).toMatchObject({ counters: 1, seals: 0 });
    expect(viewOf(inserted.state, whole.start_date, whole.end_date)).toBeUndefined();
    // The sealer seals them under their new prefixes: the seals are read again, the counters are not.
    await seal();
    const resealed = await read();
    expect(resealed).toMatchObject({ counters: 0, seals: 1 });
    expect(viewOf(resealed.state, whole.start_date, whole.end_date)).toBeDefined();
    await expectExact(queries(8, 12));
  });

  it('reopens the days a back-fill lands in, and every later day, and stays exact', async () => {
    const chunk = late.slice(0, 1_500);
    await engine.ch.client.insert({
      table: 'usage_events',
      values: rowsOf(chunk).usage.map((r) => ({ ...r, ingested_at: '2001-01-01 00:00:00.000' })),
      format: 'JSONEachRow',
    });
    truth.addAll(chunk);
    expect(await sealedView(engine.ch, whole.start_date, whole.end_date)).toBeUndefined();
    await expectExact(queries(12, 3));
    expect(await seal()).toBeGreaterThan(0);
    expect(await sealedView(engine.ch, whole.start_date, whole.end_date)).toBeDefined();
    await expectExact(queries(20, 4));
    await expectSeries(series(20, 4));
    // The reopened days' earlier pairs are left behind, and pruned without changing an answer.
    expect(await pruneReplacedPairs(engine.ch, 0)).toBeGreaterThan(0);
    expect(await pruneReplacedPairs(engine.ch, 0)).toBe(0);
    await expectExact(queries(20, 5));
  });

  it('changes no answer when sealed events are re-sent', async () => {
    const again = base.filter((_, i) => i % 7 === 3);
    await insertEvents(engine.ch, rowsOf(again), 'pairs/again');
    truth.addAll(again);
    await expectExact(queries(8, 5));
    await seal();
    expect(await sealedView(engine.ch, whole.start_date, whole.end_date)).toBeDefined();
    await expectExact(queries(20, 6));
  });

  it('holds each filtered level whole under the pairs bound, and past it sums its keys one by one, exactly', async () => {
    await seal();
    const qs = queries(24, 11).filter((q) => q.team_id !== undefined || q.service !== undefined);
    expect(new Set(qs.map((q) => `${q.team_id !== undefined}/${q.service !== undefined}`)).size).toBe(3);
    // A handle of its own (the levels are held per handle) that tells level loads from key loads, and what the
    // read connection was sent from what went beside it (the source a level loads through).
    const isLevel = (q: string) =>
      q.includes('FROM usage_pairs FINAL') && q.includes('GROUP BY team_id, service');
    const run = async () => {
      const sent = { level: 0, key: 0, levelOnReads: 0 };
      const client = new Proxy(engine.ch.client, {
        get(target, prop, receiver) {
          const value = Reflect.get(target, prop, receiver);
          if (prop !== 'query') return value;
          return (arg: { query: string }) => {
            if (isLevel(arg.query)) sent.levelOnReads++;
            if (arg.query.includes('FROM usage_pairs FINAL') && arg.query.includes('GROUP BY family'))
              sent.key++;
            return value.call(target, arg);
          };
        },
      });
      const exportSource: ClickHouse['exportSource'] = (bound) => {
        const source = engine.ch.exportSource(bound);
        return {
          ...source,
          read(q, format, signal) {
            if (isLevel(q.query)) sent.level++;
            return source.read(q, format, signal);
          },
        };
      };
      const watched = { ...engine.ch, client, exportSource };
      const derivedHere = new DerivedState();
      for (const q of qs) {
        const snap = derivedHere.at(await version.read());
        const state = await sealState(watched, snap);
        if (viewOf(state, q.start_date, q.end_date)) await pairsIndex(watched, q, state, snap);
        expect({ q, got: await usageSummary(watched, q, snap) }).toEqual({ q, got: truth.usageSummary(q) });
      }
      return sent;
    };
    // Under the bound: the three levels, one query per family each, none on the reads' connection, and no key
    // alone.
    expect(await run()).toEqual({ level: 9, key: 0, levelOnReads: 0 });
    const was = LEVELS_BOUND.pairs;
    LEVELS_BOUND.pairs = 10;
    try {
      expect(await run()).toMatchObject({ level: 0, key: expect.any(Number) });
      expect((await run()).key).toBeGreaterThan(3);
    } finally {
      LEVELS_BOUND.pairs = was;
    }
  });

  it('never misses a stored event while inserts race the sealer', async () => {
    const rest = late.slice(1_500);
    let stop = false;
    let rounds = 0;
    const sealer = (async () => {
      while (!stop) {
        await seal();
        rounds++;
      }
    })();
    try {
      for (let i = 0; i < rest.length; i += 250) {
        await insert(rest.slice(i, i + 250), `pairs/race/${i}`);
        // Once an insert has returned, every summary counts it, sealed or not; also when the seal state is
        // shared per data version read after the insert, as the API's reads share it. Each question once: both
        // samples of two are their fixed first cases, the whole range (again) and a single day.
        for (const q of distinct([whole, ...queries(2, 100 + i), ...truth.sampleQueries(2, 200 + i)])) {
          expect({ i, q, got: await usageSummary(engine.ch, q) }).toEqual({
            i,
            q,
            got: truth.usageSummary(q),
          });
          const snap = await shared(q);
          expect({ i, q, got: await usageSummary(engine.ch, q, snap) }).toEqual({
            i,
            q,
            got: truth.usageSummary(q),
          });
        }
      }
    } finally {
      stop = true;
      await sealer;
    }
    expect(rounds).toBeGreaterThan(2);
    await seal();
    expect(await sealedView(engine.ch, whole.start_date, whole.end_date)).toBeDefined();
    await expectExact(queries(30, 7));
  });

  it('back-fills from usage_daily and the raw events after an upgrade, resumably', async () => {
    // A database made before migration 0011 has the rollups and raw events, and empty new tables.
    for (const t of [
      'usage_points',
      'usage_user_days',
      'usage_points_coverage',
      'usage_pairs',
      'usage_day_seals',
    ])
      await engine.ch.client.command({ query: `TRUNCATE TABLE ${t}` });
    expect(await userDaysReady(engine.ch)).toBe(false);
    expect(await sealedView(engine.ch, whole.start_date, whole.end_date)).toBeUndefined();
    const byUser = truth.sampleQueries(60, 9).filter((q) => q.user_id !== undefined);
    await expectExact([...queries(6, 9), ...byUser.slice(0, 6)]); // from usage_daily meanwhile
    expect(await seal()).toBeGreaterThan(100);
    expect(await userDaysReady(engine.ch)).toBe(true);
    expect(await sealedView(engine.ch, whole.start_date, whole.end_date)).toBeDefined();
    await expectExact([...queries(20, 10), ...byUser]);
    await expectSeries(series(20, 10));
  });
});
