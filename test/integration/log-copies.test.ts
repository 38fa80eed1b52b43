// Logs re-sent under the same event_id with another severity, service, message or timestamp. A page shows each
// (timestamp, event_id) once, as its newest copy, filtered after that choice (log_events FINAL); total_pages
// must count exactly those, whether a day is sealed, counted in log_events FINAL, or held in memory while it
// takes logs. The expected pages are worked out here from the copies as sent (the generator's truth keeps the
// first copy of an id, where the stored logs keep the newest copy of a key).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClickHouse } from '../../clickhouse/client.ts';
import type { DataVersionSource } from '../../clickhouse/data-version.ts';
import { DerivedState } from '../../clickhouse/derived-state.ts';
import { insertEvents } from '../../clickhouse/inserts.ts';
import { sealLogDays } from '../../clickhouse/queries/log-day-counts.ts';
import { heldDelta } from '../../clickhouse/queries/log-live-days.ts';
import { type SystemEventsQuery, systemEvents } from '../../clickhouse/queries/system-events.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { rowsOf } from '../helpers/rows.ts';

const SEVERITIES = ['info', 'warning', 'error'] as const;
const SERVICES = ['api', 'billing'] as const;
const DAYS = ['2024-05-01', '2024-05-02', '2024-05-03'] as const;

interface Log {
  event_id: string;
  type: 'log';
  timestamp: string;
  severity: (typeof SEVERITIES)[number];
  service: string;
  message: string;
}

const at = (day: string, i: number, hourShift = 0) =>
  `${day}T${String((((i * 7) % 24) + hourShift) % 24).padStart(2, '0')}:${String((i * 13) % 60).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}.${String(i % 1000).padStart(3, '0')}Z`;

const original = (i: number, day: string = DAYS[i % 3] as string): Log => ({
  event_id: `copy-${i}`,
  type: 'log',
  timestamp: at(day, i),
  severity: SEVERITIES[i % 3] as Log['severity'],
  service: SERVICES[(i >> 1) % 2] as string,
  message: `m ${i}`,
});

/** A copy of a log as a producer might re-send it: changed in one way, chosen by i. */
function resent(log: Log, i: number): Log {
  const day = log.timestamp.slice(0, 10);
  switch (i % 6) {
    case 0:
      return { ...log, severity: SEVERITIES[(SEVERITIES.indexOf(log.severity) + 1) % 3] as Log['severity'] };
    case 1:
      return { ...log, service: log.service === 'api' ? 'billing' : 'api' };
    case 2: // another time of the same day: a second row
      return { ...log, timestamp: at(day, i, 5) };
    case 3: // the same time of another day: a second row, on that day
      return {
        ...log,
        timestamp: `${DAYS[(DAYS.indexOf(day as (typeof DAYS)[number]) + 1) % 3]}${log.timestamp.slice(10)}`,
      };
    case 4:
      return { ...log, message: `${log.message} (edited)` };
    default:
      return { ...log };
  }
}

