// Query benchmark: usage-summary (several ranges and filters), usage-timeseries and system-events pages 1, 100
// and 1,000 on a 10-million-event dataset, through the HTTP API under autocannon at concurrency 1 and 8; the
// same query functions called directly on the engine (API overhead), and usage-summary from the raw tables
// (rollup speed-up). Answers are checked equal to the raw-table truth first. Writes bench/RESULTS.md.
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { createApp } from '../api/app.ts';
import { createAuthenticator } from '../api/middleware/auth.ts';
import { openClickHouse } from '../clickhouse/client.ts';
import { migrate } from '../clickhouse/migrate.ts';
import { systemEvents } from '../clickhouse/queries/system-events.ts';
import { usageSummary } from '../clickhouse/queries/usage-summary.ts';
import { usageTimeseries } from '../clickhouse/queries/usage-timeseries.ts';
import { createLogger } from '../core/logger.ts';
import { mintToken } from '../core/tokens.ts';
import { createDirectSink } from '../ingest/direct.ts';
import { offsetPage, rawSummary } from './baselines.ts';
import { DEFAULT_SPEC, describeDataset, ensureDataset, mergeRollups, sealAll } from './dataset.ts';
import { directLoad, httpLoad, type LoadResult } from './load.ts';
import { machine } from './machine.ts';
import { benchOptions } from './options.ts';
import { fmtSpread, measure, spread, writeSection } from './stats.ts';

const opts = benchOptions();
const events = opts.queryEvents;
const dataDir = process.env.BENCH_DATA_DIR ?? join('.cache', `bench-queries-${events}`);
const log = (s: string) => process.stderr.write(`bench queries: ${s}\n`);

const ch = await openClickHouse({ url: undefined, database: 'bench', dataDir });
await migrate(ch);
const loaded = await ensureDataset(ch, { ...DEFAULT_SPEC, events }, log);
await mergeRollups(ch);
// The reports read sealed pairs and log days once the service's sealer has had its round.
const sealSeconds = await sealAll(ch);
log(`sealed in ${sealSeconds.toFixed(1)} s`);
const shape = await describeDataset(ch);
log(`dataset ready: ${shape}`);

const SECRET = 'bench-secret-bench-secret-bench-secret-01';
const app = createApp({
  ch,
  sink: createDirectSink(ch),
  logger: createLogger('silent'),
  auth: createAuthenticator({ secret: SECRET, issuer: undefined, audience: undefined }),
});
const headers = { authorization: `Bearer ${await mintToken(SECRET, { sub: 'bench' })}` };
const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
await new Promise((ok) => server.once('listening', ok));
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
async function api<T>(path: string): Promise<T> {
  const res = await fetch(base + path, { headers });
  if (res.status !== 200) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}
function same(what: string, a: unknown, b: unknown): void {
  if (JSON.stringify(a) !== JSON.stringify(b)) {
    throw new Error(`${what}: API and baseline differ\n${JSON.stringify(a)}\n${JSON.stringify(b)}`);
  }
}

interface Case {
  name: string;
  path: string;
  /** The query function the route calls, without HTTP, auth, validation or JSON. */
  direct: () => Promise<unknown>;
}
const range90 = { start_date: '2025-01-01', end_date: '2025-03-31' };
const team30 = { start_date: '2025-02-01', end_date: '2025-03-02', team_id: 'team-7' };
const service7 = { start_date: '2025-03-01', end_date: '2025-03-07', service: 'search' };
const page = (n: number) => ({
  name: `system-events page ${n.toLocaleString('en-US')} (limit 100)`,
  path: `/logs/system-events?page=${n}&limit=100`,
  direct: () => systemEvents(ch, { limit: 100, page: n }),
});
const cases: Case[] = [
  {
    name: 'usage-summary, 90 days, no filter',
    path: '/reports/usage-summary?start_date=2025-01-01&end_date=2025-03-31',
    direct: () => usageSummary(ch, range90),
  },
  {
    name: 'usage-summary, 30 days, one team',
    path: '/reports/usage-summary?start_date=2025-02-01&end_date=2025-03-02&team_id=team-7',
    direct: () => usageSummary(ch, team30),
  },
  {
    name: 'usage-summary, 7 days, one service',
    path: '/reports/usage-summary?start_date=2025-03-01&end_date=2025-03-07&service=search',
    direct: () => usageSummary(ch, service7),
  },
  {
    name: 'usage-timeseries, 90 days by week',
    path: '/reports/usage-timeseries?start_date=2025-01-01&end_date=2025-03-31&interval=week',
    direct: () => usageTimeseries(ch, { ...range90, interval: 'week' }),
  },
  page(1),
  page(100),
  page(1000),
];

