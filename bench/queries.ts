// Query benchmark: p50/p99 of GET /reports/usage-summary and of GET /logs/system-events page 1,000 (limit 100)
// on a 10-million-event dataset in the embedded engine, each against a baseline computed in the same run
// from the raw tables (FINAL; OFFSET paging), with the answers checked equal. Writes bench/RESULTS.md.
import { join } from 'node:path';
import { createApp } from '../api/app.ts';
import { createAuthenticator } from '../api/middleware/auth.ts';
import { openClickHouse } from '../clickhouse/client.ts';
import { migrate } from '../clickhouse/migrate.ts';
import { createLogger } from '../core/logger.ts';
import { mintToken } from '../core/tokens.ts';
import { createDirectSink } from '../ingest/direct.ts';
import { DEFAULT_SPEC, ensureDataset } from './dataset.ts';
import { measure, type Sample, writeSection } from './stats.ts';

const events = Number(process.env.BENCH_EVENTS ?? DEFAULT_SPEC.events);
const runs = Number(process.env.BENCH_RUNS ?? 100);
const dataDir = process.env.BENCH_DATA_DIR ?? join('.cache', `bench-queries-${events}`);
const log = (s: string) => process.stderr.write(`bench: ${s}\n`);

const ch = await openClickHouse({ url: undefined, database: 'bench', dataDir });
await migrate(ch);
const loaded = await ensureDataset(ch, { ...DEFAULT_SPEC, events }, log);
log(
  `dataset ready: ${loaded.usage} usage events, ${loaded.logs} log rows (load ${loaded.seconds.toFixed(0)} s)`,
);

const SECRET = 'bench-secret-bench-secret-bench-secret-01';
const app = createApp({
  ch,
  sink: createDirectSink(ch),
  logger: createLogger('silent'),
  auth: createAuthenticator({ secret: SECRET, issuer: undefined, audience: undefined }),
});
const token = await mintToken(SECRET, { sub: 'bench' });
async function api<T>(path: string): Promise<T> {
  const res = await app.request(path, { headers: { authorization: `Bearer ${token}` } });
  if (res.status !== 200) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}
async function sql<T>(query: string, query_params: Record<string, string | number> = {}): Promise<T[]> {
  const rs = await ch.client.query({ query, query_params, format: 'JSONEachRow' });
  return rs.json<T>();
}
function same(what: string, a: unknown, b: unknown): void {
  if (JSON.stringify(a) !== JSON.stringify(b)) {
    throw new Error(
      `${what}: API and baseline differ\n${JSON.stringify(a).slice(0, 400)}\n${JSON.stringify(b).slice(0, 400)}`,
    );
  }
}

// usage-summary, whole range and one team over 30 days; baseline: the same numbers from raw events (FINAL).
const rawSummary = (start: string, end: string, team?: string) =>
  sql<Record<string, string | number>>(
    `SELECT
      (SELECT uniqExact(user_id) FROM usage_events FINAL WHERE toDate(timestamp) <= {end:Date} ${team ? 'AND team_id = {team:String}' : ''}) AS total_users,
      (SELECT uniqExactIf(user_id, type != 'user_registered') FROM usage_events FINAL
        WHERE toDate(timestamp) BETWEEN {start:Date} AND {end:Date} ${team ? 'AND team_id = {team:String}' : ''}) AS active_users,
      (SELECT uniqExactIf(session_id, type = 'session_start') FROM usage_events FINAL
        WHERE toDate(timestamp) BETWEEN {start:Date} AND {end:Date} ${team ? 'AND team_id = {team:String}' : ''}) AS total_sessions`,
    { start, end, ...(team ? { team } : {}) },
  ).then(([r]) => ({
    total_users: Number(r?.total_users),
    active_users: Number(r?.active_users),
    total_sessions: Number(r?.total_sessions),
  }));

const summaryAll = '/reports/usage-summary?start_date=2025-01-01&end_date=2025-03-31';
const summaryTeam = '/reports/usage-summary?start_date=2025-02-01&end_date=2025-03-02&team_id=team-7';
same('summary (all)', await api(summaryAll), await rawSummary('2025-01-01', '2025-03-31'));
same('summary (team)', await api(summaryTeam), await rawSummary('2025-02-01', '2025-03-02', 'team-7'));

