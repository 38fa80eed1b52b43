// A dead-letter topic that cannot be written stops its partition: the bad message is not dropped, nothing
// after it is committed, and everything flows again once the DLQ is back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ingester } from '../../ingest/consumer.ts';
import { type Admin, createIdempotentProducer, ensureTopics, type Producer } from '../../ingest/kafka.ts';
import { scalar } from '../helpers/audit.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { dropTopics, testIngester } from '../helpers/ingest.ts';
import { caughtUp, testKafka, uniqueName } from '../helpers/kafka.ts';
import { waitFor } from '../helpers/wait.ts';

const topics = { sessions: uniqueName('dlqdown.sessions'), logs: uniqueName('dlqdown.logs') };
const groupId = uniqueName('dlqdown-group');
const event = (id: string) =>
  JSON.stringify({
    event_id: id,
    type: 'activity',
    timestamp: '2025-03-01T10:00:00Z',
    user_id: 'u1',
    team_id: 't1',
    service: 'billing',
  });

describe('an unwritable dead-letter topic', () => {
  const { kafka } = testKafka();
  let engine: TestEngine;
  let admin: Admin;
  let producer: Producer;
  let ingester: Ingester;
  const faults: string[] = [];

  beforeAll(async () => {
    engine = await openTestEngine();
    admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, [topics.sessions, topics.logs], 1);
    producer = createIdempotentProducer(kafka);
    await producer.connect();
    ingester = testIngester({
      kafka,
      engine,
      topics,
      groupId,
      limits: { rows: 100, waitMs: 100 },
      reportFault: (kind) => faults.push(kind),
    });
    await ingester.start();
  });
  afterAll(async () => {
    await ingester?.stop().catch(() => undefined);
    await producer?.disconnect();
    if (admin) await dropTopics(admin, topics);
    await admin?.disconnect();
    await engine?.dispose();
  });

  it('stops the partition instead of dropping the message, and resumes when the DLQ is back', async () => {
    await producer.send({ topic: topics.sessions, acks: -1, messages: [{ value: event('a-1') }] });
    await waitFor('the first event', async () => ingester.stats.inserted === 1);
    await admin.deleteTopics({ topics: [`${topics.sessions}.dlq`] });
    await waitFor(
      'the DLQ topic to be gone',
      async () => !(await admin.listTopics()).includes(`${topics.sessions}.dlq`),
    );

    await producer.send({
      topic: topics.sessions,
      acks: -1,
      messages: [{ value: '{broken' }, { value: event('a-2') }, { value: event('a-3') }],
    });
    await waitFor(
      'the DLQ write fault to be reported',
      async () => faults.includes('ingest.dead-letter-write'),
      {
        timeoutMs: 60_000,
      },
    );
    // While the DLQ stays away, the batch is retried, and each attempt fails again: once a few more attempts
    // have failed, nothing past the bad message may have been committed or stored.
    const failuresAtFault = ingester.stats.failures;
    await waitFor(
      'three more failed attempts at the batch',
      async () => ingester.stats.failures >= failuresAtFault + 3,
      { timeoutMs: 60_000 },
    );
    expect(ingester.stats.deadLettered).toBe(0);
    const offsets = await admin.fetchOffsets({ groupId, topics: [topics.sessions] });
    expect(offsets[0]?.partitions[0]?.offset).toBe('1');
    expect(await scalar(engine.ch, 'SELECT count() FROM usage_events')).toBe(1);

    await admin.createTopics({
      topics: [{ topic: `${topics.sessions}.dlq`, numPartitions: 1 }],
      waitForLeaders: true,
    });
    await waitFor('the ingester to catch up', () => caughtUp(admin, groupId, [topics.sessions]), {
      timeoutMs: 90_000,
    });
    expect(await scalar(engine.ch, 'SELECT count() FROM usage_events FINAL')).toBe(3);
    expect(ingester.stats.deadLettered).toBe(1);
  });
});
