// Builds the Hono app from injected dependencies; tests call app.request() on it without a socket.
import { OpenAPIHono } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';
import { every } from 'hono/combine';
import { type ClickHouse, forApiReads } from '../clickhouse/client.ts';
import type { Sql } from '../control/db.ts';
import type { StatusSource } from '../core/health.ts';
import type { HttpLedger } from '../core/ledger.ts';
import type { Logger } from '../core/logger.ts';
import type { EventSink } from '../core/sink.ts';
import type { AppEnv } from './env.ts';
import { createErrorHandler, jsonError } from './errors.ts';
import type { ExportDeps } from './exports/deps.ts';
import { httpMetrics } from './metrics.ts';
import { type Authenticator, type AuthFailureReport, authenticate } from './middleware/auth.ts';
import {
  type BodyLimits,
  bufferedBody,
  declaredBodyLimit,
  JSON_BODY_BYTES,
} from './middleware/body-limit.ts';
import { corsFor } from './middleware/cors.ts';
import { requestId } from './middleware/request-id.ts';
import { sharedAnswer } from './middleware/shared-answer.ts';
import type { ReadCache } from './read-cache.ts';
import { adminKeyRoutes } from './routes/admin-keys.ts';
import { clickhouseRoutes, MAX_QUERY_BYTES, type SqlDeps } from './routes/clickhouse.ts';
import { docsRoutes } from './routes/docs.ts';
import { downloadRoutes } from './routes/downloads.ts';
import { eventRoutes, MAX_BODY_BYTES } from './routes/events.ts';
import { exportRoutes } from './routes/exports.ts';
import { healthRoutes } from './routes/health.ts';
import { ledgerRoutes } from './routes/ledger.ts';
import { logRoutes } from './routes/logs.ts';
import { completeDocument, metaRoutes } from './routes/meta.ts';
import { scheduleRoutes } from './routes/schedules.ts';
import { schemaRoutes } from './routes/schemas.ts';
import { timeseriesRoutes } from './routes/timeseries.ts';
import { usageRoutes } from './routes/usage.ts';
import type { ScheduleDeps } from './schedules/deps.ts';
import { securityHeaders } from './security-headers.ts';

export interface AppDeps {
  ch: ClickHouse;
  sink: EventSink;
  auth: Authenticator;
  logger: Logger;
  /** The per-identity limit (api/middleware/rate-limit.ts); bin/runtime.ts always installs one. */
  rateLimit?: MiddlewareHandler<AppEnv>;
  /** The per-identity limit of POST /events, a budget of its own (default: the same as `rateLimit`). */
  ingestRateLimit?: MiddlewareHandler<AppEnv>;
  /** The ingester of this process, shown by /readyz (npm start runs one when Kafka is configured). */
  ingester?: StatusSource;
  /** Told of every refused authentication (the system log of failed logins). */
  onAuthFailure?: (f: AuthFailureReport) => void;
  /** Export jobs and signed downloads; without them the export routes are not mounted. */
  exports?: ExportDeps;
  /** Scheduled exports; without them the schedule routes are not mounted. */
  schedules?: ScheduleDeps;
  /** Browser origins allowed to call the API (CORS_ALLOWED_ORIGINS); none by default. */
  corsOrigins?: readonly string[];
  /** The per-address bound of unauthenticated downloads (api/middleware/client-limit.ts). */
  downloadLimit?: MiddlewareHandler<AppEnv>;
  /** The control store whose API keys /admin/keys administers (what `npm run keys` calls); not mounted without it. */
  adminKeys?: Sql;
  /** Records POST /events arrivals in the ingestion ledger (ingest/ledger.ts); without it, nothing is recorded. */
  ledger?: HttpLedger;
  /** Answers of the read routes kept by data version (api/read-cache.ts); without it, every read is computed. */
  readCache?: ReadCache;
  /** /clickhouse (api/routes/clickhouse.ts): read-only SQL for data engineers; not mounted without it. */
  sql?: Omit<SqlDeps, 'auth' | 'onAuthFailure' | 'logger'>;
}