// system-events page 1,000 of 100; baseline: OFFSET 99,900 on log_events FINAL plus a FINAL count.
interface Page {
  events: Array<{ event_id: string }>;
  total_pages: number;
}
const offsetPage = async (page: number, limit: number) => {
  const [rows, [c]] = await Promise.all([
    sql<{ event_id: string }>(
      `SELECT event_id FROM log_events FINAL ORDER BY timestamp DESC, event_id DESC
       LIMIT {limit:UInt32} OFFSET {skip:UInt64}`,
      { limit, skip: (page - 1) * limit },
    ),
    sql<{ n: string | number }>('SELECT count() AS n FROM log_events FINAL'),
  ]);
  return { ids: rows.map((r) => r.event_id), total_pages: Math.ceil(Number(c?.n) / limit) };
};
const apiPage = async (path: string) => {
  const p = await api<Page>(path);
  return { ids: p.events.map((e) => e.event_id), total_pages: p.total_pages };
};
const page1000 = '/logs/system-events?page=1000&limit=100';
same('system-events page 1000', await apiPage(page1000), await offsetPage(1000, 100));
const errors1000 = '/logs/system-events?page=1000&limit=100&severity=error';

const samples: Sample[] = [];
const run = async (name: string, n: number, fn: () => Promise<unknown>) => {
  const s = await measure(name, n, fn);
  log(`${name}: p50 ${s.p50.toFixed(1)} ms, p99 ${s.p99.toFixed(1)} ms (${n} runs)`);
  samples.push(s);
  return s;
};
const sumApi = await run('usage-summary, 90 days, no filter (API)', runs, () => api(summaryAll));
const sumRaw = await run('  baseline: same from raw usage_events FINAL', Math.max(5, runs / 10), () =>
  rawSummary('2025-01-01', '2025-03-31'),
);
await run('usage-summary, 30 days, one team (API)', runs, () => api(summaryTeam));
const p1000 = await run('system-events page 1,000, limit 100 (API)', runs, () => api(page1000));
const pOffset = await run(
  '  baseline: OFFSET 99,900 on log_events FINAL + FINAL count',
  Math.max(5, runs / 10),
  () => offsetPage(1000, 100),
);
await run('system-events page 1, limit 100 (API)', runs, () => api('/logs/system-events?limit=100'));
await run('system-events page 1,000, limit 100, severity=error (API)', runs, () => api(errors1000));

const parts = await sql<{ table: string; parts: string | number }>(
  `SELECT table, count() AS parts FROM system.parts WHERE database = currentDatabase() AND active
   AND table IN ('usage_events', 'log_events', 'usage_daily', 'log_counts_hourly') GROUP BY table ORDER BY table`,
);
const fmt = (n: number) => n.toFixed(1);
const body = `## Queries (\`bench/queries.ts\`)

Run ${new Date().toISOString().slice(0, 10)} on the embedded engine (chdb), ${process.arch}, ${(await import('node:os')).cpus().length} cores.
Dataset: ${events.toLocaleString('en-US')} events made inside the engine through the raw tables and their
materialized views: ${loaded.usage.toLocaleString('en-US')} usage events and ${loaded.logs.toLocaleString('en-US')} log rows over 90 days, 1% of the logs
delivered twice. Active parts: ${parts.map((p) => `${p.table} ${p.parts}`).join(', ')}. Latencies are whole
requests through the app (\`app.request\`: auth, validation, query, JSON), milliseconds; baselines are the
same answers computed from the raw tables in the same run (checked equal before timing).

| case | runs | p50 ms | p99 ms |
|---|---:|---:|---:|
${samples.map((s) => `| ${s.name.trim()} | ${s.runs} | ${fmt(s.p50)} | ${fmt(s.p99)} |`).join('\n')}

- usage-summary from the rollups: ${fmt(sumRaw.p50 / sumApi.p50)}x faster at p50 than the raw-table baseline.
- system-events page 1,000 (hourly count rollup + bounded FINAL read): ${fmt(pOffset.p50 / p1000.p50)}x faster at p50 than OFFSET paging.
`;
writeSection(join('bench', 'RESULTS.md'), 'queries', body);
log('wrote bench/RESULTS.md');
await ch.close();