describe('logs re-sent with other contents', () => {
  let engine: TestEngine;
  // Every copy sent, in order: the newest copy of a (timestamp, event_id) is the last one sent.
  const sent: Log[] = [];
  let batch = 0;

  const send = async (logs: readonly Log[]) => {
    await insertEvents(engine.ch, rowsOf(logs), `copies/${batch++}`);
    sent.push(...logs);
  };

  /** The pages as the contract defines them, from the copies sent. */
  const expected = (q: SystemEventsQuery) => {
    const newest = new Map<string, Log>();
    for (const l of sent) newest.set(`${Date.parse(l.timestamp)}|${l.event_id}`, l);
    const all = [...newest.values()]
      .filter(
        (l) =>
          (q.severity === undefined || l.severity === q.severity) &&
          (q.service === undefined || l.service === q.service) &&
          (q.start_date === undefined || l.timestamp.slice(0, 10) >= q.start_date) &&
          (q.end_date === undefined || l.timestamp.slice(0, 10) <= q.end_date),
      )
      .sort(
        (a, b) => Date.parse(b.timestamp) - Date.parse(a.timestamp) || (b.event_id < a.event_id ? -1 : 1),
      );
    const events = all.slice((q.page - 1) * q.limit, q.page * q.limit).map((l) => ({
      timestamp: new Date(Date.parse(l.timestamp)).toISOString(),
      severity: l.severity,
      message: l.message,
      service: l.service,
      event_id: l.event_id,
    }));
    return { events, total_pages: Math.ceil(all.length / q.limit) };
  };

  const filters: Array<Omit<SystemEventsQuery, 'limit' | 'page'>> = [
    {},
    ...SEVERITIES.map((severity) => ({ severity })),
    ...SERVICES.map((service) => ({ service })),
    { severity: 'error', service: 'api' },
    { start_date: DAYS[1], end_date: DAYS[1] },
    { start_date: DAYS[0], end_date: DAYS[1], severity: 'warning' },
  ];

  /**
   * Each filter at several limits, first, middle, last and past-the-end pages, on the given handle, with the
   * counts shared per data version as the API shares them.
   */
  const expectExact = async (ch: ClickHouse, asked = filters) => {
    // A state of its own: shared with an earlier call at the same version, a handle would get that call's days
    // (counted on another handle) instead of reading its own, sealed or held.
    const snap = new DerivedState().at(await version.read());
    let n = 0;
    for (const f of asked)
      for (const limit of [1, 7, 1000]) {
        const last = expected({ ...f, limit, page: 1 }).total_pages;
        for (const page of new Set([1, Math.ceil(last / 2) || 1, last || 1, last + 1])) {
          const q = { ...f, limit, page };
          const got = await systemEvents(ch, q, snap);
          expect({
            q,
            got: { events: got.events.map(({ ms: _ms, ...e }) => e), total_pages: got.total_pages },
          }).toEqual({
            q,
            got: expected(q),
          });
          n++;
        }
      }
    return n;
  };

  const dayFilters = (day: string) => [
    { start_date: day, end_date: day },
    { start_date: day, end_date: day, severity: 'info' as const },
    { start_date: day, end_date: day, service: 'api' },
  ];

  let version: DataVersionSource;
  beforeAll(async () => {
    engine = await openTestEngine();
    version = engine.ch.dataVersion();
  });
  afterAll(async () => {
    version?.close();
    await engine?.dispose();
  });

  it('counts each log as its newest copy shows it, before sealing, after it and after the copies merge', async () => {
    const originals = Array.from({ length: 240 }, (_, i) => original(i));
    await send(originals);
    const reader = { ...engine.ch };
    expect(await expectExact(reader)).toBeGreaterThan(80);
    // Every third log re-sent, changed in one of six ways; then some of the moved ones moved again.
    const copies = originals.filter((_, i) => i % 3 === 1).map((l, i) => resent(l, i));
    await send(copies);
    await send(copies.filter((_, i) => i % 6 === 0 && i % 4 === 0).map((l, i) => resent(l, i)));
    // A re-sent log really moved between cells and days, and exact copies are there too.
    expect(new Set(sent.map((l) => l.event_id)).size).toBeLessThan(sent.length - 60);
    await expectExact(reader);
    // Sealed (in log_events FINAL): the same answers, from a handle that reads the seals.
    await sealLogDays(engine.ch);
    await expectExact({ ...engine.ch });
    // Merged: the copies collapse in storage; nothing changes.
    await engine.ch.client.command({ query: 'OPTIMIZE TABLE log_events FINAL' });
    await expectExact({ ...engine.ch });
    await expectExact(reader);
  });

  it('lets a day held in memory go when a copy that differs reaches it, exact throughout', async () => {
    const day = '2024-05-04';
    const reader = { ...engine.ch };
    const dayNumber = Date.parse(`${day}T00:00:00Z`) / 86_400_000;
    const oneDay = dayFilters(day);
    const logs = Array.from({ length: 90 }, (_, i) => original(1_000 + i, day));
    // New, then two moves within a minute, each read: the day is held.
    for (const from of [0, 20, 40]) {
      await send(logs.slice(from, from + 20));
      await expectExact(reader, oneDay);
    }
    expect(heldDelta(reader)?.days).toContain(dayNumber);
    // Copies with another severity, service or time of the day: read with the next rows, the day is let go
    // and counted in log_events FINAL, and it is not held again while copies differ.
    await send(logs.slice(0, 12).map((l, i) => resent(l, i % 3)));
    await expectExact(reader, oneDay);
    expect(heldDelta(reader)?.days ?? []).not.toContain(dayNumber);
    await send(logs.slice(60));
    await expectExact(reader, oneDay);
    await send([resent(logs[70] as Log, 0)]);
    await expectExact(reader, oneDay);
    expect(heldDelta(reader)?.days ?? []).not.toContain(dayNumber);
  });

  it('does not hold a day whose copies already differ when it would be held', async () => {
    const day = '2024-05-05';
    const reader = { ...engine.ch };
    const dayNumber = Date.parse(`${day}T00:00:00Z`) / 86_400_000;
    const oneDay = dayFilters(day);
    const logs = Array.from({ length: 60 }, (_, i) => original(2_000 + i, day));
    await send(logs.slice(0, 20));
    await expectExact(reader, oneDay);
    await send([...logs.slice(20, 40), ...logs.slice(0, 6).map((l, i) => resent(l, i))]);
    await expectExact(reader, oneDay);
    // The second move: the day is read whole to be held, and its copies that differ keep it from being held.
    await send(logs.slice(40));
    await expectExact(reader, oneDay);
    expect(heldDelta(reader)?.days ?? []).not.toContain(dayNumber);
  });

  it('leaves deleted and dropped logs out of the counts at once, sealed or not', async () => {
    const reader = { ...engine.ch };
    const some = [
      {},
      { severity: 'error' as const },
      { service: 'api' },
      { start_date: DAYS[0], end_date: DAYS[0] },
    ];
    await send(Array.from({ length: 30 }, (_, i) => original(3_000 + i, '2023-06-01')));
    await sealLogDays(engine.ch);
    await expectExact(reader, some);
    // A data engineer's lightweight DELETE: no counter moves, yet the logs are gone from every answer.
    const gone = new Set(['copy-1', 'copy-4', 'copy-9', 'copy-1003', 'copy-3007']);
    await engine.ch.client.command({
      query: `DELETE FROM log_events WHERE event_id IN (${[...gone].map((id) => `'${id}'`).join(',')})`,
    });
    const keep = (l: Log) => !gone.has(l.event_id);
    sent.splice(0, sent.length, ...sent.filter(keep));
    await expectExact(reader, some);
    await expectExact({ ...engine.ch }, some);
    expect(await sealLogDays(engine.ch)).toBeGreaterThan(0);
    await expectExact({ ...engine.ch }, some);
    // A dropped partition (the year 2023), likewise.
    await engine.ch.client.command({ query: 'ALTER TABLE log_events DROP PARTITION 2023' });
    sent.splice(0, sent.length, ...sent.filter((l) => !l.timestamp.startsWith('2023')));
    await expectExact(reader, [...some, { start_date: '2023-06-01', end_date: '2023-06-01' }]);
    await sealLogDays(engine.ch);
    await expectExact({ ...engine.ch }, some);
  });
});
