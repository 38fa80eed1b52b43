// One shape of the scale benchmark, in a process of its own (the embedded engine allows one data directory per
// process): `generate <shape>` makes (or resumes) the cached dataset; `measure <shape>` serves it through the
// HTTP API as bench/queries.ts builds it and times every case, then spot-checks sampled answers against the
// raw tables. It knows the read path only through the API and the engine's own tables, so it measures any
// implementation of the rollups alike. Results go to <dataset dir>/result.json for bench/scale.ts to report.

import { writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { createApp } from '../api/app.ts';
import { createAuthenticator } from '../api/middleware/auth.ts';
import { ReadCache } from '../api/read-cache.ts';
import { type ClickHouse, openClickHouse } from '../clickhouse/client.ts';
import { DerivedState } from '../clickhouse/derived-state.ts';
import { insertEvents } from '../clickhouse/inserts.ts';
import { migrate } from '../clickhouse/migrate.ts';
import { sealLogDays } from '../clickhouse/queries/log-day-counts.ts';
import { systemEvents } from '../clickhouse/queries/system-events.ts';
import { usageSummary } from '../clickhouse/queries/usage-summary.ts';
import { type Interval, usageTimeseries } from '../clickhouse/queries/usage-timeseries.ts';
import { QuietDays, sealUsage } from '../clickhouse/sealer.ts';
import { type LogRow, SEVERITIES, type Severity } from '../core/events.ts';
import { createLogger } from '../core/logger.ts';
import { mintToken } from '../core/tokens.ts';
import { createDirectSink } from '../ingest/direct.ts';
import { sealAll } from './dataset.ts';
import { startHttpClient } from './http-client.ts';
import { machine } from './machine.ts';
import {
  completeDataset,
  datasetDir,
  generateDataset,
  prepareDatasetDir,
  SCALE_DAYS,
  SCALE_START,
  SHAPE_DOMAIN,
  type Shape,
  scalePlan,
  settleMerges,
} from './scale-dataset.ts';
import { insertLive, LIVE_DAY, liveRows } from './scale-live.ts';
import { CLIENT_WHERE, type ScaleOptions, scaleOptions } from './scale-options.ts';
import {
  addDays,
  type Domain,
  dashboardRequests,
  daysBetween,
  type LogsRequest,
  logsRequests,
  type Params,
  pageFor,
  query,
  type Request,
  summaryRequests,
  timeseriesRequests,
} from './scale-requests.ts';
import type { CaseResult, CheckResult, FloorResult, ShapeResult, SlowQuery } from './scale-result.ts';
import { truthLogPage, truthSummary, truthTimeseriesByWeek } from './scale-truth.ts';
import { percentile } from './stats.ts';
import { watchTail } from './tail-watch.ts';

const [mode, shapeArg] = process.argv.slice(2);
const shape = shapeArg as Shape;
if (!['generate', 'measure'].includes(mode ?? '') || !(shape in SHAPE_DOMAIN)) {
  process.stderr.write('usage: scale-shape.ts generate|measure product|long-tail [--quick]\n');
  process.exit(2);
}
const opts = scaleOptions();
const dir = datasetDir(opts.root, shape, opts.events);
const plan = scalePlan(shape, opts.events);
const log = (s: string) => process.stderr.write(`bench scale ${shape}: ${s}\n`);

if (mode === 'generate') {
  prepareDatasetDir(dir, plan);
  const ch = await openClickHouse({ url: undefined, database: 'bench', dataDir: dir });
  await migrate(ch);
  const info = await generateDataset(ch, dir, plan, log);
  log(`dataset ready in ${info.seconds.toFixed(0)} s (${dir})`);
  await ch.close();
  process.exit(0);
}

const info = completeDataset(dir);
if (!info) throw new Error(`no complete dataset in ${dir}: run generate first`);
const ch = await openClickHouse({ url: undefined, database: 'bench', dataDir: dir });
// Migrations added since the dataset was made (new tiers, backfilled from the rollups) run here.
const tm = performance.now();
await migrate(ch);
const migrateSeconds = (performance.now() - tm) / 1000;
// What the service's sealer does in the background once data has settled: back-fill the usage points of a
// dataset made before them, seal every usage day and log day. Timed, and reported with the migrations.
const sealSeconds = await sealAll(ch);
log(`sealed in ${sealSeconds.toFixed(0)} s`);
await settleMerges(ch, log, opts.settleSeconds);
const result = await measure(ch, opts);
writeFileSync(join(dir, 'result.json'), `${JSON.stringify(result, null, 2)}\n`);
log(`wrote ${join(dir, 'result.json')}`);
await ch.close();
process.exit(result.mismatches.length > 0 ? 1 : 0);

// ---------------------------------------------------------------------------------------------------------

interface Recorded {
  query: string;
  params: Record<string, unknown>;
  ms: number;
}

/**
 * A view of `ch` whose client records every query the app sends (SQL, parameters, time) while `recording` is
 * set: how the harness sees what a slow request did without knowing the read path (the embedded engine has no
 * system.query_log).
 */
function recordingEngine(base: ClickHouse) {
  const state = { recording: undefined as Recorded[] | undefined };
  const client = new Proxy(base.readClient, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function' || !['query', 'exec', 'command'].includes(String(prop))) return value;
      return async (arg: { query?: string; query_params?: Record<string, unknown> }, ...rest: unknown[]) => {
        const t0 = performance.now();
        try {
          return await value.call(target, arg, ...rest);
        } finally {
          if (state.recording && typeof arg?.query === 'string') {
            state.recording.push({
              query: arg.query,
              params: arg.query_params ?? {},
              ms: performance.now() - t0,
            });
          }
        }
      };
    },
  });
  // The API's read connection (forApiReads), as client and readClient: the app reads through it, and the read
  // path timed in process then shares the app's engine view, so its in-memory state as well. The harness's own
  // work (sealing, live inserts, the raw truth) goes through `base`, as the service's sealer does.
  return { ch: { ...base, client, readClient: client } as ClickHouse, state };
}

