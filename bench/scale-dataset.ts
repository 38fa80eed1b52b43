// The scale benchmark's datasets (issue 14): N events over 365 days in two shapes, made inside the embedded
// engine with INSERT ... SELECT FROM numbers() through the real raw tables, so the materialized views fill the
// rollups exactly as ingestion does. Every row is a pure function of its number, so a re-sent event is
// byte-identical to its original and an interrupted generation can resume at the chunk it was writing.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClickHouse } from '../clickhouse/client.ts';
import { quoteLiteral } from '../clickhouse/queries/query.ts';

export type Shape = 'product' | 'long-tail' | 'wide';
/** The shapes a scale run measures by default; 'wide' is asked for by name (BENCH_SCALE_SHAPES). */
export const SHAPES: readonly Shape[] = ['product', 'long-tail', 'wide'];
export const DEFAULT_SHAPES: readonly Shape[] = ['product', 'long-tail'];

export const SCALE_DAYS = 365;
/** The first day of the data; the last is SCALE_START + 364 days (2025-12-31). */
export const SCALE_START = '2025-01-01';
export const LOG_SERVICES = [
  'api',
  'ingest-worker',
  'exporter',
  'scheduler',
  'search',
  'auth',
  'billing',
  'gateway',
] as const;
export const USAGE_SERVICES = ['billing', 'dashboard', 'exporter', 'search', 'auth'] as const;
// The wide shape's services: many, named as producers may name them (spaces, quotes, a backslash, non-Latin
// letters, emoji), so every filter and group travels through the escaping and hex paths.
const oddName = (kind: string, i: number) =>
  [
    `${kind} ${i}`,
    `${kind}'${i}'`,
    `${kind}\\${i}`,
    `сервис-${kind}-${i}`,
    `${kind}-${i}-🚀`,
    `${kind}_${i}`,
  ][i % 6] as string;
export const WIDE_SERVICES: readonly string[] = Array.from({ length: 60 }, (_, i) => oddName('svc', i));
export const WIDE_LOG_SERVICES: readonly string[] = Array.from({ length: 40 }, (_, i) => oddName('log', i));

/** Users and teams of each shape (the request generator draws filters from them). */
export const SHAPE_DOMAIN: Record<
  Shape,
  {
    users: number;
    teams: number;
    heavyUsers: number;
    services: readonly string[];
    logServices: readonly string[];
  }
> = {
  // user-0 … user-29999 in team-0 … team-199, about 3,000 of them active each day.
  product: {
    users: 30_000,
    teams: 200,
    heavyUsers: 30_000,
    services: USAGE_SERVICES,
    logServices: LOG_SERVICES,
  },
  // user-0 … user-4999 carry 90% of the usage; user-5000 … user-99999 are the long tail.
  'long-tail': {
    users: 100_000,
    teams: 500,
    heavyUsers: 5_000,
    services: USAGE_SERVICES,
    logServices: LOG_SERVICES,
  },
  // user-0 … user-299999 in team-0 … team-4999, each using several of 60 services; logs of 40 services.
  wide: {
    users: 300_000,
    teams: 5_000,
    heavyUsers: 300_000,
    services: WIDE_SERVICES,
    logServices: WIDE_LOG_SERVICES,
  },
};

export interface ScalePlan {
  shape: Shape;
  events: number;
  /** Usage events (distinct), then logs (distinct), then re-sent copies of each, in inserts of their own. */
  usage: number;
  logs: number;
  usageResent: number;
  logsResent: number;
}

/** 20% logs; 1% of the logs re-sent in both shapes, 1% of the usage events too in the long tail. */
export function scalePlan(shape: Shape, events: number): ScalePlan {
  const logsAll = Math.round(events * 0.2);
  const logsResent = Math.round(logsAll * 0.01);
  const usageAll = events - logsAll;
  const usageResent = shape === 'product' ? 0 : Math.round(usageAll * 0.01);
  return {
    shape,
    events,
    usage: usageAll - usageResent,
    logs: logsAll - logsResent,
    usageResent,
    logsResent,
  };
}

