// Graceful shutdown: stop() writes the open batches, commits them and leaves the group, in bounded time.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertEvents } from '../../clickhouse/inserts.ts';
import { createLogger } from '../../core/logger.ts';
import { Ingester } from '../../ingest/consumer.ts';
import { type Admin, createIdempotentProducer, ensureTopics, type Producer } from '../../ingest/kafka.ts';
import { generateDataset } from '../../ingest/loadgen/generate.ts';
import { createAudit, storedCounts } from '../helpers/audit.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { dropTopics, publishEvents } from '../helpers/ingest.ts';
import { caughtUp, testKafka, uniqueName } from '../helpers/kafka.ts';
import { waitFor } from '../helpers/wait.ts';

const topics = { sessions: uniqueName('stop.sessions'), logs: uniqueName('stop.logs') };
const groupId = uniqueName('stop-group');
const { events } = generateDataset({ events: 3_000, seed: 4, days: 5, duplicateRate: 0 });

describe('graceful shutdown', () => {
  const { kafka } = testKafka();
  let engine: TestEngine;
  let admin: Admin;
  let producer: Producer;

  beforeAll(async () => {
    engine = await openTestEngine();
    await createAudit(engine.ch);
    admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, [topics.sessions, topics.logs]);
    producer = createIdempotentProducer(kafka);
    await producer.connect();
  });
  afterAll(async () => {
    await producer?.disconnect();
    if (admin) await dropTopics(admin, topics);
    await admin?.disconnect();
    await engine?.dispose();
  });

  it('flushes open batches, commits and leaves the group', async () => {
    const ingester = new Ingester({
      kafka,
      write: (rows, token) => insertEvents(engine.ch, rows, token),
      topics: [topics.sessions, topics.logs],
      groupId,
      // Batches that would stay open for a minute: only the shutdown writes them.
      limits: { rows: 1_000_000, bytes: 64 * 1024 * 1024, waitMs: 60_000 },
      logger: createLogger('silent'),
      sessionTimeoutMs: 6_000,
    });
    await ingester.start();
    await publishEvents(producer, topics, events);
    await waitFor('every event to be buffered', async () => ingester.stats.consumed === events.length);
    expect(ingester.stats.batches).toBe(0);

    const t0 = Date.now();
    await ingester.stop();
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(await caughtUp(admin, groupId, [topics.sessions, topics.logs])).toBe(true);
    expect((await storedCounts(engine.ch)).inserted).toBe(events.length);
    const [group] = (await admin.describeGroups([groupId])).groups;
    expect(group?.members).toEqual([]);
  });
});
