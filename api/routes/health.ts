// Liveness and readiness. /healthz says the process runs; /readyz that the storage answers and is migrated.
import { Hono } from 'hono';
import type { ClickHouse } from '../../clickhouse/client.ts';
import { migrationsApplied } from '../../clickhouse/migrate.ts';
import type { AppEnv } from '../env.ts';
import { jsonError } from '../errors.ts';

export function healthRoutes(ch: ClickHouse) {
  const app = new Hono<AppEnv>();
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
