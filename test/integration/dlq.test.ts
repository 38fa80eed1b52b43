// Dead letters you can work with: list them by reason, and replay the ones that now pass validation (as after
// a fix), idempotently.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ingester } from '../../ingest/consumer.ts';
import { DLQ_HEADERS } from '../../ingest/dlq.ts';
import { readDeadLetters, replayDeadLetters } from '../../ingest/dlq-tools.ts';
import { type Admin, createIdempotentProducer, ensureTopics, type Producer } from '../../ingest/kafka.ts';
import { createAudit, scalar } from '../helpers/audit.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { dropTopics, testIngester } from '../helpers/ingest.ts';
import { caughtUp, testKafka, uniqueName } from '../helpers/kafka.ts';
import { waitFor } from '../helpers/wait.ts';

const topics = { sessions: uniqueName('dlq.sessions'), logs: uniqueName('dlq.logs') };
const groupId = uniqueName('dlq-group');
const event = (id: string) => ({
  event_id: id,
  type: 'activity',
  timestamp: '2025-03-01T10:00:00Z',
  user_id: 'u1',
  team_id: 't1',
  service: 'billing',
});

describe('npm run dlq: list and replay', () => {
  const { kafka } = testKafka();
  let engine: TestEngine;
  let admin: Admin;
  let producer: Producer;
  let ingester: Ingester;

  beforeAll(async () => {
    engine = await openTestEngine();
    await createAudit(engine.ch);
    admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, [topics.sessions, topics.logs], 1);
    producer = createIdempotentProducer(kafka);
    await producer.connect();
    ingester = testIngester({ kafka, engine, topics, groupId, limits: { rows: 100, waitMs: 100 } });
    await ingester.start();
  });
  afterAll(async () => {
    await ingester?.stop();
    await producer?.disconnect();
    if (admin) await dropTopics(admin, topics);
    await admin?.disconnect();
    await engine?.dispose();
  });

  it('lists dead letters by reason and replays the ones that now pass, idempotently', async () => {
    await producer.send({
      topic: topics.sessions,
      acks: -1,
      messages: [
        { key: 'a', value: JSON.stringify(event('ok-1')) },
        { key: 'b', value: '{"nope"' },
        { key: 'c', value: JSON.stringify({ ...event('bad-ts'), timestamp: 'yesterday' }) },
      ],
    });
    // A letter an older, stricter version dead-lettered: valid under today's rules. Written twice, as a batch
    // re-formed after a crash writes its letters again: one source message, one letter in the list.
    const old = {
      key: 'd',
      value: JSON.stringify(event('fixed-1')),
      headers: {
        [DLQ_HEADERS.reason]: 'service: unknown service (old rule)',
        [DLQ_HEADERS.topic]: topics.sessions,
        [DLQ_HEADERS.partition]: '0',
        [DLQ_HEADERS.offset]: '0',
        [DLQ_HEADERS.at]: '2025-03-01T10:00:01.000Z',
      },
    };
    await producer.send({ topic: `${topics.sessions}.dlq`, acks: -1, messages: [old, old] });
    await waitFor('the ingester to catch up', () => caughtUp(admin, groupId, [topics.sessions, topics.logs]));

    const all = await readDeadLetters(kafka, [topics.sessions, topics.logs]);
    expect(all.map((l) => l.reason).sort()).toEqual([
      expect.stringMatching(/^not valid JSON/),
      'service: unknown service (old rule)',
      expect.stringMatching(/^timestamp: must be an RFC 3339/),
    ]);
    const json = await readDeadLetters(kafka, [topics.sessions, topics.logs], 'JSON');
    expect(json).toHaveLength(1);
    expect(json[0]?.key?.toString()).toBe('b');
    expect(json[0]?.sourceOffset).toBe('1');

    const first = await replayDeadLetters(producer, all);
    expect(first.replayed).toBe(1);
    expect(first.stillInvalid.map((s) => s.record.key?.toString()).sort()).toEqual(['b', 'c']);
    await waitFor(
      'the replayed event to be stored',
      async () =>
        (await scalar(engine.ch, "SELECT count() FROM usage_events FINAL WHERE event_id = 'fixed-1'")) === 1,
    );
    // Replaying again stores the same event again, which no answer counts twice.
    await replayDeadLetters(producer, all);
    await waitFor('the ingester to catch up', () => caughtUp(admin, groupId, [topics.sessions, topics.logs]));
    expect(await scalar(engine.ch, 'SELECT count() FROM usage_events FINAL')).toBe(2);
    expect((await readDeadLetters(kafka, [topics.sessions, topics.logs])).length).toBe(3);
  });
});
