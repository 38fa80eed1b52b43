// `npm run bench:exports [millions]`: a system-events export of N logs (default 10 million; --quick 300,000)
// on the embedded engine, in CSV and Parquet, several runs each: rows/s, the process's peak RSS above its idle
// level before the export, and the latency of API reads (GET /logs/system-events) made every 50 ms while the
// export runs. Writes the exports section of bench/RESULTS.md.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp } from '../api/app.ts';
import { JobAdmission } from '../api/exports/quota.ts';
import { createAuthenticator } from '../api/middleware/auth.ts';
import { openClickHouse } from '../clickhouse/client.ts';
import { migrate } from '../clickhouse/migrate.ts';
import { SelfLog } from '../clickhouse/self-log.ts';
import { getJob } from '../control/jobs.ts';
import { openControl } from '../control/store.ts';
import { ExportStore } from '../core/exports/store.ts';
import { createLogger } from '../core/logger.ts';
import { mintToken } from '../core/tokens.ts';
import { createDirectSink } from '../ingest/direct.ts';
import { ExportWorker } from '../worker/exports/worker.ts';
import { machine } from './machine.ts';
import { benchOptions } from './options.ts';
import { fmtSpread, spread, writeSection } from './stats.ts';

const opts = benchOptions();
const arg = process.argv.slice(2).find((a) => /^\d+(\.\d+)?$/.test(a));
const rows = arg === undefined ? opts.exportRows : Number(arg) * 1_000_000;
const SECRET = 'bench-exports-secret-bench-exports-secret-01';
const dataDir = mkdtempSync(join(tmpdir(), 'tally-bench-exports-'));
const ch = await openClickHouse({ url: undefined, database: 'bench', dataDir });
await migrate(ch);
// Synthetic logs written by ClickHouse itself: no JS heap spent on the data set.
await ch.client.command({
  query: `INSERT INTO log_events (event_id, timestamp, severity, service, message)
    SELECT concat('b-', toString(number)), toDateTime64('2025-01-01 00:00:00', 3, 'UTC') + number / 20,
      ['info', 'warning', 'error'][number % 3 + 1], concat('svc-', toString(number % 17)),
      concat(if(number % 50 = 0, '=', ''), 'message ', toString(number), ' ', repeat('x', number % 80))
    FROM numbers({rows:UInt64})`,
  query_params: { rows },
});
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
const token = await mintToken(SECRET, { sub: 'bench' });
const worker = new ExportWorker({
  ch,
  control,
  source: ch.exportSource(),
  store,
  selfLog: new SelfLog(ch),
  logger: createLogger('silent'),
});

const mb = (b: number) => Math.round(b / 1e5) / 10;
// The same API read with no export running, for comparison.
const idle: number[] = [];
for (let i = 0; i < 20; i++) {
  const t0 = performance.now();
  const r = await app.request('/logs/system-events?limit=10', {
    headers: { authorization: `Bearer ${token}` },
  });
  await r.arrayBuffer();
  idle.push(performance.now() - t0);
}
idle.sort((a, b) => a - b);
process.stdout.write(
  `API reads with no export running: p50 ${Math.round(idle[10] ?? 0)} ms, max ${Math.round(idle[19] ?? 0)} ms\n`,
);
interface ExportRun {
  rowsPerSecond: number;
  addedMb: number;
  baseMb: number;
  readP99: number;
}
const results: Record<'csv' | 'parquet', ExportRun[]> = { csv: [], parquet: [] };
const post = async (format: 'csv' | 'parquet') => {
  const res = await app.request('/reports/export', {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ report_type: 'system-events', format }),
  });
  return ((await res.json()) as { job_id: string }).job_id;
};
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));
/** Until the process's RSS stops falling: garbage collected, the engine's freed memory purged. */
async function settle(): Promise<void> {
  let last = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 10; i++) {
    global.gc?.();
    await ch.client.command({ query: 'SYSTEM JEMALLOC PURGE' }).catch(() => undefined);
    await sleep(300);
    const now = process.memoryUsage().rss;
    if (last - now < 5e6) return;
    last = now;
  }
}
for (let run = 0; run < opts.repeats; run++)
  for (const format of ['csv', 'parquet'] as const) {
    // Memory: the export alone. Before it, the engine hands freed memory back to the system, so that "idle" is
    // what the process holds at rest, not what the previous run left in the allocator's caches.
    await settle();
    const memJob = await post(format);
    const base = process.memoryUsage().rss;
    let peak = base;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 20);
    const t0 = performance.now();
    await worker.runOnce();
    const seconds = (performance.now() - t0) / 1000;
    clearInterval(sampler);
    const job = await getJob(control, memJob);

    // Contention: the same export again while the API is read every 50 ms (the reads' own memory would blur
    // the figure above, so they run apart from it).
    await app.request('/logs/system-events?limit=10', { headers: { authorization: `Bearer ${token}` } });
    await post(format);
    const latencies: number[] = [];
    let running = true;
    const prober = (async () => {
      while (running) {
        const t1 = performance.now();
        const r = await app.request('/logs/system-events?limit=10', {
          headers: { authorization: `Bearer ${token}` },
        });
        await r.arrayBuffer();
        latencies.push(performance.now() - t1);
        await sleep(50);
      }
    })();
    await worker.runOnce();
    running = false;
    await prober;
    latencies.sort((a, b) => a - b);
    const pct = (p: number) =>
      Math.round(latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0);
    const line =
      `${format}: ${job?.rows_written} rows, ${mb(job?.bytes ?? 0)} MB in ${seconds.toFixed(1)} s; RSS before ${mb(base)} MB, ` +
      `peak ${mb(peak)} MB (+${mb(peak - base)} MB); API reads during a second export: ${latencies.length}, ` +
      `p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms, max ${pct(1)} ms`;
    results[format].push({
      rowsPerSecond: (job?.rows_written ?? 0) / seconds,
      addedMb: mb(peak - base),
      baseMb: mb(base),
      readP99: pct(0.99),
    });
    process.stdout.write(`${line}\n`);
  }
const row = (format: 'csv' | 'parquet') => {
  const r = results[format];
  const f = (k: keyof ExportRun, d = 0) => fmtSpread(spread(r.map((x) => x[k])), d);
  return `| ${format === 'csv' ? 'CSV' : 'Parquet'} | ${f('rowsPerSecond')} | ${f('baseMb')} | ${f('addedMb')} | ${f('readP99')} |`;
};
writeSection(
  join('bench', 'RESULTS.md'),
  'exports',
  `## Exports (\`bench/exports.ts\`)

Run ${new Date().toISOString().slice(0, 10)}, ${await machine(ch)}.
A system-events export of ${rows.toLocaleString('en-US')} log rows through the export worker (ClickHouse writes the file; the
process streams it), ${opts.repeats} runs per format, median (min–max). RSS is the process's (engine included):
idle before the export (after the engine returned freed memory), and the peak added during an export running
alone. Reads: GET /logs/system-events?limit=10 every 50 ms during a second, identical export (with no export
running: p50 ${Math.round(idle[10] ?? 0)} ms).

| format | rows/s | idle RSS MB | RSS added MB | API read p99 during export, ms |
|---|---:|---:|---:|---:|
${row('csv')}
${row('parquet')}
`,
);
await control.close();
await ch.close();
rmSync(dataDir, { recursive: true, force: true });
