// Rebalances mid-stream: three ingesters share a 6-partition topic; one is cut off the network abruptly (no
// commit, no clean leave: its session has to expire) and a fourth joins. Totals are exact afterwards, and no
// member ever commits an offset for a partition it does not own at that moment (kafkajs #1046).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertEvents } from '../../clickhouse/inserts.ts';
import { usageSummary } from '../../clickhouse/queries/usage-summary.ts';
import { createLogger } from '../../core/logger.ts';
import { Ingester } from '../../ingest/consumer.ts';
import {
  type Admin,
  createIdempotentProducer,
  createKafka,
  ensureTopics,
  type Producer,
} from '../../ingest/kafka.ts';
import { generateDataset } from '../../ingest/loadgen/generate.ts';
import { Truth } from '../../ingest/loadgen/truth.ts';
import { createAudit, eventsPerDay, expectedCounts, overlaps, storedCounts } from '../helpers/audit.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { dropTopics, killableSockets, publishEvents } from '../helpers/ingest.ts';
import { caughtUp, testKafka, uniqueName } from '../helpers/kafka.ts';
import { waitFor } from '../helpers/wait.ts';

const topics = { sessions: uniqueName('rebalance.sessions'), logs: uniqueName('rebalance.logs') };
const groupId = uniqueName('rebalance-group');
const { events } = generateDataset({ events: 60_000, seed: 12, days: 30, duplicateRate: 0.02 });
const truth = new Truth().addAll(events);
const expected = expectedCounts(events);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Member {
  name: string;
  ingester: Ingester;
  owned: Set<string>;
  cut?: () => void;
}

describe('members leaving abruptly and joining mid-stream', () => {
  const { kafka, brokers } = testKafka();
  let engine: TestEngine;
  let admin: Admin;
  let producer: Producer;
  const members: Member[] = [];
  const violations: string[] = [];
  let commits = 0;
  const writes: { member: string; token: string; at: number }[] = [];

  function member(name: string, killable = false): Member {
    const sockets = killable ? killableSockets() : undefined;
    const ingester = new Ingester({
      kafka: sockets
        ? createKafka({
            brokers,
            clientId: name,
            socketFactory: sockets.factory,
            logger: createLogger('silent'),
          })
        : kafka,
      write: (rows, token) => {
        writes.push({ member: name, token, at: Date.now() });
        return insertEvents(engine.ch, rows, token);
      },
      topics: [topics.sessions, topics.logs],
      groupId,
      limits: { rows: 500, bytes: 1024 * 1024, waitMs: 100 },
      logger: createLogger('silent'),
      sessionTimeoutMs: 6_000,
      concurrency: 6,
      // Slow commits keep batches in the window a revocation can hit.
      testCommitDelayMs: 30,
    });
    const m: Member = { name, ingester, owned: new Set(), ...(sockets ? { cut: sockets.cut } : {}) };
    ingester.on(ingester.events.GROUP_JOIN, (e) => {
      m.owned = new Set(
        Object.entries(e.payload.memberAssignment).flatMap(([t, ps]) =>
          (ps as number[]).map((p) => `${t}/${p}`),
        ),
      );
    });
    ingester.on(ingester.events.COMMIT_OFFSETS, (e) => {
      for (const t of e.payload.topics) {
        for (const p of t.partitions) {
          commits += 1;
          if (!m.owned.has(`${t.topic}/${p.partition}`))
            violations.push(`${name} committed ${t.topic}/${p.partition}`);
        }
      }
    });
    members.push(m);
    return m;
  }

  beforeAll(async () => {
    engine = await openTestEngine();
    await createAudit(engine.ch);
    admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, [topics.sessions, topics.logs], 6);
    producer = createIdempotentProducer(kafka);
    await producer.connect();
  });
  afterAll(async () => {
    for (const m of members) {
      await Promise.race([m.ingester.stop().catch(() => undefined), sleep(5_000)]);
    }
    await producer?.disconnect();
    if (admin) await dropTopics(admin, topics);
    await admin?.disconnect();
    await engine?.dispose();
  });

  it('loses and duplicates nothing', async () => {
    const a = member('a');
    const b = member('b', true);
    const c = member('c');
    await Promise.all([a, b, c].map((m) => m.ingester.start()));
    const quarter = Math.ceil(events.length / 4);
    await publishEvents(producer, topics, events.slice(0, quarter));
    await waitFor('b to store something', async () => b.ingester.stats.batches > 0, { timeoutMs: 60_000 });
    await publishEvents(producer, topics, events.slice(quarter, 2 * quarter));
    // b vanishes mid-stream: no commit, no leave; a and c get its partitions after its session expires.
    b.cut?.();
    await publishEvents(producer, topics, events.slice(2 * quarter, 3 * quarter));
    await sleep(2_000);
    const d = member('d');
    await d.ingester.start();
    await publishEvents(producer, topics, events.slice(3 * quarter));
    await waitFor('the group to catch up', () => caughtUp(admin, groupId, [topics.sessions, topics.logs]), {
      timeoutMs: 180_000,
      everyMs: 500,
    });

    console.info(
      `rebalance test: ${commits} commits, redelivered skipped ${members.map((m) => `${m.name}=${m.ingester.stats.redelivered}`).join(' ')}, intent commits kafkajs dropped ${members.map((m) => `${m.name}=${m.ingester.stats.unrecordedCommits}`).join(' ')}`,
    );
    expect(commits).toBeGreaterThan(20);
    expect(violations).toEqual([]);
    expect(d.ingester.stats.batches).toBeGreaterThan(0);
    const stored = await storedCounts(engine.ch);
    if (stored.inserted !== expected.published) console.info(overlaps(writes).join('\n'));
    expect(stored.inserted).toBe(expected.published);
    expect({ usage: stored.usage, logs: stored.logs }).toEqual({
      usage: expected.usage,
      logs: expected.logs,
    });
    expect(await eventsPerDay(engine.ch)).toEqual(expected.perDay);
    for (const q of truth.sampleQueries(12, 9)) {
      expect({ q, a: await usageSummary(engine.ch, q) }).toEqual({ q, a: truth.usageSummary(q) });
    }
  });
});
