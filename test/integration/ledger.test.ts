// GET /ingest/ledger over POST /events without Kafka, on the real engine: exact counts for valid, duplicate and
// invalid events (several reasons, a bad timestamp, no team), a replayed request changing only what a further
// arrival should change, back-fills counted as stored, team-bound readers and writers, CSV, and 400s.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../api/app.ts';
import { createAuthenticator } from '../../api/middleware/auth.ts';
import { insertEvents } from '../../clickhouse/inserts.ts';
import type { LedgerRow } from '../../clickhouse/queries/ingest-ledger.ts';
import { createLogger } from '../../core/logger.ts';
import { mintToken } from '../../core/tokens.ts';
import { createDirectSink } from '../../ingest/direct.ts';
import { httpLedger } from '../../ingest/ledger.ts';
import { arrivalDay, utcToday, utcYesterday } from '../helpers/arrival-day.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';

const SECRET = 'ledger-test-secret-ledger-test-secret-0123456';
const DAY = '2025-03-01';
const TS = `${DAY}T10:00:00Z`;

const usage = (id: string, extra: Record<string, unknown> = {}) => ({
  event_id: id,
  type: 'activity',
  timestamp: TS,
  user_id: `u-${id}`,
  team_id: 'ta',
  service: 'billing',
  ...extra,
});

// Five valid items (one of them a second copy of v1 in the same request) and five invalid ones.
const BODY = [
  usage('v1'),
  usage('v2'),
  usage('v3'),
  usage('v1'),
  { event_id: 'l1', type: 'log', timestamp: TS, severity: 'info', service: 'exporter', message: 'ok' },
  usage('bad-ts', { timestamp: 'yesterday' }),
  usage('no-team', { team_id: undefined }),
  42,
  usage('bad-type', { type: 'bogus' }),
  usage('old', { timestamp: '1999-12-31T23:00:00Z' }),
];

