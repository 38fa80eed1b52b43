// Sealed log counts (migration 0018) against the generator's truth on the real engine: after sealing, pages and
// totals stay exact; a back-fill straight into log_events reopens the sealed days it lands in at once; a re-sent
// log changes nothing; and late inserts racing the sealer never make a read miss a stored log.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forApiReads } from '../../clickhouse/client.ts';
import { DerivedState, type Snapshot } from '../../clickhouse/derived-state.ts';
import { insertEvents } from '../../clickhouse/inserts.ts';
import { logDayCounts, sealLogDays } from '../../clickhouse/queries/log-day-counts.ts';
import { systemEvents } from '../../clickhouse/queries/system-events.ts';
import { QuietDays } from '../../clickhouse/quiet-days.ts';
import { generateDataset } from '../../ingest/loadgen/generate.ts';
import { type LogQuery, Truth } from '../../ingest/loadgen/truth.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { rowsOf } from '../helpers/rows.ts';

const base = generateDataset({ events: 20_000, seed: 21, days: 40, duplicateRate: 0.02 }).events;
// Later logs for the same days, as a back-fill or a late producer would bring them (other ids: other seed).
const late = generateDataset({ events: 6_000, seed: 22, days: 40, duplicateRate: 0, logShare: 1 }).events;