const BASE = `toDateTime64('${SCALE_START} 00:00:00', 3, 'UTC')`;
const DAY_MS = 86_400_000;
const TYPE_SQL = `multiIf(number % 100 < 2, 'user_registered', number % 100 < 40, 'session_start',
    number % 100 < 75, 'session_end', 'activity')`;
const sqlList = (xs: readonly string[]) => `[${xs.map(quoteLiteral).join(', ')}]`;

// Product: the shape of bench/dataset.ts over 365 days. Each day about 3,000 of 30,000 users are active
// (mostly in one service), so at 100M events a user-day holds ~70 events and the daily rollup aggregates well.
const productUsage = `
    concat('ev-', toString(number)) AS event_id,
    ${TYPE_SQL} AS type,
    cityHash64(number, 1) % ${SCALE_DAYS} AS d,
    (d * 331 + cityHash64(number, 2) % 3000) % 30000 AS u,
    ${BASE} + toIntervalMillisecond(d * ${DAY_MS} + cityHash64(number, 7) % ${DAY_MS}) AS timestamp,
    concat('user-', toString(u)) AS user_id,
    concat('team-', toString(u % 200)) AS team_id,
    ${sqlList(USAGE_SERVICES)}[1 + (u + if(cityHash64(number, 3) % 5 = 0, 1, 0)) % 5] AS service,
    if(type IN ('session_start', 'session_end'),
       concat('s-', toString(u), '-', toString(d), '-', toString(cityHash64(number, 8) % 3)), '') AS session_id`;

// Long tail: 100,000 users. 90% of the usage comes from users 0..4,999 (Zipf-like: the square of a uniform
// draw, so a few users are active every day); the other 95,000 users each have 1..40 active days of their own
// (most only a handful: 1 + 40·x³) and few events per active day. One session in ten runs from 22:00 to 02:00,
// so its events (a session_start among them, most of the time) fall on two consecutive days.
const longTailUsage = `
    concat('lt-', toString(number)) AS event_id,
    ${TYPE_SQL} AS type,
    cityHash64(number, 11) % 100 < 90 AS heavy,
    if(heavy, toUInt64(floor(5000 * pow(cityHash64(number, 12) / 18446744073709551616., 2))),
       5000 + cityHash64(number, 12) % 95000) AS u,
    1 + toUInt64(floor(40 * pow(cityHash64(u, 16) / 18446744073709551616., 3))) AS user_days,
    if(heavy, cityHash64(number, 13) % ${SCALE_DAYS},
       cityHash64(u, 14, cityHash64(number, 15) % user_days) % ${SCALE_DAYS}) AS d,
    cityHash64(u, d, 17) % (1 + u % 3) AS k,
    cityHash64(u, d, k, 18) % 10 = 0 AND d < ${SCALE_DAYS - 1} AS overnight,
    ${BASE} + toIntervalMillisecond(d * ${DAY_MS} +
      if(overnight, 79200000 + cityHash64(number, 19) % 14400000, cityHash64(number, 19) % ${DAY_MS})) AS timestamp,
    concat('user-', toString(u)) AS user_id,
    concat('team-', toString(u % 500)) AS team_id,
    ${sqlList(USAGE_SERVICES)}[1 + (u + if(cityHash64(number, 3) % 4 = 0, cityHash64(number, 20) % 5, 0)) % 5] AS service,
    if(type IN ('session_start', 'session_end'),
       concat('s-', toString(u), '-', toString(d), '-', toString(k)), '') AS session_id`;

// Wide: 300,000 users in 5,000 teams, a user active on any day (skewed: the square of a uniform draw puts
// more of the usage on low user numbers), each event in any of 60 services, sessions of up to 4 a day.
const wideUsage = `
    concat('w-', toString(number)) AS event_id,
    ${TYPE_SQL} AS type,
    cityHash64(number, 21) % ${SCALE_DAYS} AS d,
    toUInt64(floor(300000 * pow(cityHash64(number, 22) / 18446744073709551616., 2))) AS u,
    ${BASE} + toIntervalMillisecond(d * ${DAY_MS} + cityHash64(number, 23) % ${DAY_MS}) AS timestamp,
    concat('user-', toString(u)) AS user_id,
    concat('team-', toString(u % 5000)) AS team_id,
    ${sqlList(WIDE_SERVICES)}[1 + cityHash64(number, 24) % ${WIDE_SERVICES.length}] AS service,
    if(type IN ('session_start', 'session_end'),
       concat('s-', toString(u), '-', toString(d), '-', toString(cityHash64(number, 25) % 4)), '') AS session_id`;

