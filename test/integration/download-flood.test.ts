// Unauthenticated signed downloads under a flood, on a real socket and the real engine: a forged link is refused
// by its signature before any storage lookup; each client address gets a bounded number of downloads per minute
// (429 with Retry-After), X-Forwarded-For counts only with TRUST_PROXY, and health probes are never bounded:
// a flood of /readyz shares one storage check a second instead.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../api/app.ts';
import type { ExportDeps } from '../../api/exports/deps.ts';
import { JobAdmission } from '../../api/exports/quota.ts';
import { createAuthenticator } from '../../api/middleware/auth.ts';
import { limitPerClient } from '../../api/middleware/client-limit.ts';
import type { ClickHouse } from '../../clickhouse/client.ts';
import type { ControlStore } from '../../control/store.ts';
import { signLink } from '../../core/exports/signing.ts';
import { ExportStore } from '../../core/exports/store.ts';
import { createLogger } from '../../core/logger.ts';
import { createDirectSink } from '../../ingest/direct.ts';
import { memoryControl } from '../helpers/control.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';

const PER_MINUTE = 5;
const KEYS = { current: 'k1', keys: new Map([['k1', Buffer.alloc(32, 9)]]) };
const JOB = '0b7e5c1e-8d7a-4b59-9a4e-2f1f0c7a9d11';

describe('unauthenticated downloads: signature first, bounded per client address', () => {
  let engine: TestEngine;
  let filesDir: string;
  let queries = 0;
  const servers: Array<{ close(cb: () => void): void }> = [];
  const limits: Array<{ stop(): void }> = [];

  /** A service on a free loopback port; `trustProxy` as TRUST_PROXY would set it. */
  async function start(trustProxy: boolean): Promise<string> {
    // The engine's client and the control store, counting the queries the routes make (the real ones answer).
    // Both clients: the routes read through readClient (time-bounded on a server).
    const client = new Proxy(engine.ch.readClient, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver);
        if ((prop !== 'query' && prop !== 'ping') || typeof v !== 'function') return v;
        return (...args: unknown[]) => {
          queries += 1;
          return v.apply(target, args);
        };
      },
    });
    const countedCh: ClickHouse = { ...engine.ch, client, readClient: client };
    const store = await memoryControl();
    const counted: ControlStore = {
      ...store,
      query: (text, params) => {
        queries += 1;
        return store.query(text, params);
      },
    };
    const exports: ExportDeps = {
      control: counted,
      admission: new JobAdmission(counted, 10),
      store: new ExportStore(filesDir),
      keys: KEYS,
      publicBaseUrl: 'http://127.0.0.1',
      urlTtlSeconds: 600,
    };
    const downloadLimit = limitPerClient({ perMinute: PER_MINUTE, trustProxy });
    limits.push(downloadLimit);
    const app = createApp({
      ch: countedCh,
      sink: createDirectSink(engine.ch),
      logger: createLogger('silent'),
      auth: createAuthenticator({ secret: 'x'.repeat(40), issuer: undefined, audience: undefined }),
      exports,
      downloadLimit,
    });
    return new Promise((resolve) => {
      const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) =>
        resolve(`http://127.0.0.1:${info.port}`),
      );
      servers.push(s);
    });
  }

  beforeAll(async () => {
    engine = await openTestEngine();
    filesDir = mkdtempSync(join(tmpdir(), 'tally-flood-'));
  });
  afterAll(async () => {
    for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
    for (const l of limits) l.stop();
    await engine?.dispose();
    if (filesDir) rmSync(filesDir, { recursive: true, force: true });
  });

  const forged = (base: string) =>
    `${base}/downloads/${JOB}?exp=${Math.floor(Date.now() / 1000) + 600}&kid=k1&sig=${'A'.repeat(43)}`;

  it('refuses forged links with 403 without a storage query, and a genuine link then reaches the storage', async () => {
    const base = await start(false);
    queries = 0;
    const res = await fetch(forged(base));
    expect(res.status).toBe(403);
    expect(queries).toBe(0);
    // A link signed with the key: the job is looked up (it does not exist here, so still 403).
    const exp = Math.floor(Date.now() / 1000) + 600;
    const link = signLink(KEYS, JOB, exp);
    const genuine = await fetch(`${base}/downloads/${JOB}?exp=${exp}&kid=k1&sig=${link.sig}`);
    expect(genuine.status).toBe(403);
    expect(queries).toBe(1);
  });

  it('answers 429 with Retry-After past the per-address limit, X-Forwarded-For ignored, probes unbounded', async () => {
    const base = await start(false);
    const statuses: number[] = [];
    for (let i = 0; i < PER_MINUTE + 3; i++) {
      const res = await fetch(forged(base), { headers: { 'x-forwarded-for': `203.0.113.${i}` } });
      statuses.push(res.status);
      if (res.status === 429) {
        expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
        expect(await res.json()).toMatchObject({ error: 'Too Many Requests' });
      } else await res.arrayBuffer();
    }
    expect(statuses).toEqual([...Array(PER_MINUTE).fill(403), 429, 429, 429]);
    // A flood of 64 parallel requests from the same address: all refused at once, no storage query.
    queries = 0;
    const flood = await Promise.all(
      Array.from({ length: 64 }, () => fetch(forged(base)).then((r) => r.status)),
    );
    expect(new Set(flood)).toEqual(new Set([429]));
    expect(queries).toBe(0);
    for (const probe of ['/healthz', '/readyz']) {
      for (let i = 0; i < PER_MINUTE + 2; i++) expect((await fetch(`${base}${probe}`)).status).toBe(200);
    }
  });

  it('with TRUST_PROXY, counts each address the proxy names (its last X-Forwarded-For entry)', async () => {
    const base = await start(true);
    const from = (client: string) =>
      fetch(forged(base), { headers: { 'x-forwarded-for': `198.51.100.7, ${client}` } }).then(
        (r) => r.status,
      );
    for (let i = 0; i < PER_MINUTE; i++) expect(await from('192.0.2.1')).toBe(403);
    expect(await from('192.0.2.1')).toBe(429);
    // Another client behind the same proxy has its own budget; the spoofable first entry changes nothing.
    expect(await from('192.0.2.2')).toBe(403);
    expect(await from('192.0.2.1')).toBe(429);
  });

  it('answers a flood of /readyz probes, all 200, with one storage check a second', async () => {
    const base = await start(false);
    await fetch(`${base}/readyz`);
    await new Promise((r) => setTimeout(r, 1100));
    queries = 0;
    const statuses = await Promise.all(
      Array.from({ length: 64 }, () =>
        fetch(`${base}/readyz`).then(async (r) => {
          expect(r.headers.get('x-request-id')).toBeTruthy();
          expect(await r.json()).toMatchObject({ status: 'ready' });
          return r.status;
        }),
      ),
    );
    expect(new Set(statuses)).toEqual(new Set([200]));
    // One check: a ping and the migrations query (the flood takes well under the second it is kept).
    expect(queries).toBeGreaterThan(0);
    expect(queries).toBeLessThanOrEqual(4);
  });
});
