// The ingestion ledger through a real Kafka broker and the real engine: messages published straight to the
// topics (valid, a second arrival of one, not JSON, a bad timestamp, no team, a log) and POST /events forwarded
// through Kafka (a new event, an event already consumed, an invalid one) count exactly once each; every batch's
// ledger insert is sent twice (the first insert after it fails), a recorded batch re-sent adds no row, and a
// member cut off after recording a batch leaves it to a successor that re-forms it with no count changed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../api/app.ts';
import { createAuthenticator } from '../../api/middleware/auth.ts';
import { insertEvents } from '../../clickhouse/inserts.ts';
import { ingestLedger, type LedgerRow } from '../../clickhouse/queries/ingest-ledger.ts';
import { createLogger } from '../../core/logger.ts';
import { mintToken } from '../../core/tokens.ts';
import type { Batch } from '../../ingest/batcher.ts';
import { Ingester } from '../../ingest/consumer.ts';
import {
  type Admin,
  createIdempotentProducer,
  createKafka,
  ensureTopics,
  type Producer,
} from '../../ingest/kafka.ts';
import { httpLedger, recordBatch } from '../../ingest/ledger.ts';
import { createKafkaSink, PartitionMap } from '../../ingest/producer.ts';
import { StoredWatcher } from '../../ingest/stored-wait.ts';
import { arrivalDay, utcToday } from '../helpers/arrival-day.ts';
import { holdMerges, openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { dropTopics, killableSockets } from '../helpers/ingest.ts';
import { caughtUp, testKafka, uniqueName } from '../helpers/kafka.ts';
import { waitFor } from '../helpers/wait.ts';

const SECRET = 'ledger-kafka-secret-ledger-kafka-secret-01234';
const DAY = '2025-04-01';
const TS = `${DAY}T10:00:00Z`;
const usage = (id: string, extra: Record<string, unknown> = {}) => ({
  event_id: id,
  type: 'activity',
  timestamp: TS,
  user_id: `u-${id}`,
  team_id: 'ka',
  service: 'svc',
  ...extra,
});

describe('the ingestion ledger through Kafka', () => {
  const { kafka, brokers } = testKafka('tally-ledger-kafka');
  const topics = { sessions: uniqueName('ledger.sessions'), logs: uniqueName('ledger.logs') };
  const groupId = uniqueName('ledger-group');
  let engine: TestEngine;
  let admin: Admin;
  let producer: Producer;
  let ingester: Ingester;
  const batches: Batch[] = [];
  const failedOnce = new Set<string>();

  beforeAll(async () => {
    engine = await openTestEngine();
    admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, [topics.sessions, topics.logs], 1);
    producer = createIdempotentProducer(kafka);
    await producer.connect();
    ingester = new Ingester({
      kafka,
      ledger: async (batch) => {
        batches.push(batch);
        await recordBatch(engine.ch, batch);
      },
      // Every batch's first insert fails after its ledger rows are in: the retry records them again.
      write: async (rows, token) => {
        if (!failedOnce.has(token)) {
          failedOnce.add(token);
          throw new Error('insert refused once by the test');
        }
        await insertEvents(engine.ch, rows, token);
      },
      topics: [topics.sessions, topics.logs],
      groupId,
      limits: { rows: 500, bytes: 1024 * 1024, waitMs: 200 },
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

  const settled = () =>
    waitFor(
      'the ingester to store everything',
      () => caughtUp(admin, groupId, [topics.sessions, topics.logs]),
      {
        timeoutMs: 60_000,
      },
    );

  it('counts Kafka messages and POST /events through Kafka exactly once each', async () => {
    const sentOn = utcToday();
    await producer.send({
      topic: topics.sessions,
      messages: [
        { key: 'u', value: JSON.stringify(usage('k1')) },
        { key: 'u', value: JSON.stringify(usage('k2')) },
        // A second real arrival of k1, at another offset: a duplicate.
        { key: 'u', value: JSON.stringify(usage('k1')) },
        { key: 'u', value: 'not json {' },
        { key: 'u', value: JSON.stringify(usage('k-bad-ts', { timestamp: 'soon' })) },
        { key: 'u', value: JSON.stringify(usage('k-no-team', { team_id: undefined })) },
      ],
    });
    await producer.send({
      topic: topics.logs,
      messages: [
        {
          key: 'svc',
          value: JSON.stringify({
            event_id: 'kl1',
            type: 'log',
            timestamp: TS,
            severity: 'error',
            service: 'svc',
            message: 'm',
          }),
        },
      ],
    });
    await settled();

    const app = createApp({
      ch: engine.ch,
      sink: createKafkaSink(producer, topics, new PartitionMap(admin), new StoredWatcher(admin, groupId)),
      ledger: httpLedger(engine.ch),
      logger: createLogger('silent'),
      auth: createAuthenticator({ secret: SECRET, issuer: undefined, audience: undefined }),
    });
    const token = await mintToken(SECRET, { sub: 'producer' });
    const res = await app.request('/events', {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: JSON.stringify([usage('h1'), usage('k2'), usage('h-bad', { type: 'bogus' })]),
    });
    expect(res.status).toBe(202);
    await settled();

    const got = await ingestLedger(engine.ch, { start_date: DAY, end_date: utcToday() });
    const t = arrivalDay(got, DAY, sentOn, utcToday());
    const want: LedgerRow[] = [
      {
        day: DAY,
        team_id: '(logs)',
        service: 'svc',
        received: 1,
        stored: 1,
        duplicates: 0,
        rejected: 0,
        rejected_by_reason: {},
      },
      {
        day: DAY,
        team_id: '(none)',
        service: 'svc',
        received: 1,
        stored: 0,
        duplicates: 0,
        rejected: 1,
        rejected_by_reason: { field_team_id: 1 },
      },
      // k1, k2, h1 stored; h-bad rejected at the API; k1 again and k2 again (via HTTP and Kafka) duplicates.
      {
        day: DAY,
        team_id: 'ka',
        service: 'svc',
        received: 4,
        stored: 3,
        duplicates: 2,
        rejected: 1,
        rejected_by_reason: { field_type: 1 },
      },
      {
        day: t,
        team_id: '(none)',
        service: '(none)',
        received: 1,
        stored: 0,
        duplicates: 0,
        rejected: 1,
        rejected_by_reason: { not_json: 1 },
      },
      {
        day: t,
        team_id: 'ka',
        service: 'svc',
        received: 1,
        stored: 0,
        duplicates: 0,
        rejected: 1,
        rejected_by_reason: { field_timestamp: 1 },
      },
    ];
    expect(got).toEqual(want);
    // Every batch was written twice (failedOnce), yet nothing counted twice.
    expect(failedOnce.size).toBeGreaterThan(0);
    expect(ingester.stats.failures).toBeGreaterThanOrEqual(failedOnce.size);
  });

  it('a recorded batch re-sent (a batch re-formed after a crash) adds no row and changes no count', async () => {
    expect(batches.length).toBeGreaterThan(0);
    const count = async () => {
      const rs = await engine.ch.client.query({
        query: 'SELECT count() AS n FROM ingest_ledger',
        format: 'JSONEachRow',
      });
      return Number((await rs.json<{ n: string }>())[0]?.n);
    };
    await holdMerges(engine.ch.client, 'ingest_ledger');
    try {
      const before = await count();
      const answer = await ingestLedger(engine.ch, { start_date: DAY, end_date: utcToday() });
      for (const b of batches) await recordBatch(engine.ch, b);
      expect(await count()).toBe(before);
      expect(await ingestLedger(engine.ch, { start_date: DAY, end_date: utcToday() })).toEqual(answer);
    } finally {
      await engine.ch.client.command({ query: 'SYSTEM START MERGES ingest_ledger' });
    }
  });
  it('a member cut off after recording a batch: its successor re-forms the batch and no count changes', async () => {
    const crash = { sessions: uniqueName('ledger-crash.sessions'), logs: uniqueName('ledger-crash.logs') };
    const group = uniqueName('ledger-crash-group');
    await ensureTopics(admin, [crash.sessions, crash.logs], 1);
    const tokens: { member: string; token: string }[] = [];
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const member = (name: string, socketFactory?: unknown, commitDelayMs = 0) =>
      new Ingester({
        kafka: createKafka({
          brokers,
          clientId: name,
          logger: createLogger('silent'),
          ...(socketFactory ? { socketFactory: socketFactory as never } : {}),
        }),
        ledger: async (batch) => {
          tokens.push({ member: name, token: `${batch.firstOffset}-${batch.lastOffset}` });
          await recordBatch(engine.ch, batch);
        },
        write: (rows, token) => insertEvents(engine.ch, rows, token),
        topics: [crash.sessions, crash.logs],
        groupId: group,
        limits: { rows: 100_000, bytes: 1024 * 1024, waitMs: 300 },
        logger: createLogger('silent'),
        sessionTimeoutMs: 6_000,
        testCommitDelayMs: commitDelayMs,
      });
    const sockets = killableSockets();
    // a records and stores its batch, then waits before committing past it: cut off then, it never does.
    const a = member('a', sockets.factory, 60_000);
    let b: Ingester | undefined;
    const sentOn = utcToday();
    try {
      await a.start();
      await producer.send({
        topic: crash.sessions,
        messages: [
          { key: 'u', value: JSON.stringify(usage('c1', { team_id: 'kc' })) },
          { key: 'u', value: JSON.stringify(usage('c1', { team_id: 'kc' })) },
          { key: 'u', value: JSON.stringify(usage('c2', { team_id: 'kc' })) },
          { key: 'u', value: '{"event_id":"c-bad","team_id":"kc","service":"svc"}' },
          { key: 'u', value: '[1]' },
        ],
      });
      await waitFor('a to store its batch', async () => a.stats.batches >= 1, { timeoutMs: 30_000 });
      sockets.cut();
      b = member('b');
      await b.start();
      await waitFor('b to take over and commit', () => caughtUp(admin, group, [crash.sessions, crash.logs]), {
        timeoutMs: 90_000,
        everyMs: 500,
      });
    } finally {
      await b?.stop();
      await Promise.race([a.stop().catch(() => undefined), sleep(5_000)]);
      await dropTopics(admin, crash);
    }
    // b re-formed exactly a's batch (same offsets), so its arrivals had the same deliveries and token.
    expect(tokens.map((t) => t.member)).toEqual(['a', 'b']);
    expect(tokens[1]?.token).toBe(tokens[0]?.token);
    const got = await ingestLedger(engine.ch, { start_date: DAY, end_date: utcToday(), team_id: 'kc' });
    const arrived = arrivalDay(got, DAY, sentOn, utcToday());
    expect(got).toEqual([
      {
        day: DAY,
        team_id: 'kc',
        service: 'svc',
        received: 2,
        stored: 2,
        duplicates: 1,
        rejected: 0,
        rejected_by_reason: {},
      },
      {
        day: arrived,
        team_id: 'kc',
        service: 'svc',
        received: 1,
        stored: 0,
        duplicates: 0,
        rejected: 1,
        rejected_by_reason: { field_type: 1 },
      },
    ]);
    const none = await ingestLedger(engine.ch, { start_date: arrived, end_date: arrived, team_id: '(none)' });
    // '[1]' has no event_id: identified by its offset, the same for a and b, so it counts once.
    expect(none.find((r) => r.service === '(none)')?.rejected_by_reason).toMatchObject({ not_object: 1 });
  });
});
