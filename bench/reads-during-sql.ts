// `npm run bench:reads-during-sql [-- --quick]`: the API's reads while a heavy /clickhouse query runs on the
// embedded engine until its limit (SQL_MAX_EXECUTION_SECONDS, here 20 s; it must end with TIMEOUT_EXCEEDED,
// 159), against the same reads with nothing else running just before. Two reads, uncached, one after the other
// with 100 ms between them (a dashboard's pace), as bench/reads-during-export.ts does: a usage summary (30 days,
// one team, from the rollups) and a system-events page 1 (limit 100). The idle window just before and a control
// window just after (nothing running) last as long as the query's, so every p99 comes from as many reads: an
// 8 s idle window against a 20 s one compared a p99 of ~40 reads with one of ~100, and a longer window meets
// more of a shared machine's stalls. Each window's machine-wide CPU use (/proc/stat) is reported beside it.
// Writes the reads-during-sql section of bench/RESULTS.md.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp } from '../api/app.ts';
import { createAuthenticator } from '../api/middleware/auth.ts';
import { limitPolicy, SlidingLogStore } from '../api/middleware/rate-limit-store.ts';
import { SqlUsage } from '../api/sql/usage.ts';
import { openClickHouse } from '../clickhouse/client.ts';
import { migrate } from '../clickhouse/migrate.ts';
import { openSqlEngine } from '../clickhouse/sql/index.ts';
import { newKey } from '../core/api-keys.ts';
import { createLogger } from '../core/logger.ts';
import { mintToken } from '../core/tokens.ts';
import { createDirectSink } from '../ingest/direct.ts';
import { DEFAULT_SPEC, ensureDataset, mergeRollups, sealAll } from './dataset.ts';
import { machine } from './machine.ts';
import { benchOptions } from './options.ts';
import { probeReads } from './read-probe.ts';
import { fmtSpread, percentile, spread, writeSection } from './stats.ts';

const opts = benchOptions();
const usageEvents = opts.quick ? 200_000 : 1_000_000;
const repeats = opts.repeats;
const LIMIT_SECONDS = 20;
const log = (s: string) => process.stderr.write(`bench reads-during-sql: ${s}\n`);
const SECRET = 'bench-reads-sql-secret-bench-reads-sql-secret-01';
const dataDir = mkdtempSync(join(tmpdir(), 'tally-bench-rds-'));
const ch = await openClickHouse({ url: undefined, database: 'bench', dataDir });
await migrate(ch);
await ensureDataset(ch, { ...DEFAULT_SPEC, events: usageEvents }, log);
await mergeRollups(ch);
// Sealed first, as the sealer in `npm start` keeps them: the reads then take the path they take in service.
await sealAll(ch);
const where = await machine(ch);

const key = newKey({ name: 'bench', scopes: ['query:sql'] });
const engine = await openSqlEngine(ch, {
  maxExecutionSeconds: LIMIT_SECONDS,
  maxResultRows: 1_000_000,
  maxMemoryBytes: 1024 ** 3,
});
const app = createApp({
  ch,
  sink: createDirectSink(ch),
  logger: createLogger('silent'),
  auth: createAuthenticator({
    secret: SECRET,
    issuer: undefined,
    audience: undefined,
    keys: { get: async (id) => (id === key.record.id ? key.record : undefined) },
  }),
  sql: {
    engine,
    database: 'bench',
    rateLimit: { store: new SlidingLogStore(limitPolicy(600, new Map())), perMinute: 600 },
    concurrentQueries: 4,
    usage: new SqlUsage(undefined),
  },
});
const auth = { authorization: `Bearer ${await mintToken(SECRET, { sub: 'bench', ttlSeconds: 7200 })}` };
const basic = `Basic ${Buffer.from(`${key.record.id}:${key.key}`).toString('base64')}`;

const READS = {
  summary: '/reports/usage-summary?start_date=2025-02-01&end_date=2025-03-02&team_id=team-7',
  logs: '/logs/system-events?limit=100',
} as const;
type ReadName = keyof typeof READS;

/** Machine-wide CPU time counters (Linux /proc/stat), to tell how busy the shared machine was in a window. */
function cpuTimes(): { busy: number; total: number } | undefined {
  if (!existsSync('/proc/stat')) return undefined;
  const f = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '')
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - (f[3] ?? 0) - (f[4] ?? 0), total };
}

/** The machine's busy share (0-1) and this process's cores over a window. */
async function load<T>(fn: () => Promise<T>): Promise<{ value: T; machine: number; process: number }> {
  const m0 = cpuTimes();
  const p0 = process.cpuUsage();
  const t0 = performance.now();
  const value = await fn();
  const m1 = cpuTimes();
  const p = process.cpuUsage(p0);
  const wall = performance.now() - t0;
  return {
    value,
    machine: m0 && m1 ? (m1.busy - m0.busy) / Math.max(1, m1.total - m0.total) : Number.NaN,
    process: (p.user + p.system) / 1000 / wall,
  };
}

const probe = async (until: Promise<unknown> | number) => (await probeReads(app, READS, auth, until)).ms;

// CPU-bound, on allowed tables only: a hash over the raw events crossed with a generated range, far more work
// than the limit allows.
const HEAVY =
  'SELECT count() FROM usage_events AS e, numbers(1000000) AS n WHERE sipHash64(e.event_id, n.number) % 1000003 = 7';

