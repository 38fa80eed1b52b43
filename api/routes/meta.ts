// Unauthenticated service routes beyond health: Prometheus metrics, the interactive API docs, and the
// static start page that asks for a token. None of them shows tenant data.

import { swaggerUI } from '@hono/swagger-ui';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv } from '../env.ts';
import { metricsText } from '../metrics.ts';
import { START_PAGE } from './start-page.ts';

const text = (description: string, type: string) => ({
  description,
  content: { [type]: { schema: z.string() } },
});

const metrics = createRoute({
  method: 'get',
  path: '/metrics',
  summary: 'Prometheus metrics: request counts and latency by route pattern and status (no auth)',
  responses: { 200: text('Prometheus text exposition format', 'text/plain') },
});

const docs = createRoute({
  method: 'get',
  path: '/docs',
  summary: 'Interactive API documentation (Swagger UI) over /openapi.json (no auth)',
  responses: { 200: text('An HTML page', 'text/html') },
});

const openapi = createRoute({
  method: 'get',
  path: '/openapi.json',
  summary: 'This OpenAPI 3.1 document (no auth)',
  responses: {
    200: {
      description: 'The document',
      content: { 'application/json': { schema: z.record(z.string(), z.unknown()) } },
    },
  },
});

const start = createRoute({
  method: 'get',
  path: '/',
  summary: 'A static start page that asks for a token and tries the reports (no auth)',
  responses: { 200: text('An HTML page', 'text/html') },
});

export function metaRoutes() {
  const app = new OpenAPIHono<AppEnv>();
  for (const r of [metrics, docs, openapi, start]) app.openAPIRegistry.registerPath(r);
  app.get('/metrics', async (c) => {
    const m = await metricsText();
    c.header('Content-Type', m.contentType);
    return c.body(m.body, 200);
  });
  // Swagger UI's scripts and styles load in the browser from a public CDN (the @hono/swagger-ui default).
  app.get('/docs', swaggerUI({ url: '/openapi.json', title: 'Tally API' }));
  app.get('/', (c) => c.html(START_PAGE));
  return app;
}