describe('GET /ingest/ledger (POST /events without Kafka)', () => {
  let engine: TestEngine;
  let app: ReturnType<typeof createApp>;
  const tokens: Record<string, string> = {};

  async function ledger(query: string, token = tokens.admin): Promise<Response> {
    return app.request(`/ingest/ledger?${query}`, { headers: { authorization: `Bearer ${token}` } });
  }
  async function rows(query: string, token = tokens.admin): Promise<LedgerRow[]> {
    const res = await ledger(query, token);
    expect(res.status).toBe(200);
    return ((await res.json()) as { rows: LedgerRow[] }).rows;
  }
  const post = (body: unknown[], token = tokens.admin) =>
    app.request('/events', {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: JSON.stringify(body),
    });
  const range = () => `start_date=${DAY}&end_date=${utcToday()}`;

  beforeAll(async () => {
    engine = await openTestEngine();
    app = createApp({
      ch: engine.ch,
      sink: createDirectSink(engine.ch),
      ledger: httpLedger(engine.ch),
      logger: createLogger('silent'),
      auth: createAuthenticator({ secret: SECRET, issuer: undefined, audience: undefined }),
    });
    tokens.admin = await mintToken(SECRET, { sub: 'admin' });
    tokens.readerTa = await mintToken(SECRET, { sub: 'reader-ta', scope: 'read:analytics', team_id: 'ta' });
    tokens.writerTb = await mintToken(SECRET, { sub: 'writer-tb', scope: 'write:events', team_id: 'tb' });
    tokens.writeOnly = await mintToken(SECRET, { sub: 'w', scope: 'write:events' });
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  it('counts a request exactly: received, stored, rejected by reason, under the event day or the arrival day', async () => {
    const sentOn = utcToday();
    const res = await post(BODY);
    expect(res.status).toBe(202);
    expect(await res.json()).toMatchObject({ accepted: 5, rejected: expect.any(Array) });
    const all = await rows(range());
    const t = arrivalDay(all, DAY, sentOn, utcToday());
    expect(all).toEqual([
      {
        day: DAY,
        team_id: '(logs)',
        service: 'exporter',
        received: 1,
        stored: 1,
        duplicates: 0,
        rejected: 0,
        rejected_by_reason: {},
      },
      {
        day: DAY,
        team_id: '(none)',
        service: 'billing',
        received: 1,
        stored: 0,
        duplicates: 0,
        rejected: 1,
        rejected_by_reason: { field_team_id: 1 },
      },
      {
        day: DAY,
        team_id: 'ta',
        service: 'billing',
        received: 4,
        stored: 3,
        duplicates: 0,
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
        rejected_by_reason: { not_object: 1 },
      },
      {
        day: t,
        team_id: 'ta',
        service: 'billing',
        received: 2,
        stored: 0,
        duplicates: 0,
        rejected: 2,
        rejected_by_reason: { field_timestamp: 2 },
      },
    ]);
  });

  it('a replayed request adds duplicates only: identified events count once, an id-less one per request', async () => {
    const before = await rows(range());
    expect((await post(BODY)).status).toBe(202);
    const after = await rows(range());
    const t = arrivalDay(before, DAY, utcYesterday(), utcToday());
    const expected = before.map((r) => {
      if (r.team_id === 'ta' && r.day === DAY) return { ...r, duplicates: 3 };
      if (r.team_id === '(logs)') return { ...r, duplicates: 1 };
      // 42 has no event_id: it is identified by its request, so another request is another event.
      if (r.team_id === '(none)' && r.day === t)
        return { ...r, received: 2, rejected: 2, rejected_by_reason: { not_object: 2 } };
      return r;
    });
    expect(after).toEqual(expected);
  });

  it('counts a back-fill (rows inserted straight into the raw tables) as stored, not received', async () => {
    await insertEvents(
      engine.ch,
      {
        usage: [
          {
            event_id: 'bf-1',
            type: 'activity',
            timestamp: `${DAY} 08:00:00.000`,
            user_id: 'u',
            team_id: 'tz',
            service: 'billing',
            session_id: '',
            attributes: {},
          },
        ],
        logs: [],
      },
      'test/backfill/1',
    );
    expect(await rows(`start_date=${DAY}&end_date=${DAY}&team_id=tz`)).toEqual([
      {
        day: DAY,
        team_id: 'tz',
        service: 'billing',
        received: 0,
        stored: 1,
        duplicates: 0,
        rejected: 0,
        rejected_by_reason: {},
      },
    ]);
  });

  it('a team-bound writer counts under its own team, whatever its events claim', async () => {
    const res = await post(
      [
        usage('tb-1', { team_id: 'tb' }),
        usage('tb-2', { team_id: 'tc' }),
        { event_id: 'tb-3', type: 'log', timestamp: TS, severity: 'info', service: 'billing', message: '' },
      ],
      tokens.writerTb,
    );
    expect(res.status).toBe(202);
    expect(await rows(`start_date=${DAY}&end_date=${DAY}&team_id=tb`)).toEqual([
      {
        day: DAY,
        team_id: 'tb',
        service: 'billing',
        received: 3,
        stored: 1,
        duplicates: 0,
        rejected: 2,
        rejected_by_reason: { field_team_id: 1, field_type: 1 },
      },
    ]);
    expect(await rows(`start_date=${DAY}&end_date=${DAY}&team_id=tc`)).toEqual([]);
  });

  it('a team-bound reader sees its own team only (403 for another)', async () => {
    const own = await rows(range(), tokens.readerTa);
    expect(own.length).toBe(2);
    expect(new Set(own.map((r) => r.team_id))).toEqual(new Set(['ta']));
    expect(await rows(`${range()}&team_id=ta`, tokens.readerTa)).toEqual(own);
    const other = await ledger(`${range()}&team_id=tb`, tokens.readerTa);
    expect(other.status).toBe(403);
    expect(await other.json()).toMatchObject({ error: 'Forbidden' });
    expect((await ledger(range(), tokens.writeOnly)).status).toBe(403);
  });

  it('filters by service', async () => {
    const got = await rows(`${range()}&service=exporter`);
    expect(got.map((r) => [r.team_id, r.service, r.stored])).toEqual([['(logs)', 'exporter', 1]]);
  });

  it('answers CSV with a header row; reasons as reason=count pairs', async () => {
    const res = await ledger(`start_date=${DAY}&end_date=${DAY}&team_id=ta&format=csv`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(await res.text()).toBe(
      'day,team_id,service,received,stored,duplicates,rejected,rejected_by_reason\r\n' +
        `${DAY},ta,billing,4,3,3,1,field_type=1\r\n`,
    );
    // The id-less events' arrival day, as the ledger's JSON tells it (a run across midnight moves it).
    const arrived = arrivalDay(
      await rows(`${range()}&team_id=(none)&service=(none)`),
      DAY,
      utcYesterday(),
      utcToday(),
    );
    const accept = await app.request(`/ingest/ledger?${range()}&team_id=(none)`, {
      headers: { authorization: `Bearer ${tokens.admin}`, accept: 'text/csv' },
    });
    expect((await accept.text()).split('\r\n')).toContain(`${arrived},(none),(none),2,0,0,2,not_object=2`);
  });

  it('refuses bad parameters with 400 naming them, and asks for credentials', async () => {
    const cases: [string, string][] = [
      ['end_date=2025-03-01', 'start_date'],
      ['start_date=2025-03-01', 'end_date'],
      ['start_date=2025-02-30&end_date=2025-03-01', 'start_date'],
      ['start_date=2025-03-02&end_date=2025-03-01', 'start_date'],
      ['start_date=2025-03-01&end_date=2025-03-01&service=', 'service'],
      ['start_date=2025-03-01&end_date=2025-03-01&format=xml', 'format'],
      ['start_date=2025-03-01&end_date=2025-03-01&nope=1', 'nope'],
    ];
    for (const [q, field] of cases) {
      const res = await ledger(q);
      expect(res.status, q).toBe(400);
      const body = (await res.json()) as { error: string; message: string };
      expect(body.error, q).toBe('Bad Request');
      expect(body.message, q).toContain(field);
    }
    expect((await app.request(`/ingest/ledger?${range()}`)).status).toBe(401);
  });

  it('is in the OpenAPI document', async () => {
    const doc = (await (await app.request('/openapi.json')).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    expect(Object.keys(doc.paths['/ingest/ledger'] ?? {})).toEqual(['get']);
  });
});
