// Liveness and readiness. /healthz says the process runs; /readyz that the storage answers and is migrated.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { ClickHouse } from '../../clickhouse/client.ts';
import { migrationsApplied } from '../../clickhouse/migrate.ts';
import type { AppEnv } from '../env.ts';
import { jsonError } from '../errors.ts';
import { errorResponses } from '../params.ts';

const Status = (value: string) => z.object({ status: z.literal(value) });

const healthz = createRoute({
  method: 'get',
  path: '/healthz',
  summary: 'Liveness: the process runs (no auth)',
  responses: { 200: { description: 'Alive', content: { 'application/json': { schema: Status('ok') } } } },
});

const readyz = createRoute({
  method: 'get',
  path: '/readyz',
  summary: 'Readiness: the storage answers and every migration is applied (no auth)',
  responses: {
    200: { description: 'Ready', content: { 'application/json': { schema: Status('ready') } } },
    ...errorResponses(503),
  },
});

export function healthRoutes(ch: ClickHouse) {
  const app = new OpenAPIHono<AppEnv>();
  app.openAPIRegistry.registerPath(healthz);
  app.openAPIRegistry.registerPath(readyz);
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    try {
      const ping = await ch.client.ping();
      if (!ping.success) return jsonError(c, 503, 'storage does not answer', { 'Retry-After': '5' });
      if (!(await migrationsApplied(ch)))
        return jsonError(c, 503, 'migrations not applied yet', { 'Retry-After': '5' });
    } catch {
      return jsonError(c, 503, 'storage does not answer', { 'Retry-After': '5' });
    }
    return c.json({ status: 'ready' });
  });
  return app;
}