describe('sealed log counts', () => {
  let engine: TestEngine;
  const truth = new Truth();

  const page = async (q: LogQuery, snap?: Snapshot, ch = engine.ch) => {
    const r = await systemEvents(
      ch,
      {
        limit: q.limit ?? 100,
        page: q.page ?? 1,
        severity: q.severity,
        service: q.service,
        start_date: q.start_date,
        end_date: q.end_date,
      },
      snap,
    );
    return { events: r.events.map(({ ms: _ms, ...e }) => e), page: r.page, total_pages: r.total_pages };
  };
  const expectExact = async (queries: LogQuery[], snap?: Snapshot, ch = engine.ch) => {
    for (const q of queries)
      expect({ q, got: await page(q, snap, ch) }).toEqual({ q, got: truth.systemEvents(q) });
  };
  // The same test the read makes: days whose counter matches no seal (such a day is counted in log_events FINAL).
  const openDays = async (): Promise<number> => {
    const rs = await engine.ch.client.query({
      query: `SELECT count() AS open FROM (
          SELECT day, sum(inserted) AS inserted FROM log_cells_daily GROUP BY day
        ) AS c LEFT ANTI JOIN log_day_counts AS s USING (day, inserted)`,
      format: 'JSONEachRow',
    });
    const [row] = await rs.json<{ open: number | string }>();
    return Number(row?.open);
  };
  const insert = async (list: readonly unknown[], token: string) => {
    await insertEvents(engine.ch, rowsOf(list), token);
    truth.addAll(list);
  };

  /** A handle of the test's engine (with memos of its own) that records the queries and commands it sends. */
  const recorded = () => {
    const sent: Array<{ query: string; params: Record<string, unknown> }> = [];
    const client = new Proxy(engine.ch.client, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver);
        if (prop !== 'query' && prop !== 'command') return value;
        return (arg: { query: string; query_params?: Record<string, unknown> }) => {
          sent.push({ query: arg.query, params: arg.query_params ?? {} });
          return value.call(target, arg);
        };
      },
    });
    return { watched: { ...engine.ch, client }, sent };
  };

  beforeAll(async () => {
    engine = await openTestEngine();
    for (let i = 0; i < base.length; i += 4_000) await insert(base.slice(i, i + 4_000), `seals/base/${i}`);
  });
  afterAll(async () => engine?.dispose());

  const queries = () => [
    ...truth.sampleLogQueries(16, 5),
    { limit: 1 },
    { limit: 1000 },
    { limit: 7, page: Math.ceil(truth.countLogs() / 7) },
    { limit: 50, page: 3, severity: 'warning' as const },
  ];

  it('answers exactly before sealing, after sealing, and seals every day', async () => {
    expect(truth.countLogs()).toBeGreaterThan(3_000);
    const open = await openDays();
    expect(open).toBeGreaterThanOrEqual(40);
    await expectExact(queries());
    expect(await sealLogDays(engine.ch)).toBe(open);
    expect(await openDays()).toBe(0);
    // Every day is now located by the hour, and its hours add up to its count.
    const days = await logDayCounts(engine.ch, {});
    expect(days.length).toBeGreaterThan(30);
    for (const d of days) expect(d.hours?.reduce((a, b) => a + b, 0)).toBe(d.n);
    // Nothing changed: the next round seals nothing.
    expect(await sealLogDays(engine.ch)).toBe(0);
    await expectExact(queries());
  });

  it('reopens sealed days on a back-fill straight into log_events, and stays exact', async () => {
    expect(await openDays()).toBe(0);
    const first = late.slice(0, 1_500);
    // A data engineer's back-fill: plain SQL, no insert token, any ingested_at.
    const values = rowsOf(first).logs;
    await engine.ch.client.insert({
      table: 'log_events',
      values: values.map((r) => ({ ...r, ingested_at: '2001-01-01 00:00:00.000' })),
      format: 'JSONEachRow',
    });
    truth.addAll(first);
    expect(await openDays()).toBeGreaterThan(0);
    // Read before any seal: the reopened days are counted in log_events FINAL.
    await expectExact(queries());
    await sealLogDays(engine.ch);
    expect(await openDays()).toBe(0);
    await expectExact(queries());
  });

  it('changes no answer when sealed logs are re-sent', async () => {
    await sealLogDays(engine.ch);
    const again = base.filter((_, i) => i % 9 === 4);
    await insertEvents(engine.ch, rowsOf(again), 'seals/again');
    truth.addAll(again);
    expect(await openDays()).toBeGreaterThan(0);
    await expectExact(queries().slice(0, 8));
    await sealLogDays(engine.ch);
    await expectExact(queries().slice(0, 8));
  });

  it('locates each page of a day by its hours, sealed or not: one read, of the hours that hold the page', async () => {
    // 150 logs in the last hour of a day after the others (as today's would be, under live traffic).
    const day = '2023-03-04';
    const burst = Array.from({ length: 150 }, (_, i) => ({
      event_id: `burst-${i}`,
      type: 'log',
      timestamp: `${day}T23:${String(Math.floor(i / 3)).padStart(2, '0')}:0${i % 3}.000Z`,
      severity: i % 5 === 0 ? 'error' : 'info',
      service: 'burst',
      message: `burst ${i}`,
    }));
    const early = Array.from({ length: 40 }, (_, i) => ({
      ...burst[i],
      event_id: `early-${i}`,
      timestamp: `${day}T03:00:${String(i).padStart(2, '0')}.000Z`,
    }));
    await insert([...early, ...burst], 'seals/burst');
    const { watched, sent } = recorded();
    const ask = async (q: LogQuery) => {
      sent.length = 0;
      const r = await systemEvents(watched, {
        limit: q.limit ?? 100,
        page: q.page ?? 1,
        start_date: day,
        end_date: day,
        severity: q.severity,
      });
      expect({ q, got: r.events.map(({ ms: _ms, ...e }) => e) }).toEqual({
        q,
        got: truth.systemEvents({ ...q, start_date: day, end_date: day }).events,
      });
      // Pages only (the counts of a day not sealed yet read log_events too).
      return sent
        .filter((x) => x.query.includes('FROM log_events') && !x.query.includes('count() AS n'))
        .map((x) => x.params);
    };
    const lastHour = Date.parse(`${day}T23:00:00Z`);
    const hours = (n: number) => ({ from_ms: lastHour - (n - 1) * 3_600_000, to_ms: lastHour + 3_600_000 });
    for (const sealed of [false, true]) {
      if (sealed) await sealLogDays(engine.ch);
      // The newest hour holds the page: that hour only.
      expect(await ask({ limit: 100 })).toEqual([expect.objectContaining({ ...hours(1), skip: 0 })]);
      expect(await ask({ limit: 20, severity: 'error' })).toHaveLength(1);
      // It does not (only 150 logs there, 30 errors): the hours down to the one holding the page's last log.
      const deeper = await ask({ limit: 170 });
      expect(deeper).toHaveLength(1);
      expect(deeper[0]?.from_ms).toBeLessThan(lastHour);
      expect(await ask({ limit: 40, severity: 'error' })).toHaveLength(1);
      expect(await ask({ limit: 100, page: 2 })).toHaveLength(1);
    }
  });

  it('keeps the cells of each day across data versions, reading again only the day that moved', async () => {
    await sealLogDays(engine.ch);
    const version = engine.ch.dataVersion();
    const derived = new DerivedState();
    const { watched, sent } = recorded();
    const cellDays = () =>
      sent
        .filter((x) => x.query.includes('FROM log_day_counts') && x.query.includes('{days:'))
        .map((x) => String(x.params.days));
    const counts = async (f: LogQuery) => {
      const snap = derived.at(await version.read());
      return logDayCounts(watched, { severity: f.severity, service: f.service }, snap);
    };
    try {
      const earlier = await counts({});
      sent.length = 0;
      // Logs for one sealed day, under a service name a producer chose (quotes and a backslash: it travels to
      // the engine as a bound value).
      const day = '2023-03-04';
      const odd = "it's \\ odd";
      const more = Array.from({ length: 30 }, (_, i) => ({
        event_id: `moved-${i}`,
        type: 'log',
        timestamp: `${day}T12:00:${String(i).padStart(2, '0')}.000Z`,
        severity: i % 2 === 0 ? 'warning' : 'error',
        service: i % 3 === 0 ? odd : 'burst',
        message: `moved ${i}`,
      }));
      await insert(more, 'seals/moved');
      // A new version: only the day that moved is read again, for every filter, including one never asked.
      await expectExact(
        [
          { limit: 10, start_date: day, end_date: day },
          { limit: 5, service: odd },
          { limit: 7, severity: 'error', service: 'burst' },
          { limit: 100, page: 2, severity: 'warning' },
        ],
        derived.at(await version.read()),
        watched,
      );
      const dayNumber = Date.parse(`${day}T00:00:00Z`) / 86_400_000;
      expect(cellDays()).toEqual([`[${dayNumber}]`]);
      // The other days' counts are the same objects as at the earlier version: counted once, not per version.
      const later = await counts({});
      const moved = (d: { dayMs: number }) => d.dayMs === dayNumber * 86_400_000;
      expect(later.filter((d) => !moved(d)).length).toBeGreaterThan(10);
      for (const d of later.filter((x) => !moved(x))) expect(earlier).toContain(d);
      expect(earlier.filter(moved).every((d) => !later.includes(d))).toBe(true);
      // Unsealed, the day is counted in log_events FINAL, hours and all. Its seal changes no answer, so it is
      // not read again here; a handle with no memo of the day reads the seal instead of counting.
      const mine = async (ch = watched) =>
        (await logDayCounts(ch, { service: odd })).find((d) => d.dayMs === dayNumber * 86_400_000);
      const before = await mine();
      expect(before?.n).toBe(10);
      expect(before?.hours[12]).toBe(10);
      await sealLogDays(engine.ch);
      sent.length = 0;
      expect(await mine()).toEqual(before);
      expect(sent.filter((x) => x.query.includes('FROM log_day_counts'))).toEqual([]);
      const fresh = recorded();
      expect(await mine(fresh.watched)).toEqual(before);
      expect(fresh.sent.filter((x) => x.query.includes('count() AS n'))).toEqual([]);
      await expectExact([{ limit: 3, service: odd, page: 2 }], derived.at(await version.read()), watched);
    } finally {
      version.close();
    }
  });

  it('skips a round while nothing has reached a day since one that found nothing to seal', async () => {
    const { watched, sent } = recorded();
    await sealLogDays(watched);
    expect(await sealLogDays(watched)).toBe(0);
    sent.length = 0;
    expect(await sealLogDays(watched)).toBe(0);
    expect(sent).toHaveLength(1);
    // One log for a sealed day: the next round is a whole one, and seals that day.
    await insert([{ ...late[0], event_id: 'skip-1', message: 'reaches a sealed day' }], 'seals/skip');
    expect(await openDays()).toBe(1);
    expect(await sealLogDays(watched)).toBe(1);
    expect(await openDays()).toBe(0);
  });

  it("leaves a day still taking logs unsealed until it has settled (the service's sealer), exact meanwhile", async () => {
    const day = '2023-05-06';
    const logs = (from: number, n: number) =>
      Array.from({ length: n }, (_, i) => ({
        event_id: `settle-${from + i}`,
        type: 'log',
        timestamp: `${day}T10:${String((from + i) % 60).padStart(2, '0')}:00.000Z`,
        severity: i % 2 ? 'warning' : 'info',
        service: 'settle',
        message: `settle ${from + i}`,
      }));
    const quiet = new QuietDays();
    const { watched, sent } = recorded();
    const round = (now: number) => sealLogDays(watched, { days: quiet, quietMs: 30_000, now });
    const asked: LogQuery[] = [
      { start_date: day, end_date: day },
      { severity: 'info', limit: 7, page: 2 },
    ];
    await sealLogDays(engine.ch);
    await insert(logs(0, 40), 'seals/settle/1');
    // Every day is new to this tracker, so none has settled yet.
    expect(await round(0)).toBe(0);
    expect(await openDays()).toBe(1);
    await expectExact(asked);
    await insert(logs(40, 40), 'seals/settle/2');
    expect(await round(20_000)).toBe(0); // its sum moved at 20 s
    await expectExact(asked);
    expect(await round(45_000)).toBe(0); // 25 s quiet; every other day has settled (and is sealed)
    // More logs while it is busy: the rounds skip after one small read, as when nothing moved.
    await insert(logs(80, 10), 'seals/settle/3');
    sent.length = 0;
    expect(await round(46_000)).toBe(0);
    expect(sent).toHaveLength(1);
    await expectExact(asked);
    expect(await round(70_000)).toBe(0); // 24 s quiet
    expect(await round(76_000)).toBe(1); // 30 s quiet: the day sealed, and only it
    expect(await openDays()).toBe(0);
    await expectExact(asked);
  });

  it('holds a day still taking logs: after its second move, a read adds only what came since, exact through merges', async () => {
    const day = '2025-01-20';
    const dayNumber = Date.parse(`${day}T00:00:00Z`) / 86_400_000;
    const odd = "it's \\ held";
    const logs = (from: number, n: number) =>
      Array.from({ length: n }, (_, i) => ({
        event_id: from + i === 3 ? `odd ' \\ id` : `held-${from + i}`,
        type: 'log',
        timestamp: `${day}T${String(13 + ((from + i) % 9)).padStart(2, '0')}:${String((from + i) % 60).padStart(2, '0')}:00.000Z`,
        severity: (['info', 'warning', 'error'] as const)[(from + i) % 3],
        service: (from + i) % 4 === 0 ? odd : 'held',
        message: `held ${from + i}`,
      }));
    await sealLogDays(engine.ch);
    const { watched, sent } = recorded();
    const texts = () => sent.map((x) => x.query);
    const asked: LogQuery[] = [
      { start_date: day, end_date: day, limit: 10 },
      { start_date: day, end_date: day, limit: 7, page: 3, severity: 'warning' },
      { service: odd, limit: 5 },
      { limit: 100 },
    ];
    const read = async () => {
      sent.length = 0;
      await expectExact(asked, undefined, watched);
      const mine = (await logDayCounts(watched, {})).find((d) => d.dayMs === dayNumber * 86_400_000);
      return {
        cells: texts().filter((q) => q.includes('FROM log_day_counts') && q.includes('{days:')).length,
        rawCounts: texts().filter((q) => q.includes('count() AS n')).length,
        // A query of its own for the rows since (not the held day's rows read with the day sums).
        deltas: texts().filter((q) => q.includes('_part NOT IN')).length,
        // The held days' rows read in the query of the day sums, from the parts past the blocks read.
        inline: texts().some((q) => q.includes('FROM log_cells_daily') && q.includes("'row' AS t")),
        wholeDay: texts().filter(
          (q) => q.includes('AS ms, event_id') && !q.includes('_part NOT IN') && !q.includes("'row' AS t"),
        ).length,
        hours: mine?.hours?.reduce((a, b) => a + b, 0) === mine?.n,
        readPast: Math.min(
          ...texts().flatMap((q) => {
            const m = /splitByChar\('_', _part\)\[3\]\) > (-?\d+)/.exec(q);
            return m ? [Number(m[1])] : [];
          }),
        ),
      };
    };
    await read();
    // The first move is read as any day's: no seal at its counter, so counted in log_events FINAL.
    await insert(logs(0, 30), 'seals/held/1');
    expect(await read()).toMatchObject({
      cells: 1,
      rawCounts: 1,
      deltas: 0,
      inline: false,
      wholeDay: 0,
      hours: true,
    });
    // The second within a minute: the day is read whole once and held, with its hours.
    await insert(logs(30, 30), 'seals/held/2');
    expect(await read()).toMatchObject({ cells: 0, rawCounts: 0, deltas: 0, wholeDay: 1, hours: true });
    // A first page of the held day comes from the held rows, messages and all: no read of log_events.
    sent.length = 0;
    await expectExact([{ start_date: day, end_date: day, limit: 10, severity: 'error' }], undefined, watched);
    expect(sent.filter((x) => x.query.includes('FROM log_events FINAL'))).toEqual([]);
    // From then on, only the rows inserted since, whatever the filter, read with the day sums: no query more.
    const sinceOnly = { cells: 0, rawCounts: 0, deltas: 0, inline: true, wholeDay: 0, hours: true };
    await insert(logs(60, 30), 'seals/held/3');
    expect(await read()).toMatchObject(sinceOnly);
    // A re-sent log and a merge of every part (no new rows: nothing to read), then more logs after the merge.
    await insert(logs(10, 5), 'seals/held/again');
    expect(await read()).toMatchObject({ cells: 0, rawCounts: 0, deltas: 0, inline: true, hours: true });
    await engine.ch.client.command({ query: 'OPTIMIZE TABLE log_events FINAL' });
    await engine.ch.client.command({ query: 'OPTIMIZE TABLE log_cells_daily FINAL' });
    expect(await read()).toMatchObject({ cells: 0, rawCounts: 0, deltas: 0, wholeDay: 0 });
    const merged = await engine.ch.client.query({
      query:
        "SELECT name, max_block_number AS max FROM system.parts WHERE database = currentDatabase() AND table = 'log_events' AND active",
      format: 'JSONEachRow',
    });
    const mergedParts = await merged.json<{ name: string; max: string | number }>();
    await insert(logs(90, 30), 'seals/held/4');
    const after = await read();
    expect(after).toMatchObject(sinceOnly);
    // The merged parts hold only rows held already: the read leaves them out (it reads past their blocks).
    for (const p of mergedParts) expect(after.readPast).toBeGreaterThanOrEqual(Number(p.max));
  });

  it('holds a day exactly while its inserts commit during the reads that bring it up to date', async () => {
    // A handle of its own (the held days are kept per handle) that reads on the API's connection, so that the
    // inserts (on the engine's insert session) commit while its queries run.
    const view = { ...forApiReads(engine.ch) };
    const day = '2025-01-21';
    const logsOf = (from: number, n: number) =>
      Array.from({ length: n }, (_, i) => ({
        event_id: `race-held-${from + i}`,
        type: 'log',
        timestamp: `${day}T${String((from + i) % 24).padStart(2, '0')}:${String((from + i) % 60).padStart(2, '0')}:30.000Z`,
        severity: (['info', 'warning', 'error'] as const)[(from + i) % 3],
        service: (from + i) % 2 === 0 ? 'race-a' : 'race-b',
        message: `race ${from + i}`,
      }));
    const asked: LogQuery[] = [
      { start_date: day, end_date: day, limit: 1000 },
      { start_date: day, end_date: day, limit: 4, severity: 'error' },
      { start_date: day, end_date: day, limit: 5, page: 2, service: 'race-a' },
    ];
    // Two moves within a minute: the day is held.
    await insert(logsOf(0, 20), 'race-held/0');
    await expectExact(asked, undefined, view);
    await insert(logsOf(20, 20), 'race-held/1');
    await expectExact(asked, undefined, view);
    // Inserts of one log each, back to back, while reads bring the day up to date, whatever they see of them;
    // then every read counts every one.
    let inserting = true;
    const inserts = (async () => {
      for (let i = 0; i < 150; i++) await insert(logsOf(40 + i, 1), `race-held/${i + 2}`);
      inserting = false;
    })();
    let reads = 0;
    while (inserting) {
      await page(reads % 2 === 0 ? (asked[0] as LogQuery) : { limit: 3 }, undefined, view);
      reads++;
    }
    await inserts;
    expect(reads).toBeGreaterThan(20);
    await expectExact(asked, undefined, view);
  });

  it("shares a held day's first page among ranges within a data version, and reads it again after an insert", async () => {
    const day = '2025-01-22';
    const log = (i: number, hhmm: string) => ({
      event_id: `shared-${i}`,
      type: 'log',
      timestamp: `${day}T${hhmm}:00.000Z`,
      severity: 'error',
      service: 'shared',
      message: `shared ${i}`,
    });
    const some = (from: number, n: number) =>
      Array.from({ length: n }, (_, i) =>
        log(
          from + i,
          `${String(8 + ((from + i) % 12)).padStart(2, '0')}:${String((from + i) % 60).padStart(2, '0')}`,
        ),
      );
    // Two moves within a minute, each seen by the handle that asks below (held days are kept per handle): the
    // day is held.
    const { watched, sent } = recorded();
    const oneDay: LogQuery = { start_date: day, end_date: day, limit: 5 };
    await expectExact([oneDay], undefined, watched);
    await insert(some(0, 20), 'shared/0');
    await expectExact([oneDay], undefined, watched);
    await insert(some(20, 20), 'shared/1');
    await expectExact([oneDay], undefined, watched);
    // Page 1 of three ranges ending on the day (one of them longer than the data), filtered to the day's service.
    const firsts: LogQuery[] = ['2025-01-01', '2025-01-10', day].map((start_date) => ({
      start_date,
      end_date: day,
      limit: 5,
      service: 'shared',
    }));
    const pageReads = () => sent.filter((x) => x.query.includes('FROM log_events FINAL')).length;
    const version = engine.ch.dataVersion();
    const derived = new DerivedState();
    try {
      // The first brings the day up to date and reads the page (from the 5th newest log); the others share it,
      // as do the same three asked again at that version.
      await expectExact(firsts, derived.at(await version.read()), watched);
      sent.length = 0;
      await expectExact(firsts, derived.at(await version.read()), watched);
      expect(pageReads()).toBe(0);
      // A newer log: the next version's page is made again, from the held rows (no read), and holds it first.
      // The day sums are read again, and the parts they need are the version's: no listing of its own.
      await insert([log(99, '23:59')], 'shared/2');
      await expectExact(firsts, derived.at(await version.read()), watched);
      expect(pageReads()).toBe(0);
      const sums = sent.filter((x) => x.query.includes('FROM log_cells_daily GROUP BY day'));
      expect(sums).toHaveLength(1);
      expect(sums[0]?.query).not.toContain('system.parts');
      // Without a version (no read cache), the query lists them itself.
      sent.length = 0;
      await page(oneDay, undefined, watched);
      expect(sent.find((x) => x.query.includes('FROM log_cells_daily GROUP BY day'))?.query).toContain(
        'system.parts',
      );
      const newest = async () =>
        (await page(firsts[0] as LogQuery, derived.at(await version.read()), watched)).events[0];
      expect(await newest()).toMatchObject({ event_id: 'shared-99', message: 'shared 99' });
      // A DELETE moves no counter, yet the page leaves the log out at once: the held day is let go. (Straight
      // at the engine, beside the truth; then the log again, so that the truth holds.)
      await engine.ch.client.command({ query: "DELETE FROM log_events WHERE event_id = 'shared-99'" });
      expect(await newest()).toMatchObject({ event_id: 'shared-35' });
      await insertEvents(engine.ch, rowsOf([log(99, '23:59')]), 'shared/3');
      expect(await newest()).toMatchObject({ event_id: 'shared-99', message: 'shared 99' });
      // A copy with another message, the day's second move within a minute (held again, the copies read
      // whole): same id, same time, so no window moves, yet the page shows the newest copy at once, read from
      // log_events (which copy FINAL keeps is the engine's to say). Then the first copy again.
      sent.length = 0;
      await insertEvents(engine.ch, rowsOf([{ ...log(99, '23:59'), message: 'edited' }]), 'shared/4');
      expect(await newest()).toMatchObject({ event_id: 'shared-99', message: 'edited' });
      expect(pageReads()).toBe(1);
      await insertEvents(engine.ch, rowsOf([log(99, '23:59')]), 'shared/5');
      expect(await newest()).toMatchObject({ event_id: 'shared-99', message: 'shared 99' });
    } finally {
      version.close();
    }
  });

  it("shows a held day's log at once in its first page and counts, whichever of an insert's parts commits first", async () => {
    const day = '2025-01-23';
    const log = (i: number, hhmm: string) => ({
      event_id: `uncounted-${i}`,
      type: 'log',
      timestamp: `${day}T${hhmm}:59.999Z`,
      severity: 'info',
      service: 'uncounted',
      message: `uncounted ${i}`,
    });
    // Two moves within a minute, each seen by the handle that asks below: the day is held.
    const { watched } = recorded();
    const oneDay: LogQuery = { start_date: day, end_date: day, limit: 3 };
    await expectExact([oneDay], undefined, watched);
    await insert([log(0, '08:00'), log(1, '08:01')], 'uncounted/0');
    await expectExact([oneDay], undefined, watched);
    await insert([log(2, '08:02'), log(3, '08:03')], 'uncounted/1');
    await expectExact([oneDay], undefined, watched);
    // The cells' view detached, the next log reaches log_events alone: what a read sees while an insert's views
    // have not committed yet (they commit after log_events' part). The day's counters have not moved.
    await engine.ch.client.command({ query: 'DETACH TABLE log_cells_daily_mv' });
    try {
      await insertEvents(engine.ch, rowsOf([log(9, '23:59')]), 'uncounted/2');
    } finally {
      await engine.ch.client.command({ query: 'ATTACH TABLE log_cells_daily_mv' });
    }
    const first = await page(oneDay, undefined, watched);
    expect(first.events[0]).toMatchObject({ event_id: 'uncounted-9', message: 'uncounted 9' });
    // Its cells written as the view writes them: the counts agree again, and every answer is exact.
    await engine.ch.client.command({
      query: `INSERT INTO log_cells_daily
        SELECT toDate(timestamp) AS day, severity, service, uniqExactState(event_id), count()
        FROM log_events WHERE event_id = 'uncounted-9' GROUP BY day, severity, service`,
    });
    truth.addAll([log(9, '23:59')]);
    await expectExact([oneDay, { ...oneDay, page: 2 }], undefined, watched);
    // The other order (the engine promises none): the cells first, read while the held day has no row of theirs
    // yet; then the row, with no move. The day's counts take it at once, as its first page does.
    await engine.ch.client.command({
      query: `INSERT INTO log_cells_daily
        SELECT toDate('${day}'), 'info', 'uncounted', uniqExactState('uncounted-8'), toUInt64(1)`,
    });
    await page(oneDay, undefined, watched);
    await engine.ch.client.command({ query: 'DETACH TABLE log_cells_daily_mv' });
    try {
      await insert([log(8, '23:58')], 'uncounted/3');
    } finally {
      await engine.ch.client.command({ query: 'ATTACH TABLE log_cells_daily_mv' });
    }
    await expectExact([oneDay, { ...oneDay, page: 2 }], undefined, watched);
  });

  it('never misses a stored log while late inserts race the sealer', async () => {
    const rest = late.slice(1_500);
    const version = engine.ch.dataVersion();
    const derived = new DerivedState();
    let stop = false;
    let rounds = 0;
    const sealer = (async () => {
      while (!stop) {
        await sealLogDays(engine.ch);
        rounds++;
      }
    })();
    try {
      for (let i = 0; i < rest.length; i += 300) {
        await insert(rest.slice(i, i + 300), `seals/race/${i}`);
        // Once an insert has returned, every read counts it, sealed or not.
        const all = await page({ limit: 1000 });
        expect({ i, total_pages: all.total_pages }).toEqual({
          i,
          total_pages: truth.systemEvents({ limit: 1000 }).total_pages,
        });
        const exact = await systemEvents(engine.ch, { limit: 1, page: 1 });
        expect({ i, total: exact.total }).toEqual({ i, total: truth.countLogs() });
        // The same when the day counts are shared per data version read after the insert, as the API's
        // reads share them: filtered and date-bounded pages included.
        const snap = derived.at(await version.read());
        const shared = await systemEvents(engine.ch, { limit: 1, page: 1 }, snap);
        expect({ i, total: shared.total }).toEqual({ i, total: truth.countLogs() });
        await expectExact(queries().slice(0, 4), snap);
      }
    } finally {
      stop = true;
      await sealer;
      version.close();
    }
    expect(rounds).toBeGreaterThan(2);
    await sealLogDays(engine.ch);
    expect(await openDays()).toBe(0);
    await expectExact(queries());
  });
});
