// Liveness and readiness. /healthz says the process runs; /readyz that the storage answers and is migrated, and
// shows each component, the ingester included. Only the ingest role (`ingestStrict`) turns 503 because of the
// ingester: in `npm start` the API keeps serving reads while Kafka is away, and says so in the body.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { ClickHouse } from '../../clickhouse/client.ts';
import { migrationsApplied } from '../../clickhouse/migrate.ts';
import type { IngestStatus, StatusSource } from '../../core/health.ts';
import type { AppEnv } from '../env.ts';
import { errorBody } from '../errors.ts';

const Status = (value: string) => z.object({ status: z.literal(value) });

const IngesterComponent = z
  .object({
    state: z.enum(['starting', 'joining', 'consuming', 'restarting', 'stopped']),
    reason: z.string().optional().openapi({ description: 'why it cannot consume right now' }),
    since: z.string().optional().openapi({ description: 'since when it cannot consume' }),
    failing: z
      .boolean()
      .openapi({ description: 'unable to consume for more than 30 s, with lag or disconnected' }),
    lag: z.record(
      z.string(),
      z.object({
        messages: z.number().int().openapi({ description: 'messages not yet stored' }),
        seconds: z.number().openapi({ description: 'while messages wait: age of the newest message read' }),
      }),
    ),
    last_message_at: z.string().optional(),
  })
  .openapi('IngesterStatus');

const Components = z
  .object({
    storage: z.object({ state: z.enum(['ok', 'unavailable', 'migrating']) }),
    ingester: IngesterComponent.optional().openapi({ description: 'present where this process runs one' }),
  })
  .openapi('ReadinessComponents');

const healthz = createRoute({
  method: 'get',
  path: '/healthz',
  summary: 'Liveness: the process runs (no auth)',
  responses: { 200: { description: 'Alive', content: { 'application/json': { schema: Status('ok') } } } },
});

const readyz = createRoute({
  method: 'get',
  path: '/readyz',
  summary:
    'Readiness: the storage answers and every migration is applied; the body shows each component (no auth)',
  description:
    'The ingester component (where the process runs one) shows its state, why it cannot consume and since when, ' +
    'and the lag per source topic. The ingest role answers 503 while its ingester has been unable to consume for ' +
    'more than 30 s; `npm start` keeps answering 200 and shows it in the body.',
  responses: {
    200: {
      description: 'Ready',
      content: {
        'application/json': {
          schema: z.object({ status: z.literal('ready'), components: Components }),
        },
      },
    },
    503: {
      description: 'Not ready (Retry-After)',
      content: {
        'application/json': {
          schema: z.object({ error: z.string(), message: z.string(), components: Components }),
        },
      },
    },
  },
});

export interface HealthOptions {
  ingester?: StatusSource;
  /** The ingest role: a failing ingester makes the process not ready (default false). */
  ingestStrict?: boolean;
}

export function healthRoutes(ch: ClickHouse, opts: HealthOptions = {}) {
  const app = new OpenAPIHono<AppEnv>();
  app.openAPIRegistry.registerPath(healthz);
  app.openAPIRegistry.registerPath(readyz);
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    let storage: 'ok' | 'unavailable' | 'migrating' = 'ok';
    try {
      const ping = await ch.client.ping();
      if (!ping.success) storage = 'unavailable';
      else if (!(await migrationsApplied(ch))) storage = 'migrating';
    } catch {
      storage = 'unavailable';
    }
    const ingester: IngestStatus | undefined = opts.ingester?.status();
    const components = { storage: { state: storage }, ...(ingester ? { ingester } : {}) };
    const problem =
      storage === 'unavailable'
        ? 'storage does not answer'
        : storage === 'migrating'
          ? 'migrations not applied yet'
          : opts.ingestStrict && ingester?.failing
            ? `ingester cannot consume since ${ingester.since}: ${ingester.reason}`
            : undefined;
    if (problem !== undefined) {
      c.header('Retry-After', '5');
      return c.json({ ...errorBody(503, problem), components }, 503);
    }
    return c.json({ status: 'ready' as const, components }, 200);
  });
  return app;
}
