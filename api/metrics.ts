// HTTP metrics for GET /metrics: a request counter and a latency histogram by method, route pattern and
// status. Labels carry the registered pattern (never the raw path), so no id or tenant data reaches them.
import type { Context } from 'hono';
import { createMiddleware } from 'hono/factory';
import { matchedRoutes } from 'hono/route';
import { Counter, Histogram } from 'prom-client';
import { registry } from '../core/metrics.ts';

const labelNames = ['method', 'route', 'status'] as const;

const requests = new Counter({
  name: 'tally_http_requests_total',
  help: 'HTTP requests answered, by method, route pattern and status',
  labelNames,
  registers: [registry],
});

const latency = new Histogram({
  name: 'tally_http_request_duration_seconds',
  help: 'HTTP request latency in seconds, by method, route pattern and status',
  labelNames,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [registry],
});

/** The pattern of the handler that answered, or "unmatched" (404s would otherwise grow the label set). */
function routeLabel(c: Context): string {
  const handler = matchedRoutes(c).findLast((r) => r.method !== 'ALL');
  return handler?.path ?? 'unmatched';
}

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

export const httpMetrics = createMiddleware(async (c, next) => {
  const started = process.hrtime.bigint();
  try {
    await next();
  } finally {
    const labels = {
      method: KNOWN_METHODS.has(c.req.method) ? c.req.method : 'OTHER',
      route: routeLabel(c),
      status: String(c.res.status),
    };
    requests.inc(labels);
    latency.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
  }
});

export async function metricsText(): Promise<{ body: string; contentType: string }> {
  return { body: await registry.metrics(), contentType: registry.contentType };
}
