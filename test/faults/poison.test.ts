// Poison messages: every kind of bad input lands in the dead-letter topic with its original bytes, key, source
// position and a reason naming what is wrong, and every valid event around it is counted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ingester } from '../../ingest/consumer.ts';
import { DLQ_HEADERS } from '../../ingest/dlq.ts';
import { type Admin, createIdempotentProducer, ensureTopics, type Producer } from '../../ingest/kafka.ts';
import { generateDataset, invalidExamples } from '../../ingest/loadgen/generate.ts';
import { createAudit, expectedCounts, storedCounts } from '../helpers/audit.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { dropTopics, testIngester } from '../helpers/ingest.ts';
import { caughtUp, testKafka, uniqueName } from '../helpers/kafka.ts';
import { waitFor } from '../helpers/wait.ts';

const topics = { sessions: uniqueName('poison.sessions'), logs: uniqueName('poison.logs') };
const groupId = uniqueName('poison-group');
const { events } = generateDataset({ events: 5_000, seed: 8, days: 10, duplicateRate: 0 });
const expected = expectedCounts(events);
const usage = events.find((e) => e.type !== 'log');

interface Poison {
  name: string;
  value: Buffer | null;
  /** What the reason must contain. */
  reason: string;
}

const poisons: Poison[] = [
  ...invalidExamples(8).map((b) => ({
    name: b.name,
    value: Buffer.from(b.text),
    reason: b.field ? `${b.field}` : '',
  })),
  { name: 'not UTF-8', value: Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d]), reason: 'encoding' },
  { name: 'oversized', value: Buffer.alloc(600 * 1024, 0x61), reason: 'message too large' },
  { name: 'empty', value: Buffer.alloc(0), reason: 'empty' },
  { name: 'JSON array', value: Buffer.from('[1,2]'), reason: 'not an object' },
  {
    name: 'year 1970',
    value: Buffer.from(JSON.stringify({ ...usage, event_id: 'p-1970', timestamp: '1970-01-01T00:00:00Z' })),
    reason: 'timestamp: must not be before 2000',
  },
  {
    name: 'next year',
    value: Buffer.from(JSON.stringify({ ...usage, event_id: 'p-future', timestamp: '2999-01-01T00:00:00Z' })),
    reason: 'timestamp: must not be more than 24 hours in the future',
  },
  {
    name: 'over-long user_id',
    value: Buffer.from(JSON.stringify({ ...usage, event_id: 'p-long', user_id: 'u'.repeat(300) })),
    reason: 'user_id: must be at most 256 characters',
  },
];

describe('poison messages', () => {
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
    ingester = testIngester({ kafka, engine, topics, groupId });
  });
  afterAll(async () => {
    await ingester?.stop();
    await producer?.disconnect();
    if (admin) await dropTopics(admin, topics);
    await admin?.disconnect();
    await engine?.dispose();
  });

  it('dead-letters each kind with its reason and counts every valid event around them', async () => {
    // Valid and poison messages interleaved on one partition, so each poison sits between valid events.
    const step = Math.floor(events.length / poisons.length);
    const messages: { key: string; value: Buffer | null }[] = [];
    events.forEach((e, i) => {
      messages.push({ key: 'k', value: Buffer.from(JSON.stringify(e)) });
      const p = poisons[i / step];
      if (i % step === 0 && p) messages.push({ key: `poison-${i / step}`, value: p.value });
    });
    for (let i = 0; i < messages.length; i += 1_000) {
      await producer.send({ topic: topics.sessions, acks: -1, messages: messages.slice(i, i + 1_000) });
    }
    await ingester.start();
    await waitFor(
      'the ingester to catch up',
      () => caughtUp(admin, groupId, [topics.sessions, topics.logs]),
      {
        timeoutMs: 120_000,
      },
    );

    const stored = await storedCounts(engine.ch);
    expect(stored.inserted).toBe(expected.published);
    expect(stored.usage + stored.logs).toBe(expected.usage + expected.logs);

    const reader = kafka.consumer({ groupId: uniqueName('dlq-reader') });
    const letters: { key: string; value: Buffer | null; headers: Record<string, string> }[] = [];
    await reader.connect();
    await reader.subscribe({ topic: `${topics.sessions}.dlq`, fromBeginning: true });
    await reader.run({
      eachMessage: async ({ message }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
        letters.push({ key: String(message.key), value: message.value, headers });
      },
    });
    await waitFor('every dead letter', async () => letters.length >= poisons.length, { timeoutMs: 60_000 });
    await reader.disconnect();
    expect(letters).toHaveLength(poisons.length);
    for (const [n, p] of poisons.entries()) {
      const letter = letters.find((l) => l.key === `poison-${n}`);
      expect(letter, p.name).toBeDefined();
      expect(letter?.value?.equals(p.value ?? Buffer.alloc(0)), `${p.name}: original bytes`).toBe(true);
      expect(letter?.headers[DLQ_HEADERS.reason], p.name).toContain(p.reason);
      expect(letter?.headers[DLQ_HEADERS.topic]).toBe(topics.sessions);
      expect(letter?.headers[DLQ_HEADERS.partition]).toBe('0');
      expect(letter?.headers[DLQ_HEADERS.offset]).toMatch(/^\d+$/);
    }
    expect(ingester.stats.deadLettered).toBe(poisons.length);
  });
});
