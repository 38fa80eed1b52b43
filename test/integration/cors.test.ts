// CORS for browser dashboards on other origins (CORS_ALLOWED_ORIGINS), on the real engine: a listed origin's
// preflight is 204 (handled before the route table, so not a 405), its answers (errors included) carry
// Access-Control-Allow-Origin and the exposed headers; any other origin, or no configuration, changes nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../api/app.ts';
import { createAuthenticator } from '../../api/middleware/auth.ts';
import { createLogger } from '../../core/logger.ts';
import { mintToken } from '../../core/tokens.ts';
import { createDirectSink } from '../../ingest/direct.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';

const SECRET = 'cors-test-secret-cors-test-secret-cors-0123';
const DASH = 'https://dash.example.com';
const SUMMARY = '/reports/usage-summary?start_date=2025-01-01&end_date=2025-01-31';

describe('CORS_ALLOWED_ORIGINS', () => {
  let engine: TestEngine;
  let token: string;
  const build = (corsOrigins?: string[]) =>
    createApp({
      ch: engine.ch,
      sink: createDirectSink(engine.ch),
      logger: createLogger('silent'),
      auth: createAuthenticator({ secret: SECRET, issuer: undefined, audience: undefined }),
      ...(corsOrigins ? { corsOrigins } : {}),
    });
  const preflight = (origin: string, method = 'GET') => ({
    method: 'OPTIONS',
    headers: {
      origin,
      'access-control-request-method': method,
      'access-control-request-headers': 'authorization',
    },
  });

  beforeAll(async () => {
    engine = await openTestEngine();
    token = await mintToken(SECRET, { sub: 'cors', ttlSeconds: 600 });
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  it('answers a listed origin: preflight 204, then the read with the allow and expose headers', async () => {
    const app = build([DASH]);
    const pre = await app.request(SUMMARY, preflight(DASH));
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe(DASH);
    expect(pre.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization');
    expect(pre.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('x-api-key');
    expect(pre.headers.get('access-control-allow-methods')).toContain('GET');
    expect(pre.headers.get('vary')).toContain('Origin');
    // A preflight for a POST works the same.
    expect((await app.request('/reports/export', preflight(DASH, 'POST'))).status).toBe(204);

    const res = await app.request(SUMMARY, { headers: { origin: DASH, authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe(DASH);
    expect(res.headers.get('access-control-allow-credentials')).toBeNull();
    const exposed = res.headers.get('access-control-expose-headers') ?? '';
    for (const h of ['X-Request-Id', 'RateLimit-Remaining', 'Retry-After', 'X-Next-Cursor']) {
      expect(exposed).toContain(h);
    }
    // An error is readable by the page too (it can show the message).
    const refused = await app.request(SUMMARY, { headers: { origin: DASH } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('access-control-allow-origin')).toBe(DASH);
  });

  it('leaves other origins, and a service without the variable, as they were (a preflight is 405)', async () => {
    for (const [app, origin] of [
      [build([DASH]), 'https://evil.example.com'],
      [build(), DASH],
    ] as const) {
      const pre = await app.request(SUMMARY, preflight(origin));
      expect(pre.status).toBe(405);
      expect(pre.headers.get('access-control-allow-origin')).toBeNull();
      const res = await app.request(SUMMARY, { headers: { origin, authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
    }
  });
});
