// A codec that fails stops kafkajs's consumer for good (it does not restart on such errors): the ingester's
// supervisor makes a new consumer after a backoff, reports the crash as a fault, and resumes by itself once
// the codec works again; every event is stored once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../core/logger.ts';
import { snappy } from '../../ingest/codecs.ts';
import type { Ingester } from '../../ingest/consumer.ts';
import {
  type Admin,
  createIdempotentProducer,
  createKafka,
  ensureTopics,
  type Producer,
  replaceCodec,
} from '../../ingest/kafka.ts';
import { createAudit, storedCounts } from '../helpers/audit.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { dropTopics, testIngester } from '../helpers/ingest.ts';
import { caughtUp, testKafka, uniqueName } from '../helpers/kafka.ts';
import { waitFor } from '../helpers/wait.ts';

const topics = { sessions: uniqueName('codec.sessions'), logs: uniqueName('codec.logs') };
const groupId = uniqueName('codec-group');

describe('a failing codec', () => {
  // kafkajs's own logs of each crash would flood the test output: the faults reported are what is checked.
  const kafka = createKafka({
    brokers: testKafka().brokers,
    clientId: 'codec-crash',
    logger: createLogger('silent'),
  });
  let engine: TestEngine;
  let admin: Admin;
  let producer: Producer;
  let ingester: Ingester;
  let restore: (() => void) | undefined;
  const faults: string[] = [];

  beforeAll(async () => {
    engine = await openTestEngine();
    await createAudit(engine.ch);
    admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, [topics.sessions, topics.logs], 2);
    producer = createIdempotentProducer(kafka, { compression: 'snappy' });
    await producer.connect();
  });
  afterAll(async () => {
    restore?.();
    await ingester?.stop();
    await producer?.disconnect();
    if (admin) await dropTopics(admin, topics);
    await admin?.disconnect();
    await engine?.dispose();
  });

  it('crashes the consumer, which is restarted and resumes alone, exact', async () => {
    const events = Array.from({ length: 600 }, (_, i) => ({
      event_id: `codec-${i}`,
      type: 'activity',
      timestamp: '2025-08-01T10:00:00Z',
      user_id: `u${i % 13}`,
      team_id: 't1',
      service: 'billing',
    }));
    // Produced snappy-compressed while the codec still works.
    await producer.send({
      topic: topics.sessions,
      acks: -1,
      messages: events.map((e) => ({ key: e.user_id, value: JSON.stringify(e) })),
    });
    // Then decompression fails for a while, as with a codec kafkajs lacks or a library that breaks.
    let failures = 0;
    let broken = true;
    restore = replaceCodec('snappy', {
      compress: snappy.compress,
      async decompress(data) {
        if (broken) {
          failures += 1;
          throw new Error('snappy decompression unavailable (test)');
        }
        return snappy.decompress(data);
      },
    });
    ingester = testIngester({
      kafka,
      engine,
      topics,
      groupId,
      reportFault: (kind, message) => faults.push(`${kind}: ${message}`),
    });
    await ingester.start();
    await waitFor(
      'two crashes reported',
      async () => faults.filter((f) => f.startsWith('ingest.consumer')).length >= 2,
      {
        timeoutMs: 60_000,
      },
    );
    expect(ingester.status().state).not.toBe('consuming');
    expect(ingester.status().reason).toMatch(/crashed|stopped|Kafka/);
    expect(await storedCounts(engine.ch)).toMatchObject({ usage: 0 });

    broken = false;
    await waitFor('every event', () => caughtUp(admin, groupId, [topics.sessions]), { timeoutMs: 120_000 });
    const stored = await storedCounts(engine.ch);
    expect(stored).toMatchObject({ usage: 600, inserted: 600 });
    expect(failures).toBeGreaterThanOrEqual(2);
    expect(ingester.status()).toMatchObject({ state: 'consuming', failing: false });
  });
});