interface Pair {
  idle: Record<ReadName, number[]>;
  during: Record<ReadName, number[]>;
  after: Record<ReadName, number[]>;
  seconds: number;
  answer: string;
  /** Machine busy share and this process's cores: idle, during, after. */
  busy: [number, number, number];
  cores: [number, number, number];
}
const runs: Pair[] = [];
await probe(2); // warm-up
const windowSeconds = opts.quick ? 8 : LIMIT_SECONDS;
for (let r = 0; r < repeats; r++) {
  const idle = await load(() => probe(windowSeconds));
  const t0 = performance.now();
  const heavy = (async () => {
    const res = await app.request('/clickhouse', {
      method: 'POST',
      headers: { authorization: basic },
      body: HEAVY,
    });
    const m = /^Code: (\d+)\..*\(([A-Z_]+)\) \(version/.exec(await res.text());
    return m ? `HTTP ${res.status}, code ${m[1]} (${m[2]})` : `HTTP ${res.status}`;
  })();
  const during = await load(() => probe(heavy));
  const seconds = (performance.now() - t0) / 1000;
  const answer = await heavy;
  const after = await load(() => probe(windowSeconds));
  runs.push({
    idle: idle.value,
    during: during.value,
    after: after.value,
    seconds,
    answer,
    busy: [idle.machine, during.machine, after.machine],
    cores: [idle.process, during.process, after.process],
  });
  const p = (x: Record<ReadName, number[]>, k: ReadName) => percentile(x[k], 99).toFixed(0);
  log(
    `run ${r + 1}: heavy query ended after ${seconds.toFixed(1)} s with ${answer}; read p99 summary ${p(during.value, 'summary')} ms (idle ${p(idle.value, 'summary')}, after ${p(after.value, 'summary')}), logs ${p(during.value, 'logs')} ms (idle ${p(idle.value, 'logs')}, after ${p(after.value, 'logs')}); machine busy ${idle.machine.toFixed(2)}/${during.machine.toFixed(2)}/${after.machine.toFixed(2)}`,
  );
}

const s = (xs: number[], d = 0) => fmtSpread(spread(xs), d);
const p99 = (x: Record<ReadName, number[]>, k: ReadName) => percentile(x[k], 99);
const pooled = (w: 'idle' | 'during' | 'after', k: ReadName) =>
  percentile(
    runs.flatMap((x) => x[w][k]).sort((a, b) => a - b),
    99,
  );
const cells = (k: ReadName) =>
  [
    s(runs.map((x) => percentile(x.idle[k], 50))),
    s(runs.map((x) => percentile(x.during[k], 50))),
    s(runs.map((x) => p99(x.idle, k))),
    s(runs.map((x) => p99(x.during, k))),
    s(
      runs.map((x) => p99(x.during, k) / p99(x.idle, k)),
      2,
    ),
    (pooled('during', k) / pooled('idle', k)).toFixed(2),
    s(
      runs.map((x) => p99(x.after, k) / p99(x.idle, k)),
      2,
    ),
  ].join(' | ');
const pct = (xs: number[]) => s(xs.map((x) => x * 100));
writeSection(
  join('bench', 'RESULTS.md'),
  'reads-during-sql',
  `## Reads during a heavy SQL query (\`bench/reads-during-sql.ts\`)

Run ${new Date().toISOString().slice(0, 10)}, ${where}.
One /clickhouse query that needs far longer than its limit (\`${HEAVY}\` over ${usageEvents.toLocaleString('en-US')}
usage events; \`SQL_MAX_EXECUTION_SECONDS\` = ${LIMIT_SECONDS}) while the API is read in a loop with 100 ms between requests
(uncached): a usage summary (30 days, one team) and a system-events page. Idle: the same loop with nothing else
running, for ${windowSeconds} s just before; after: the same again just after (a control: two windows with nothing running).
The query runs as every /clickhouse query does (clickhouse/sql/engine.ts:
priority 10 below the API's 1, nice 19, one thread, on a chdb session of its own). ${repeats} run(s), median (min–max);
milliseconds; "×" is the p99 during the query over the idle p99 just before it; "pooled ×" the p99 of every
run's reads during over that of every run's idle reads; "control ×" the after window's p99 over the idle one's.
How it ended: ${[...new Set(runs.map((x) => x.answer))].join('; ')} (after ${s(
    runs.map((x) => x.seconds),
    1,
  )} s). Machine CPU busy (all processes, %), idle / during / after: ${pct(runs.map((x) => x.busy[0]))} / ${pct(
    runs.map((x) => x.busy[1]),
  )} / ${pct(runs.map((x) => x.busy[2]))}; this process's cores: ${s(
    runs.map((x) => x.cores[0]),
    2,
  )} / ${s(
    runs.map((x) => x.cores[1]),
    2,
  )} / ${s(
    runs.map((x) => x.cores[2]),
    2,
  )}.

| reads | summary p50 idle | summary p50 | summary p99 idle | summary p99 | summary × | summary pooled × | summary control × | logs p50 idle | logs p50 | logs p99 idle | logs p99 | logs × | logs pooled × | logs control × |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
| ${s(runs.map((x) => x.during.summary.length + x.during.logs.length))} | ${cells('summary')} | ${cells('logs')} |
`,
);
engine.close();
await ch.close();
rmSync(dataDir, { recursive: true, force: true });
process.exit(0);
