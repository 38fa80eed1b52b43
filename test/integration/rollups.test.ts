// The rollups on the real engine against the generator's truth, and exactly-once under re-sent batches and
// re-sent events.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EventRows, insertEvents } from '../../clickhouse/inserts.ts';
import { usageSummary } from '../../clickhouse/queries/usage-summary.ts';
import { generateDataset } from '../../ingest/loadgen/generate.ts';
import { Truth } from '../../ingest/loadgen/truth.ts';
import { holdMerges, openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { rowsOf } from '../helpers/rows.ts';

const { events } = generateDataset({ events: 30_000, seed: 42, days: 60, duplicateRate: 0.03 });
const truth = new Truth().addAll(events);

async function count(engine: TestEngine, sql: string): Promise<number> {
  const rs = await engine.ch.client.query({ query: sql, format: 'JSONEachRow' });
  const [row] = await rs.json<{ n: string | number }>();
  return Number(row?.n);
}

describe('rollups on the real engine', () => {
  let engine: TestEngine;
  const batches: EventRows[] = [];

  beforeAll(async () => {
    engine = await openTestEngine();
    for (let i = 0; i < events.length; i += 3_000) batches.push(rowsOf(events.slice(i, i + 3_000)));
    for (const [i, b] of batches.entries()) await insertEvents(engine.ch, b, `test/0/${i}`);
  });
  afterAll(async () => engine?.dispose());

  const queries = truth.sampleQueries(30, 7);

  async function expectMatchesTruth() {
    for (const q of queries) {
      expect({ q, answer: await usageSummary(engine.ch, q) }).toEqual({ q, answer: truth.usageSummary(q) });
    }
  }

  it('answers 30 summaries exactly as the truth, across filters and ranges', async () => {
    expect(queries.length).toBe(30);
    expect(new Set(queries.map((q) => Object.keys(q).sort().join(','))).size).toBeGreaterThan(3);
    // Some answers are non-trivial: the comparison would catch a wrong count.
    expect(queries.filter((q) => truth.usageSummary(q).total_sessions > 10).length).toBeGreaterThan(5);
    await expectMatchesTruth();
  });

  it('a batch inserted again with its token adds no row anywhere', async () => {
    // Row counts compare only while nothing merges (a merge folds rows of the AggregatingMergeTree rollups).
    await holdMerges(engine.ch.client);
    try {
      const raw = await count(engine, 'SELECT count() AS n FROM usage_events');
      const daily = await count(engine, 'SELECT count() AS n FROM usage_daily');
      const first = await count(engine, 'SELECT count() AS n FROM usage_first_seen');
      for (let k = 0; k < 3; k++) await insertEvents(engine.ch, batches[2] as EventRows, 'test/0/2');
      expect(await count(engine, 'SELECT count() AS n FROM usage_events')).toBe(raw);
      expect(await count(engine, 'SELECT count() AS n FROM usage_daily')).toBe(daily);
      expect(await count(engine, 'SELECT count() AS n FROM usage_first_seen')).toBe(first);
    } finally {
      await engine.ch.client.command({ query: 'SYSTEM START MERGES' });
    }
    await expectMatchesTruth();
  });

  it('events re-sent in other batches change no answer', async () => {
    const again = events.filter((_, i) => i % 20 === 3);
    for (let i = 0; i < again.length; i += 500) {
      await insertEvents(engine.ch, rowsOf(again.slice(i, i + 500)), `test/1/${i}`);
    }
    await expectMatchesTruth();
    expect(await count(engine, 'SELECT count() AS n FROM log_events FINAL')).toBe(truth.countLogs({}));
  });
});
