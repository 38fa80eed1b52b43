// The service surface around the reports on the real engine: OpenAPI completeness (every route of a full app,
// exports and schedules included, with its answers and headers, checked against real answers), /docs, /metrics,
// health, the error model (404 and 405 before authentication, 413, 503 with Retry-After when the storage does
// not answer or hangs), X-Request-Id, and hostile strings in every parameter answered 200 or 400, never 500.
import { createServer, type Socket } from 'node:net';
import { ClickHouseLogLevel } from '@clickhouse/client';
import fc from 'fast-check';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../api/app.ts';
import { createErrorHandler } from '../../api/errors.ts';
import type { ExportDeps } from '../../api/exports/deps.ts';
import { JobAdmission } from '../../api/exports/quota.ts';
import { type AuthFailureReport, createAuthenticator } from '../../api/middleware/auth.ts';
import { createRateLimit } from '../../api/middleware/rate-limit.ts';
import { limitPolicy } from '../../api/middleware/rate-limit-store.ts';
import { serverClickHouse } from '../../clickhouse/engine/server.ts';
import { ExportStore } from '../../core/exports/store.ts';
import { createLogger } from '../../core/logger.ts';
import { mintToken } from '../../core/tokens.ts';
import { WebhookAllowList } from '../../core/webhooks/allow-list.ts';
import { createDirectSink } from '../../ingest/direct.ts';
import { generateDataset } from '../../ingest/loadgen/generate.ts';
import { memoryControl } from '../helpers/control.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';

const SECRET = 'ops-test-secret-ops-test-secret-ops-0123456';
const auth = createAuthenticator({ secret: SECRET, issuer: undefined, audience: undefined });

interface Header {
  required?: boolean;
  schema: { type?: string; pattern?: string };
}
interface Operation {
  parameters?: Array<{ name: string }>;
  security?: Array<Record<string, string[]>>;
  requestBody?: { content: Record<string, { schema: { $ref?: string } }> };
  responses: Record<string, { headers?: Record<string, Header>; content?: object }>;
}
interface OpenApiDoc {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: {
    securitySchemes: Record<string, unknown>;
    schemas: Record<string, { required?: string[]; properties?: Record<string, unknown>; anyOf?: unknown[] }>;
    responses: Record<string, { headers?: Record<string, Header> }>;
  };
}

const RATE_LIMIT = ['RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset'];

/** Every header the document says an answer must carry is on the real answer, and integers are integers. */
function expectDocumentedHeaders(doc: OpenApiDoc, method: string, path: string, res: Response): void {
  const op = doc.paths[path]?.[method];
  const documented = op?.responses[String(res.status)];
  expect(documented, `${method} ${path} ${res.status} is documented`).toBeDefined();
  for (const [name, h] of Object.entries(documented?.headers ?? {})) {
    const value = res.headers.get(name);
    if (h.required) expect(value, `${method} ${path} ${res.status}: ${name}`).not.toBeNull();
    if (value !== null && h.schema.type === 'integer') expect(value, name).toMatch(/^\d+$/);
    if (value !== null && h.schema.pattern) expect(value, name).toMatch(new RegExp(h.schema.pattern));
  }
}

