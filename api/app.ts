// Builds the Hono app from injected dependencies; tests call app.request() on it without a socket.
import { OpenAPIHono } from '@hono/zod-openapi';
import type { ClickHouse } from '../clickhouse/client.ts';
import type { Logger } from '../core/logger.ts';
import type { EventSink } from '../core/sink.ts';
import type { AppEnv } from './env.ts';
import { createErrorHandler, jsonError } from './errors.ts';
import { type Authenticator, authenticate } from './middleware/auth.ts';
import { requestId } from './middleware/request-id.ts';
import { eventRoutes } from './routes/events.ts';
import { healthRoutes } from './routes/health.ts';
import { usageRoutes } from './routes/usage.ts';

export interface AppDeps {
  ch: ClickHouse;
  sink: EventSink;
  auth: Authenticator;
  logger: Logger;
}

// Paths served, by method: an existing path with another method is 405, anything else 404.
const ROUTES: Record<string, readonly string[]> = {
  '/healthz': ['GET'],
  '/readyz': ['GET'],
  '/openapi.json': ['GET'],
  '/reports/usage-summary': ['GET'],
  '/events': ['POST'],
};

export function createApp(deps: AppDeps) {
  const app = new OpenAPIHono<AppEnv>();
  app.use('*', requestId);
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
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
  });
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: {
      title: 'Tally',
      version: '0.1.0',
      description: 'Usage and system-log analytics over Kafka and ClickHouse',
    },
  });

  const authed = authenticate(deps.auth);
  app.use('/reports/*', authed);
  app.use('/events', authed);
  app.route('/', usageRoutes(deps.ch));
  app.route('/', eventRoutes(deps.sink));
  return app;
}
