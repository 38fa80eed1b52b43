// The whole path on real engines: 100,000 generated events published to a real Kafka broker before the
// ingester first starts, consumed into the embedded ClickHouse, read back over HTTP and compared with the
// generator's truth; then a few percent re-sent in other messages and requests, changing nothing; malformed
// messages land in the dead-letter topic with their reason while ingestion goes on.
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../api/app.ts';
import { createAuthenticator } from '../../api/middleware/auth.ts';
import { insertEvents } from '../../clickhouse/inserts.ts';
import { createLogger } from '../../core/logger.ts';
import { mintToken } from '../../core/tokens.ts';
import { Ingester } from '../../ingest/consumer.ts';
import { DLQ_HEADERS } from '../../ingest/dlq.ts';
import { type Admin, createIdempotentProducer, ensureTopics, type Producer } from '../../ingest/kafka.ts';
import { generateDataset, invalidExamples } from '../../ingest/loadgen/generate.ts';
import { Truth } from '../../ingest/loadgen/truth.ts';
import { createKafkaSink, PartitionMap, publish, route } from '../../ingest/producer.ts';
import { StoredWatcher } from '../../ingest/stored-wait.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { dropTopics } from '../helpers/ingest.ts';
import { caughtUp, testKafka, uniqueName } from '../helpers/kafka.ts';
import { waitFor } from '../helpers/wait.ts';

const SECRET = 'e2e-secret-e2e-secret-e2e-secret-0123456789';
const topics = { sessions: uniqueName('e2e.sessions'), logs: uniqueName('e2e.logs') };
const groupId = uniqueName('e2e-group');
const { events } = generateDataset({ events: 100_000, seed: 2025, days: 120, duplicateRate: 0.02 });
const truth = new Truth().addAll(events);
const bad = invalidExamples(5);
const notUtf8 = Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]);

