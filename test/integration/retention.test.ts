// RETENTION_DAYS: the raw logs and their hourly counts expire by TTL, and GET /logs/system-events (counts and
// pages) shows exactly the whole days no TTL has touched, before the TTL has run and after. The usage rollups
// keep summarising dropped days.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertEvents } from '../../clickhouse/inserts.ts';
import { systemEvents } from '../../clickhouse/queries/system-events.ts';
import { usageSummary } from '../../clickhouse/queries/usage-summary.ts';
import { applyRetention, firstRetainedDay } from '../../clickhouse/retention.ts';
import type { ExportJob } from '../../control/jobs.ts';
import { Truth } from '../../ingest/loadgen/truth.ts';
import { exportQuery } from '../../worker/exports/worker.ts';
import { scalar } from '../helpers/audit.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { rowsOf } from '../helpers/rows.ts';

const DAY = 86_400_000;
const DAYS = 5;
const now = Date.now();
const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
// Logs every 3 hours over the last 12 days, and a session a day.
const events: object[] = [];
for (let t = now - 12 * DAY; t < now; t += 3 * 3_600_000) {
  events.push({
    event_id: `r-${t}`,
    type: 'log',
    timestamp: new Date(t).toISOString(),
    severity: t % 2 === 0 ? 'error' : 'info',
    service: 'keeper',
    message: `at ${t}`,
  });
}
for (let d = 12; d >= 1; d--) {
  events.push({
    event_id: `s-${d}`,
    type: 'session_start',
    timestamp: new Date(now - d * DAY).toISOString(),
    user_id: `u${d}`,
    team_id: 't1',
    service: 'app',
    session_id: `sess-${d}`,
  });
}
const truth = new Truth().addAll(events);

describe('RETENTION_DAYS', () => {
  let engine: TestEngine;

  beforeAll(async () => {
    engine = await openTestEngine();
    await insertEvents(engine.ch, rowsOf(events), 'retention/1');
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  const expectLogsAsTruth = async () => {
    const first = firstRetainedDay(DAYS, Date.now()) as string;
    for (const limit of [7, 100]) {
      const want = truth.systemEvents({ start_date: first, limit, page: 2 });
      const got = await systemEvents(engine.ch, { limit, page: 2 });
      expect(got.total_pages).toBe(want.total_pages);
      expect(got.events.map(({ ms: _ms, ...e }) => e)).toEqual(want.events);
      // A range that starts before the retained days answers as if it started on the first of them.
      const older = await systemEvents(engine.ch, { limit, page: 1, start_date: day(now - 11 * DAY) });
      expect(older.total).toBe(truth.countLogs({ start_date: first }));
    }
  };

  it('pages only whole retained days, before and after the TTL drops the old rows', async () => {
    const logsBefore = await scalar(engine.ch, 'SELECT count() AS n FROM log_events');
    await applyRetention(engine.ch, DAYS);
    // Before any merge has applied the TTL: the old rows may still be there, the answer is already cut.
    await expectLogsAsTruth();
    await engine.ch.client.command({ query: 'OPTIMIZE TABLE log_events FINAL' });
    await engine.ch.client.command({ query: 'OPTIMIZE TABLE log_counts_hourly FINAL' });
    const logsAfter = await scalar(engine.ch, 'SELECT count() AS n FROM log_events');
    expect(logsAfter).toBeLessThan(logsBefore);
    // Nothing at or after the first retained day was dropped.
    const first = firstRetainedDay(DAYS, Date.now()) as string;
    expect(
      await scalar(
        engine.ch,
        `SELECT count() AS n FROM log_events WHERE timestamp >= toDateTime('${first}', 'UTC')`,
      ),
    ).toBe(truth.countLogs({ start_date: first }));
    await expectLogsAsTruth();
    // A system-events export covers the same days.
    const job = { report_type: 'system-events', format: 'csv', params: '{}' } as ExportJob;
    const q = exportQuery(job, engine.ch);
    const rs = await engine.ch.client.query({
      query: `SELECT count() AS n FROM (${q.query})`,
      query_params: q.query_params,
      format: 'JSONEachRow',
    });
    const [row] = await rs.json<{ n: string }>();
    expect(Number(row?.n)).toBe(truth.countLogs({ start_date: first }));
  });

  it('keeps the usage rollups of dropped days', async () => {
    await engine.ch.client.command({ query: 'OPTIMIZE TABLE usage_events FINAL' });
    const q = { start_date: day(now - 12 * DAY), end_date: day(now - 8 * DAY) };
    expect(await usageSummary(engine.ch, q)).toEqual(truth.usageSummary(q));
    expect(await scalar(engine.ch, 'SELECT count() AS n FROM usage_events')).toBeLessThan(12);
  });

  it('removes the TTLs again with RETENTION_DAYS=0, every retained day still exact', async () => {
    const first = firstRetainedDay(DAYS, Date.now()) as string;
    await applyRetention(engine.ch, 0);
    const got = await systemEvents(engine.ch, { limit: 1000, page: 1, start_date: first });
    expect(got.total).toBe(truth.countLogs({ start_date: first }));
    expect(got.events.map(({ ms: _ms, ...e }) => e)).toEqual(truth.logExportRows({ start_date: first }));
  });
});