// Exactness first: the rollup answers equal the raw-table truth, and keyset pages equal OFFSET pages.
same('summary 90 days', await api(cases[0]!.path), await rawSummary(ch, '2025-01-01', '2025-03-31'));
same('summary team', await api(cases[1]!.path), await rawSummary(ch, '2025-02-01', '2025-03-02', 'team-7'));
for (const n of [1, 100, 1000]) {
  const p = await api<{ events: Array<{ event_id: string }>; total_pages: number }>(
    `/logs/system-events?page=${n}&limit=100`,
  );
  same(
    `page ${n}`,
    { ids: p.events.map((e) => e.event_id), total_pages: p.total_pages },
    await offsetPage(ch, n, 100),
  );
}
log('answers equal the raw-table baselines');

interface Row {
  name: string;
  connections: number;
  api: LoadResult[];
  engine: LoadResult[];
}
const rows: Row[] = [];
for (const c of cases) {
  for (const connections of [1, 8]) {
    const row: Row = { name: c.name, connections, api: [], engine: [] };
    for (let i = 0; i < opts.repeats; i++) {
      row.api.push(await httpLoad(base + c.path, headers, connections, opts.seconds));
      row.engine.push(await directLoad(c.direct, connections, opts.seconds));
    }
    const p = spread(row.api.map((r) => r.p99));
    log(`${c.name} c=${connections}: API p99 ${fmtSpread(p)} ms`);
    rows.push(row);
  }
}

// Rollup speed-up: the 90-day summary from the rollups (direct) against the same from raw FINAL (c=1).
const rawRuns = Math.max(2, opts.repeats);
const raw = await measure('raw', rawRuns, () => rawSummary(ch, '2025-01-01', '2025-03-31'), 1);
const rollup = await measure('rollup', rawRuns * 5, () => usageSummary(ch, range90), 1);
const rawTeam = await measure(
  'raw team',
  rawRuns,
  () => rawSummary(ch, '2025-02-01', '2025-03-02', 'team-7'),
  1,
);
const rollupTeam = await measure('rollup team', rawRuns * 5, () => usageSummary(ch, team30), 1);
const offset = await measure('offset', rawRuns, () => offsetPage(ch, 1000, 100), 1);
const keyset = await measure('keyset', rawRuns * 5, () => systemEvents(ch, { limit: 100, page: 1000 }), 1);
server.close();

const f1 = (n: number) => n.toFixed(1);
const cell = (rs: LoadResult[], k: keyof LoadResult, d = 1) => fmtSpread(spread(rs.map((r) => r[k])), d);
const table = rows
  .map((r) => {
    const ratio = spread(r.api.map((a, i) => a.p50 / (r.engine[i]?.p50 ?? Number.NaN)));
    return `| ${r.name} | ${r.connections} | ${cell(r.api, 'requests', 0)} | ${cell(r.api, 'p50')} | ${cell(r.api, 'p95')} | ${cell(r.api, 'p99')} | ${cell(r.api, 'rps', 0)} | ${cell(r.engine, 'p50')} | ${cell(r.engine, 'rps', 0)} | ${fmtSpread(ratio, 2)} |`;
  })
  .join('\n');
const body = `## Queries (\`bench/queries.ts\`)

Run ${new Date().toISOString().slice(0, 10)}, ${await machine(ch)}.
Dataset: ${events.toLocaleString('en-US')} events (${loaded.usage.toLocaleString('en-US')} usage events, ${loaded.logs.toLocaleString('en-US')} log rows, 1% of logs
delivered twice) over 90 days, made inside the engine through the raw tables and their materialized views;
rollups then merged (OPTIMIZE FINAL, as background merges leave them on a steady stream) and sealed as the
service's sealer would (${sealSeconds.toFixed(1)} s). Shape: ${shape}.

Each figure is the median (min–max) of ${opts.repeats} runs of ${opts.seconds} s of closed-loop load. "API" is HTTP through
the Hono app on a local socket under autocannon (auth, validation, query, JSON); "engine" calls the same query
function directly in the process (same SQL, no HTTP). Milliseconds and requests per second. "samples" is the
requests timed in one run: with fewer than 100, a run's p99 is its slowest request (nearest rank).

| case | conc. | API samples | API p50 | API p95 | API p99 | API req/s | engine p50 | engine req/s | API/engine p50 |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
${table}

Baselines, concurrency 1, p50 ms (answers checked equal before timing):

| query | rollup / keyset (direct) | baseline | speed-up |
|---|---:|---:|---:|
| usage-summary, 90 days, no filter | ${f1(rollup.p50)} | ${f1(raw.p50)} (usage_events FINAL) | ${f1(raw.p50 / rollup.p50)}x |
| usage-summary, 30 days, one team | ${f1(rollupTeam.p50)} | ${f1(rawTeam.p50)} (usage_events FINAL) | ${f1(rawTeam.p50 / rollupTeam.p50)}x |
| system-events page 1,000 | ${f1(keyset.p50)} | ${f1(offset.p50)} (OFFSET on log_events FINAL + FINAL count) | ${f1(offset.p50 / keyset.p50)}x |
`;
writeSection(join('bench', 'RESULTS.md'), 'queries', body);
log('wrote bench/RESULTS.md');
await ch.close();
