// Storage outage: inserts fail for 20 seconds mid-stream. The ingester pauses, commits nothing while the
// storage is down, keeps its place in the group, holds a bounded amount in memory, and resumes by itself;
// afterwards every count is exact.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertEvents } from '../../clickhouse/inserts.ts';
import { usageSummary } from '../../clickhouse/queries/usage-summary.ts';
import { createLogger } from '../../core/logger.ts';
import { Ingester } from '../../ingest/consumer.ts';
import { type Admin, createIdempotentProducer, ensureTopics, type Producer } from '../../ingest/kafka.ts';
import { generateDataset } from '../../ingest/loadgen/generate.ts';
import { Truth } from '../../ingest/loadgen/truth.ts';
import { publish, route } from '../../ingest/producer.ts';
import { createAudit, eventsPerDay, expectedCounts, storedCounts } from '../helpers/audit.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { dropTopics } from '../helpers/ingest.ts';
import { caughtUp, testKafka, uniqueName } from '../helpers/kafka.ts';
import { waitFor } from '../helpers/wait.ts';

const OUTAGE_MS = 20_000;
const LIMITS = { rows: 1_000, bytes: 512 * 1024, waitMs: 200 };
const PARTITIONS = 4;
// The stated bound: per partition one batch being written and one buffer filling, at most the byte limit
// each plus one message (a buffer becomes full on the message that crosses the limit).
const MEMORY_BOUND = 2 * PARTITIONS * 2 * (LIMITS.bytes + 64 * 1024);

const topics = { sessions: uniqueName('outage.sessions'), logs: uniqueName('outage.logs') };
const groupId = uniqueName('outage-group');
const { events } = generateDataset({ events: 60_000, seed: 31, days: 30, duplicateRate: 0.02 });
const truth = new Truth().addAll(events);
const expected = expectedCounts(events);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function committed(admin: Admin): Promise<string> {
  const offsets = await admin.fetchOffsets({ groupId, topics: [topics.sessions, topics.logs] });
  return JSON.stringify(offsets.map((t) => t.partitions.map((p) => p.offset)));
}

describe('a 20-second storage outage mid-stream', () => {
  const { kafka } = testKafka();
  let engine: TestEngine;
  let admin: Admin;
  let producer: Producer;
  let ingester: Ingester;
  let down = false;
  let refused = 0;
  const faults: string[] = [];

  beforeAll(async () => {
    engine = await openTestEngine();
    await createAudit(engine.ch);
    admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, [topics.sessions, topics.logs], PARTITIONS);
    producer = createIdempotentProducer(kafka);
    await producer.connect();
    ingester = new Ingester({
      kafka,
      // The failure is injected at the storage boundary: the write itself fails, as with a server that is down.
      write: async (rows, token) => {
        if (down) {
          refused += 1;
          throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8123'), { code: 'ECONNREFUSED' });
        }
        await insertEvents(engine.ch, rows, token);
      },
      reportFault: (kind) => faults.push(kind),
      topics: [topics.sessions, topics.logs],
      groupId,
      limits: LIMITS,
      logger: createLogger('silent'),
      sessionTimeoutMs: 6_000,
    });
    await ingester.start();
  });

  afterAll(async () => {
    await ingester?.stop();
    await producer?.disconnect();
    if (admin) await dropTopics(admin, topics);
    await admin?.disconnect();
    await engine?.dispose();
  });

  it('commits nothing while down, stays within its memory bound, and loses nothing', async () => {
    const lines = events.map((e) => JSON.stringify(e));
    const third = Math.floor(lines.length / 3);
    const send = (part: string[]) =>
      publish(
        producer,
        part.map((value) => ({ ...route(JSON.parse(value), topics), value })),
      );
    await send(lines.slice(0, third));
    await waitFor('the first third to be stored', async () => ingester.stats.inserted > 0);

    down = true;
    await send(lines.slice(third, 2 * third));
    // Once the outage has refused a write, let any write in flight when it began settle, then watch the commits.
    await waitFor('a write refused by the outage', async () => refused > 0, { timeoutMs: 30_000 });
    await sleep(1_000);
    const before = await committed(admin);
    const refusedBefore = refused;
    const samples: string[] = [];
    const until = Date.now() + OUTAGE_MS - 1_000;
    while (Date.now() < until) {
      await sleep(1_000);
      samples.push(await committed(admin));
    }
    // The batches were retried while the commits were watched (so an unchanged offset means something).
    expect(refused - refusedBefore).toBeGreaterThanOrEqual(3);
    expect(new Set(samples)).toEqual(new Set([before]));
    expect(faults.length).toBeGreaterThan(0);
    down = false;

    await send(lines.slice(2 * third));
    await waitFor(
      'the ingester to catch up',
      () => caughtUp(admin, groupId, [topics.sessions, topics.logs]),
      {
        timeoutMs: 180_000,
        everyMs: 500,
      },
    );
    console.info(
      `outage test: peak buffered ${ingester.stats.peakBufferedBytes} bytes (bound ${MEMORY_BOUND}), ` +
        `${refused} refused writes`,
    );
    expect(ingester.stats.peakBufferedBytes).toBeGreaterThan(0);
    expect(ingester.stats.peakBufferedBytes).toBeLessThanOrEqual(MEMORY_BOUND);

    const stored = await storedCounts(engine.ch);
    expect(stored.inserted).toBe(expected.published);
    expect({ usage: stored.usage, logs: stored.logs }).toEqual({
      usage: expected.usage,
      logs: expected.logs,
    });
    expect(await eventsPerDay(engine.ch)).toEqual(expected.perDay);
    for (const q of truth.sampleQueries(12, 5)) {
      expect({ q, a: await usageSummary(engine.ch, q) }).toEqual({ q, a: truth.usageSummary(q) });
    }
  });
});
