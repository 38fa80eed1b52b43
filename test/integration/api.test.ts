// The HTTP contract of the first routes on the real engine (app.request, no socket): auth, scopes, team
// isolation, validation, POST /events and the error model.
import { readFileSync } from 'node:fs';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../api/app.ts';
import { createAuthenticator } from '../../api/middleware/auth.ts';
import { cloudEventId } from '../../core/cloudevents.ts';
import { createLogger } from '../../core/logger.ts';
import { mintToken } from '../../core/tokens.ts';
import { createDirectSink } from '../../ingest/direct.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';

// The fields these tests read from JSON answers.
interface Json {
  error?: string;
  message?: string;
  rejected?: unknown;
  total_sessions?: number;
  openapi?: string;
  paths?: Record<string, unknown>;
}
const json = (res: Response) => res.json() as Promise<Json>;

const SECRET = 'api-test-secret-api-test-secret-0123456789';
const key = new TextEncoder().encode(SECRET);

const ev = (id: string, type: string, day: string, user: string, team: string, extra: object = {}) => ({
  event_id: id,
  type,
  timestamp: `${day}T12:00:00Z`,
  user_id: user,
  team_id: team,
  service: 'billing',
  ...extra,
});

describe('HTTP API', () => {
  let engine: TestEngine;
  let app: ReturnType<typeof createApp>;
  let admin: string;

  const req = (path: string, init: RequestInit & { token?: string | null } = {}) => {
    const headers = new Headers(init.headers);
    const token = init.token === undefined ? admin : init.token;
    if (token) headers.set('authorization', `Bearer ${token}`);
    return app.request(path, { ...init, headers });
  };

  beforeAll(async () => {
    engine = await openTestEngine();
    app = createApp({
      ch: engine.ch,
      sink: createDirectSink(engine.ch),
      logger: createLogger('silent'),
      auth: createAuthenticator({ secret: SECRET, issuer: undefined, audience: undefined }),
    });
    admin = await mintToken(SECRET, { sub: 'admin' });
    const res = await req('/events', {
      method: 'POST',
      body: JSON.stringify([
        ev('a1', 'user_registered', '2025-01-01', 'u1', 't1'),
        ev('a2', 'session_start', '2025-01-02', 'u1', 't1', { session_id: 's1' }),
        ev('a3', 'session_end', '2025-01-03', 'u1', 't1', { session_id: 's1' }),
        ev('a4', 'activity', '2025-01-02', 'u2', 't1'),
        ev('b1', 'session_start', '2025-01-05', 'u3', 't2', { session_id: 's2' }),
        ev('b2', 'session_start', '2025-01-05', 'u3', 't2', { session_id: 's3' }),
        ev('b3', 'user_registered', '2025-02-01', 'u4', 't2'),
        { event_id: 'bad', type: 'session_start' },
      ]),
    });
    expect(res.status).toBe(202);
    expect(await json(res)).toEqual({
      accepted: 7,
      rejected: [{ index: 7, error: 'timestamp: is required' }],
    });
  });
  afterAll(async () => engine?.dispose());

  const summary = async (qs: string, token?: string) => {
    const res = await req(`/reports/usage-summary?${qs}`, token === undefined ? {} : { token });
    return { status: res.status, body: await json(res) };
  };

  it('answers the summary with the contract semantics', async () => {
    expect(await summary('start_date=2025-01-02&end_date=2025-01-02')).toEqual({
      status: 200,
      body: { total_users: 2, active_users: 2, total_sessions: 1 },
    });
    expect((await summary('start_date=2025-01-01&end_date=2025-01-31')).body).toEqual({
      total_users: 3,
      active_users: 3,
      total_sessions: 3,
    });
    // u4 registered in February: in the user base as of the end, not active.
    expect((await summary('start_date=2025-02-01&end_date=2025-02-28')).body).toEqual({
      total_users: 4,
      active_users: 0,
      total_sessions: 0,
    });
    expect((await summary('start_date=2025-01-01&end_date=2025-12-31&team_id=t2')).body).toEqual({
      total_users: 2,
      active_users: 1,
      total_sessions: 2,
    });
    expect(
      (await summary('start_date=2025-01-01&end_date=2025-12-31&user_id=u1&service=billing')).body,
    ).toEqual({
      total_users: 1,
      active_users: 1,
      total_sessions: 1,
    });
  });

  it('a request sent twice stores nothing twice', async () => {
    const body = JSON.stringify([ev('a2', 'session_start', '2025-01-02', 'u1', 't1', { session_id: 's1' })]);
    expect((await req('/events', { method: 'POST', body })).status).toBe(202);
    expect((await req('/events', { method: 'POST', body: `${body.slice(1, -1)}\n` })).status).toBe(202);
    expect((await summary('start_date=2025-01-01&end_date=2025-01-31')).body.total_sessions).toBe(3);
  });

  it('answers CSV on ?format=csv and Accept: text/csv', async () => {
    const res = await req('/reports/usage-summary?start_date=2025-01-02&end_date=2025-01-02&format=csv');
    expect(res.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(await res.text()).toBe('total_users,active_users,total_sessions\r\n2,2,1\r\n');
    const res2 = await req('/reports/usage-summary?start_date=2025-01-02&end_date=2025-01-02', {
      headers: { accept: 'text/csv' },
    });
    expect(res2.headers.get('content-type')).toMatch(/^text\/csv/);
  });

  it('refuses bad parameters with a 400 naming them', async () => {
    const cases: [string, RegExp][] = [
      ['end_date=2025-01-01', /^start_date: is required/],
      ['start_date=2025-01-01', /^end_date: is required/],
      ['start_date=2025-13-01&end_date=2025-12-31', /^start_date: must be a calendar date/],
      ['start_date=2025-02-29&end_date=2025-12-31', /^start_date: must be a calendar date/],
      ['start_date=2025-01-02&end_date=2025-01-01', /^start_date: must not be after end_date/],
      ['start_date=2025-01-01&end_date=2025-01-02&user_id=', /^user_id: must not be empty/],
      ['start_date=2025-01-01&end_date=2025-01-02&format=xml', /^format: must be json or csv/],
    ];
    for (const [qs, message] of cases) {
      const r = await summary(qs);
      expect(r.status, qs).toBe(400);
      expect(r.body.error).toBe('Bad Request');
      expect(r.body.message, qs).toMatch(message);
    }
  });

  it('needs a valid token: 401 with WWW-Authenticate', async () => {
    const qs = '/reports/usage-summary?start_date=2025-01-01&end_date=2025-01-02';
    const now = Math.floor(Date.now() / 1000);
    const sign = (claims: object, header: object = { alg: 'HS256', typ: 'JWT' }, k = key) =>
      new SignJWT({ scope: 'read:analytics', ...claims }).setProtectedHeader(header as never).sign(k);
    const bad = [
      null,
      'not-a-jwt',
      await sign({ sub: 'x', exp: now - 3600 }),
      await sign({ sub: 'x' }),
      await sign({ exp: now + 60 }),
      await sign({ sub: 'x', exp: now + 60 }, { alg: 'HS256', typ: 'JWE' }),
      await sign(
        { sub: 'x', exp: now + 60 },
        undefined,
        new TextEncoder().encode('another-secret-another-secret-0123'),
      ),
    ];
    for (const token of bad) {
      const res = await req(qs, { token });
      expect(res.status, String(token)).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect((await json(res)).error).toBe('Unauthorized');
    }
    const fine = await sign({ sub: 'x', exp: now + 60 }, { alg: 'HS256', typ: 'at+jwt' });
    expect((await req(qs, { token: fine })).status).toBe(200);
  });

  it('needs the read:analytics scope (403), matched as a whole word', async () => {
    const qs = '/reports/usage-summary?start_date=2025-01-01&end_date=2025-01-02';
    for (const scope of ['write:events', 'read:analytics:extra', 'xread:analytics']) {
      const res = await req(qs, { token: await mintToken(SECRET, { sub: 'u', scope }) });
      expect(res.status, scope).toBe(403);
      expect((await json(res)).error).toBe('Forbidden');
    }
    const events = await req('/events', {
      method: 'POST',
      body: '[]',
      token: await mintToken(SECRET, { sub: 'u', scope: 'read:analytics' }),
    });
    expect(events.status).toBe(403);
  });

  it('a team-bound token sees only its team', async () => {
    const t2 = await mintToken(SECRET, { sub: 'u', scope: 'read:analytics', team_id: 't2' });
    const all = await summary('start_date=2025-01-01&end_date=2025-12-31', t2);
    expect(all).toEqual({ status: 200, body: { total_users: 2, active_users: 1, total_sessions: 2 } });
    expect((await summary('start_date=2025-01-01&end_date=2025-12-31&team_id=t2', t2)).status).toBe(200);
    const other = await summary('start_date=2025-01-01&end_date=2025-12-31&team_id=t1', t2);
    expect(other.status).toBe(403);
  });

  it('keeps the error model on unknown routes, methods and large bodies', async () => {
    const nf = await req('/nope');
    expect(nf.status).toBe(404);
    expect(await json(nf)).toMatchObject({ error: 'Not Found' });
    const na = await req('/reports/usage-summary', { method: 'DELETE' });
    expect(na.status).toBe(405);
    expect(await json(na)).toMatchObject({ error: 'Method Not Allowed' });
    const big = await req('/events', { method: 'POST', body: 'x'.repeat(10 * 1024 * 1024 + 1) });
    expect(big.status).toBe(413);
    expect(await json(big)).toMatchObject({ error: 'Payload Too Large' });
    const notJson = await req('/events', { method: 'POST', body: '{"a":' });
    expect(notJson.status).toBe(400);
    expect((await json(notJson)).message).toMatch(/^body: /);
    // Every event rejected: 400, in the error shape, with the same list a 202 would carry.
    const obj = await req('/events', { method: 'POST', body: '"just a string"' });
    expect(obj.status).toBe(400);
    expect(await json(obj)).toMatchObject({
      error: 'Bad Request',
      accepted: 0,
      rejected: [{ index: 0, error: 'event must be a JSON object' }],
    });
  });

  it('takes CloudEvents in structured mode, one or a batch; event_id from (source, id); no time is rejected', async () => {
    const ce = (id: string, source: string, extra: object = {}) => ({
      specversion: '1.0',
      id,
      source,
      type: 'com.example.billing.session_start',
      time: '2025-07-01T09:00:00Z',
      data: { user_id: `ce-${id}`, team_id: 'ce-team', service: 'billing', session_id: `ce-s-${id}` },
      ...extra,
    });
    const one = await req('/events', {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents+json' },
      body: JSON.stringify(ce('1', '/billing')),
    });
    expect(one.status).toBe(202);
    expect(await json(one)).toEqual({ accepted: 1, rejected: [] });
    const { time: _t, ...noTime } = ce('3', '/billing');
    const batch = await req('/events', {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents-batch+json' },
      // The same id from another source is another event; the same (source, id) again is the same event.
      body: JSON.stringify([ce('1', '/billing'), ce('1', '/search'), noTime]),
    });
    expect(batch.status).toBe(202);
    expect(await json(batch)).toEqual({
      accepted: 2,
      rejected: [{ index: 2, error: 'time: is required for a CloudEvent' }],
    });
    const rs = await engine.ch.client.query({
      query: "SELECT DISTINCT event_id FROM usage_events WHERE team_id = 'ce-team' ORDER BY event_id",
      format: 'JSONEachRow',
    });
    const ids = (await rs.json<{ event_id: string }>()).map((r) => r.event_id);
    expect(ids).toEqual([cloudEventId('/billing', '1'), cloudEventId('/search', '1')].sort());
    const summary = await req(
      '/reports/usage-summary?start_date=2025-07-01&end_date=2025-07-01&team_id=ce-team',
    );
    expect(await summary.json()).toEqual({ total_users: 1, active_users: 1, total_sessions: 1 });
  });

  it('serves the JSON Schema files without credentials, as the repository holds them', async () => {
    for (const name of ['event', 'usage-event', 'log-event']) {
      const res = await req(`/schemas/${name}.json`, { token: null });
      expect(res.status, name).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^application\/schema\+json/);
      expect(await res.text()).toBe(readFileSync(`schemas/${name}.json`, 'utf8'));
    }
    const missing = await req('/schemas/nope.json', { token: null });
    expect(missing.status).toBe(400);
    expect(await json(missing)).toMatchObject({
      error: 'Bad Request',
      message: expect.stringMatching(/^name: /),
    });
    const ready = await json(await req('/readyz', { token: null }));
    expect(ready).toMatchObject({ status: 'ready', components: { storage: { state: 'ok' } } });
  });

  it('puts X-Request-Id on every response and answers health without auth', async () => {
    for (const path of ['/healthz', '/readyz', '/nope', '/reports/usage-summary']) {
      const res = await req(path, { token: null });
      expect(res.headers.get('x-request-id'), path).toMatch(/^[0-9a-f-]{36}$/);
    }
    expect((await req('/readyz', { token: null })).status).toBe(200);
    const spec = await json(await req('/openapi.json', { token: null }));
    expect(spec.openapi).toBe('3.1.0');
    expect(Object.keys(spec.paths ?? {})).toEqual(
      expect.arrayContaining(['/reports/usage-summary', '/events']),
    );
  });
});