/** A TCP listener that accepts connections and never answers: a storage that hangs. */
async function hangingServer(): Promise<{ url: string; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

describe('service surface', () => {
  let engine: TestEngine;
  let app: ReturnType<typeof createApp>;
  let admin: string;
  let doc: OpenApiDoc;
  const authFailures: AuthFailureReport[] = [];
  const get = (path: string, init: RequestInit = {}) =>
    app.request(path, { ...init, headers: { authorization: `Bearer ${admin}`, ...(init.headers ?? {}) } });

  beforeAll(async () => {
    engine = await openTestEngine();
    // A full app, as bin/runtime.ts builds it: exports, schedules and the per-identity limit mounted, so the
    // document and the error model are checked on every route. The limit is high: not under test here.
    const exportDeps: ExportDeps = {
      control: await memoryControl(),
      admission: new JobAdmission(await memoryControl(), 1000),
      store: new ExportStore(`${engine.dataDir}/exports`),
      keys: { current: 'k1', keys: new Map([['k1', Buffer.alloc(32, 7)]]) },
      publicBaseUrl: 'https://tally.example.test',
      urlTtlSeconds: 600,
    };
    app = createApp({
      ch: engine.ch,
      sink: createDirectSink(engine.ch),
      logger: createLogger('silent'),
      auth,
      rateLimit: createRateLimit({ policy: limitPolicy(1_000_000, new Map()) }),
      onAuthFailure: (f) => authFailures.push(f),
      exports: exportDeps,
      schedules: {
        exports: exportDeps,
        allow: new WebhookAllowList(['hooks.example.com']),
        perUser: 5,
      },
    });
    admin = await mintToken(SECRET, { sub: 'admin' });
    const { events } = generateDataset({ events: 3_000, seed: 5, days: 20 });
    const res = await get('/events', { method: 'POST', body: JSON.stringify(events) });
    expect(res.status).toBe(202);
    doc = (await (await app.request('/openapi.json')).json()) as OpenApiDoc;
  });
  afterAll(async () => engine?.dispose());

  it('documents every route, parameter and error of the contract in OpenAPI 3.1', async () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.components.securitySchemes).sort()).toEqual(['apiKey', 'bearer']);
    const params = (path: string) => (doc.paths[path]?.get?.parameters ?? []).map((p) => p.name).sort();
    expect(params('/reports/usage-summary')).toEqual([
      'csv_escape',
      'end_date',
      'format',
      'service',
      'start_date',
      'team_id',
      'user_id',
    ]);
    expect(params('/reports/usage-timeseries')).toEqual([
      'csv_escape',
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
      'csv_escape',
      'cursor',
      'end_date',
      'format',
      'limit',
      'page',
      'service',
      'severity',
      'start_date',
    ]);
    expect(params('/ingest/ledger')).toEqual([
      'csv_escape',
      'end_date',
      'format',
      'service',
      'start_date',
      'team_id',
    ]);
    for (const path of [
      '/reports/usage-summary',
      '/reports/usage-timeseries',
      '/logs/system-events',
      '/ingest/ledger',
    ]) {
      const op = doc.paths[path]?.get;
      expect(Object.keys(op?.responses ?? {}).sort(), path).toEqual([
        '200',
        '400',
        '401',
        '403',
        '413',
        '429',
        '500',
        '503',
      ]);
      expect(Object.keys(op?.responses['200']?.content ?? {}).sort()).toEqual([
        'application/json',
        'text/csv',
      ]);
    }
    expect(Object.keys(doc.paths).sort()).toEqual(
      [
        '/',
        '/docs',
        '/docs/{file}',
        '/downloads/{job_id}',
        '/events',
        '/healthz',
        '/ingest/ledger',
        '/logs/system-events',
        '/metrics',
        '/openapi.json',
        '/readyz',
        '/reports/export',
        '/reports/export-schedules',
        '/reports/export-schedules/{schedule_id}',
        '/reports/export-schedules/{schedule_id}/runs',
        '/reports/export/{job_id}',
        '/reports/usage-summary',
        '/reports/usage-timeseries',
        '/schemas/{name}',
      ].sort(),
    );
    expect(Object.keys(doc.paths['/reports/export-schedules/{schedule_id}'] ?? {}).sort()).toEqual([
      'delete',
      'get',
    ]);
    for (const path of ['/reports/export/{job_id}', '/reports/export-schedules/{schedule_id}']) {
      expect(Object.keys(doc.paths[path]?.get?.responses ?? {}), path).toContain('404');
    }
  });

  it('states the headers of every answer: X-Request-Id, RateLimit-*, Retry-After, WWW-Authenticate', async () => {
    let operations = 0;
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        operations++;
        const where = `${method} ${path}`;
        const secured = (op.security ?? []).some((s) => Object.keys(s).length > 0);
        // A declared body over the limit is refused on any route, before the route runs.
        expect(Object.keys(op.responses), where).toContain('413');
        for (const [status, r] of Object.entries(op.responses)) {
          const h = r.headers ?? {};
          expect(h['X-Request-Id']?.required, `${where} ${status}`).toBe(true);
          if (status === '401') expect(h['WWW-Authenticate']?.required, `${where} 401`).toBe(true);
          if (status === '429' || status === '503') {
            expect(h['Retry-After'], `${where} ${status}`).toMatchObject({
              required: true,
              schema: { type: 'integer' },
            });
          }
          for (const name of RATE_LIMIT) {
            if (!secured || status === '401') expect(h[name], `${where} ${status} ${name}`).toBeUndefined();
            else expect(h[name], `${where} ${status} ${name}`).toBeDefined();
          }
          // Counted answers always carry the limit; a 413, 500 or 503 may come before the limiter ran.
          if (secured && /^(2..|400|403|404|429)$/.test(status)) {
            for (const name of RATE_LIMIT) expect(h[name]?.required, `${where} ${status} ${name}`).toBe(true);
          }
        }
      }
    }
    expect(operations).toBe(21);
    expect(Object.keys(doc.paths['/logs/system-events']?.get?.responses['200']?.headers ?? {})).toEqual(
      expect.arrayContaining(['X-Page', 'X-Total-Pages', 'X-Next-Cursor']),
    );
    expect(doc.components.responses.MethodNotAllowed?.headers?.Allow?.required).toBe(true);
    expect(doc.components.responses.NotFound?.headers?.['X-Request-Id']?.required).toBe(true);
  });

  it('documents the POST /events body: events per the contract, a JSON array or NDJSON', async () => {
    const body = doc.paths['/events']?.post?.requestBody?.content ?? {};
    expect(Object.keys(body).sort()).toEqual(['application/json', 'application/x-ndjson']);
    expect(body['application/json']?.schema.$ref).toBe('#/components/schemas/EventsBody');
    const { schemas } = doc.components;
    expect(schemas.UsageEvent?.required?.sort()).toEqual(
      ['event_id', 'service', 'team_id', 'timestamp', 'type', 'user_id'].sort(),
    );
    expect(Object.keys(schemas.UsageEvent?.properties ?? {})).toEqual(
      expect.arrayContaining(['session_id', 'attributes']),
    );
    expect(schemas.LogEvent?.required?.sort()).toEqual(
      ['event_id', 'message', 'service', 'severity', 'timestamp', 'type'].sort(),
    );
    // Documented, not enforced: items that are not valid events are 202 with `rejected`, as the contract says
    // (400 with the same list when none is valid).
    expect(JSON.stringify(schemas.EventsBody)).toContain('"maxItems":10000');
    const valid = {
      event_id: 'doc-ok',
      type: 'activity',
      timestamp: '2025-01-02T10:00:00Z',
      user_id: 'u1',
      team_id: 't1',
      service: 'billing',
    };
    const res = await get('/events', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([{ event_id: 'x' }, 42, valid]),
    });
    expect(res.status).toBe(202);
    expect(((await res.json()) as { rejected: unknown[] }).rejected).toHaveLength(2);
    expectDocumentedHeaders(doc, 'post', '/events', res);
    const none = await get('/events', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([{ event_id: 'x' }, 42]),
    });
    expect(none.status).toBe(400);
    expect(((await none.json()) as { rejected: unknown[] }).rejected).toHaveLength(2);
    expectDocumentedHeaders(doc, 'post', '/events', none);
  });

  it('real answers carry what the document says, on every kind of route and status', async () => {
    const reader = await mintToken(SECRET, { sub: 'reader', scope: 'read:analytics' });
    const cases: Array<[string, string, string, RequestInit?, string?]> = [
      ['get', '/reports/usage-summary', '/reports/usage-summary?start_date=2025-01-01&end_date=2025-01-31'],
      ['get', '/reports/usage-summary', '/reports/usage-summary?start_date=2025-02-01&end_date=2025-01-31'],
      ['get', '/logs/system-events', '/logs/system-events?limit=2&format=csv'],
      ['get', '/ingest/ledger', '/ingest/ledger?start_date=2025-01-01&end_date=2025-01-31&format=csv'],
      ['get', '/logs/system-events', '/logs/system-events?limit=2', {}, 'none'],
      ['post', '/reports/export', '/reports/export', { method: 'POST', body: '{}' }, reader],
      [
        'post',
        '/reports/export',
        '/reports/export',
        {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ report_type: 'system-events', format: 'csv' }),
        },
      ],
      ['get', '/reports/export/{job_id}', '/reports/export/no-such-job'],
      ['get', '/reports/export-schedules', '/reports/export-schedules'],
      ['get', '/downloads/{job_id}', '/downloads/no-such-job?exp=1&kid=k1&sig=x', {}, 'none'],
      ['get', '/healthz', '/healthz', {}, 'none'],
      ['get', '/readyz', '/readyz', {}, 'none'],
      ['get', '/metrics', '/metrics', {}, 'none'],
      [
        'get',
        '/logs/system-events',
        '/logs/system-events',
        { headers: { 'content-length': String(11 * 1024 * 1024) } },
      ],
    ];
    const seen = new Set<number>();
    for (const [method, template, url, init = {}, token = admin] of cases) {
      const authz: Record<string, string> = token === 'none' ? {} : { authorization: `Bearer ${token}` };
      const res = await app.request(url, {
        ...init,
        headers: { ...authz, ...((init.headers as Record<string, string> | undefined) ?? {}) },
      });
      seen.add(res.status);
      expectDocumentedHeaders(doc, method, template, res);
      await res.arrayBuffer();
    }
    expect([...seen].sort()).toEqual([200, 202, 400, 401, 403, 404, 413].sort());
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

  it('settles the route and the method before authentication: 404 and 405 with or without credentials', async () => {
    const credentials: Array<[string, Record<string, string>]> = [
      ['none', {}],
      ['valid', { authorization: `Bearer ${admin}` }],
      ['invalid', { authorization: 'Bearer not-a-token' }],
      ['api key', { 'x-api-key': 'tk_nope' }],
    ];
    const before = authFailures.length;
    for (const [who, headers] of credentials) {
      for (const path of [
        '/nope',
        '/reports/nothing',
        '/reports/usage-summary/',
        '/logs',
        '/reports/export/',
      ]) {
        const res = await app.request(path, { headers });
        expect(res.status, `${who} GET ${path}`).toBe(404);
        expect(await res.json()).toMatchObject({ error: 'Not Found' });
        expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
        expect(res.headers.get('www-authenticate')).toBeNull();
      }
      const wrong: Array<[string, string, string]> = [
        ['PUT', '/reports/usage-summary', 'GET'],
        ['DELETE', '/reports/usage-timeseries', 'GET'],
        ['POST', '/logs/system-events', 'GET'],
        ['GET', '/events', 'POST'],
        ['PATCH', '/reports/export', 'POST'],
        ['DELETE', '/reports/export/any-job', 'GET'],
        ['PUT', '/reports/export-schedules', 'GET, POST'],
        ['POST', '/reports/export-schedules/any-schedule', 'GET, DELETE'],
        ['DELETE', '/reports/export-schedules/any-schedule/runs', 'GET'],
        ['POST', '/downloads/any-job', 'GET'],
        ['POST', '/healthz', 'GET'],
        ['OPTIONS', '/reports/usage-summary', 'GET'],
      ];
      for (const [method, path, allow] of wrong) {
        const res = await app.request(path, { method, headers });
        expect(res.status, `${who} ${method} ${path}`).toBe(405);
        expect(res.headers.get('allow'), `${who} ${method} ${path}`).toBe(allow);
        expect(await res.json()).toMatchObject({ error: 'Method Not Allowed' });
        expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
      }
    }
    // Nothing above reached authentication: no failed login was recorded.
    expect(authFailures.length).toBe(before);
    // A known route still needs credentials (HEAD is GET without the body).
    for (const method of ['GET', 'HEAD']) {
      const res = await app.request('/reports/usage-summary?start_date=2025-01-01&end_date=2025-01-02', {
        method,
      });
      expect(res.status, method).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    }
    expect(authFailures.length).toBe(before + 2);
    // Every documented operation is served: without credentials none of them is a 404 or a 405.
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const method of Object.keys(ops)) {
        // The documentation's files are named, not any value: one that exists.
        const url = path === '/docs/{file}' ? '/docs/swagger-ui.css' : path.replace(/\{[^}]+\}/g, 'x');
        const res = await app.request(url, { method: method.toUpperCase() });
        expect([404, 405], `${method} ${url}: ${res.status}`).not.toContain(res.status);
        await res.arrayBuffer();
      }
    }
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
    const down = serverClickHouse('http://127.0.0.1:1', 'analytics', {
      readTimeoutMs: 2_000,
      log: { level: ClickHouseLogLevel.OFF },
    });
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
      await down.close();
    }
  });

  it('answers 503 with Retry-After in bounded time when the storage accepts and never answers', async () => {
    const hang = await hangingServer();
    // The API's reads wait 1.5 s here (30 s by default); the main client, for exports and ingestion, 300 s.
    const ch = serverClickHouse(hang.url, 'analytics', {
      readTimeoutMs: 1_500,
      log: { level: ClickHouseLogLevel.OFF },
    });
    const stuck = createApp({
      ch,
      sink: createDirectSink(ch),
      logger: createLogger('silent'),
      auth,
      rateLimit: createRateLimit({ policy: limitPolicy(1_000, new Map()) }),
    });
    let longSettled = false;
    const long = ch.client
      .query({ query: 'SELECT 1', format: 'JSONEachRow' })
      .then(
        () => undefined,
        () => undefined,
      )
      .finally(() => {
        longSettled = true;
      });
    const headers = { authorization: `Bearer ${admin}` };
    try {
      for (const [template, url] of [
        ['/reports/usage-summary', '/reports/usage-summary?start_date=2025-01-01&end_date=2025-01-02'],
        [
          '/reports/usage-timeseries',
          '/reports/usage-timeseries?start_date=2025-01-01&end_date=2025-01-02&interval=day',
        ],
        ['/logs/system-events', '/logs/system-events'],
      ] as const) {
        const started = Date.now();
        const res = await stuck.request(url, { headers });
        const ms = Date.now() - started;
        expect(res.status, template).toBe(503);
        expect(ms, template).toBeGreaterThanOrEqual(1_000);
        expect(ms, template).toBeLessThan(10_000);
        expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
        expect(await res.json()).toEqual({
          error: 'Service Unavailable',
          message: 'the storage did not answer in time; try again shortly',
        });
        expectDocumentedHeaders(doc, 'get', template, res);
      }
      const started = Date.now();
      const ready = await stuck.request('/readyz');
      expect(ready.status).toBe(503);
      expect(ready.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(Date.now() - started).toBeLessThan(10_000);
      expect((await stuck.request('/healthz')).status).toBe(200);
      // Several read timeouts later, a query on the main client still waits: long work is not cut short.
      expect(longSettled).toBe(false);
    } finally {
      await hang.close();
      await long;
      await ch.close();
    }
  });

  it('answers 503 with Retry-After when the engine stops a query at max_execution_time', async () => {
    const err = await engine.ch.client
      .query({
        query:
          'SELECT sleepEachRow(0.2) FROM numbers(30) SETTINGS max_block_size = 1, max_execution_time = 1',
        format: 'JSONEachRow',
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toMatchObject({ type: 'TIMEOUT_EXCEEDED' });
    const h = new Hono();
    h.onError(createErrorHandler(createLogger('silent')));
    h.get('/', () => {
      throw err;
    });
    const res = await h.request('/');
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
    const body = await res.text();
    expect(JSON.parse(body)).toMatchObject({ error: 'Service Unavailable' });
    expect(body).not.toMatch(/Code: |DB::Exception|elapsed/);
  });
});
