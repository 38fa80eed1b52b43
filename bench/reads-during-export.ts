// `npm run bench:reads-during-export [-- --quick]`: API reads while a system-events export of N logs (default
// 10 million; --quick 1 million) runs on the embedded engine, against the same reads with nothing else
// running, in CSV and Parquet. Two reads, uncached (the app has no read cache), one after the other with 100 ms
// between them (a dashboard's pace, not a flood: an export yields to every API query, so a closed loop of reads
// would mostly measure how long the export can be held back): a usage summary (30 days, one team, from the
// rollups) and a system-events page 1 of one day (limit 100). Also the event loop's delay (max), to tell the
// engine's share from the JS side's.
// Writes the reads-during-export section of bench/RESULTS.md.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp } from '../api/app.ts';
import { JobAdmission } from '../api/exports/quota.ts';
import { createAuthenticator } from '../api/middleware/auth.ts';
import { openClickHouse } from '../clickhouse/client.ts';
import { embeddedSource } from '../clickhouse/engine/embedded.ts';
import { migrate } from '../clickhouse/migrate.ts';
import { SelfLog } from '../clickhouse/self-log.ts';
import { getJob } from '../control/jobs.ts';
import { openControl } from '../control/store.ts';
import { ExportStore } from '../core/exports/store.ts';
import { createLogger } from '../core/logger.ts';
import { mintToken } from '../core/tokens.ts';
import { createDirectSink } from '../ingest/direct.ts';
import { ExportWorker } from '../worker/exports/worker.ts';
import { DEFAULT_SPEC, ensureDataset, mergeRollups, sealAll } from './dataset.ts';
import { machine } from './machine.ts';
import { benchOptions } from './options.ts';
import { probeReads, type ReadWindow } from './read-probe.ts';
import { fmtSpread, percentile, spread, writeSection } from './stats.ts';

const opts = benchOptions();
const rows = Number(process.env.BENCH_EXPORT_ROWS ?? (opts.quick ? 1_000_000 : 10_000_000));
const usageEvents = opts.quick ? 200_000 : 1_000_000;
const repeats = opts.repeats;
const log = (s: string) => process.stderr.write(`bench reads-during-export: ${s}\n`);
const SECRET = 'bench-reads-export-secret-bench-reads-export-01';
const dataDir = mkdtempSync(join(tmpdir(), 'tally-bench-rde-'));
const ch = await openClickHouse({ url: undefined, database: 'bench', dataDir });
await migrate(ch);
// Usage for the summaries (the query benchmark's shape), then the logs to export, written by the engine.
await ensureDataset(ch, { ...DEFAULT_SPEC, events: usageEvents, logShare: 0 }, log);
await ch.client.command({
  query: `INSERT INTO log_events (event_id, timestamp, severity, service, message)
    SELECT concat('b-', toString(number)), toDateTime64('2025-01-01 00:00:00', 3, 'UTC') + number / 20,
      ['info', 'warning', 'error'][number % 3 + 1], concat('svc-', toString(number % 17)),
      concat(if(number % 50 = 0, '=', ''), 'message ', toString(number), ' ', repeat('x', number % 80))
    FROM numbers({rows:UInt64})`,
  query_params: { rows },
});
await mergeRollups(ch);
// Sealed first, as the sealer in `npm start` keeps them: the reads then take the path they take in service.
await sealAll(ch);
const where = await machine(ch);
log(`dataset ready: ${usageEvents} usage events, ${rows} logs`);

const store = new ExportStore(join(dataDir, 'exports'));
const control = await openControl({ url: undefined, dataDir });
const deps = {
  control,
  admission: new JobAdmission(control, 1000),
  store,
  keys: { current: 'k', keys: new Map([['k', Buffer.alloc(32, 7)]]) },
  publicBaseUrl: 'http://127.0.0.1',
  urlTtlSeconds: 600,
};
const app = createApp({
  ch,
  sink: createDirectSink(ch),
  logger: createLogger('silent'),
  auth: createAuthenticator({ secret: SECRET, issuer: undefined, audience: undefined }),
  exports: deps,
});
const auth = { authorization: `Bearer ${await mintToken(SECRET, { sub: 'bench', ttlSeconds: 7200 })}` };
// The export as shipped (bounded: EXPORT_SETTINGS on its session), and the baseline in the same run: the same
// export with nothing set on its session (as before the bound).
const workerOf = (bounded: boolean) =>
  new ExportWorker({
    ch,
    control,
    source: bounded ? embeddedSource(dataDir, 'bench') : embeddedSource(dataDir, 'bench', {}),
    store,
    selfLog: new SelfLog(ch),
    logger: createLogger('silent'),
  });
const workers = { bounded: workerOf(true), unbounded: workerOf(false) };
type Mode = keyof typeof workers;
const MODES = ['unbounded', 'bounded'] as const;

const READS = {
  summary: '/reports/usage-summary?start_date=2025-02-01&end_date=2025-03-02&team_id=team-7',
  // One day of the exported logs (~1.7M of them): the hourly counts of that day, then the page's hours.
  logs: '/logs/system-events?limit=100&start_date=2025-01-03&end_date=2025-01-03',
} as const;
type ReadName = keyof typeof READS;

type Window = ReadWindow<ReadName>;
const probe = (until: Promise<unknown> | number) => probeReads(app, READS, auth, until);

const post = async (format: 'csv' | 'parquet') => {
  const res = await app.request('/reports/export', {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ report_type: 'system-events', format }),
  });
  return ((await res.json()) as { job_id: string }).job_id;
};

