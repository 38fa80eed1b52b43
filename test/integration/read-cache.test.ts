// The read routes' result cache on the real engine (and a real Kafka broker): a repeated question is answered
// from the cache, and the answer changes after every kind of change to the data it reads: an insert through
// Kafka, POST /events and a direct INSERT, a lightweight DELETE, a TTL drop, and the retention day passing
// midnight. Team-bound credentials never share another team's answer; refused requests never get one; a
// cached answer still carries its own request id and rate-limit headers and still counts against the limit.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createApp } from '../../api/app.ts';
import { createAuthenticator } from '../../api/middleware/auth.ts';
import { createRateLimit } from '../../api/middleware/rate-limit.ts';
import { limitPolicy } from '../../api/middleware/rate-limit-store.ts';
import { ReadCache } from '../../api/read-cache.ts';
import { buildDataVersionQuery, versionFromTsv, versionOf } from '../../clickhouse/data-version.ts';
import { insertEvents } from '../../clickhouse/inserts.ts';
import { applyRetention } from '../../clickhouse/retention.ts';
import { createLogger } from '../../core/logger.ts';
import { registry } from '../../core/metrics.ts';
import { mintToken } from '../../core/tokens.ts';
import { Ingester } from '../../ingest/consumer.ts';
import { createDirectSink } from '../../ingest/direct.ts';
import { type Admin, createIdempotentProducer, ensureTopics, type Producer } from '../../ingest/kafka.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { dropTopics } from '../helpers/ingest.ts';
import { caughtUp, testKafka, uniqueName } from '../helpers/kafka.ts';
import { waitFor } from '../helpers/wait.ts';

const SECRET = 'read-cache-secret-read-cache-secret-0123456';
const SUMMARY = '/reports/usage-summary?start_date=2025-04-01&end_date=2025-04-30';
const DAY_MS = 86_400_000;

let seq = 0;
const usage = (team: string, extra: Record<string, unknown> = {}) => {
  seq += 1;
  return {
    event_id: `rc-${seq}`,
    type: 'session_start',
    timestamp: '2025-04-02T10:00:00Z',
    user_id: `u-${seq}`,
    team_id: team,
    service: 'svc',
    session_id: `s-${seq}`,
    ...extra,
  };
};

async function outcomes(): Promise<{ hit: number; miss: number; bypass: number }> {
  const metric = registry.getSingleMetric('tally_read_cache_requests_total');
  const got = { hit: 0, miss: 0, bypass: 0 };
  for (const v of (await metric?.get())?.values ?? []) {
    const o = String(v.labels.outcome);
    if (o === 'hit' || o === 'miss' || o === 'bypass') got[o] += v.value;
  }
  return got;
}

