// The limit middleware on a plain Hono app with a fake clock: headers on every answer, the contract's 429 with
// Retry-After, and the budget back after the window without waiting a real minute.
import { Hono } from 'hono';
import { createMiddleware } from 'hono/factory';
import { describe, expect, it } from 'vitest';
import { RateLimited } from '../../core/errors.ts';
import type { AppEnv } from '../env.ts';
import { createRateLimit } from './rate-limit.ts';
import { limitPolicy } from './rate-limit-store.ts';

function app(limit: number, overrides = new Map<string, number>()) {
  const clock = { t: 5_000_000 };
  const a = new Hono<AppEnv>();
  a.onError((err, c) => {
    if (err instanceof RateLimited) {
      c.header('Retry-After', String(err.retryAfterSeconds));
      return c.json({ error: 'Too Many Requests', message: err.message }, 429);
    }
    return c.json({ error: 'Internal Server Error', message: 'x' }, 500);
  });
  const identify = createMiddleware<AppEnv>(async (c, next) => {
    const sub = c.req.header('x-test-sub') ?? 'anon';
    c.set('identity', {
      id: `jwt::${sub}`,
      sub,
      issuer: undefined,
      scopes: new Set(),
      roles: new Set(),
      teamId: undefined,
    });
    await next();
  });
  a.use('*', identify, createRateLimit({ policy: limitPolicy(limit, overrides), now: () => clock.t }));
  a.get('/x', (c) => c.json({ ok: true }));
  a.get('/denied', (c) => c.json({ error: 'Forbidden', message: 'no' }, 403));
  const get = (path: string, sub = 'alice') => a.request(path, { headers: { 'x-test-sub': sub } });
  return { get, clock };
}

describe('rate-limit middleware', () => {
  it('sets RateLimit-* on answers and errors, then 429 with Retry-After until the window frees a slot', async () => {
    const { get, clock } = app(3);
    const first = await get('/x');
    expect(first.status).toBe(200);
    expect([first.headers.get('ratelimit-limit'), first.headers.get('ratelimit-remaining')]).toEqual([
      '3',
      '2',
    ]);
    expect(first.headers.get('ratelimit-reset')).toBe('60');
    clock.t += 20_000;
    const denied = await get('/denied');
    expect(denied.status).toBe(403);
    expect(denied.headers.get('ratelimit-remaining')).toBe('1');
    expect((await get('/x')).headers.get('ratelimit-remaining')).toBe('0');
    const limited = await get('/x');
    expect(limited.status).toBe(429);
    // The oldest request was 20 s ago: a slot frees in 40 s.
    expect(limited.headers.get('retry-after')).toBe('40');
    expect(limited.headers.get('ratelimit-remaining')).toBe('0');
    expect(await limited.json()).toMatchObject({ error: 'Too Many Requests' });
    clock.t += 40_000;
    expect((await get('/x')).status).toBe(200);
    expect((await get('/x')).status).toBe(429);
  });

  it('applies an override to its identity only', async () => {
    const { get } = app(1, new Map([['jwt::vip', 3]]));
    const statuses = async (sub: string) => {
      const out: number[] = [];
      for (let i = 0; i < 4; i++) out.push((await get('/x', sub)).status);
      return out;
    };
    expect(await statuses('vip')).toEqual([200, 200, 200, 429]);
    expect(await statuses('bob')).toEqual([200, 429, 429, 429]);
    expect((await get('/x', 'vip')).headers.get('ratelimit-limit')).toBe('3');
  });
});