/** Where a request goes: 'ok' (an operation serves it), the methods its path serves (405), or none (404). */
export type Resolution = 'ok' | readonly string[] | undefined;

const METHOD_ORDER = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];

/**
 * Resolves requests against the operations the OpenAPI registry holds, as path patterns (an OpenAPI `{param}`
 * is one non-empty segment). Each route file registers what it serves, so 404 and 405 always agree with
 * GET /openapi.json: an operation left out of the document is a 404.
 */
export function routeTable(
  definitions: OpenAPIHono['openAPIRegistry']['definitions'],
): (method: string, path: string) => Resolution {
  const methods = new Map<string, Set<string>>();
  for (const d of definitions) {
    if (d.type !== 'route') continue;
    const set = methods.get(d.route.path) ?? new Set<string>();
    set.add(d.route.method.toUpperCase());
    methods.set(d.route.path, set);
  }
  // A `{param}` segment matches one non-empty segment; any other segment matches itself, literally.
  const segment = (s: string) => (/^\{[^}]+\}$/.test(s) ? '[^/]+' : s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  const entries = [...methods].map(([path, served]) => ({
    re: new RegExp(`^${path.split('/').map(segment).join('/')}$`),
    served,
    allow: [...served].sort((a, b) => METHOD_ORDER.indexOf(a) - METHOD_ORDER.indexOf(b)),
  }));
  return (method, path) => {
    let allow: readonly string[] | undefined;
    for (const e of entries) {
      if (!e.re.test(path)) continue;
      // HEAD is answered wherever GET is (Hono runs the GET handler and drops the body).
      if (e.served.has(method) || (method === 'HEAD' && e.served.has('GET'))) return 'ok';
      allow = e.allow;
    }
    return allow;
  };
}

/** The operations that take a body, and how large (api/middleware/body-limit.ts); every other takes none. */
export const BODY_LIMITS: BodyLimits = {
  'POST /events': MAX_BODY_BYTES,
  'POST /reports/export': JSON_BODY_BYTES,
  'POST /reports/export-schedules': JSON_BODY_BYTES,
  'POST /admin/keys': JSON_BODY_BYTES,
  'POST /clickhouse': MAX_QUERY_BYTES,
  'POST /clickhouse/': MAX_QUERY_BYTES,
};

/** The OpenAPI document's own fields; the paths come from the routes (api/routes/meta.ts completes them). */
const DOCUMENT_INFO = {
  openapi: '3.1.0',
  info: {
    title: 'Tally',
    version: '0.1.0',
    description:
      'Usage and system-log analytics over Kafka and ClickHouse. Errors are always JSON ' +
      '{"error": "<standard name>", "message": "..."}; every response carries X-Request-Id, and every ' +
      'authenticated one RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset. An unknown path is 404 and ' +
      'a known path with another method 405 with Allow, in the same shape, with or without credentials. Read ' +
      'routes answer CSV with ?format=csv or Accept: text/csv.',
  },
};

