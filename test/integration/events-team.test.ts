// POST /events and a caller bound to a team, on the real engine and a real Kafka broker: a team-bound token or
// API key writes its own team's usage events only; another team's event and any log event are named in the
// 202's `rejected` with the field at fault, and are neither stored nor published; unbound callers are unchanged.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../api/app.ts';
import { createAuthenticator } from '../../api/middleware/auth.ts';
import { createKey } from '../../core/api-keys.ts';
import { createLogger } from '../../core/logger.ts';
import type { EventSink } from '../../core/sink.ts';
import { mintToken } from '../../core/tokens.ts';
import { createDirectSink } from '../../ingest/direct.ts';
import { type Admin, createIdempotentProducer, ensureTopics, type Producer } from '../../ingest/kafka.ts';
import { createKafkaSink, PartitionMap } from '../../ingest/producer.ts';
import { StoredWatcher } from '../../ingest/stored-wait.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { dropTopics } from '../helpers/ingest.ts';
import { testKafka, uniqueName } from '../helpers/kafka.ts';
import { fileKeys } from '../helpers/keys.ts';
import { waitFor } from '../helpers/wait.ts';

const SECRET = 'events-team-test-secret-events-team-test-0123';
const OWN = 'team_id: this credential may only write team t1';
const LOG = /^type: log events are platform-wide; this credential may only write usage events of team t1$/;

const usage = (id: string, team: string) => ({
  event_id: id,
  type: 'session_start',
  timestamp: '2025-01-05T10:00:00Z',
  user_id: `u-${id}`,
  team_id: team,
  service: 'billing',
  session_id: `s-${id}`,
});
const log = (id: string) => ({
  event_id: id,
  type: 'log',
  timestamp: '2025-01-05T10:00:00Z',
  severity: 'warning',
  service: 'billing',
  message: 'disk almost full',
});