// Logs: spread evenly over the year, 80% info, 15% warning, 5% error, eight services (40 in the wide shape).
const logColumns = (services: readonly string[]) => `
    concat('log-', toString(number)) AS event_id,
    ${BASE} + toIntervalMillisecond(cityHash64(number, 4) % ${SCALE_DAYS * DAY_MS}) AS timestamp,
    multiIf(cityHash64(number, 5) % 100 < 80, 'info', cityHash64(number, 5) % 100 < 95, 'warning', 'error') AS severity,
    ${sqlList(services)}[1 + cityHash64(number, 6) % ${services.length}] AS service,
    concat('log line ', toString(number), ' of the synthetic benchmark') AS message`;

// Numbers of a chunk: [from, from + count) as they are, or, for re-sent copies, every `stride`-th original
// (number stride·i + stride/2), so the copies are spread over all days and users.
const numbersSql = (resent: boolean) =>
  resent
    ? '(SELECT number * {stride:UInt64} + intDiv({stride:UInt64}, 2) AS number FROM numbers({from:UInt64}, {count:UInt64}))'
    : 'numbers({from:UInt64}, {count:UInt64})';

/** The INSERT of one chunk of a phase; `from` and `count` are bound as parameters. */
export function chunkInsert(shape: Shape, table: 'usage_events' | 'log_events', resent: boolean): string {
  if (table === 'log_events') {
    return `INSERT INTO log_events (event_id, timestamp, severity, service, message)
  SETTINGS insert_deduplicate = 0
  SELECT ${logColumns(SHAPE_DOMAIN[shape].logServices)}
  FROM ${numbersSql(resent)}`;
  }
  return `INSERT INTO usage_events (event_id, type, timestamp, user_id, team_id, service, session_id)
  SETTINGS insert_deduplicate = 0
  SELECT event_id, type, timestamp, user_id, team_id, service, session_id FROM (SELECT
  ${shape === 'product' ? productUsage : shape === 'long-tail' ? longTailUsage : wideUsage}
  FROM ${numbersSql(resent)})`;
}

interface Phase {
  name: 'usage' | 'logs' | 'usage-resent' | 'logs-resent';
  table: 'usage_events' | 'log_events';
  resent: boolean;
  rows: number;
  /** Re-sent phases: one copy per `stride` originals. */
  stride: number;
}

const strideOf = (originals: number, copies: number) =>
  Math.max(1, Math.floor(originals / Math.max(1, copies)));

function phases(p: ScalePlan): Phase[] {
  return [
    { name: 'usage', table: 'usage_events', resent: false, rows: p.usage, stride: 1 },
    { name: 'logs', table: 'log_events', resent: false, rows: p.logs, stride: 1 },
    {
      name: 'usage-resent',
      table: 'usage_events',
      resent: true,
      rows: p.usageResent,
      stride: strideOf(p.usage, p.usageResent),
    },
    {
      name: 'logs-resent',
      table: 'log_events',
      resent: true,
      rows: p.logsResent,
      stride: strideOf(p.logs, p.logsResent),
    },
  ];
}

/** Rows per INSERT: one block each (see BLOCK_SETTINGS), so a chunk lands as one part per partition. */
export const CHUNK = 2_000_000;
// Restated on every insert: on the embedded engine per-query settings persist in the session, and a
// deduplication token left by an earlier insert (migrations record themselves with one) would swallow chunks.
const INSERT_SETTINGS = {
  insert_deduplicate: 0,
  insert_deduplication_token: '',
  max_insert_block_size: String(CHUNK + 1),
  min_insert_block_size_rows: String(CHUNK + 1),
  min_insert_block_size_bytes: '0',
} as const;

/** Progress of a generation, written after every chunk: the chunk after the last one known complete. */
interface Progress {
  plan: ScalePlan;
  phase: number;
  from: number;
  /** Seconds spent generating so far, over all attempts. */
  seconds: number;
  /** Chunks that were interrupted and written again (their rows may be in twice: re-sent events). */
  rewritten: number;
}

