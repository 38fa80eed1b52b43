// `npm run bench:reads-during-sql [-- --quick]`: the API's reads while a heavy /clickhouse query runs on the
// embedded engine until its limit (SQL_MAX_EXECUTION_SECONDS, here 20 s; it must end with TIMEOUT_EXCEEDED,
// 159), against the same reads with nothing else running just before. Two reads, uncached, one after the other
// with 100 ms between them (a dashboard's pace), as bench/reads-during-export.ts does: a usage summary (30 days,
// one team, from the rollups) and a system-events page 1 (limit 100). Writes the reads-during-sql section of
// bench/RESULTS.md.
import { mkdtempSync, rmSync } from 'node:fs';
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
import { DEFAULT_SPEC, ensureDataset, mergeRollups } from './dataset.ts';
import { machine } from './machine.ts';
import { benchOptions } from './options.ts';
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
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

async function probe(until: Promise<unknown> | number): Promise<Record<ReadName, number[]>> {
  const ms: Record<ReadName, number[]> = { summary: [], logs: [] };
  let running = true;
  const stop = typeof until === 'number' ? sleep(until * 1000) : until;
  void stop.finally(() => {
    running = false;
  });
  while (running) {
    for (const name of Object.keys(READS) as ReadName[]) {
      const t0 = performance.now();
      const res = await app.request(READS[name], { headers: auth });
      if (res.status !== 200) throw new Error(`${READS[name]}: ${res.status}`);
      await res.arrayBuffer();
      ms[name].push(performance.now() - t0);
      await sleep(100);
    }
  }
  await stop;
  for (const k of Object.keys(ms) as ReadName[]) ms[k].sort((a, b) => a - b);
  return ms;
}

// CPU-bound, on allowed tables only: a hash over the raw events crossed with a generated range, far more work
// than the limit allows.
const HEAVY =
  'SELECT count() FROM usage_events AS e, numbers(1000000) AS n WHERE sipHash64(e.event_id, n.number) % 1000003 = 7';

interface Pair {
  idle: Record<ReadName, number[]>;
  during: Record<ReadName, number[]>;
  seconds: number;
  answer: string;
}
const runs: Pair[] = [];
await probe(2); // warm-up
for (let r = 0; r < repeats; r++) {
  const idle = await probe(opts.quick ? 4 : 8);
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
  const during = await probe(heavy);
  const seconds = (performance.now() - t0) / 1000;
  const answer = await heavy;
  runs.push({ idle, during, seconds, answer });
  const p = (x: Record<ReadName, number[]>, k: ReadName) => percentile(x[k], 99).toFixed(0);
  log(
    `run ${r + 1}: heavy query ended after ${seconds.toFixed(1)} s with ${answer}; read p99 summary ${p(during, 'summary')} ms (idle ${p(idle, 'summary')}), logs ${p(during, 'logs')} ms (idle ${p(idle, 'logs')})`,
  );
}

const s = (xs: number[], d = 0) => fmtSpread(spread(xs), d);
const cells = (k: ReadName) =>
  [
    s(runs.map((x) => percentile(x.idle[k], 50))),
    s(runs.map((x) => percentile(x.during[k], 50))),
    s(runs.map((x) => percentile(x.idle[k], 99))),
    s(runs.map((x) => percentile(x.during[k], 99))),
    s(
      runs.map((x) => percentile(x.during[k], 99) / percentile(x.idle[k], 99)),
      2,
    ),
  ].join(' | ');
writeSection(
  join('bench', 'RESULTS.md'),
  'reads-during-sql',
  `## Reads during a heavy SQL query (\`bench/reads-during-sql.ts\`)

Run ${new Date().toISOString().slice(0, 10)}, ${where}.
One /clickhouse query that needs far longer than its limit (\`${HEAVY}\` over ${usageEvents.toLocaleString('en-US')}
usage events; \`SQL_MAX_EXECUTION_SECONDS\` = ${LIMIT_SECONDS}) while the API is read in a loop with 100 ms between requests
(uncached): a usage summary (30 days, one team) and a system-events page. Idle: the same loop with nothing else
running, for ${opts.quick ? 4 : 8} s just before. The query runs as every /clickhouse query does (clickhouse/sql/engine.ts:
priority 10 below the API's 1, nice 19, one thread, on a chdb session of its own). ${repeats} run(s), median (min–max);
milliseconds; "×" is the p99 during the query over the idle p99 just before it.
How it ended: ${[...new Set(runs.map((x) => x.answer))].join('; ')} (after ${s(
    runs.map((x) => x.seconds),
    1,
  )} s).

| reads | summary p50 idle | summary p50 | summary p99 idle | summary p99 | summary × | logs p50 idle | logs p50 | logs p99 idle | logs p99 | logs × |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
| ${s(runs.map((x) => x.during.summary.length + x.during.logs.length))} | ${cells('summary')} | ${cells('logs')} |
`,
);
engine.close();
await ch.close();
rmSync(dataDir, { recursive: true, force: true });
process.exit(0);