export function createApp(deps: AppDeps) {
  const app = new OpenAPIHono<AppEnv>();
  app.use('*', requestId);
  app.use('*', securityHeaders);
  if (deps.corsOrigins && deps.corsOrigins.length > 0) app.use('*', corsFor(deps.corsOrigins));
  app.use('*', httpMetrics);
  // The route and the method are settled before anything else, credentials included: an unknown path is 404
  // and a wrong method 405 for everyone, and authentication only ever runs for an operation that exists.
  // (The table and the document are built at the end, once every route is registered.)
  let resolve = routeTable([]);
  let document: object | undefined;
  app.use('*', async (c, next) => {
    const found = resolve(c.req.method, c.req.path);
    if (found === undefined) return jsonError(c, 404, `no route ${c.req.method} ${c.req.path}`);
    if (found !== 'ok') {
      return jsonError(c, 405, `${c.req.method} is not allowed on ${c.req.path}`, {
        Allow: found.join(', '),
      });
    }
    await next();
  });
  app.use('*', declaredBodyLimit(BODY_LIMITS));
  if (deps.downloadLimit) app.use('/downloads/*', deps.downloadLimit);
  // Readiness is asked of the storage at most once a second, however many probes poll it.
  app.use('/readyz', sharedAnswer());
  app.onError(createErrorHandler(deps.logger));
  // Only reached by a request the table let through that no handler took (not expected; kept as the backstop).
  app.notFound((c) => jsonError(c, 404, `no route ${c.req.method} ${c.req.path}`));

  // The API's own queries are bounded in time (a hanging storage is a 503, not a request held for minutes);
  // ingestion (the sink) and the export workers keep the unbounded client, their work is long by nature.
  const reads = forApiReads(deps.ch);
  const exportsDeps = deps.exports;

  app.route('/', healthRoutes(reads, deps.ingester ? { ingester: deps.ingester } : {}));
  app.route('/', docsRoutes());
  app.route(
    '/',
    metaRoutes(() => document),
  );
  // The event schema as JSON Schema files: public, like the OpenAPI document.
  app.route('/', schemaRoutes());
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description: 'A JWT with sub and exp; scopes read:analytics, write:events, report_admin',
  });
  app.openAPIRegistry.registerComponent('securitySchemes', 'apiKey', {
    type: 'apiKey',
    in: 'header',
    name: 'X-API-Key',
    description: 'A service API key (API_KEYS_FILE)',
  });

  // Authenticate, then count the request against the identity's limit: refused credentials spend no budget.
  const authed = every(authenticate(deps.auth, deps.onAuthFailure), deps.rateLimit ?? ((_c, next) => next()));
  app.use('/reports/*', authed);
  app.use('/logs/*', authed);
  // Writes have their own budget: a producer posting one request per event must not spend the reads'.
  app.use(
    '/events',
    every(
      authenticate(deps.auth, deps.onAuthFailure),
      deps.ingestRateLimit ?? deps.rateLimit ?? ((_c, next) => next()),
    ),
  );
  app.use('/ingest/*', authed);
  app.use('/admin/*', authed);
  // Bodies are read only past authentication; POST /events streams its own, bounded as it reads.
  // /clickhouse reads its own body, once the caller is known (api/routes/clickhouse.ts).
  app.use('*', bufferedBody(BODY_LIMITS, ['POST /events', 'POST /clickhouse', 'POST /clickhouse/']));
  app.route('/', usageRoutes(reads, deps.readCache));
  app.route('/', timeseriesRoutes(reads, deps.readCache));
  app.route('/', logRoutes(reads, deps.readCache));
  app.route('/', eventRoutes(deps.sink, deps.ledger));
  app.route('/', ledgerRoutes(reads, deps.readCache));
  if (exportsDeps) {
    app.route('/', exportRoutes(exportsDeps));
    // Signed links carry their own authorization: no bearer token, outside /reports/*.
    app.route('/', downloadRoutes(exportsDeps));
  }
  if (deps.schedules) {
    app.route('/', scheduleRoutes(deps.schedules));
  }

  if (deps.adminKeys) app.route('/', adminKeyRoutes(deps.adminKeys));
  // Authenticates and limits by itself: its errors are ClickHouse's text, not the API's JSON.
  if (deps.sql) {
    app.openAPIRegistry.registerComponent('securitySchemes', 'basic', {
      type: 'http',
      scheme: 'basic',
      description: '/clickhouse only: user = API key id, password = the whole key',
    });
    app.route(
      '/',
      clickhouseRoutes({
        ...deps.sql,
        auth: deps.auth,
        logger: deps.logger,
        ...(deps.onAuthFailure ? { onAuthFailure: deps.onAuthFailure } : {}),
      }),
    );
  }
  // Once every route is registered: neither the routes nor the document change while the app runs.
  resolve = routeTable(app.openAPIRegistry.definitions);
  document = completeDocument(app.getOpenAPI31Document(DOCUMENT_INFO), {
    rateLimited: deps.rateLimit !== undefined,
    bodyLimits: BODY_LIMITS,
  });
  return app;
}