/** What a complete dataset records about itself (complete.json), measured once when it was made. */
export interface DatasetInfo {
  plan: ScalePlan;
  /** Seconds to generate it (inserts, merges, the shape's statistics), over all attempts. */
  seconds: number;
  insertSeconds: number;
  mergeSeconds: number;
  rewrittenChunks: number;
  /** Raw rows stored (re-sent copies included). */
  usageRows: number;
  logRows: number;
  stats: ShapeStats;
  madeAt: string;
}

export interface ShapeStats {
  users: number;
  teams: number;
  userDays: number;
  userWeeks: number;
  sessions: number;
  /** Sessions with a session_start on two different days. */
  sessionsOnTwoDays: number;
  /** Distinct logs (FINAL). */
  logs: number;
  /** Users active (session_start, session_end or activity) over the whole year. */
  activeUsersYear: number;
}

export function datasetDir(root: string, shape: Shape, events: number): string {
  return join(root, `${shape}-${events}`);
}

const readJson = <T>(path: string): T | undefined =>
  existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as T) : undefined;

/** The complete dataset's record, or undefined when the directory holds none (or a half-written one). */
export function completeDataset(dir: string): DatasetInfo | undefined {
  return readJson<DatasetInfo>(join(dir, 'complete.json'));
}

/**
 * Prepares `dir` for generation before the engine opens it: a directory without a progress file (an attempt
 * that died before its first chunk, or someone else's data) is wiped so generation restarts cleanly.
 */
export function prepareDatasetDir(dir: string, plan: ScalePlan): void {
  const progress = readJson<Progress>(join(dir, 'progress.json'));
  const samePlan = progress && JSON.stringify(progress.plan) === JSON.stringify(plan);
  if (completeDataset(dir) || samePlan) return;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
}

async function one<T>(ch: ClickHouse, query: string): Promise<T> {
  const rs = await ch.client.query({ query, format: 'JSONEachRow' });
  const [row] = await rs.json<T>();
  return row as T;
}

/**
 * Generates the dataset into the open engine (whose data lives in `dir`), resuming from progress.json, then
 * merges the rollups, waits for background merges, measures the shape and writes complete.json.
 */
