// A producer that is not kafkajs (librdkafka, through Python's confluent-kafka from PyPI) writes one topic with
// every codec, keys, headers, tombstones and other bad messages, Confluent's wire format, binary-mode
// CloudEvents (event_id computed independently in Python from (source, id)), and committed plus aborted
// transactions. The ingester must store exactly the committed valid events, once each, and dead-letter
// exactly the committed bad messages with their reasons.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ingester } from '../../ingest/consumer.ts';
import { DLQ_HEADERS } from '../../ingest/dlq.ts';
import { readDeadLetters } from '../../ingest/dlq-tools.ts';
import { type Admin, ensureTopics } from '../../ingest/kafka.ts';
import { createAudit, scalar, storedCounts } from '../helpers/audit.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { dropTopics, testIngester } from '../helpers/ingest.ts';
import { caughtUp, testKafka, uniqueName } from '../helpers/kafka.ts';
import { CONFLUENT_KAFKA, pythonWith } from '../helpers/python.ts';
import { waitFor } from '../helpers/wait.ts';

const run = promisify(execFile);
const topics = { sessions: uniqueName('foreign.sessions'), logs: uniqueName('foreign.logs') };
const groupId = uniqueName('foreign-group');

interface Manifest {
  stored_usage: string[];
  stored_logs: string[];
  aborted: string[];
  dead: { key: string; reason: string }[];
  errors: string[];
}

describe('a librdkafka producer (confluent-kafka)', () => {
  const { kafka, brokers } = testKafka();
  let engine: TestEngine;
  let admin: Admin;
  let ingester: Ingester;
  let python: string;

  beforeAll(async () => {
    python = pythonWith('confluent-kafka', [CONFLUENT_KAFKA]);
    engine = await openTestEngine();
    await createAudit(engine.ch);
    admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, [topics.sessions, topics.logs], 3);
    ingester = testIngester({ kafka, engine, topics, groupId });
    await ingester.start();
  });
  afterAll(async () => {
    await ingester?.stop();
    if (admin) await dropTopics(admin, topics);
    await admin?.disconnect();
    await engine?.dispose();
  });

  it('every codec, keys, headers, tombstones, Confluent framing, committed and aborted transactions: exact', async () => {
    const { stdout } = await run(
      python,
      ['test/helpers/foreign_producer.py', brokers.join(','), topics.sessions, uniqueName('r')],
      { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
    );
    const m = JSON.parse(stdout) as Manifest;
    expect(m.errors).toEqual([]);
    expect(m.stored_usage.length).toBe(5 * 201 + 3 + 150);
    expect(m.stored_logs.length).toBe(5);
    expect(m.aborted.length).toBe(100);

    await waitFor('the ingester to catch up', () => caughtUp(admin, groupId, [topics.sessions]), {
      timeoutMs: 120_000,
    });
    const stored = await storedCounts(engine.ch);
    // Each committed valid event stored once (the audit table never merges, so a duplicate would show).
    expect(stored.usage).toBe(m.stored_usage.length);
    expect(stored.logs).toBe(m.stored_logs.length);
    expect(stored.inserted).toBe(m.stored_usage.length + m.stored_logs.length);
    const ids = await engine.ch.client.query({
      query: 'SELECT event_id FROM usage_events',
      format: 'JSONEachRow',
    });
    const storedIds = new Set((await ids.json<{ event_id: string }>()).map((r) => r.event_id));
    expect(m.stored_usage.filter((id) => !storedIds.has(id))).toEqual([]);
    expect(m.aborted.filter((id) => storedIds.has(id))).toEqual([]);
    expect(await scalar(engine.ch, "SELECT count() FROM usage_events WHERE event_id LIKE '%-in-array'")).toBe(
      0,
    );

    const letters = await readDeadLetters(kafka, [topics.sessions]);
    const got = letters.map((l) => ({ key: l.key?.toString() ?? '', reason: l.reason })).sort(byKey);
    expect(got.map((g) => g.key)).toEqual(m.dead.map((d) => d.key).sort());
    for (const want of m.dead) {
      const letter = got.find((g) => g.key === want.key);
      expect(letter?.reason.startsWith(want.reason), `${want.key}: ${letter?.reason}`).toBe(true);
    }
    expect(got.find((g) => g.key.endsWith('-tombstone'))?.reason).toBe('empty');
    // A dead letter keeps its source's headers (a binary CloudEvent's attributes, for a replay) beside its own.
    expect(letters.every((l) => l.sourceTopic === topics.sessions)).toBe(true);
    expect(letters.find((l) => l.key?.toString() === 'gzip-array')?.headers.producer?.toString()).toBe(
      'confluent-kafka',
    );
    expect(letters.find((l) => l.key?.toString() === 'ce-no-time')?.headers.ce_id?.toString()).toBe(
      'c-no-time',
    );
    expect(DLQ_HEADERS.reason).toBe('x-dlq-reason');
  });
});

function byKey(a: { key: string }, b: { key: string }): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}
