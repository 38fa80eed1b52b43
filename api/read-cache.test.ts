// The read cache's own logic with a version source in memory (the real engine: test/integration/read-cache):
// one version read shared by concurrent requests, never one that started before a request arrived; LRU by
// bytes; a version that cannot be read answers uncached.
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { buildDataVersionQuery, type DataVersionSource } from '../clickhouse/data-version.ts';
import { ReadCache, VersionGate } from './read-cache.ts';

/** A version source whose reads finish when the test says so. */
function manualSource() {
  const pending: Array<(v: string) => void> = [];
  let reads = 0;
  const source: DataVersionSource = {
    read: () => {
      reads += 1;
      return new Promise<string>((ok) => pending.push(ok));
    },
    close: () => undefined,
  };
  return { source, pending, reads: () => reads };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('VersionGate', () => {
  it('shares one read among requests that arrive before it starts, and starts one more for later ones', async () => {
    const m = manualSource();
    const gate = new VersionGate(m.source);
    const a = gate.read();
    expect(m.reads()).toBe(1);
    // b and c arrive while the first read runs: it may predate their writes, so they wait for the next.
    const b = gate.read();
    const c = gate.read();
    expect(m.reads()).toBe(1);
    m.pending[0]?.('v1');
    expect(await a).toBe('v1');
    await tick();
    expect(m.reads()).toBe(2);
    m.pending[1]?.('v2');
    expect(await b).toBe('v2');
    expect(await c).toBe('v2');
  });

  it('a failed read fails its requests and the next request reads again', async () => {
    const gate = new VersionGate({
      read: async () => {
        throw new Error('down');
      },
      close: () => undefined,
    });
    await expect(gate.read()).rejects.toThrow('down');
    await expect(gate.read()).rejects.toThrow('down');
  });
});

describe('ReadCache', () => {
  const app = (cache: ReadCache, computed: { n: number }) => {
    const h = new Hono();
    h.get('/q/:id', (c) =>
      cache.serve(c, 'q', { id: c.req.param('id') }, async () => {
        computed.n += 1;
        return c.json({ id: c.req.param('id'), body: 'x'.repeat(400) });
      }),
    );
    return h;
  };

  it('serves a kept answer while the version holds, recomputes when it changes', async () => {
    let version = 'v1';
    const cache = new ReadCache({
      version: { read: async () => version, close: () => undefined },
      maxBytes: 1 << 20,
      retentionDays: () => 0,
    });
    const computed = { n: 0 };
    const h = app(cache, computed);
    const a = await (await h.request('/q/1')).json();
    expect(await (await h.request('/q/1')).json()).toEqual(a);
    expect(computed.n).toBe(1);
    version = 'v2';
    await h.request('/q/1');
    expect(computed.n).toBe(2);
  });

  it('keeps at most maxBytes, least recently used out first', async () => {
    const cache = new ReadCache({
      version: { read: async () => 'v', close: () => undefined },
      maxBytes: 2000,
      retentionDays: () => 0,
    });
    const computed = { n: 0 };
    const h = app(cache, computed);
    for (const id of ['1', '2', '3']) await h.request(`/q/${id}`);
    expect(cache.size).toBeLessThanOrEqual(2000);
    expect(computed.n).toBe(3);
    // 3 and 2 are newer than 1; 1 was pushed out.
    await h.request('/q/3');
    expect(computed.n).toBe(3);
    await h.request('/q/1');
    expect(computed.n).toBe(4);
    expect(cache.size).toBeLessThanOrEqual(2000);
  });

  it('answers uncached when the version cannot be read', async () => {
    const cache = new ReadCache({
      version: {
        read: async () => {
          throw new Error('a host is down');
        },
        close: () => undefined,
      },
      maxBytes: 1 << 20,
      retentionDays: () => 0,
    });
    const computed = { n: 0 };
    const h = app(cache, computed);
    expect((await h.request('/q/1')).status).toBe(200);
    expect((await h.request('/q/1')).status).toBe(200);
    expect(computed.n).toBe(2);
  });

  it('keys the date parts on the injected clock', async () => {
    let now = Date.parse('2026-01-01T23:59:59Z');
    const cache = new ReadCache({
      version: { read: async () => 'v', close: () => undefined },
      maxBytes: 1 << 20,
      retentionDays: () => 7,
      now: () => now,
    });
    const computed = { n: 0 };
    const h = app(cache, computed);
    await h.request('/q/1');
    await h.request('/q/1');
    expect(computed.n).toBe(1);
    now += 2000;
    await h.request('/q/1');
    expect(computed.n).toBe(2);
  });
});

describe('buildDataVersionQuery', () => {
  it('reads every replica of a cluster, the shard-local tables, with each host in the hash', () => {
    const q = buildDataVersionQuery({ cluster: 'tally', database: 'analytics' });
    expect(q.query).toContain("clusterAllReplicas('tally', system.parts)");
    expect(q.query).toContain('hostName()');
    expect(q.query).toContain("endsWith(table, '_local')");
    expect(q.query_params).toEqual({ database: 'analytics' });
    expect(() => buildDataVersionQuery({ cluster: "x'); DROP", database: 'a' })).toThrow();
  });

  it('reads this node’s parts of the current database, nothing bound', () => {
    const q = buildDataVersionQuery({ database: 'analytics' });
    expect(q.query).toContain('database = currentDatabase()');
    expect(q.query_params).toEqual({});
    expect(q.query).not.toContain('clusterAllReplicas');
  });
});