export async function generateDataset(
  ch: ClickHouse,
  dir: string,
  plan: ScalePlan,
  log: (s: string) => void,
): Promise<DatasetInfo> {
  const done = completeDataset(dir);
  if (done) return done;
  const progressPath = join(dir, 'progress.json');
  const saved = readJson<Progress>(progressPath);
  const progress: Progress = saved ?? { plan, phase: 0, from: 0, seconds: 0, rewritten: 0 };
  if (saved) {
    // The chunk in flight when the last attempt stopped may be partly stored: it is written again whole.
    // Its rows are then in twice, exactly like re-sent events, which no answer may count (and the truth
    // queries count distinct ids or read FINAL).
    if (saved.phase < phases(plan).length) progress.rewritten++;
    log(`resuming at phase ${saved.phase}, row ${saved.from} (${saved.seconds.toFixed(0)} s spent before)`);
  }
  const save = () => writeFileSync(progressPath, `${JSON.stringify(progress)}\n`);
  save();
  let t = performance.now();
  const tick = () => {
    const now = performance.now();
    progress.seconds += (now - t) / 1000;
    t = now;
  };
  const all = phases(plan);
  for (; progress.phase < all.length; progress.phase++, progress.from = 0) {
    const ph = all[progress.phase] as Phase;
    const sql = chunkInsert(plan.shape, ph.table, ph.resent);
    for (; progress.from < ph.rows; ) {
      const count = Math.min(CHUNK, ph.rows - progress.from);
      await ch.client.command({
        query: sql,
        query_params: { from: progress.from, count, ...(ph.resent ? { stride: ph.stride } : {}) },
        clickhouse_settings: INSERT_SETTINGS,
      });
      progress.from += count;
      tick();
      save();
      const rate = Math.round((progress.from / ph.rows) * 100);
      log(`${ph.name} ${progress.from}/${ph.rows} (${rate}%), ${progress.seconds.toFixed(0)} s`);
    }
  }
  const insertSeconds = progress.seconds;
  // The rollups as background merges leave them on a steady stream, and the tables whose quiet partitions the
  // engine merges into one part an hour after their last insert (those that carry the setting: migration 0017)
  // as it leaves them then: a dataset is measured as the service holds it once the back-fill has settled. Then
  // let the raw tables' merges settle, so the measurements do not share the cores with them.
  const quietMerged = await ch.client.query({
    query: `SELECT name FROM system.tables WHERE database = currentDatabase()
      AND position(create_table_query, 'min_age_to_force_merge_seconds') > 0 ORDER BY name`,
    format: 'JSONEachRow',
  });
  const compacted = (await quietMerged.json<{ name: string }>()).map((t) => t.name);
  for (const table of ['usage_daily', 'usage_first_seen', 'log_counts_hourly', ...compacted]) {
    await ch.client.command({ query: `OPTIMIZE TABLE ${table} FINAL` });
    log(`merged ${table}`);
  }
  await settleMerges(ch, log);
  tick();
  const mergeSeconds = progress.seconds - insertSeconds;
  const stats = await shapeStats(ch);
  tick();
  const counts = await one<{ u: string; l: string }>(
    ch,
    'SELECT (SELECT count() FROM usage_events) AS u, (SELECT count() FROM log_events) AS l',
  );
  const info: DatasetInfo = {
    plan,
    seconds: progress.seconds,
    insertSeconds,
    mergeSeconds,
    rewrittenChunks: progress.rewritten,
    usageRows: Number(counts.u),
    logRows: Number(counts.l),
    stats,
    madeAt: new Date().toISOString(),
  };
  // At least every row of the plan (a rewritten chunk may have added copies that no merge collapsed yet).
  if (info.usageRows < plan.usage || info.logRows < plan.logs) {
    throw new Error(`dataset incomplete: ${info.usageRows} usage rows, ${info.logRows} log rows`);
  }
  writeFileSync(join(dir, 'complete.json'), `${JSON.stringify(info, null, 2)}\n`);
  return info;
}

/**
 * Waits (up to `maxSeconds`) until no merge runs on two checks 5 s apart, so later measurements have the cores
 * to themselves: the engine runs one merge at a time and picks the next a little after one ends (a dataset
 * older than an hour, opened after migration 0017, has its quiet partitions merged one table after another).
 */
export async function settleMerges(ch: ClickHouse, log: (s: string) => void, maxSeconds = 600) {
  const until = performance.now() + maxSeconds * 1000;
  let idle = 0;
  for (;;) {
    const r = await one<{ n: string }>(
      ch,
      'SELECT count() AS n FROM system.merges WHERE database = currentDatabase()',
    );
    idle = Number(r.n) === 0 ? idle + 1 : 0;
    if (idle >= 2 || performance.now() > until) return;
    if (idle === 0) log(`waiting for ${r.n} background merges`);
    await new Promise((ok) => setTimeout(ok, 5000));
  }
}

/** The dataset's shape, from the raw tables (distinct ids, so re-sent copies change nothing). */
export async function shapeStats(ch: ClickHouse): Promise<ShapeStats> {
  const r = await one<Record<keyof ShapeStats, string>>(
    ch,
    `SELECT
      (SELECT uniqExact(user_id) FROM usage_events) AS users,
      (SELECT uniqExact(team_id) FROM usage_events) AS teams,
      (SELECT uniqExact(toDate(timestamp), user_id) FROM usage_events) AS userDays,
      (SELECT uniqExact(toStartOfWeek(timestamp, 1), user_id) FROM usage_events WHERE type != 'user_registered') AS userWeeks,
      (SELECT uniqExact(session_id) FROM usage_events WHERE type = 'session_start') AS sessions,
      (SELECT count() FROM (SELECT session_id FROM usage_events WHERE type = 'session_start'
        GROUP BY session_id HAVING uniqExact(toDate(timestamp)) > 1)) AS sessionsOnTwoDays,
      (SELECT count() FROM log_events FINAL) AS logs,
      (SELECT uniqExact(user_id) FROM usage_events WHERE type != 'user_registered') AS activeUsersYear`,
  );
  return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Number(v)])) as unknown as ShapeStats;
}