describe('Kafka → ingester → ClickHouse rollups → usage summary', () => {
  const { kafka } = testKafka();
  const logger = createLogger('warn');
  let engine: TestEngine;
  let admin: Admin;
  let producer: Producer;
  let ingester: Ingester;
  let server: ReturnType<typeof serve>;
  let base: string;
  let token: string;

  async function get(path: string, headers: Record<string, string> = {}) {
    return fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}`, ...headers } });
  }

  async function waitCaughtUp() {
    await waitFor(
      'the ingester to commit every offset',
      () => caughtUp(admin, groupId, [topics.sessions, topics.logs]),
      {
        timeoutMs: 240_000,
        everyMs: 500,
      },
    );
  }

  beforeAll(async () => {
    engine = await openTestEngine();
    admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, [topics.sessions, topics.logs]);
    producer = createIdempotentProducer(kafka);
    await producer.connect();

    // Everything is published before the ingester's group exists: a new group must start at the earliest offset.
    const lines = events.map((e) => JSON.stringify(e));
    for (let i = 0; i < lines.length; i += 5_000) {
      await publish(
        producer,
        lines.slice(i, i + 5_000).map((value) => ({ ...route(JSON.parse(value), topics), value })),
      );
    }
    await producer.send({
      topic: topics.sessions,
      messages: [...bad.map((b) => ({ key: 'bad', value: b.text })), { key: 'bad', value: notUtf8 }],
    });

    ingester = new Ingester({
      kafka,
      write: (rows, token) => insertEvents(engine.ch, rows, token),
      topics: [topics.sessions, topics.logs],
      groupId,
      limits: { rows: 5_000, bytes: 4 * 1024 * 1024, waitMs: 300 },
      logger,
    });
    await ingester.start();

    const app = createApp({
      ch: engine.ch,
      sink: createKafkaSink(producer, topics, new PartitionMap(admin), new StoredWatcher(admin, groupId)),
      logger,
      auth: createAuthenticator({ secret: SECRET, issuer: undefined, audience: undefined }),
    });
    await new Promise<void>((resolve) => {
      server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve());
    });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    token = await mintToken(SECRET, { sub: 'e2e', scope: 'read:analytics write:events' });
    await waitCaughtUp();
  });

  afterAll(async () => {
    server?.close();
    await ingester?.stop();
    await producer?.disconnect();
    if (admin) await dropTopics(admin, topics);
    await admin?.disconnect();
    await engine?.dispose();
  });

  const queries = truth.sampleQueries(24, 99);

  async function expectAllMatch() {
    for (const q of queries) {
      const qs = new URLSearchParams(
        Object.entries(q).filter(([, v]) => v !== undefined) as [string, string][],
      );
      const res = await get(`/reports/usage-summary?${qs}`);
      expect(res.status).toBe(200);
      expect({ q, answer: await res.json() }).toEqual({ q, answer: truth.usageSummary(q) });
    }
  }

  it('consumed every published event and matches the truth on 24 ranges and filters over HTTP', async () => {
    expect(ingester.stats.consumed).toBe(events.length + bad.length + 1);
    const kinds = new Set(
      queries.map((q) => ['user_id', 'team_id', 'service'].filter((k) => k in q).join('+')),
    );
    expect(kinds).toContain('');
    expect(kinds).toContain('user_id');
    expect(kinds).toContain('team_id');
    expect(kinds).toContain('service');
    expect(
      truth.usageSummary(queries[0] ?? { start_date: '2025-01-01', end_date: '2025-12-31' }),
    ).toBeDefined();
    await expectAllMatch();
  });

  it('sent every malformed message to the dead-letter topic with its reason, and went on', async () => {
    const consumer = kafka.consumer({ groupId: uniqueName('dlq-reader') });
    const got: { value: Buffer | null; reason: string; offset: string }[] = [];
    await consumer.connect();
    await consumer.subscribe({ topic: `${topics.sessions}.dlq`, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        got.push({
          value: message.value,
          reason: String(message.headers?.[DLQ_HEADERS.reason] ?? ''),
          offset: String(message.headers?.[DLQ_HEADERS.offset] ?? ''),
        });
      },
    });
    await waitFor('dead letters', async () => got.length >= bad.length + 1, { timeoutMs: 60_000 });
    await consumer.disconnect();
    expect(got).toHaveLength(bad.length + 1);
    for (const b of bad) {
      const letter = got.find((g) => g.value?.toString() === b.text);
      expect(letter, b.name).toBeDefined();
      if (b.field) expect(letter?.reason, b.name).toContain(b.field);
      expect(letter?.offset).toMatch(/^\d+$/);
    }
    expect(got.find((g) => g.value?.equals(notUtf8))?.reason).toBe('encoding: not valid UTF-8');
  });

  it('events sent again in other messages and requests change no answer', async () => {
    const again = events.filter((_, i) => i % 33 === 5);
    expect(again.length).toBeGreaterThan(2_500);
    const half = Math.floor(again.length / 2);
    const viaKafka = again.slice(0, half).map((e) => JSON.stringify(e));
    // Reversed, so that the messages form other batches than the first time.
    await publish(
      producer,
      viaKafka.reverse().map((value) => ({ ...route(JSON.parse(value), topics), value })),
    );
    const viaHttp = again.slice(half);
    for (let i = 0; i < viaHttp.length; i += 1_000) {
      const res = await fetch(`${base}/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(viaHttp.slice(i, i + 1_000)),
      });
      expect(res.status).toBe(202);
      expect(await res.json()).toEqual({ accepted: Math.min(1_000, viaHttp.length - i), rejected: [] });
    }
    await waitCaughtUp();
    expect(ingester.stats.consumed).toBe(events.length + bad.length + 1 + again.length);
    await expectAllMatch();
    const rs = await engine.ch.client.query({
      query: 'SELECT count() AS n FROM log_events FINAL',
      format: 'JSONEachRow',
    });
    expect(Number((await rs.json<{ n: number }>())[0]?.n)).toBe(truth.countLogs({}));
  });
  it('POST /events?wait=stored answers 200 only once the events are in every answer (100 tries)', async () => {
    // Four clients at once, 25 tries each, so that the waits overlap one another's batches and flushes as a busy
    // producer's do. Each client has a team and days of its own, so its expected numbers are known exactly.
    const waits: number[] = [];
    const lane = async (l: number) => {
      const team = uniqueName(`rw-team${l}`);
      const range = { start_date: '2001-03-01', end_date: '2001-03-31', team_id: team };
      for (let i = 1; i <= 25; i++) {
        const day = `2001-03-${String(1 + (i % 28)).padStart(2, '0')}`;
        const batch = [
          {
            event_id: `${team}-s${i}`,
            type: 'session_start',
            timestamp: `${day}T10:00:00Z`,
            user_id: `${team}-u${i}`,
            team_id: team,
            service: 'rw',
            session_id: `${team}-x${i}`,
          },
          {
            event_id: `${team}-a${i}`,
            type: 'activity',
            timestamp: `${day}T10:01:00Z`,
            user_id: `${team}-u${i}`,
            team_id: team,
            service: 'rw',
          },
        ];
        const t0 = performance.now();
        const res = await fetch(`${base}/events?wait=stored`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify(batch),
        });
        waits.push(performance.now() - t0);
        expect(res.status).toBe(200);
        expect(await res.json()).toEqual({ accepted: 2, rejected: [] });
        const summary = await get(`/reports/usage-summary?${new URLSearchParams(range)}`);
        expect({ lane: l, try: i, answer: await summary.json() }).toEqual({
          lane: l,
          try: i,
          answer: { total_users: i, active_users: i, total_sessions: i },
        });
      }
    };
    await Promise.all([0, 1, 2, 3].map(lane));
    waits.sort((a, b) => a - b);
    console.log(
      `wait=stored through Kafka, 4 clients at once: median ${waits[49]?.toFixed(0)} ms, p99 ${waits[98]?.toFixed(0)} ms (100 requests)`,
    );
  });

  it('wait=stored gives up after wait_ms with 202 and what is pending; bad values are 400', async () => {
    // A watcher of a group that nothing consumes for: the wait can only end by its bound.
    const idle = createApp({
      ch: engine.ch,
      sink: createKafkaSink(
        producer,
        topics,
        new PartitionMap(admin),
        new StoredWatcher(admin, uniqueName('idle')),
      ),
      logger,
      auth: createAuthenticator({ secret: SECRET, issuer: undefined, audience: undefined }),
    });
    const post = (qs: string, body: unknown[]) =>
      idle.request(`/events${qs}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const ev = (n: number) => ({
      event_id: uniqueName(`pending-${n}`),
      type: 'activity',
      timestamp: '2001-04-01T00:00:00Z',
      user_id: `p${n}`,
      team_id: 'pending',
      service: 'rw',
    });
    const t0 = Date.now();
    const res = await post('?wait=stored&wait_ms=400', [ev(1), ev(2), ev(3), 'not an event']);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({
      accepted: 3,
      rejected: [{ index: 3, error: expect.any(String) }],
      pending: 3,
    });
    for (const [qs, field] of [
      ['?wait=soon', 'wait'],
      ['?wait=stored&wait_ms=-1', 'wait_ms'],
      ['?wait=stored&wait_ms=999999999', 'wait_ms'],
      ['?wait=stored&wait_ms=1.5', 'wait_ms'],
    ] as const) {
      const r = await post(qs, [ev(4)]);
      expect(r.status, qs).toBe(400);
      expect(((await r.json()) as { message: string }).message, qs).toMatch(new RegExp(`^${field}: `));
    }
  });
});
