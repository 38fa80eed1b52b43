// The service surface around the reports on the real engine: OpenAPI completeness, /docs, /metrics, health,
// the error model (404, 405, 413, 503 with Retry-After when the storage does not answer), X-Request-Id, and
// hostile strings in every parameter answered 200 or 400, never 500.
import { ClickHouseLogLevel, createClient } from '@clickhouse/client';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../api/app.ts';
import { createAuthenticator } from '../../api/middleware/auth.ts';
import type { ClickHouse } from '../../clickhouse/client.ts';
import { createLogger } from '../../core/logger.ts';
import { mintToken } from '../../core/tokens.ts';
import { createDirectSink } from '../../ingest/direct.ts';
import { generateDataset } from '../../ingest/loadgen/generate.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';

const SECRET = 'ops-test-secret-ops-test-secret-ops-0123456';
const auth = createAuthenticator({ secret: SECRET, issuer: undefined, audience: undefined });

interface OpenApiDoc {
  openapi: string;
  paths: Record<
    string,
    Record<string, { parameters?: Array<{ name: string }>; responses: Record<string, unknown> }>
  >;
  components: { securitySchemes: Record<string, unknown> };
}

describe('service surface', () => {
  let engine: TestEngine;
  let app: ReturnType<typeof createApp>;
  let admin: string;
  const get = (path: string, init: RequestInit = {}) =>
    app.request(path, { ...init, headers: { authorization: `Bearer ${admin}`, ...(init.headers ?? {}) } });

  beforeAll(async () => {
    engine = await openTestEngine();
    app = createApp({
      ch: engine.ch,
      sink: createDirectSink(engine.ch),
      logger: createLogger('silent'),
      auth,
    });
    admin = await mintToken(SECRET, { sub: 'admin' });
    const { events } = generateDataset({ events: 3_000, seed: 5, days: 20 });
    const res = await get('/events', { method: 'POST', body: JSON.stringify(events) });
    expect(res.status).toBe(202);
  });
  afterAll(async () => engine?.dispose());

  it('documents every route, parameter and error of the contract in OpenAPI 3.1', async () => {
    const res = await app.request('/openapi.json');
    expect(res.status).toBe(200);
    const doc = (await res.json()) as OpenApiDoc;
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.components.securitySchemes).sort()).toEqual(['apiKey', 'bearer']);
    const params = (path: string) => (doc.paths[path]?.get?.parameters ?? []).map((p) => p.name).sort();
    expect(params('/reports/usage-summary')).toEqual([
      'end_date',
      'format',
      'service',
      'start_date',
      'team_id',
      'user_id',
    ]);
    expect(params('/reports/usage-timeseries')).toEqual([
      'end_date',
      'format',
      'group_by',
      'interval',
      'service',
      'start_date',
      'team_id',
      'user_id',
    ]);
    expect(params('/logs/system-events')).toEqual([
      'cursor',
      'end_date',
      'format',
      'limit',
      'page',
      'service',
      'severity',
      'start_date',
    ]);
    for (const path of ['/reports/usage-summary', '/reports/usage-timeseries', '/logs/system-events']) {
      const op = doc.paths[path]?.get;
      expect(Object.keys(op?.responses ?? {}).sort(), path).toEqual([
        '200',
        '400',
        '401',
        '403',
        '429',
        '500',
        '503',
      ]);
      expect(
        Object.keys((op?.responses['200'] as { content: object } | undefined)?.content ?? {}).sort(),
      ).toEqual(['application/json', 'text/csv']);
    }
    expect(Object.keys(doc.paths).sort()).toEqual(
      [
        '/',
        '/docs',
        '/events',
        '/healthz',
        '/logs/system-events',
        '/metrics',
        '/openapi.json',
        '/readyz',
        '/reports/usage-summary',
        '/reports/usage-timeseries',
      ].sort(),
    );
  });

  it('serves interactive docs and a start page without auth', async () => {
    const docs = await app.request('/docs');
    expect(docs.status).toBe(200);
    expect(docs.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await docs.text()).toContain('/openapi.json');
    const home = await app.request('/');
    expect(await home.text()).toMatch(/Token/);
  });

  it('counts requests and latency by route pattern and status in /metrics', async () => {
    await get('/logs/system-events?limit=3');
    await get('/logs/system-events?limit=0');
    await get(
      '/reports/usage-timeseries?start_date=2025-01-01&end_date=2025-01-07&interval=day&team_id=secret-team',
    );
    await get('/no/such/user-42');
    const res = await app.request('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    expect(text).toMatch(
      /tally_http_requests_total\{method="GET",route="\/logs\/system-events",status="200"\} [1-9]/,
    );
    expect(text).toMatch(
      /tally_http_requests_total\{method="GET",route="\/logs\/system-events",status="400"\} [1-9]/,
    );
    expect(text).toMatch(
      /tally_http_request_duration_seconds_bucket\{le="0.1",method="GET",route="\/reports\/usage-timeseries",status="200"\}/,
    );
    expect(text).toMatch(/route="unmatched",status="404"/);
    // No raw path, id or tenant value in any label.
    expect(text).not.toMatch(/user-42|secret-team|limit=/);
  });

  it('answers the error model: 404 and 405 in JSON, 413 on large bodies, X-Request-Id everywhere', async () => {
    const nf = await get('/reports/nothing');
    expect(nf.status).toBe(404);
    expect(await nf.json()).toMatchObject({ error: 'Not Found' });
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const na = await get('/logs/system-events', { method });
      expect(na.status, method).toBe(405);
      expect(na.headers.get('allow')).toBe('GET');
      expect(await na.json()).toMatchObject({ error: 'Method Not Allowed' });
    }
    const big = await get('/logs/system-events', { headers: { 'content-length': String(11 * 1024 * 1024) } });
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ error: 'Payload Too Large' });
    for (const path of ['/metrics', '/docs', '/logs/system-events', '/reports/usage-timeseries', '/x']) {
      expect((await get(path)).headers.get('x-request-id'), path).toMatch(/^[0-9a-f-]{36}$/);
    }
    const unauth = await app.request('/logs/system-events');
    expect(unauth.status).toBe(401);
    expect(unauth.headers.get('www-authenticate')).toMatch(/^Bearer/);
  });

  it('hostile strings in every parameter give 200 or 400 in the error shape, never 500', async () => {
    const hostile = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.constantFrom(
        "' OR 1=1 --",
        "x'); DROP TABLE log_events; --",
        '{start_date:Date}',
        '\\',
        '\u0000',
        '%00',
        "2025-01-01' UNION SELECT 1 --",
        '9'.repeat(40),
        '-1',
        'NaN',
        'ünïcödé 🦆',
      ),
    );
    const routes: Array<[string, string[], Record<string, string>]> = [
      [
        '/reports/usage-summary',
        ['start_date', 'end_date', 'user_id', 'team_id', 'service', 'format'],
        { start_date: '2025-01-01', end_date: '2025-01-31' },
      ],
      [
        '/reports/usage-timeseries',
        ['start_date', 'end_date', 'interval', 'group_by', 'user_id', 'team_id', 'service', 'format'],
        { start_date: '2025-01-01', end_date: '2025-01-31', interval: 'week' },
      ],
      [
        '/logs/system-events',
        ['limit', 'page', 'severity', 'service', 'start_date', 'end_date', 'cursor', 'format'],
        {},
      ],
    ];
    let ok = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...routes),
        fc.nat(7),
        hostile,
        async ([path, names, base], i, value) => {
          const name = names[i % names.length] as string;
          const q = new URLSearchParams({ ...base, [name]: value });
          const res = await get(`${path}?${q}`);
          const body = await res.text();
          expect([200, 400], `${path} ${name}=${JSON.stringify(value)}: ${body}`).toContain(res.status);
          if (res.status === 200) ok++;
          else
            expect(JSON.parse(body)).toEqual({
              error: 'Bad Request',
              message: expect.stringMatching(/^[a-z_]+: /),
            });
          expect(body).not.toMatch(/SELECT|FROM |Code: \d+|at .*\.ts:/);
        },
      ),
      { numRuns: 300, seed: 4242 },
    );
    expect(ok).toBeGreaterThan(10);
  });

  it('answers 503 with Retry-After when the storage does not answer, and readyz says so', async () => {
    // Nothing listens on port 1; the client's own error log is silenced (the 503 is what is under test).
    const client = createClient({
      url: 'http://127.0.0.1:1',
      request_timeout: 2_000,
      log: { level: ClickHouseLogLevel.OFF },
    });
    const down: ClickHouse = { client, embedded: false, database: 'analytics', close: () => client.close() };
    const broken = createApp({
      ch: down,
      sink: createDirectSink(down),
      logger: createLogger('silent'),
      auth,
    });
    const headers = { authorization: `Bearer ${admin}` };
    try {
      for (const path of [
        '/reports/usage-summary?start_date=2025-01-01&end_date=2025-01-02',
        '/reports/usage-timeseries?start_date=2025-01-01&end_date=2025-01-02&interval=day',
        '/logs/system-events',
      ]) {
        const res = await broken.request(path, { headers });
        expect(res.status, path).toBe(503);
        expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
        expect(await res.json()).toMatchObject({ error: 'Service Unavailable' });
      }
      expect((await broken.request('/readyz')).status).toBe(503);
      expect((await broken.request('/healthz')).status).toBe(200);
    } finally {
      await client.close();
    }
  });
});
