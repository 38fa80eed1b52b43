// `npm run bench:read-cache [-- --quick]`: the read cache (api/read-cache.ts) on the embedded engine. The
// data version check alone (idle, and while the shared connection runs report queries back to back), and the
// same request repeated over HTTP at concurrency 1, cached vs computed, for usage-summary, usage-timeseries and
// a system-events page. Writes the read-cache section of bench/RESULTS.md.
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { createApp } from '../api/app.ts';
import { createAuthenticator } from '../api/middleware/auth.ts';
import { ReadCache } from '../api/read-cache.ts';
import { openClickHouse } from '../clickhouse/client.ts';
import { embeddedDataVersion } from '../clickhouse/engine/embedded.ts';
import { migrate } from '../clickhouse/migrate.ts';
import { usageSummary } from '../clickhouse/queries/usage-summary.ts';
import { createLogger } from '../core/logger.ts';
import { mintToken } from '../core/tokens.ts';
import { createDirectSink } from '../ingest/direct.ts';
import { DEFAULT_SPEC, ensureDataset } from './dataset.ts';
import { machine } from './machine.ts';
import { benchOptions } from './options.ts';
import { percentile, writeSection } from './stats.ts';

const opts = benchOptions();
const events = Number(process.env.BENCH_CACHE_EVENTS ?? (opts.quick ? 200_000 : 2_000_000));
const runs = opts.quick ? 300 : 2000;
const log = (s: string) => process.stderr.write(`bench read-cache: ${s}\n`);
const dataDir = mkdtempSync(join(tmpdir(), 'tally-bench-cache-'));
const ch = await openClickHouse({ url: undefined, database: 'bench', dataDir });
await migrate(ch);
await ensureDataset(ch, { ...DEFAULT_SPEC, events }, log);
const where = await machine(ch);

const version = embeddedDataVersion(dataDir, 'bench');
async function timed(n: number, fn: () => Promise<unknown>): Promise<{ p50: number; p99: number }> {
  for (let i = 0; i < 20; i++) await fn();
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn();
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return { p50: percentile(ms, 50), p99: percentile(ms, 99) };
}
const partsRs = await ch.client.query({
  query: "SELECT count() AS n FROM system.parts WHERE database = 'bench' AND active",
  format: 'JSONEachRow',
});
const parts = Number((await partsRs.json<{ n: string }>())[0]?.n ?? 0);

const select1 = await timed(runs, async () => (await ch.client.query({ query: 'SELECT 1' })).text());
const versionIdle = await timed(runs, () => version.read());
// Under load: 90-day summaries back to back on the shared connection while the version is read.
let busy = true;
let reports = 0;
const load = (async () => {
  while (busy) {
    await usageSummary(ch, { start_date: '2025-01-01', end_date: '2025-03-31' });
    reports++;
  }
})();
const versionBusy = await timed(Math.min(runs, 500), () => version.read());
busy = false;
await load;
log(
  `version check idle p50 ${versionIdle.p50.toFixed(2)} p99 ${versionIdle.p99.toFixed(2)}; busy p99 ${versionBusy.p99.toFixed(2)}`,
);

const SECRET = 'bench-cache-secret-bench-cache-secret-0123';
const cache = new ReadCache({ version, maxBytes: 64 << 20, retentionDays: () => 0 });
const serveApp = (withCache: boolean) => {
  const app = createApp({
    ch,
    sink: createDirectSink(ch),
    logger: createLogger('silent'),
    auth: createAuthenticator({ secret: SECRET, issuer: undefined, audience: undefined }),
    ...(withCache ? { readCache: cache } : {}),
  });
  const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
  return server;
};
const headers = { authorization: `Bearer ${await mintToken(SECRET, { sub: 'bench', ttlSeconds: 7200 })}` };
const cases = [
  ['usage-summary, 90 days', '/reports/usage-summary?start_date=2025-01-01&end_date=2025-03-31'],
  [
    'usage-summary, 30 days, one team',
    '/reports/usage-summary?start_date=2025-02-01&end_date=2025-03-02&team_id=team-7',
  ],
  [
    'usage-timeseries, 90 days by week',
    '/reports/usage-timeseries?start_date=2025-01-01&end_date=2025-03-31&interval=week',
  ],
  ['system-events page 1 (limit 100)', '/logs/system-events?limit=100'],
  ['system-events page 1, CSV', '/logs/system-events?limit=100&format=csv'],
] as const;
interface Row {
  name: string;
  cached: { p50: number; p99: number };
  computed: { p50: number; p99: number };
}
const rows: Row[] = [];
const cachedServer = serveApp(true);
const plainServer = serveApp(false);
await Promise.all([cachedServer, plainServer].map((s) => new Promise((ok) => s.once('listening', ok))));
const base = (s: typeof cachedServer) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
for (const [name, path] of cases) {
  const ask = (s: typeof cachedServer) => async () => {
    const res = await fetch(base(s) + path, { headers });
    if (res.status !== 200) throw new Error(`${path}: ${res.status}`);
    await res.arrayBuffer();
  };
  const cached = await timed(runs, ask(cachedServer));
  const computed = await timed(opts.quick ? 20 : 60, ask(plainServer));
  rows.push({ name, cached, computed });
  log(
    `${name}: cached p50 ${cached.p50.toFixed(2)} p99 ${cached.p99.toFixed(2)}; computed p50 ${computed.p50.toFixed(1)}`,
  );
}
const f = (n: number) => n.toFixed(2);
writeSection(
  join('bench', 'RESULTS.md'),
  'read-cache',
  `## Result cache (\`bench/read-cache.ts\`)

Run ${new Date().toISOString().slice(0, 10)}, ${where}.
Dataset: ${events.toLocaleString('en-US')} events (the query benchmark's shape, 90 days), ${parts} active parts in the
database when measured. Milliseconds, nearest-rank percentiles, concurrency 1.

The data version (clickhouse/data-version.ts: a hash of the active parts of every analytics table, read on a
chdb Session of its own) checked ${runs.toLocaleString('en-US')} times; the floor is \`SELECT 1\` on the shared connection:

| check | p50 | p99 |
|---|---:|---:|
| \`SELECT 1\` (shared connection, through the client) | ${f(select1.p50)} | ${f(select1.p99)} |
| data version, idle | ${f(versionIdle.p50)} | ${f(versionIdle.p99)} |
| data version, while the shared connection runs 90-day summaries back to back (${reports} ran) | ${f(versionBusy.p50)} | ${f(versionBusy.p99)} |

The same request repeated over HTTP on a local socket (auth, rate limit off, validation, version check,
answer), ${runs.toLocaleString('en-US')} times cached; computed is the same app without the cache:

| request | cached p50 | cached p99 | computed p50 | computed p99 |
|---|---:|---:|---:|---:|
${rows.map((r) => `| ${r.name} | ${f(r.cached.p50)} | ${f(r.cached.p99)} | ${r.computed.p50.toFixed(1)} | ${r.computed.p99.toFixed(1)} |`).join('\n')}
`,
);
cachedServer.close();
plainServer.close();
version.close();
await ch.close();
rmSync(dataDir, { recursive: true, force: true });
process.exit(0);
