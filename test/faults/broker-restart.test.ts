// The broker goes away mid-stream and comes back (`kafka.sh down` / `up`): the ingester resumes by itself and
// the totals are exact. A broker of its own on other ports, so other test files keep theirs.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertEvents } from '../../clickhouse/inserts.ts';
import { createLogger } from '../../core/logger.ts';
import type { Ingester } from '../../ingest/consumer.ts';
import {
  type Admin,
  createIdempotentProducer,
  createKafka,
  ensureTopics,
  type Producer,
} from '../../ingest/kafka.ts';
import { generateDataset } from '../../ingest/loadgen/generate.ts';
import { createAudit, expectedCounts, overlaps, storedCounts } from '../helpers/audit.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { publishEvents, testIngester } from '../helpers/ingest.ts';
import { caughtUp, uniqueName } from '../helpers/kafka.ts';
import { waitFor } from '../helpers/wait.ts';

const PORT = 19092;
const runDir = mkdtempSync(join(tmpdir(), 'tally-broker-'));
const brokerEnv = {
  ...process.env,
  KAFKA_PORT: String(PORT),
  KAFKA_CONTROLLER_PORT: String(PORT + 1),
  KAFKA_RUN_DIR: runDir,
};
const broker = (cmd: 'up' | 'down') =>
  execFileSync('bash', ['scripts/kafka.sh', cmd], { env: brokerEnv, stdio: 'pipe' });

const topics = { sessions: uniqueName('restart.sessions'), logs: uniqueName('restart.logs') };
const groupId = uniqueName('restart-group');
const { events } = generateDataset({ events: 40_000, seed: 19, days: 20, duplicateRate: 0.02 });
const expected = expectedCounts(events);

describe('the broker restarts mid-stream', () => {
  const kafka = createKafka({
    brokers: [`127.0.0.1:${PORT}`],
    clientId: 'restart',
    logger: createLogger('silent'),
  });
  let engine: TestEngine;
  let admin: Admin;
  let producer: Producer;
  let ingester: Ingester;
  // Every insert and its token, to name the batches behind a count that is off.
  const writes: { member: string; token: string; at: number }[] = [];

  beforeAll(async () => {
    broker('up');
    engine = await openTestEngine();
    await createAudit(engine.ch);
    admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, [topics.sessions, topics.logs]);
    producer = createIdempotentProducer(kafka);
    await producer.connect();
    ingester = testIngester({
      kafka,
      engine,
      topics,
      groupId,
      limits: { rows: 1_000 },
      write: (rows, token) => {
        writes.push({ member: 'restart', token, at: Date.now() });
        return insertEvents(engine.ch, rows, token);
      },
    });
    await ingester.start();
  });
  afterAll(async () => {
    await Promise.race([ingester?.stop().catch(() => undefined), new Promise((r) => setTimeout(r, 10_000))]);
    await producer?.disconnect().catch(() => undefined);
    await admin?.disconnect().catch(() => undefined);
    broker('down');
    rmSync(runDir, { recursive: true, force: true });
    await engine?.dispose();
  });

  it('resumes by itself and the totals are exact', async () => {
    const half = Math.floor(events.length / 2);
    await publishEvents(producer, topics, events.slice(0, half));
    await waitFor('some batches', async () => ingester.stats.batches > 2);
    broker('down');
    await new Promise((r) => setTimeout(r, 3_000));
    broker('up');
    await waitFor(
      'the producer to reach the broker again',
      async () => {
        await publishEvents(producer, topics, events.slice(half));
        return true;
      },
      { timeoutMs: 120_000, everyMs: 1_000 },
    );
    await waitFor(
      'the ingester to catch up',
      () => caughtUp(admin, groupId, [topics.sessions, topics.logs]),
      {
        timeoutMs: 180_000,
        everyMs: 1_000,
      },
    );
    // A publish retried after the restart may have sent some messages twice: count what the topics hold.
    let inTopics = 0;
    for (const t of [topics.sessions, topics.logs]) {
      for (const p of await admin.fetchTopicOffsets(t)) inTopics += Number(p.high) - Number(p.low);
    }
    expect(inTopics).toBeGreaterThanOrEqual(expected.published);
    const stored = await storedCounts(engine.ch);
    console.info(
      `broker restart test: ${writes.length} inserts, ${ingester.stats.unrecordedCommits} intent commits kafkajs dropped`,
    );
    if (stored.inserted !== inTopics) console.info(overlaps(writes).join('\n'));
    expect(stored.inserted).toBe(inTopics);
    expect({ usage: stored.usage, logs: stored.logs }).toEqual({
      usage: expected.usage,
      logs: expected.logs,
    });
  });
});