describe('the read cache', () => {
  let engine: TestEngine;
  let cache: ReadCache;
  let app: ReturnType<typeof createApp>;
  let admin: string;
  let writer: string;
  const { kafka } = testKafka('tally-read-cache');
  const topics = { sessions: uniqueName('cache.sessions'), logs: uniqueName('cache.logs') };
  const groupId = uniqueName('cache-group');
  let kadmin: Admin;
  let producer: Producer;
  let ingester: Ingester;

  beforeAll(async () => {
    engine = await openTestEngine();
    cache = new ReadCache({
      version: engine.ch.dataVersion(),
      maxBytes: 1024 * 1024,
      retentionDays: () => engine.ch.retention.days,
    });
    app = createApp({
      ch: engine.ch,
      sink: createDirectSink(engine.ch),
      logger: createLogger('silent'),
      auth: createAuthenticator({ secret: SECRET, issuer: undefined, audience: undefined }),
      rateLimit: createRateLimit({ policy: limitPolicy(1000, new Map([['jwt::limited', 3]])) }),
      readCache: cache,
    });
    // Long-lived: one test moves the clock a day ahead.
    admin = await mintToken(SECRET, { sub: 'admin', ttlSeconds: 3 * 86_400 });
    writer = await mintToken(SECRET, { sub: 'writer', scope: 'write:events' });
    kadmin = kafka.admin();
    await kadmin.connect();
    await ensureTopics(kadmin, [topics.sessions, topics.logs], 1);
    producer = createIdempotentProducer(kafka);
    await producer.connect();
    ingester = new Ingester({
      kafka,
      write: (rows, token) => insertEvents(engine.ch, rows, token),
      topics: [topics.sessions, topics.logs],
      groupId,
      limits: { rows: 500, bytes: 1024 * 1024, waitMs: 100 },
      logger: createLogger('silent'),
      sessionTimeoutMs: 6_000,
    });
    await ingester.start();
  });
  afterAll(async () => {
    vi.useRealTimers();
    await ingester?.stop();
    await producer?.disconnect();
    if (kadmin) await dropTopics(kadmin, topics);
    await kadmin?.disconnect();
    await cache?.close();
    await engine?.dispose();
  });

  const get = (path: string, token = admin, headers: Record<string, string> = {}) =>
    app.request(path, { headers: { authorization: `Bearer ${token}`, ...headers } });
  const summary = async (token = admin, path = SUMMARY) => {
    const res = await get(path, token);
    expect(res.status).toBe(200);
    return (await res.json()) as { total_users: number; active_users: number; total_sessions: number };
  };
  const post = async (events: unknown[]) => {
    const res = await app.request('/events', {
      method: 'POST',
      headers: { authorization: `Bearer ${writer}` },
      body: JSON.stringify(events),
    });
    expect(res.status).toBe(202);
    expect(((await res.json()) as { rejected: unknown[] }).rejected).toEqual([]);
  };
  /** Asks twice until the second answer comes from the cache (see cachedSummary). */
  const askTwice = async (
    path: string,
    token = admin,
    h1: Record<string, string> = {},
    h2: Record<string, string> = h1,
  ) => {
    for (let i = 0; i < 20; i++) {
      const first = await get(path, token, h1);
      const before = await outcomes();
      const second = await get(path, token, h2);
      if ((await outcomes()).hit === before.hit + 1) return { first, second };
    }
    throw new Error('no answer came from the cache in 20 tries');
  };
  /**
   * Asks until an answer comes from the cache (a background merge in between changes the version: a miss,
   * never a wrong answer), and checks it equals the one computed just before.
   */
  const cachedSummary = async (token = admin, path = SUMMARY) => {
    for (let i = 0; i < 20; i++) {
      const first = await summary(token, path);
      const before = await outcomes();
      const second = await summary(token, path);
      expect(second).toEqual(first);
      if ((await outcomes()).hit === before.hit + 1) return first;
    }
    throw new Error('no answer came from the cache in 20 tries');
  };

  it('answers a repeated question from the cache, with the request own headers', async () => {
    await post([usage('t1'), usage('t1')]);
    const { first, second } = await askTwice(
      SUMMARY,
      admin,
      { 'x-request-id': 'req-one' },
      { 'x-request-id': 'req-two' },
    );
    expect(second.status).toBe(200);
    expect(await second.json()).toEqual(await first.json());
    expect(second.headers.get('x-request-id')).toBe('req-two');
    expect(second.headers.get('content-type')).toMatch(/application\/json/);
    expect(second.headers.get('ratelimit-limit')).toBe('1000');
    expect(Number(second.headers.get('ratelimit-remaining'))).toBe(
      Number(first.headers.get('ratelimit-remaining')) - 1,
    );
    // A third without an id of its own gets a fresh one, not a kept one.
    const third = await get(SUMMARY);
    expect(third.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('keeps CSV and JSON apart, and CSV answers keep their headers', async () => {
    // ?format=csv and Accept: text/csv are the same question.
    await askTwice(`${SUMMARY}&format=csv`);
    const csv1 = await get(`${SUMMARY}&format=csv`);
    const csv2 = await get(SUMMARY, admin, { accept: 'text/csv' });
    expect(csv2.headers.get('content-type')).toMatch(/^text\/csv/);
    const text = await csv2.text();
    expect(text).toBe(await csv1.text());
    expect(text.split(/\r?\n/)[0]).toBe('total_users,active_users,total_sessions');
    expect((await get(SUMMARY)).headers.get('content-type')).toMatch(/application\/json/);

    // Logs in CSV: X-Page and X-Total-Pages come back on a cached answer too.
    await post([
      {
        event_id: 'rc-log-1',
        type: 'log',
        timestamp: '2025-04-02T10:00:00Z',
        severity: 'info',
        service: 's',
        message: 'm',
      },
    ]);
    const path = '/logs/system-events?limit=1&format=csv&start_date=2025-04-01&end_date=2025-04-30';
    const { first: l1, second: l2 } = await askTwice(path);
    expect(l2.headers.get('x-total-pages')).toBe(l1.headers.get('x-total-pages'));
    expect(l2.headers.get('x-page')).toBe('1');
    expect(await l2.text()).toBe(await l1.text());
  });

  it('changes after POST /events', async () => {
    const before = await cachedSummary();
    await post([usage('t1')]);
    expect((await summary()).total_sessions).toBe(before.total_sessions + 1);
  });

  it('changes after an INSERT straight into usage_events', async () => {
    const before = await cachedSummary();
    await engine.ch.client.command({
      query: `INSERT INTO usage_events (event_id, type, timestamp, user_id, team_id, service, session_id)
        SETTINGS insert_deduplicate = 0
        SELECT 'rc-direct', 'session_start', toDateTime64('2025-04-03 10:00:00', 3, 'UTC'), 'u-direct', 't1', 'svc', 's-direct'`,
    });
    expect((await summary()).total_sessions).toBe(before.total_sessions + 1);
  });

  it('changes after events consumed from Kafka', async () => {
    const before = await cachedSummary();
    await producer.send({
      topic: topics.sessions,
      messages: [{ key: 'u', value: JSON.stringify(usage('t1')) }],
    });
    await waitFor('the ingester to store the event', () =>
      caughtUp(kadmin, groupId, [topics.sessions, topics.logs]),
    );
    expect((await summary()).total_sessions).toBe(before.total_sessions + 1);
  });

  it('changes after a lightweight DELETE on the tables it reads', async () => {
    await post([usage('t-del'), usage('t-del')]);
    const path = `${SUMMARY}&team_id=t-del`;
    expect((await cachedSummary(admin, path)).total_sessions).toBe(2);
    await engine.ch.client.command({ query: "DELETE FROM usage_daily WHERE team_id = 't-del'" });
    expect((await summary(admin, path)).active_users).toBe(0);

    const logs = '/logs/system-events?start_date=2025-04-01&end_date=2025-04-30';
    const page = async () => ((await (await get(logs)).json()) as { events: unknown[] }).events.length;
    const n = await page();
    expect(n).toBeGreaterThan(0);
    expect(await page()).toBe(n);
    await engine.ch.client.command({ query: "DELETE FROM log_events WHERE event_id = 'rc-log-1'" });
    expect(await page()).toBe(n - 1);
  });

  it('keeps a usage answer through a log insert, and a logs answer through a usage insert', async () => {
    const logs = '/logs/system-events?start_date=2025-04-01&end_date=2025-04-30&service=apart';
    const log = (n: number) => ({
      event_id: `rc-apart-${n}`,
      type: 'log',
      timestamp: '2025-04-03T10:00:00Z',
      severity: 'info',
      service: 'apart',
      message: 'm',
    });
    const count = async () => ((await (await get(logs)).json()) as { events: unknown[] }).events.length;
    // The answer and whether it came from the cache.
    const outcome = async <T>(read: () => Promise<T>) => {
      const before = await outcomes();
      const got = await read();
      return { got, hit: (await outcomes()).hit === before.hit + 1 };
    };
    const sessions = async () => (await summary()).total_sessions;
    // No background merge may change a version between the steps (it would be a miss, never a wrong answer).
    await engine.ch.client.command({ query: 'SYSTEM STOP MERGES' });
    try {
      await post([log(1)]);
      const before = await sessions();
      expect(await outcome(count)).toEqual({ got: 1, hit: false });
      expect(await outcome(count)).toEqual({ got: 1, hit: true });
      expect(await outcome(sessions)).toEqual({ got: before, hit: true });
      // A log stored: the usage answer still comes from the cache, the logs answer does not.
      await post([log(2)]);
      expect(await outcome(sessions)).toEqual({ got: before, hit: true });
      expect(await outcome(count)).toEqual({ got: 2, hit: false });
      // A session stored: the other way round.
      await post([usage('t1')]);
      expect(await outcome(count)).toEqual({ got: 2, hit: true });
      expect(await outcome(sessions)).toEqual({ got: before + 1, hit: false });
    } finally {
      await engine.ch.client.command({ query: 'SYSTEM START MERGES' });
    }
  });

  it("lists a cluster's shard-local parts under their public names (its query, on this one node)", async () => {
    // The cluster's query, with this node's system.parts for every replica's (clusterAllReplicas needs a
    // cluster): a table named like a shard-local one, and a row in it.
    await engine.ch.client.command({
      query: 'CREATE TABLE probe_local (x UInt8) ENGINE = MergeTree ORDER BY x',
    });
    await engine.ch.client.command({ query: 'INSERT INTO probe_local VALUES (1)' });
    const q = buildDataVersionQuery({ cluster: 'tally', database: engine.ch.database });
    const query = q.query.replace("clusterAllReplicas('tally', system.parts)", 'system.parts');
    const rs = await engine.ch.client.query({ query, query_params: q.query_params, format: 'TabSeparated' });
    const version = versionFromTsv(await rs.text());
    expect(versionOf(version, ['probe'])).toMatch(/^probe=[\w-]{16}\/1$/);
    expect(versionOf(version, 'usage_')).toBe('');
    await engine.ch.client.command({ query: 'DROP TABLE probe_local' });
  });

  it('keeps a logs answer through merges of the log tables, and not through a new log', async () => {
    const logs = '/logs/system-events?start_date=2025-04-01&end_date=2025-04-30&service=merging';
    const log = (n: number) => ({
      event_id: `rc-merging-${n}`,
      type: 'log',
      timestamp: `2025-04-0${n}T10:00:00Z`,
      severity: 'info',
      service: 'merging',
      message: `m${n}`,
    });
    const count = async () => ((await (await get(logs)).json()) as { events: unknown[] }).events.length;
    const hit = async () => {
      const before = (await outcomes()).hit;
      const n = await count();
      return { n, hit: (await outcomes()).hit === before + 1 };
    };
    const version = engine.ch.dataVersion();
    const tableVersion = async () => versionOf(await version.read(), ['log_events', 'log_cells_daily']);
    try {
      await post([log(1)]);
      await post([log(2)]);
      expect(await hit()).toEqual({ n: 2, hit: false });
      expect(await hit()).toEqual({ n: 2, hit: true });
      // Every part of the log tables merged: new parts (new table versions), the same rows.
      const before = await tableVersion();
      for (const table of ['log_events', 'log_cells_daily', 'log_day_seals', 'log_hour_seals'])
        await engine.ch.client.command({ query: `OPTIMIZE TABLE ${table} FINAL` });
      expect(await tableVersion()).not.toBe(before);
      expect(await hit()).toEqual({ n: 2, hit: true });
      await post([log(3)]);
      expect(await hit()).toEqual({ n: 3, hit: false });
    } finally {
      version.close();
    }
  });

  it('changes after a TTL drop', async () => {
    // Logs 20 days old, kept while there is no retention; then a TTL (the reads are told nothing of it, so
    // only the drop itself can change their answer) and the merge that applies it.
    const old = new Date(Date.now() - 20 * DAY_MS).toISOString();
    await post([
      {
        event_id: 'rc-old-1',
        type: 'log',
        timestamp: old,
        severity: 'error',
        service: 'ttl',
        message: 'old',
      },
    ]);
    const path = '/logs/system-events?service=ttl';
    const total = async () => ((await (await get(path)).json()) as { total_pages: number }).total_pages;
    expect(await total()).toBe(1);
    expect(await total()).toBe(1);
    await applyRetention(engine.ch, 10);
    engine.ch.retention.record(0);
    await engine.ch.client.command({ query: 'OPTIMIZE TABLE log_counts_hourly FINAL' });
    await engine.ch.client.command({ query: 'OPTIMIZE TABLE log_events FINAL' });
    expect(await total()).toBe(0);
    await applyRetention(engine.ch, 0);
  });

  it('changes when the first retained day passes midnight', async () => {
    // Logs on each of the last three days; with a retention of 3 days, the reads start at the first whole day
    // no TTL can have touched. The clock is moved (Date only) from just before midnight to just after.
    const midnight = Math.ceil(Date.now() / DAY_MS) * DAY_MS;
    const at = (daysBefore: number) =>
      new Date(midnight - daysBefore * DAY_MS + 12 * 3_600_000).toISOString();
    await post(
      [3, 2, 1].map((d) => ({
        event_id: `rc-day-${d}`,
        type: 'log',
        timestamp: at(d),
        severity: 'info',
        service: 'days',
        message: `day -${d}`,
      })),
    );
    engine.ch.retention.record(3);
    const path = '/logs/system-events?service=days';
    const count = async () => ((await (await get(path)).json()) as { events: unknown[] }).events.length;
    try {
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(midnight - 1000);
      const { first, second } = await askTwice(path);
      const before = ((await first.json()) as { events: unknown[] }).events.length;
      expect(((await second.json()) as { events: unknown[] }).events.length).toBe(before);
      expect(before).toBe(3);
      vi.setSystemTime(midnight + 1000);
      expect(await count()).toBe(before - 1);
    } finally {
      vi.useRealTimers();
      engine.ch.retention.record(0);
    }
  });

  it('never gives one team the answer of another', async () => {
    await post([usage('team-a'), usage('team-a'), usage('team-b')]);
    const a = await mintToken(SECRET, { sub: 'a', team_id: 'team-a', scope: 'read:analytics' });
    const b = await mintToken(SECRET, { sub: 'b', team_id: 'team-b', scope: 'read:analytics' });
    // Same URL, no team asked: each sees its own.
    expect((await cachedSummary(a)).total_sessions).toBe(2);
    expect((await cachedSummary(b)).total_sessions).toBe(1);
    expect((await summary(a)).total_sessions).toBe(2);
    // Asking for the other team is refused, cached answer or not.
    expect((await get(`${SUMMARY}&team_id=team-a`, b)).status).toBe(403);
  });

  it('never answers a refused request from the cache', async () => {
    await cachedSummary();
    expect((await app.request(SUMMARY)).status).toBe(401);
    const bad = await app.request(SUMMARY, { headers: { authorization: 'Bearer not-a-token' } });
    expect(bad.status).toBe(401);
    const noScope = await mintToken(SECRET, { sub: 'w', scope: 'write:events' });
    expect((await get(SUMMARY, noScope)).status).toBe(403);
    const team = await mintToken(SECRET, { sub: 't', team_id: 'team-a', scope: 'read:analytics' });
    const logs = '/logs/system-events?start_date=2025-04-01&end_date=2025-04-30';
    expect((await get(logs)).status).toBe(200);
    expect((await get(logs, team)).status).toBe(403);
  });

  it('still counts a cached answer against the rate limit', async () => {
    const limited = await mintToken(SECRET, { sub: 'limited' });
    for (let i = 0; i < 3; i++) expect((await get(SUMMARY, limited)).status).toBe(200);
    const refused = await get(SUMMARY, limited);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBeTruthy();
  });
});