describe('POST /events and team-bound credentials', () => {
  let engine: TestEngine;
  let keyDir: string;
  let keysPath: string;
  const tokens: Record<string, string> = {};

  const appWith = (sink: EventSink) =>
    createApp({
      ch: engine.ch,
      sink,
      logger: createLogger('silent'),
      auth: createAuthenticator({
        secret: SECRET,
        issuer: undefined,
        audience: undefined,
        keys: fileKeys(keysPath),
      }),
    });
  const send = (app: ReturnType<typeof appWith>, headers: Record<string, string>, body: string) =>
    app.request('/events', { method: 'POST', headers, body });

  async function ids(table: 'usage_events' | 'log_events', prefix: string): Promise<string[]> {
    const rs = await engine.ch.client.query({
      query: `SELECT DISTINCT event_id FROM ${table} WHERE startsWith(event_id, {p:String}) ORDER BY event_id`,
      query_params: { p: prefix },
      format: 'JSONEachRow',
    });
    return (await rs.json<{ event_id: string }>()).map((r) => r.event_id);
  }

  beforeAll(async () => {
    engine = await openTestEngine();
    keyDir = mkdtempSync(join(tmpdir(), 'tally-events-keys-'));
    keysPath = join(keyDir, 'api-keys.json');
    tokens.bound = await mintToken(SECRET, { sub: 'producer-t1', scope: 'write:events', team_id: 't1' });
    tokens.free = await mintToken(SECRET, { sub: 'producer', scope: 'write:events' });
  });
  afterAll(async () => {
    await engine?.dispose();
    if (keyDir) rmSync(keyDir, { recursive: true, force: true });
  });

  it('a team-bound token (JSON array): own team stored; other team and logs rejected by index, naming the field', async () => {
    const app = appWith(createDirectSink(engine.ch));
    const body = JSON.stringify([
      usage('a-1', 't1'),
      usage('a-2', 't2'),
      log('a-3'),
      usage('a-4', 't1'),
      { ...usage('a-5', 't2'), type: 'nope' },
    ]);
    const res = await send(app, { authorization: `Bearer ${tokens.bound}` }, body);
    expect(res.status).toBe(202);
    const got = (await res.json()) as { accepted: number; rejected: { index: number; error: string }[] };
    expect(got.accepted).toBe(2);
    expect(got.rejected).toEqual([
      { index: 1, error: OWN },
      { index: 2, error: expect.stringMatching(LOG) },
      { index: 4, error: expect.stringMatching(/^type: must be one of/) },
    ]);
    expect(await ids('usage_events', 'a-')).toEqual(['a-1', 'a-4']);
    expect(await ids('log_events', 'a-')).toEqual([]);
  });

  it('a team-bound API key (NDJSON): the same', async () => {
    const app = appWith(createDirectSink(engine.ch));
    const key = createKey(keysPath, { name: 'producer-t1', scopes: ['write:events'], teamId: 't1' }).key;
    const body = [usage('b-1', 't2'), usage('b-2', 't1'), log('b-3')]
      .map((e) => JSON.stringify(e))
      .join('\n');
    const res = await send(app, { 'x-api-key': key, 'content-type': 'application/x-ndjson' }, body);
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({
      accepted: 1,
      rejected: [
        { index: 0, error: OWN },
        { index: 2, error: expect.stringMatching(LOG) },
      ],
    });
    expect(await ids('usage_events', 'b-')).toEqual(['b-2']);
    expect(await ids('log_events', 'b-')).toEqual([]);
  });

  it('an unbound token writes any team and logs, as before', async () => {
    const app = appWith(createDirectSink(engine.ch));
    const body = [usage('c-1', 't1'), usage('c-2', 't2'), log('c-3')]
      .map((e) => JSON.stringify(e))
      .join('\n');
    const res = await send(app, { authorization: `Bearer ${tokens.free}` }, body);
    expect(await res.json()).toEqual({ accepted: 3, rejected: [] });
    expect(await ids('usage_events', 'c-')).toEqual(['c-1', 'c-2']);
    expect(await ids('log_events', 'c-')).toEqual(['c-3']);
  });

  describe('through Kafka (KAFKA_BROKERS set): refused events are never published', () => {
    const { kafka } = testKafka('tally-events-team');
    const topics = { sessions: uniqueName('team.sessions'), logs: uniqueName('team.logs') };
    let admin: Admin;
    let producer: Producer;

    /** Messages in a topic (all partitions), from its offsets (retried while a new topic elects leaders). */
    function published(topic: string): Promise<number> {
      return waitFor(
        `the offsets of ${topic}`,
        async () => {
          let n = 0;
          for (const p of await admin.fetchTopicOffsets(topic)) n += Number(p.high) - Number(p.low);
          return n;
        },
        { timeoutMs: 30_000 },
      );
    }

    beforeAll(async () => {
      admin = kafka.admin();
      await admin.connect();
      await ensureTopics(admin, [topics.sessions, topics.logs]);
      producer = createIdempotentProducer(kafka);
      await producer.connect();
    });
    afterAll(async () => {
      await producer?.disconnect();
      if (admin) await dropTopics(admin, topics);
      await admin?.disconnect();
    });

    it('publishes the own-team event only; an unbound caller publishes all', async () => {
      const app = appWith(
        createKafkaSink(producer, topics, new PartitionMap(admin), new StoredWatcher(admin, 'unused')),
      );
      const mixed = JSON.stringify([usage('k-1', 't2'), usage('k-2', 't1'), log('k-3'), usage('k-4', 't3')]);
      const res = await send(app, { authorization: `Bearer ${tokens.bound}` }, mixed);
      expect(res.status).toBe(202);
      expect(await res.json()).toEqual({
        accepted: 1,
        rejected: [
          { index: 0, error: OWN },
          { index: 2, error: expect.stringMatching(LOG) },
          { index: 3, error: OWN },
        ],
      });
      // 202 means acknowledged by the broker: the offsets already show what was published.
      expect([await published(topics.sessions), await published(topics.logs)]).toEqual([1, 0]);

      const free = await send(app, { authorization: `Bearer ${tokens.free}` }, mixed);
      expect(await free.json()).toEqual({ accepted: 4, rejected: [] });
      expect([await published(topics.sessions), await published(topics.logs)]).toEqual([4, 1]);
    });
  });
});
