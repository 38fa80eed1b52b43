// The read cache's own logic with a version source in memory (the real engine: test/integration/read-cache):
// one version read shared by concurrent requests, never one that started before a request arrived; LRU by
// bytes; a version that cannot be read answers uncached.
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import {
  buildDataVersionQuery,
  type DataVersionSource,
  versionFromParts,
  versionFromTsv,
  versionOf,
} from '../clickhouse/data-version.ts';
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

/** Asks `path` and ends the version read it starts with `version`: the version read last is then that one. */
async function askAt(h: Hono, m: ReturnType<typeof manualSource>, path: string, version: string) {
  const res = h.request(path);
  await tick();
  m.pending.at(-1)?.(version);
  return res;
}

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
      cache.serve(c, 'q', '', { id: c.req.param('id') }, async (_snap, reply) => {
        computed.n += 1;
        return reply.json({ id: c.req.param('id'), body: 'x'.repeat(400) });
      }),
    );
    // Routes that read some tables only.
    for (const [path, tables] of [
      ['usage', 'usage_'],
      ['logs', 'log_'],
    ] as const) {
      h.get(`/${path}/:id`, (c) =>
        cache.serve(c, path, tables, { id: c.req.param('id') }, async (_snap, reply) => {
          computed.n += 1;
          return reply.json({ id: c.req.param('id'), body: 'x'.repeat(400) });
        }),
      );
    }
    return h;
  };

  /** A cache whose version is whatever `current` gives at each read. */
  const cacheOf = (current: () => string) =>
    new ReadCache({
      version: { read: async () => current(), close: () => undefined },
      maxBytes: 1 << 20,
      retentionDays: () => 0,
    });

  it('serves a kept answer while the version holds, recomputes when it changes', async () => {
    let version = 'v1';
    const cache = cacheOf(() => version);
    const computed = { n: 0 };
    const h = app(cache, computed);
    const a = await (await h.request('/q/1')).json();
    expect(await (await h.request('/q/1')).json()).toEqual(a);
    expect(computed.n).toBe(1);
    version = 'v2';
    await h.request('/q/1');
    expect(computed.n).toBe(2);
  });

  it('keeps an answer while the tables its route reads are unchanged, whatever else changes', async () => {
    let version = 'log_events=a/1;usage_daily=b/1';
    const cache = cacheOf(() => version);
    const computed = { n: 0 };
    const h = app(cache, computed);
    for (const path of ['/usage/1', '/logs/1', '/q/1']) await h.request(path);
    expect(computed.n).toBe(3);
    const held = cache.size;
    // A log insert: the usage answer stays; the logs one and the one of every table are computed again, and
    // what they held is let go.
    version = 'log_events=c/2;usage_daily=b/1';
    await h.request('/usage/1');
    expect(computed.n).toBe(3);
    await h.request('/logs/1');
    expect(computed.n).toBe(4);
    await h.request('/q/1');
    expect(computed.n).toBe(5);
    expect(cache.size).toBe(held);
    // A usage table gets its first part: a change too.
    version = 'log_events=c/2;usage_daily=b/1;usage_pairs=d/1';
    await h.request('/logs/1');
    expect(computed.n).toBe(5);
    await h.request('/usage/1');
    expect(computed.n).toBe(6);
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

  describe('an answer computed beside the version read', () => {
    /** A route whose answer is the version it was computed at, as body and X-Page; `hold(v)` delays those. */
    const routeOf = (cache: ReadCache, hold: (v: string | undefined) => Promise<void> = async () => {}) => {
      const seen: Array<string | undefined> = [];
      const h = new Hono();
      h.get('/q/:id', (c) =>
        cache.serve(c, 'q', 'usage_', { id: c.req.param('id') }, async (snap, reply) => {
          seen.push(snap.version);
          await hold(snap.version);
          reply.header('X-Page', snap.version ?? 'none');
          return reply.json({ at: snap.version ?? 'none' });
        }),
      );
      return { h, seen };
    };
    const cacheOn = (source: DataVersionSource) =>
      new ReadCache({ version: source, maxBytes: 1 << 20, retentionDays: () => 0 });

    it('starts before the version is read, and is the answer when the route’s tables are unchanged', async () => {
      const m = manualSource();
      const cache = cacheOn(m.source);
      const { h, seen } = routeOf(cache);
      const first = h.request('/q/1');
      await tick();
      // Nothing read yet: nothing to compute at.
      expect(seen).toEqual([]);
      m.pending[0]?.('usage_daily=a/1;log_events=x/1');
      expect(await (await first).json()).toEqual({ at: 'usage_daily=a/1;log_events=x/1' });
      const second = h.request('/q/2');
      await tick();
      // Computed at the last version while the new read runs.
      expect(seen).toEqual(['usage_daily=a/1;log_events=x/1', 'usage_daily=a/1;log_events=x/1']);
      expect(m.reads()).toBe(2);
      // A log insert: not a table of this route, so the early answer holds.
      m.pending[1]?.('usage_daily=a/1;log_events=y/2');
      const res = await second;
      expect(await res.json()).toEqual({ at: 'usage_daily=a/1;log_events=x/1' });
      expect(seen).toHaveLength(2);
      // And it is kept: asked again at the same version, nothing is computed.
      const third = h.request('/q/2');
      await tick();
      m.pending[2]?.('usage_daily=a/1;log_events=y/2');
      expect((await third).status).toBe(200);
      expect(seen).toHaveLength(2);
    });

    it('is dropped when the route’s tables changed, and sets nothing on the reply', async () => {
      const m = manualSource();
      const cache = cacheOn(m.source);
      const gates = new Map<string, { wait: Promise<void>; open: () => void }>();
      for (const v of ['usage_daily=v1/1', 'usage_daily=v2/1']) {
        let open: () => void = () => {};
        const wait = new Promise<void>((ok) => {
          open = ok;
        });
        gates.set(v, { wait, open });
      }
      const seen: Array<string | undefined> = [];
      const h = new Hono();
      h.get('/q/:id', (c) =>
        cache.serve(c, 'q', 'usage_', { id: c.req.param('id') }, async (snap, reply) => {
          seen.push(snap.version);
          // Appended, so an answer that set it on a context another also replies on would show there too.
          if (snap.version) reply.header('X-Next-Cursor', snap.version, { append: true });
          const gate = snap.version === undefined ? undefined : gates.get(snap.version);
          if (seen.length > 1) await gate?.wait;
          return reply.json({ at: snap.version ?? 'none' });
        }),
      );
      await askAt(h, m, '/q/1', 'usage_daily=v1/1');
      // Computed early at v1, then read at v2: a usage insert in between.
      const req = h.request('/q/2');
      await tick();
      expect(seen).toEqual(['usage_daily=v1/1', 'usage_daily=v1/1']);
      m.pending[1]?.('usage_daily=v2/1');
      await tick();
      expect(seen).toEqual(['usage_daily=v1/1', 'usage_daily=v1/1', 'usage_daily=v2/1']);
      // The dropped answer finishes first, while the one at v2 is still being computed.
      gates.get('usage_daily=v1/1')?.open();
      await tick();
      gates.get('usage_daily=v2/1')?.open();
      const res = await req;
      expect(await res.json()).toEqual({ at: 'usage_daily=v2/1' });
      expect(res.headers.get('x-next-cursor')).toBe('usage_daily=v2/1');
      await cache.close();
    });

    it('is dropped when the version cannot be read: the answer is computed unversioned', async () => {
      let fail = false;
      const cache = cacheOn({
        read: async () => {
          if (fail) throw new Error('a host is down');
          return 'usage_daily=a/1';
        },
        close: () => undefined,
      });
      const { h, seen } = routeOf(cache);
      await h.request('/q/1');
      fail = true;
      const res = await h.request('/q/2');
      expect(await res.json()).toEqual({ at: 'none' });
      expect(seen).toEqual(['usage_daily=a/1', 'usage_daily=a/1', undefined]);
    });

    it('is not computed when turned off', async () => {
      const m = manualSource();
      const cache = new ReadCache({
        version: m.source,
        maxBytes: 1 << 20,
        retentionDays: () => 0,
        early: false,
      });
      const { h, seen } = routeOf(cache);
      await askAt(h, m, '/q/1', 'usage_daily=a/1');
      const second = h.request('/q/2');
      await tick();
      expect(seen).toHaveLength(1);
      m.pending[1]?.('usage_daily=a/1');
      expect(await (await second).json()).toEqual({ at: 'usage_daily=a/1' });
    });
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

describe('versionFromParts and versionOf', () => {
  const parts = [
    ['', 'usage_daily', '/d/store/a1/2025_1_1_0/'],
    ['', 'log_events', '/d/store/b2/2025_1_1_0/'],
    ['', 'usage_daily', '/d/store/a1/2025_2_2_0/'],
  ] as const;

  it('is one entry per table in name order, whatever order the parts come in', () => {
    const v = versionFromParts(parts);
    expect(v).toBe(versionFromParts([...parts].reverse()));
    expect(v).toMatch(/^log_events=[\w-]{16}\/1;usage_daily=[\w-]{16}\/2$/);
    const tables = ['log_events', 'usage_daily'];
    expect(versionOf(versionFromTsv(parts.map((p) => p.join('\t')).join('\n')), tables)).toBe(
      versionOf(v, tables),
    );
  });

  it('changes with any part of a table, and only that table', () => {
    const v = versionFromParts(parts);
    const merged = versionFromParts([
      ...parts.filter((p) => p[1] !== 'usage_daily'),
      ['', 'usage_daily', '/d/store/a1/2025_1_2_1/'],
    ]);
    expect(versionOf(merged, 'usage_')).not.toBe(versionOf(v, 'usage_'));
    expect(versionOf(merged, 'log_')).toBe(versionOf(v, 'log_'));
    expect(versionOf(merged, ['log_events'])).toBe(versionOf(v, ['log_events']));
    expect(versionOf(merged, '')).toBe(merged);
    // The same part name in a table made again (another directory) is another version.
    const again = versionFromParts([
      ...parts.slice(0, 1),
      ['', 'log_events', '/d/store/c3/2025_1_1_0/'],
      parts[2],
    ]);
    expect(versionOf(again, 'log_')).not.toBe(versionOf(v, 'log_'));
    // On a cluster the host is part of it: a replica that has not fetched a part answers differently.
    expect(versionFromParts(parts.map(([, t, p]) => ['h2', t, p] as const))).not.toBe(v);
  });

  it('tells a table with no part from one with parts', () => {
    const v = versionFromParts(parts);
    expect(versionOf(v, ['usage_pairs'])).toBe('usage_pairs=');
    const more = versionFromParts([...parts, ['', 'usage_pairs', '/d/store/e5/2025_1_1_0/']]);
    expect(versionOf(more, ['usage_pairs'])).not.toBe(versionOf(v, ['usage_pairs']));
    expect(versionOf(more, ['log_events', 'usage_daily'])).toBe(versionOf(v, ['log_events', 'usage_daily']));
  });
});
