// Migration 0017: the engine merges a partition into one part once every part of it is old enough, on the
// tables whose reads open every part (log pages read with FINAL above all), and the answers stay what they were:
// the merge keeps the newest copy of a re-sent log, as FINAL shows it.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { insertEvents } from '../../clickhouse/inserts.ts';
import { systemEvents } from '../../clickhouse/queries/system-events.ts';
import type { LogRow } from '../../core/events.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';

let engine: TestEngine;

beforeAll(async () => {
  engine = await openTestEngine();
}, 60_000);

afterAll(async () => {
  await engine?.dispose();
});

const COMPACTED = ['log_events', 'usage_user_days', 'usage_points', 'usage_points_by_day', 'usage_pairs'];

it('sets the quiet-partition merge on the tables whose reads open every part', async () => {
  const rs = await engine.ch.client.query({
    query: 'SELECT name, create_table_query FROM system.tables WHERE database = currentDatabase()',
    format: 'JSONEachRow',
  });
  const tables = new Map(
    (await rs.json<{ name: string; create_table_query: string }>()).map((t) => [
      t.name,
      t.create_table_query,
    ]),
  );
  for (const name of COMPACTED) {
    expect(tables.get(name), name).toMatch(/min_age_to_force_merge_seconds = 3600/);
    expect(tables.get(name), name).toMatch(/min_age_to_force_merge_on_partition_only = 1/);
  }
  // Not the tables of exact sets, whose merges hold them whole.
  for (const name of ['usage_daily', 'log_cells_daily', 'ingest_ledger'])
    expect(tables.get(name), name).not.toMatch(/min_age_to_force_merge_seconds/);
});

it('merges a quiet partition into one part, and the logs read the same', async () => {
  const { ch } = engine;
  const log = (id: string, severity: LogRow['severity'], minute: number): LogRow => ({
    event_id: id,
    timestamp: `2025-03-04 10:${String(minute).padStart(2, '0')}:00.000`,
    severity,
    service: 'billing',
    message: `${id} ${severity}`,
  });
  // Three inserts, three parts of the 2025 partition; l-2 re-sent later with another severity.
  await insertEvents(ch, { usage: [], logs: [log('l-1', 'info', 1), log('l-2', 'info', 2)] }, 'quiet/1');
  await insertEvents(ch, { usage: [], logs: [log('l-3', 'error', 3)] }, 'quiet/2');
  await insertEvents(ch, { usage: [], logs: [log('l-2', 'warning', 2)] }, 'quiet/3');
  const parts = async () => {
    const r = await ch.client.query({
      query: `SELECT count() AS n FROM system.parts
        WHERE database = currentDatabase() AND table = 'log_events' AND partition = '2025' AND active`,
      format: 'JSONEachRow',
    });
    return Number((await r.json<{ n: string }>())[0]?.n);
  };
  const page = () => systemEvents(ch, { limit: 10, page: 1 });
  expect(await parts()).toBeGreaterThan(1);
  const before = await page();
  expect(before.events.map((e) => `${e.event_id} ${e.severity}`)).toEqual([
    'l-3 error',
    'l-2 warning',
    'l-1 info',
  ]);
  // An hour is the migration's age; a second here, for the test's sake.
  await ch.client.command({
    query: 'ALTER TABLE log_events MODIFY SETTING min_age_to_force_merge_seconds = 1',
  });
  const deadline = Date.now() + 60_000;
  while ((await parts()) > 1 && Date.now() < deadline) await new Promise((ok) => setTimeout(ok, 500));
  expect(await parts()).toBe(1);
  const after = await page();
  expect(after.events).toEqual(before.events);
  expect(after.total).toBe(before.total);
}, 120_000);