type Case = `${Mode} ${'csv' | 'parquet'}`;
// Each export is compared with an idle window just before it: the machine is shared, and other work on it
// comes and goes over minutes, so a single idle window at the start would compare unlike moments.
interface Pair {
  idle: Window;
  during: Window & { seconds: number; rows: number };
}
type Run = Record<Case, Pair>;
const runs: Run[] = [];
await probe(2); // warm-up
for (let r = 0; r < repeats; r++) {
  const run = {} as Run;
  for (const format of ['csv', 'parquet'] as const)
    for (const mode of MODES) {
      const idle = await probe(opts.quick ? 3 : 6);
      const id = await post(format);
      const t0 = performance.now();
      const done = workers[mode].runOnce();
      const w = await probe(done);
      const seconds = (performance.now() - t0) / 1000;
      const job = await getJob(control, id);
      if (job?.status !== 'completed')
        throw new Error(`export ${format}: ${job?.status} ${job?.error ?? ''}`);
      run[`${mode} ${format}`] = { idle, during: { ...w, seconds, rows: job.rows_written } };
      const p = (k: ReadName) => percentile(w.ms[k], 99).toFixed(0);
      log(
        `run ${r + 1} ${mode} ${format}: ${job.rows_written} rows in ${seconds.toFixed(1)} s; read p99 summary ${p('summary')} ms ` +
          `(idle ${percentile(idle.ms.summary, 99).toFixed(0)}), logs ${p('logs')} ms (idle ${percentile(idle.ms.logs, 99).toFixed(0)}); ` +
          `event loop max ${w.loopMax.toFixed(0)} ms (idle ${idle.loopMax.toFixed(0)})`,
      );
    }
  runs.push(run);
}

const s = (xs: number[], d = 0) => fmtSpread(spread(xs), d);
const p = (w: Window, k: ReadName, q: number) => percentile(w.ms[k], q);
const line = (label: string, c: Case) => {
  const cells = (k: ReadName) =>
    [
      s(runs.map((x) => p(x[c].idle, k, 50))),
      s(runs.map((x) => p(x[c].during, k, 50))),
      s(runs.map((x) => p(x[c].idle, k, 99))),
      s(runs.map((x) => p(x[c].during, k, 99))),
      s(
        runs.map((x) => p(x[c].during, k, 99) / p(x[c].idle, k, 99)),
        2,
      ),
    ].join(' | ');
  const samples = runs.map((x) => x[c].during.ms.summary.length + x[c].during.ms.logs.length);
  const loop = `${s(runs.map((x) => x[c].idle.loopMax))} / ${s(runs.map((x) => x[c].during.loopMax))}`;
  return `| ${label} | ${s(samples)} | ${cells('summary')} | ${cells('logs')} | ${loop} |`;
};
const exportRate = (c: Case) => s(runs.map((x) => x[c].during.rows / x[c].during.seconds));
writeSection(
  join('bench', 'RESULTS.md'),
  'reads-during-export',
  `## Reads during an export (\`bench/reads-during-export.ts\`)

Run ${new Date().toISOString().slice(0, 10)}, ${where}.
A system-events export of ${rows.toLocaleString('en-US')} log rows through the export worker on the embedded engine
while the API is read in a
loop with 100 ms between requests (uncached): a usage summary (30 days, one team; ${usageEvents.toLocaleString('en-US')}
usage events) and a system-events page 1 of one day (limit 100; ~1.7M of the ${rows.toLocaleString('en-US')} logs). Idle: the same loop with
nothing else running, for 6 s just before each export. Bounded: the export as shipped (\`EXPORT_SETTINGS\` in clickhouse/export-stream.ts: priority
below the API's queries, nice 19, one thread, 1 GiB); unbounded: the same export with nothing set on its session
(the baseline, as before). ${repeats} runs, median (min–max); milliseconds; "×" is the p99 during the export
over the p99 of the idle window just before it. Export speed while read, rows/s: CSV unbounded ${exportRate('unbounded csv')}, bounded
${exportRate('bounded csv')}; Parquet unbounded ${exportRate('unbounded parquet')}, bounded ${exportRate('bounded parquet')}.
Where the time went (measured before choosing the bound, same machine, 2026-12-05, load 6-10; a usage summary called
directly, 20 ms apart, during a 10M-row CSV export on its own chdb session, \`max_threads = 1\` already set): read p50
20 ms idle, 56 ms during the export. The event loop's delay stayed under ~30 ms (so not the JS side), and
lowering only the export threads' CPU priority (nice 19) brought the p50 back to 24 ms (so the cores, not a
lock in the engine); \`priority\` alone (the export pauses between blocks while an API query runs) gave 32 ms
against an idle 33 ms, and \`output_format_parallel_formatting = 0\` alone changed nothing measurable. Both are
in the bound; the price is the export's speed while reads run (rows/s above).

| export | reads | summary p50 idle | summary p50 | summary p99 idle | summary p99 | summary × | logs p50 idle | logs p50 | logs p99 idle | logs p99 | logs × | event loop max, idle / during |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
${line('CSV, unbounded', 'unbounded csv')}
${line('CSV, bounded', 'bounded csv')}
${line('Parquet, unbounded', 'unbounded parquet')}
${line('Parquet, bounded', 'bounded parquet')}
`,
);
await control.close();
await ch.close();
rmSync(dataDir, { recursive: true, force: true });
process.exit(0);
