// The HTTP face of the ingest role (`npm run ingest`): /healthz, /readyz and /metrics only. Its /readyz turns
// 503 naming the reason once the ingester has been unable to consume for more than 30 s, so an orchestrator
// can restart or page on it; the full API's /readyz only shows the ingester in its body.
import { OpenAPIHono } from '@hono/zod-openapi';
import { type ClickHouse, forApiReads } from '../clickhouse/client.ts';
import type { StatusSource } from '../core/health.ts';
import type { Logger } from '../core/logger.ts';
import type { AppEnv } from './env.ts';
import { createErrorHandler, jsonError } from './errors.ts';
import { metricsText } from './metrics.ts';
import { requestId } from './middleware/request-id.ts';
import { healthRoutes } from './routes/health.ts';

export function createProbeApp(deps: { ch: ClickHouse; logger: Logger; ingester: StatusSource }) {
  const app = new OpenAPIHono<AppEnv>();
  app.use('*', requestId);
  app.onError(createErrorHandler(deps.logger));
  app.route('/', healthRoutes(forApiReads(deps.ch), { ingester: deps.ingester, ingestStrict: true }));
  app.get('/metrics', async (c) => {
    const m = await metricsText();
    c.header('Content-Type', m.contentType);
    return c.body(m.body, 200);
  });
  app.notFound((c) => jsonError(c, 404, `no route ${c.req.method} ${c.req.path}`));
  return app;
}
