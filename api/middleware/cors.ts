// Browser dashboards on other origins (CORS_ALLOWED_ORIGINS, exact origins; none by default). Mounted before the
// route table: a preflight (OPTIONS) is no operation of the API, and would otherwise be a 405. Only a listed
// origin is answered (Hono's cors middleware); any other request passes on untouched, so without the variable
// nothing changes. No credentials mode: callers send a bearer token or API key header, never cookies.
import type { MiddlewareHandler } from 'hono';
import { cors } from 'hono/cors';
import type { AppEnv } from '../env.ts';

/** Headers a browser page may read from an answer beyond the CORS-safelisted ones. */
export const EXPOSED_HEADERS = [
  'X-Request-Id',
  'RateLimit-Limit',
  'RateLimit-Remaining',
  'RateLimit-Reset',
  'Retry-After',
  'X-Page',
  'X-Total-Pages',
  'X-Next-Cursor',
  'Content-Disposition',
];

export function corsFor(origins: readonly string[]): MiddlewareHandler<AppEnv> {
  const allowed = new Set(origins);
  const handler = cors({
    origin: (origin) => (allowed.has(origin) ? origin : null),
    allowMethods: ['GET', 'HEAD', 'POST', 'DELETE'],
    allowHeaders: ['Authorization', 'X-API-Key', 'Content-Type', 'Idempotency-Key', 'X-Request-Id', 'Accept'],
    exposeHeaders: EXPOSED_HEADERS,
    maxAge: 600,
  });
  return async (c, next) => {
    const origin = c.req.header('origin');
    if (origin === undefined || !allowed.has(origin)) return next();
    return handler(c, next);
  };
}