async function measure(base: ClickHouse, o: ScaleOptions): Promise<ShapeResult> {
  const started = new Date().toISOString();
  const machineLine = await machine(base);
  const dom = SHAPE_DOMAIN[shape];
  const domain: Domain = {
    first: SCALE_START,
    days: SCALE_DAYS,
    users: dom.users,
    heavyUsers: dom.heavyUsers,
    teams: dom.teams,
    services: dom.services,
    logServices: dom.logServices,
  };
  const { ch, state } = recordingEngine(base);
  const SECRET = 'bench-secret-bench-secret-bench-secret-01';
  // The read cache as the service runs it (default size, version from a chdb session of its own): every
  // request but the repeated one is a new question, so it only ever answers that case.
  // Shared with the read path timed in process (the spot-checks), so both are as warm.
  const derived = new DerivedState();
  const readCache = new ReadCache({
    derived,
    version: base.dataVersion(),
    maxBytes: 64 << 20,
    retentionDays: () => 0,
    early: o.early,
  });
  const app = createApp({
    ch,
    sink: createDirectSink(ch),
    logger: createLogger('silent'),
    auth: createAuthenticator({ secret: SECRET, issuer: undefined, audience: undefined }),
    readCache,
  });
  const headers = { authorization: `Bearer ${await mintToken(SECRET, { sub: 'bench-scale' })}` };
  const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
  await new Promise((ok) => server.once('listening', ok));
  const base_ = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const client = await startHttpClient(o.client);
  async function get<T>(path: string, params: Params): Promise<{ body: T; ms: number }> {
    const res = await client.get(`${base_}${path}?${query(params)}`, headers);
    if (res.status !== 200) throw new Error(`${path}?${query(params)}: ${res.status} ${res.text}`);
    return { body: JSON.parse(res.text) as T, ms: res.ms };
  }
  async function healthz(): Promise<number> {
    return (await client.get(`${base_}/healthz`)).ms;
  }

  // --- floors: the least each case must read and merge, timed with direct queries on this engine ----------
  log('floors');
  const floors: FloorResult[] = [];
  async function floor(name: string, what: string, sql: string, runs = 20, warm = 2): Promise<number> {
    const ms: number[] = [];
    for (let i = 0; i < runs + warm; i++) {
      const t0 = performance.now();
      const rs = await base.client.query({ query: sql, format: 'JSONEachRow' });
      await rs.json();
      if (i >= warm) ms.push(performance.now() - t0);
    }
    ms.sort((a, b) => a - b);
    const p50 = percentile(ms, 50);
    floors.push({ name, what, p50, p99: percentile(ms, 99), runs });
    log(`floor ${name}: ${p50.toFixed(2)} ms`);
    return p50;
  }
  const s = info!.stats;
  {
    const ms: number[] = [];
    for (let i = 0; i < 1000; i++) ms.push(await healthz());
    ms.sort((a, b) => a - b);
    floors.push({
      name: 'HTTP round trip',
      what: `GET /healthz on the same server and client (the client in ${CLIENT_WHERE[o.client]}; no auth, no engine): under every case`,
      p50: percentile(ms, 50),
      p99: percentile(ms, 99),
      runs: ms.length,
    });
  }
  await floor('engine round trip', 'SELECT 1: one query through the embedded engine', 'SELECT 1 AS x');
  await floor(
    'summary, 365 days, no filter',
    `merge the distinct users it answers with: ${s.activeUsersYear.toLocaleString('en-US')} active + ${s.users.toLocaleString('en-US')} seen, as 64-bit ids (uniqExact over numbers()); sessions as a sum of 365 sealed day counts`,
    `SELECT (SELECT uniqExact(number) FROM numbers(${s.activeUsersYear})) + (SELECT uniqExact(number) FROM numbers(${s.users})) + (SELECT sum(number) FROM numbers(365)) AS x`,
  );
  await floor(
    'timeseries, 53 weeks',
    `merge the distinct (week, user) pairs of the year: ${s.userWeeks.toLocaleString('en-US')} 64-bit ids in 53 groups`,
    `SELECT number % 53 AS w, uniqExact(number) AS n FROM numbers(${s.userWeeks}) GROUP BY w`,
  );
  await floor(
    'logs page, newest',
    '100 rows of the five columns read newest first by the primary key (no FINAL), plus 365·24·24 hourly counters summed',
    `SELECT (SELECT sum(number) FROM numbers(${365 * 24 * 24})) AS c, groupArray(event_id) AS ids FROM (SELECT timestamp, severity, service, message, event_id FROM log_events ORDER BY timestamp DESC, event_id DESC LIMIT 100)`,
  );
  await floor(
    'logs page, oldest',
    'the same for the last page (oldest rows first by the primary key)',
    `SELECT groupArray(event_id) AS ids FROM (SELECT timestamp, severity, service, message, event_id FROM log_events ORDER BY timestamp ASC, event_id ASC LIMIT 100)`,
  );
  await floor(
    'raw scan, usage, 365 days',
    `what no rollup costs: read the 4 columns a summary needs from all ${info!.usageRows.toLocaleString('en-US')} raw usage rows (no merge)`,
    'SELECT count() AS n FROM usage_events WHERE NOT ignore(timestamp, type, user_id, session_id)',
    2,
    1,
  );

  // --- cases --------------------------------------------------------------------------------------------
  const cases: CaseResult[] = [];
  const slowest = new Map<string, { req: Request; ms: number }>();

  /** Times `reqs` one after another (concurrency 1) until done or the case's time budget is spent. */
  async function timed(
    name: string,
    target: number,
    reqs: Request[],
    prepare?: (q: Request) => Promise<Request>,
  ): Promise<CaseResult> {
    for (const q of reqs.slice(0, 3)) await get(q.path, (await (prepare?.(q) ?? q)).params); // warm-up
    const ms: number[] = [];
    const byKind = new Map<string, number[]>();
    let worst = { req: reqs[0] as Request, ms: -1 };
    const until = performance.now() + o.caseSeconds * 1000;
    const tail = watchTail();
    for (const q0 of reqs) {
      if (performance.now() > until) break;
      const q = prepare ? await prepare(q0) : q0;
      const t0 = performance.now();
      const r = await get<unknown>(q.path, q.params);
      tail.request(t0, performance.now());
      ms.push(r.ms);
      byKind.set(q.kind, [...(byKind.get(q.kind) ?? []), r.ms]);
      if (r.ms > worst.ms) worst = { req: q, ms: r.ms };
    }
    slowest.set(name, worst);
    const res = summarize(name, target, 'p99', ms, reqs.length);
    res.tail = tail.stop();
    res.kinds = [...byKind].map(([kind, xs]) => {
      xs.sort((a, b) => a - b);
      return { kind, runs: xs.length, p50: percentile(xs, 50), p99: percentile(xs, 99) };
    });
    cases.push(res);
    log(
      `${name}: ${res.runs} requests, p50 ${res.p50.toFixed(1)} ms, p99 ${res.p99.toFixed(1)} ms (target ${target})`,
    );
    return res;
  }

  const n = o.requests;
  await timed('usage-summary, random ranges, no filter', 50, summaryRequests(1401, n, domain, false));
  await timed('usage-summary, random ranges, filtered', 50, summaryRequests(1402, n, domain, true));
  // The same request again and again (a cache would serve it): a long unfiltered range from the first case.
  const longest =
    summaryRequests(1401, n, domain, false).find(
      (q) => (q.params.start_date ?? '') <= '2025-01-31' && (q.params.end_date ?? '') >= '2025-12-01',
    ) ?? (summaryRequests(1401, 1, domain, false)[0] as Request);
  await timed(
    'usage-summary, one request repeated',
    5,
    Array.from({ length: n }, () => ({ ...longest, kind: 'repeated' })),
  );
  // Logs: an unmeasured limit=1 request first tells how many logs match (total_pages), to place the page.
  const logByKey = new Map<string, LogsRequest>();
  const asRequest = (l: LogsRequest): Request => ({
    kind: l.kind,
    path: '/logs/system-events',
    params: { ...l.filters, at: String(l.at), position: l.position },
  });
  const placePage = async (q: Request): Promise<Request> => {
    const { at, position, ...filters } = q.params;
    const probe = await get<{ total_pages: number }>(q.path, { ...filters, limit: '1' });
    const page = pageFor(position as LogsRequest['position'], probe.body.total_pages, 100, Number(at));
    const params = { ...filters, limit: '100', page: String(page) };
    logByKey.set(query(params), {
      kind: q.kind,
      position: position as LogsRequest['position'],
      filters,
      at: Number(at),
    });
    return { kind: q.kind, path: q.path, params };
  };
  await timed(
    'system-events, first/middle/last page',
    30,
    logsRequests(1403, n, domain).map(asRequest),
    placePage,
  );
  await timed('usage-timeseries, 365 days by week', 100, timeseriesRequests(1404, n, domain));

  // Concurrency 8: the dashboard mix, every request different; throughput over wall time.
  {
    const name = 'dashboard mix at concurrency 8';
    const reqs = dashboardRequests(1405, Math.max(n, 300), domain);
    let next = 0;
    const ms: number[] = [];
    const t0 = performance.now();
    const until = t0 + o.caseSeconds * 1000;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (;;) {
          const i = next++;
          if (i >= reqs.length || performance.now() > until) return;
          const q = reqs[i] as Request;
          ms.push((await get(q.path, q.params)).ms);
        }
      }),
    );
    const wall = (performance.now() - t0) / 1000;
    const res = summarize(name, 100, 'rps', ms, reqs.length);
    res.rps = ms.length / wall;
    res.met = res.rps >= res.target;
    cases.push(res);
    log(`${name}: ${ms.length} requests, ${res.rps.toFixed(1)} requests/s (target 100)`);
  }

  // --- spot-checks against the raw tables, and the rollup speed-up on the same requests -----------------
  const mismatches: string[] = [];
  const checks: CheckResult[] = [];
  // The read path in process: the version check and the route's read function with the state derived at that
  // version (the API's own), without HTTP, auth and JSON: what the rollups cost against the raw tables, apart
  // from what every request pays to be served.
  const inProcessVersion = base.dataVersion();
  async function readPath(q: Request): Promise<number> {
    const t0 = performance.now();
    const snap = derived.at(await inProcessVersion.read());
    const p = q.params;
    const range = { start_date: p.start_date as string, end_date: p.end_date as string };
    const filters = { team_id: p.team_id, service: p.service, user_id: p.user_id };
    if (q.path === '/reports/usage-summary') await usageSummary(ch, { ...range, ...filters }, snap);
    else if (q.path === '/reports/usage-timeseries')
      await usageTimeseries(ch, { ...range, ...filters, interval: p.interval as Interval }, snap);
    else if (q.path === '/logs/system-events') {
      const logs = { severity: p.severity as Severity | undefined, service: p.service };
      const dates = { start_date: p.start_date, end_date: p.end_date };
      await systemEvents(
        ch,
        { ...logs, ...dates, limit: Number(p.limit ?? 100), page: Number(p.page ?? 1) },
        snap,
      );
    } else throw new Error(`no read path for ${q.path}`);
    return performance.now() - t0;
  }
  // Fresh requests of each case (other seeds, so no cache has seen them), each asked of the API, then of the
  // read path in process, then of the raw tables, one after the other: the timings share the machine's load
  // of that moment.
  async function check(
    caseName: string,
    reqs: Request[],
    truth: (q: Request) => Promise<unknown>,
    project: (body: unknown) => unknown = (b) => b,
    prepare?: (q: Request) => Promise<Request>,
  ) {
    const requests: CheckResult['requests'] = [];
    const until = performance.now() + o.checkSeconds * 1000;
    for (const q0 of reqs.slice(0, o.checks)) {
      if (requests.length >= Math.min(3, o.checks) && performance.now() > until) break;
      const q = prepare ? await prepare(q0) : q0;
      const got = await get<unknown>(q.path, q.params);
      const read = await readPath(q);
      const t0 = performance.now();
      const want = await truth(q);
      requests.push({ kind: q.kind, raw: performance.now() - t0, api: got.ms, read });
      if (JSON.stringify(project(got.body)) !== JSON.stringify(want)) {
        mismatches.push(
          `${caseName}: ${q.path}?${query(q.params)}\n  API  ${JSON.stringify(project(got.body))}\n  raw  ${JSON.stringify(want)}`,
        );
      }
    }
    const sorted = (k: 'raw' | 'api' | 'read') => requests.map((r) => r[k]).sort((a, b) => a - b);
    const [raw, api, read] = [sorted('raw'), sorted('api'), sorted('read')];
    const c: CheckResult = {
      name: caseName,
      checked: raw.length,
      rawP50: percentile(raw, 50),
      apiP50: percentile(api, 50),
      speedup: percentile(raw, 50) / percentile(api, 50),
      readP50: percentile(read, 50),
      readSpeedup: percentile(raw, 50) / percentile(read, 50),
      requests,
    };
    checks.push(c);
    log(
      `checked ${caseName}: ${c.checked} answers, raw p50 ${c.rawP50.toFixed(0)} ms, API p50 ${c.apiP50.toFixed(1)} ms (speed-up ${c.speedup.toFixed(1)}x), read path p50 ${c.readP50.toFixed(1)} ms (speed-up ${c.readSpeedup.toFixed(1)}x)`,
    );
  }
  const k = o.checks;
  const summaryTruth = (q: Request) => truthSummary(base, q.params);
  await check(
    'usage-summary, random ranges, no filter',
    summaryRequests(2401, k, domain, false),
    summaryTruth,
  );
  await check('usage-summary, random ranges, filtered', summaryRequests(2402, k, domain, true), summaryTruth);
  // Asked once more and again: what a repeated question costs against the raw tables.
  await check('usage-summary, one request repeated', [{ ...longest, kind: 'repeated' }], summaryTruth);
  await check(
    'system-events, first/middle/last page',
    logsRequests(2403, k, domain).map(asRequest),
    async (q) => {
      const l = logByKey.get(query(q.params));
      if (!l) throw new Error('no logs request recorded');
      return truthLogPage(base, l.filters, Number(q.params.page), 100);
    },
    (b) => {
      const body = b as { events: Array<{ event_id: string }>; total_pages: number };
      return { ids: body.events.map((e) => e.event_id), total_pages: body.total_pages };
    },
    placePage,
  );
  await check(
    'usage-timeseries, 365 days by week',
    timeseriesRequests(2404, k, domain),
    (q) => truthTimeseriesByWeek(base, q.params),
    (b) => (b as { rows: unknown[] }).rows,
  );

  // --- the open day: ranges that end on a day still taking events (today, under live traffic) -------------
  // The live events of scale-live.ts: a first slice, one sealer round (its first of the day: every point
  // covered), a second slice (points the sealer has not reached), then while the cases run a trickle every
  // second and a sealer round every 5 s, on this process's engine as the service's ingest and sealer run.
  log('open day');
  const liveSince = addDays(LIVE_DAY, -364);
  const toLive = (q: Request): Request => {
    const start = q.params.start_date ?? liveSince;
    return {
      ...q,
      // The later of the two days (ISO dates sort as text).
      params: { ...q.params, start_date: [liveSince, start].sort()[1] ?? start, end_date: LIVE_DAY },
    };
  };
  const liveSummaries = (seed: number, count: number) => {
    const half = Math.ceil(count / 2);
    const a = summaryRequests(seed, half, domain, false).map(toLive);
    const b = summaryRequests(seed + 1, half, domain, true).map(toLive);
    return a.flatMap((q, i) => [q, b[i] as Request]).slice(0, count);
  };
  const liveSeries = (seed: number, count: number) =>
    timeseriesRequests(seed, count, domain).map((q) => ({
      ...q,
      params: {
        ...q.params,
        start_date: addDays(
          liveSince,
          daysBetween(addDays(domain.first, -31), q.params.start_date ?? domain.first),
        ),
        end_date: LIVE_DAY,
      },
    }));
  // Logs pages as a live dashboard asks for them: the first page of a range that ends on the open day, a
  // severity or a service in half of them (recorded for their truth, as placePage does).
  const liveLogPages = (seed: number, count: number): Request[] =>
    logsRequests(seed, count, domain).map((l) => {
      const start = l.filters.start_date ?? addDays(LIVE_DAY, -29);
      const filters = {
        ...l.filters,
        start_date: [addDays(LIVE_DAY, -364), start].sort()[1] ?? start,
        end_date: LIVE_DAY,
      };
      const params = { ...filters, limit: '100', page: '1' };
      const kind = `first page, ${l.filters.severity || l.filters.service ? 'filtered' : 'no filter'}`;
      logByKey.set(query(params), { kind, position: 'first', filters, at: 0 });
      return { kind, path: '/logs/system-events', params };
    });
  // Rows an earlier run covered would leave nothing to cover: the day starts uncovered, as each day does.
  await base.client.command({
    query: 'DELETE FROM usage_open_points WHERE day = {day:Date}',
    query_params: { day: LIVE_DAY },
  });
  const quiet = new QuietDays();
  const coverRound = () => sealUsage(base, quiet, 3_600_000, Date.now());
  const first = await insertLive(base, 0, 8, 100);
  const tc = performance.now();
  await coverRound();
  const coverMs = performance.now() - tc;
  const second = await insertLive(base, 8, 9, 100);
  // About 20 events a second (a day's traffic is ~2.5 a second at 80M usage events a year), in the order
  // they will be inserted, each second's batch under its own token.
  const trickleRows = await liveRows(base, 9_000, 10_000, 10_000);
  // Logs too, 20 a second into the open day, each run's with ids of its own; the log sealer runs as the
  // service's does (a day is sealed once its counters have not moved for 30 s, so not the open day).
  const liveLogs = (at: number): LogRow[] =>
    Array.from({ length: 20 }, (_, i) => ({
      event_id: `live-log-${started}-${at + i}`,
      timestamp: new Date(Date.parse(`${LIVE_DAY}T00:00:00Z`) + (at + i) * 997)
        .toISOString()
        .replace('T', ' ')
        .replace('Z', ''),
      severity: SEVERITIES[(at + i) % SEVERITIES.length] as LogRow['severity'],
      service: domain.logServices[(at + i) % domain.logServices.length] as string,
      message: `live log ${at + i}`,
    }));
  const quietLogs = new QuietDays();
  let trickled = 0;
  let trickling = true;
  const trickle = (async () => {
    let sealedAt = performance.now();
    for (let at = 0; trickling; at += 20) {
      const batch = trickleRows.take(20);
      if (batch.length === 0) break;
      await insertEvents(base, { usage: batch, logs: liveLogs(at) }, `bench-live/${started}/${at}`);
      trickled += batch.length;
      if (performance.now() - sealedAt >= 5_000) {
        await coverRound();
        await sealLogDays(base, { days: quietLogs, quietMs: 30_000, now: Date.now() });
        sealedAt = performance.now();
      }
      await new Promise((ok) => setTimeout(ok, 1_000));
    }
  })();
  try {
    await timed('usage-summary, ranges ending on the open day (live traffic)', 50, liveSummaries(1406, n));
    await timed(
      'usage-timeseries, 365 days by week to the open day (live traffic)',
      100,
      liveSeries(1408, n),
    );
    await timed('system-events, first page to the open day (live traffic)', 30, liveLogPages(1409, n));
  } finally {
    trickling = false;
    await trickle;
  }
  const covered = await base.client.query({
    query: 'SELECT count() AS n FROM usage_open_points WHERE day = {day:Date}',
    query_params: { day: LIVE_DAY },
    format: 'JSONEachRow',
  });
  const open = {
    day: LIVE_DAY,
    firstSlice: first,
    secondSlice: second,
    trickled,
    coverMs,
    coveredPoints: Number((await covered.json<{ n: string }>())[0]?.n ?? 0),
  };
  log(`open day: ${JSON.stringify(open)}`);
  await check(
    'usage-summary, ranges ending on the open day (live traffic)',
    liveSummaries(2406, k),
    summaryTruth,
  );
  await check(
    'usage-timeseries, 365 days by week to the open day (live traffic)',
    liveSeries(2408, k),
    (q) => truthTimeseriesByWeek(base, q.params),
    (b) => (b as { rows: unknown[] }).rows,
  );
  await check(
    'system-events, first page to the open day (live traffic)',
    liveLogPages(2409, k),
    async (q) => {
      const l = logByKey.get(query(q.params));
      if (!l) throw new Error('no logs request recorded');
      return truthLogPage(base, l.filters, 1, 100);
    },
    (b) => {
      const body = b as { events: Array<{ event_id: string }>; total_pages: number };
      return { ids: body.events.map((e) => e.event_id), total_pages: body.total_pages };
    },
  );

  // --- where the time goes: the slowest request of each case that missed its target, replayed ----------
  const slow: SlowQuery[] = [];
  for (const c of cases) {
    const w = slowest.get(c.name);
    if (!w || c.met || c.unit !== 'p99') continue;
    state.recording = [];
    const again = await get(w.req.path, w.req.params);
    const recorded = state.recording;
    state.recording = undefined;
    recorded.sort((a, b) => b.ms - a.ms);
    const top = recorded[0];
    let estimate: string[] = [];
    if (top && /^\s*(SELECT|WITH)/i.test(top.query)) {
      try {
        const rs = await base.client.query({
          query: `EXPLAIN ESTIMATE ${top.query}`,
          query_params: top.params,
          format: 'JSONEachRow',
        });
        const rowsEst = await rs.json<{ table: string; parts: string; rows: string; marks: string }>();
        estimate = rowsEst.map(
          (r) =>
            `${r.table}: ${Number(r.rows).toLocaleString('en-US')} rows in ${r.parts} parts (${r.marks} marks)`,
        );
      } catch (err) {
        estimate = [`EXPLAIN ESTIMATE failed: ${String(err).slice(0, 120)}`];
      }
    }
    slow.push({
      case: c.name,
      request: `${w.req.path}?${query(w.req.params)}`,
      firstMs: w.ms,
      replayMs: again.ms,
      queries: recorded.map((r) => ({ ms: r.ms, sql: r.query.replace(/\s+/g, ' ').trim().slice(0, 400) })),
      estimate,
    });
  }

  // --- memory and disk ----------------------------------------------------------------------------------
  const rss = process.memoryUsage().rss;
  const rs = await base.client.query({
    query: `SELECT table, sum(rows) AS rows, sum(bytes_on_disk) AS bytes, count() AS parts FROM system.parts
            WHERE database = currentDatabase() AND active GROUP BY table ORDER BY bytes DESC`,
    format: 'JSONEachRow',
  });
  const tables = (await rs.json<{ table: string; rows: string; bytes: string; parts: string }>()).map(
    (t) => ({
      table: t.table,
      rows: Number(t.rows),
      bytes: Number(t.bytes),
      parts: Number(t.parts),
    }),
  );
  client.close();
  server.close();
  // Waits for the derived state it shares with the read path timed in process.
  await readCache.close();
  inProcessVersion.close();
  return {
    shape,
    events: opts.events,
    started,
    machine: machineLine,
    dataset: info!,
    migrateSeconds,
    sealSeconds,
    floors,
    cases,
    checks,
    mismatches,
    slow,
    rssBytes: rss,
    tables,
    options: o,
    open,
  };
}

function summarize(
  name: string,
  target: number,
  unit: 'p99' | 'rps',
  ms: number[],
  planned: number,
): CaseResult {
  ms.sort((a, b) => a - b);
  const p99 = percentile(ms, 99);
  return {
    name,
    target,
    unit,
    runs: ms.length,
    planned,
    p50: percentile(ms, 50),
    p99,
    max: ms.at(-1) ?? Number.NaN,
    rps: 0,
    met: unit === 'p99' ? p99 <= target : false,
    load: loadavg()[0] ?? 0,
    kinds: [],
  };
}
