// The /clickhouse budget per identity, on a stub engine whose queries end only when the test says so: the
// concurrency bound (TOO_MANY_SIMULTANEOUS_QUERIES) and the rate limit (QUOTA_EXCEEDED), in ClickHouse's form.
// The engine itself, the policy and real clients: test/e2e/sql-*.test.ts.
import { describe, expect, it } from 'vitest';
import type { SqlEngine, SqlResult } from '../../clickhouse/sql/index.ts';
import { newKey } from '../../core/api-keys.ts';
import { createLogger } from '../../core/logger.ts';
import { createApp } from '../app.ts';
import { createAuthenticator } from '../middleware/auth.ts';
import { limitPolicy, SlidingLogStore } from '../middleware/rate-limit-store.ts';
import { SqlUsage } from '../sql/usage.ts';

function stubEngine() {
  const waiting: Array<() => void> = [];
  const engine: SqlEngine = {
    version: 'stub',
    async run(): Promise<SqlResult> {
      const gate = new Promise<void>((r) => waiting.push(r));
      async function* body() {
        await gate;
        yield Buffer.from('1\n');
      }
      const summary = { read_rows: 0, read_bytes: 0, result_rows: 1, result_bytes: 2, elapsed_ns: 0 };
      return { format: 'TabSeparated', body: body(), summary: () => summary };
    },
    close: () => undefined,
  };
  const releaseAll = () => {
    for (const r of waiting.splice(0)) r();
  };
  return { engine, releaseAll };
}

function appWith(engine: SqlEngine, perMinute: number, concurrent: number) {
  const key = newKey({ name: 'k', scopes: ['query:sql'] });
  const app = createApp({
    ch: { embedded: true, database: 'analytics' } as never,
    sink: {} as never,
    logger: createLogger('silent'),
    auth: createAuthenticator({
      secret: 'x'.repeat(32),
      issuer: undefined,
      audience: undefined,
      keys: { get: async (id) => (id === key.record.id ? key.record : undefined) },
    }),
    sql: {
      engine,
      database: 'analytics',
      rateLimit: { store: new SlidingLogStore(limitPolicy(perMinute, new Map())), perMinute },
      concurrentQueries: concurrent,
      usage: new SqlUsage(undefined),
    },
  });
  const headers = { authorization: `Basic ${Buffer.from(`${key.record.id}:${key.key}`).toString('base64')}` };
  return (query = 'SELECT 1') => app.request(`/clickhouse?query=${encodeURIComponent(query)}`, { headers });
}

describe('/clickhouse budget per identity', () => {
  it('runs SQL_CONCURRENT_QUERIES at once; one more is 202 until one ends', async () => {
    const { engine, releaseAll } = stubEngine();
    const ask = appWith(engine, 100, 2);
    const a = await ask();
    const b = await ask();
    expect([a.status, b.status]).toEqual([200, 200]);
    const c = await ask();
    expect([c.status, c.headers.get('x-clickhouse-exception-code')]).toEqual([429, '202']);
    expect(await c.text()).toMatch(/^Code: 202\. DB::Exception: Too many simultaneous queries/);
    releaseAll();
    expect(await a.text()).toBe('1\n');
    expect(await b.text()).toBe('1\n');
    const d = await ask();
    releaseAll();
    expect([d.status, await d.text()]).toEqual([200, '1\n']);
  });

  it('admits SQL_RATE_LIMIT_PER_MINUTE requests in 60 s; the next is 201 with Retry-After', async () => {
    const { engine, releaseAll } = stubEngine();
    const ask = appWith(engine, 2, 10);
    for (let i = 0; i < 2; i++) {
      const r = await ask();
      releaseAll();
      expect(await r.text()).toBe('1\n');
      expect([r.headers.get('ratelimit-limit'), r.headers.get('ratelimit-remaining')]).toEqual([
        '2',
        String(1 - i),
      ]);
    }
    const refused = await ask();
    expect([refused.status, refused.headers.get('x-clickhouse-exception-code')]).toEqual([429, '201']);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
  });
});
