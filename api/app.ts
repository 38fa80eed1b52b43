// Builds the Hono app from injected dependencies; tests call app.request() on it without a socket.
import { OpenAPIHono } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';
import { every } from 'hono/combine';
import { createMiddleware } from 'hono/factory';
import type { ClickHouse } from '../clickhouse/client.ts';
import { PayloadTooLarge } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { EventSink } from '../core/sink.ts';
import type { AppEnv } from './env.ts';
import { createErrorHandler, jsonError } from './errors.ts';
import type { ExportDeps } from './exports/deps.ts';
import { httpMetrics } from './metrics.ts';
import { type Authenticator, type AuthFailureReport, authenticate } from './middleware/auth.ts';
import { requestId } from './middleware/request-id.ts';
import { downloadRoutes } from './routes/downloads.ts';
import { eventRoutes, MAX_BODY_BYTES } from './routes/events.ts';
import { exportRoutes } from './routes/exports.ts';
import { healthRoutes } from './routes/health.ts';
import { logRoutes } from './routes/logs.ts';
import { metaRoutes } from './routes/meta.ts';
import { scheduleRoutes } from './routes/schedules.ts';
import { timeseriesRoutes } from './routes/timeseries.ts';
import { usageRoutes } from './routes/usage.ts';
import type { ScheduleDeps } from './schedules/deps.ts';

export interface AppDeps {
  ch: ClickHouse;
  sink: EventSink;
  auth: Authenticator;
  logger: Logger;
  /** The per-identity limit (api/middleware/rate-limit.ts); bin/runtime.ts always installs one. */
  rateLimit?: MiddlewareHandler<AppEnv>;
  /** Told of every refused authentication (the system log of failed logins). */
  onAuthFailure?: (f: AuthFailureReport) => void;
  /** Export jobs and signed downloads; without them the export routes are not mounted. */
  exports?: ExportDeps;
  /** Scheduled exports; without them the schedule routes are not mounted. */
  schedules?: ScheduleDeps;
}

// Paths served, by method: an existing path with another method is 405, anything else 404.
const ROUTES: Record<string, readonly string[]> = {
  '/': ['GET'],
  '/healthz': ['GET'],
  '/readyz': ['GET'],
  '/metrics': ['GET'],
  '/openapi.json': ['GET'],
  '/docs': ['GET'],
  '/reports/usage-summary': ['GET'],
  '/reports/usage-timeseries': ['GET'],
  '/logs/system-events': ['GET'],
  '/events': ['POST'],
  '/reports/export': ['POST'],
  '/reports/export-schedules': ['GET', 'POST'],
};

// No route takes a body larger than POST /events does; the declared length is refused before any read
// (POST /events also counts the bytes as they stream in, for bodies sent without a length).
const declaredBodyLimit = createMiddleware(async (c, next) => {
  const declared = Number(c.req.header('content-length') ?? '');
  if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) {
    throw new PayloadTooLarge(`the body is larger than ${MAX_BODY_BYTES} bytes`);
  }
  await next();
});

export function createApp(deps: AppDeps) {
  const app = new OpenAPIHono<AppEnv>();
  app.use('*', requestId);
  app.use('*', httpMetrics);
  app.use('*', declaredBodyLimit);
  app.onError(createErrorHandler(deps.logger));
  app.notFound((c) => {
    const allowed = ROUTES[c.req.path];
    if (allowed) {
      return jsonError(c, 405, `${c.req.method} is not allowed on ${c.req.path}`, {
        Allow: allowed.join(', '),
      });
    }
    return jsonError(c, 404, `no route ${c.req.method} ${c.req.path}`);
  });

  app.route('/', healthRoutes(deps.ch));
  app.route('/', metaRoutes());
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
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: {
      title: 'Tally',
      version: '0.1.0',
      description:
        'Usage and system-log analytics over Kafka and ClickHouse. Errors are always JSON ' +
        '{"error": "<standard name>", "message": "..."}; every response carries X-Request-Id. An unknown ' +
        'path is 404 and a known path with another method 405, in the same shape. Read routes answer CSV ' +
        'with ?format=csv or Accept: text/csv.',
    },
  });

  // Authenticate, then count the request against the identity's limit: refused credentials spend no budget.
  const authed = every(authenticate(deps.auth, deps.onAuthFailure), deps.rateLimit ?? ((_c, next) => next()));
  app.use('/reports/*', authed);
  app.use('/logs/*', authed);
  app.use('/events', authed);
  app.route('/', usageRoutes(deps.ch));
  app.route('/', timeseriesRoutes(deps.ch));
  app.route('/', logRoutes(deps.ch));
  app.route('/', eventRoutes(deps.sink));
  if (deps.exports) {
    app.route('/', exportRoutes(deps.exports));
    // Signed links carry their own authorization: no bearer token, outside /reports/*.
    app.route('/', downloadRoutes(deps.exports));
  }
  if (deps.schedules) app.route('/', scheduleRoutes(deps.schedules));
  return app;
}
