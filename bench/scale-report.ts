// The scale benchmark's section of bench/RESULTS.md, from each shape's result.json.
import { CLIENT_WHERE, type ScaleOptions } from './scale-options.ts';
import type { ShapeResult } from './scale-result.ts';
import { START_NODE_FLAGS } from './start-flags.ts';

const us = (n: number) => Math.round(n).toLocaleString('en-US');
const ms = (n: number) => (Number.isFinite(n) ? n.toFixed(n < 10 ? 2 : 1) : '–');
const mb = (b: number) => (b / 2 ** 20).toLocaleString('en-US', { maximumFractionDigits: 1 });
const RAW = new Set(['usage_events', 'log_events']);
const SUMMARY_AND_LOGS = /usage-summary|system-events/;
// The floors under each case: an HTTP round trip plus the least data its answer needs (p50s added).
const FLOORS_OF: Array<[RegExp, string[]]> = [
  [/usage-summary, random/, ['HTTP round trip', 'summary, 365 days, no filter']],
  [/usage-summary, one request repeated/, ['HTTP round trip']],
  [/system-events/, ['HTTP round trip', 'logs page, newest']],
  [/usage-timeseries/, ['HTTP round trip', 'timeseries, 53 weeks']],
];

function floorOf(r: ShapeResult, caseName: string): string {
  const names = FLOORS_OF.find(([re]) => re.test(caseName))?.[1];
  if (!names) return '–';
  const fs = names.map((n) => r.floors.find((f) => f.name === n));
  return fs.every((f) => f !== undefined) ? ms(fs.reduce((a, f) => a + (f?.p50 ?? 0), 0)) : '–';
}

function shapeSection(r: ShapeResult): string {
  const d = r.dataset;
  const s = d.stats;
  const p = d.plan;
  const made =
    `generated in ${(d.seconds / 60).toFixed(1)} min (inserts ${(d.insertSeconds / 60).toFixed(1)} min, ` +
    `rollup OPTIMIZE FINAL and settling merges ${(d.mergeSeconds / 60).toFixed(1)} min, shape statistics the rest)` +
    (d.rewrittenChunks > 0
      ? `, resumed after an interruption (${d.rewrittenChunks} chunk(s) written again)`
      : '') +
    `, on ${d.madeAt.slice(0, 16).replace('T', ' ')} UTC`;
  const disk = r.tables.filter((t) => t.rows > 0 || RAW.has(t.table));
  const rawBytes = disk.filter((t) => RAW.has(t.table)).reduce((a, t) => a + t.bytes, 0);
  const rollupBytes = disk
    .filter((t) => !RAW.has(t.table) && !/export|webhook|schedule|migration|ledger/.test(t.table))
    .reduce((a, t) => a + t.bytes, 0);
  const out: string[] = [];
  out.push(`### Shape "${r.shape}"`);
  out.push('');
  out.push(
    `Dataset: ${us(p.events)} rows: ${us(p.usage)} usage events + ${us(p.usageResent)} re-sent copies, ` +
      `${us(p.logs)} logs + ${us(p.logsResent)} re-sent copies (each copy in a later insert); ${made}. ` +
      `Shape: ${us(s.users)} users in ${us(s.teams)} teams, ${us(s.userDays)} user-days ` +
      `(${(p.usage / s.userDays).toFixed(1)} usage events per user-day), ${us(s.userWeeks)} active user-weeks, ` +
      `${us(s.sessions)} sessions (${us(s.sessionsOnTwoDays)} with a session_start on two days), ` +
      `${us(s.activeUsersYear)} users active in the year, ${us(s.logs)} distinct logs.` +
      (r.migrateSeconds > 1
        ? ` Migrations run on the cached dataset at start: ${r.migrateSeconds.toFixed(0)} s.`
        : '') +
      (r.sealSeconds !== undefined
        ? ` Sealed (usage points back-filled, every usage day and log day sealed) before measuring: ${r.sealSeconds.toFixed(0)} s.`
        : '') +
      (r.open
        ? ` Open day (the "ranges ending on the open day" cases): ${r.open.day}, the last day's usage events a day later ` +
          `(scale-live.ts): ${us(r.open.firstSlice)} rows, then the sealer's first round of the day ` +
          `(${r.open.coverMs.toFixed(0)} ms), then ${us(r.open.secondSlice)} rows it had not covered, then ` +
          `${us(r.open.trickled)} more in a trickle every second during the cases with a sealer round every 5 s ` +
          `(${us(r.open.coveredPoints)} points covered at the end).`
        : ''),
  );
  out.push('');
  out.push(
    `Rows and disk per table (active parts; raw tables ${mb(rawBytes)} MB, everything else that holds event data ${mb(rollupBytes)} MB):`,
  );
  out.push('');
  out.push('| table | rows | parts | MB on disk |');
  out.push('|---|---:|---:|---:|');
  for (const t of disk) out.push(`| ${t.table} | ${us(t.rows)} | ${t.parts} | ${mb(t.bytes)} |`);
  out.push('');
  out.push('Floors: the least each case must read and merge, timed as direct queries on this engine (ms):');
  out.push('');
  out.push('| floor | least data | p50 | p99 |');
  out.push('|---|---|---:|---:|');
  for (const f of r.floors) out.push(`| ${f.name} | ${f.what} | ${ms(f.p50)} | ${ms(f.p99)} |`);
  out.push('');
  out.push(
    'Cases through the HTTP API (ms; nearest-rank percentiles over the requests timed; "floor" is the HTTP round trip ' +
      'plus the data floor of the case from the table above, p50s added; "requests" is timed of planned, fewer when the ' +
      'case ran out of its time budget):',
  );
  out.push('');
  out.push('| case | target | floor (p50) | requests | p50 | p99 | max | req/s | met | load at end |');
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|:---:|---:|');
  for (const c of r.cases) {
    const target = c.unit === 'p99' ? `p99 ≤ ${c.target}` : `≥ ${c.target} req/s`;
    const rps = c.unit === 'rps' ? c.rps.toFixed(1) : '';
    const met = c.met
      ? 'yes'
      : `**no** (${c.unit === 'p99' ? `${(c.p99 / c.target).toFixed(1)}×` : `${(c.rps / c.target).toFixed(2)}×`})`;
    out.push(
      `| ${c.name} | ${target} | ${floorOf(r, c.name)} | ${us(c.runs)} of ${us(c.planned)} | ${ms(c.p50)} | ${ms(c.p99)} | ${ms(c.max)} | ${rps} | ${met} | ${c.load === undefined ? '–' : c.load.toFixed(1)} |`,
    );
  }
  out.push('');
  out.push('By kind of request (p50 / p99 ms, requests):');
  out.push('');
  for (const c of r.cases) {
    if (c.kinds.length <= 1) continue;
    out.push(
      `- ${c.name}: ${c.kinds.map((k) => `${k.kind} ${ms(k.p50)} / ${ms(k.p99)} (${k.runs})`).join('; ')}`,
    );
  }
  const tails = r.cases.filter((c) => c.tail !== undefined);
  if (tails.length > 0) {
    out.push('');
    out.push(
      "Where the slowest 1% of each case's requests went, outside the engine: V8's GC pauses that overlapped them " +
        "(requests with one, and GC ms of their time), every GC pause of the case, and the event loop's delay:",
    );
    out.push('');
    for (const c of tails) {
      const t = c.tail as NonNullable<typeof c.tail>;
      out.push(
        `- ${c.name}: slowest ${t.slow} took ${ms(t.slowMs)} ms, ${t.slowWithGc} of them overlapped GC for ${ms(t.slowGcMs)} ms; ` +
          `GC ${t.gcCount} pauses, ${ms(t.gcMs)} ms, longest ${ms(t.gcMaxMs)}; loop delay p99 ${ms(t.loopP99)}, max ${ms(t.loopMax)}`,
      );
    }
  }
  out.push('');
  out.push(
    'Spot-checks against the raw tables (every checked answer equal, else the run fails) and the rollup speed-up: ' +
      'p50 of the raw-table truth over p50 of the API on the same fresh requests, and over p50 of the read path in ' +
      'process (the version check and the route’s read function, without HTTP, auth and JSON), each request timed ' +
      'the three ways back to back (target ≥ 20× on summary and logs cases):',
  );
  out.push('');
  out.push(
    '| case | answers checked | raw p50 ms | API p50 ms | speed-up (API) | read path p50 ms | speed-up (read path) |',
  );
  out.push('|---|---:|---:|---:|---:|---:|---:|');
  const under = (name: string, x: number) => (SUMMARY_AND_LOGS.test(name) && x < 20 ? ' **(< 20×)**' : '');
  for (const c of r.checks) {
    out.push(
      `| ${c.name} | ${c.checked} | ${ms(c.rawP50)} | ${ms(c.apiP50)} | ${c.speedup.toFixed(1)}×${under(c.name, c.speedup)} | ` +
        `${ms(c.readP50)} | ${c.readSpeedup.toFixed(1)}×${under(c.name, c.readSpeedup)} |`,
    );
  }
  out.push('');
  out.push('Each checked request of the cases with kinds, raw / API / read path ms:');
  out.push('');
  for (const c of r.checks) {
    if (new Set(c.requests.map((q) => q.kind)).size <= 1) continue;
    out.push(
      `- ${c.name}: ${c.requests.map((q) => `${q.kind} ${ms(q.raw)} / ${ms(q.api)} / ${ms(q.read)}`).join('; ')}`,
    );
  }
  out.push('');
  out.push(
    r.mismatches.length === 0
      ? 'Every checked answer equalled the raw-table truth.'
      : `**${r.mismatches.length} answers differed from the raw-table truth** (the run failed):\n\n\`\`\`\n${r.mismatches.slice(0, 5).join('\n')}\n\`\`\``,
  );
  out.push('');
  out.push(`Serving process RSS at the end (engine, app and harness in one process): ${mb(r.rssBytes)} MB.`);
  if (r.slow.length > 0) {
    out.push('');
    out.push(
      'Where the time goes in each case that missed its target: its slowest request replayed, the engine queries it sent ' +
        '(recorded at the client; the embedded engine keeps no system.query_log), and EXPLAIN ESTIMATE of the slowest:',
    );
    for (const w of r.slow) {
      out.push('');
      out.push(`- ${w.case}: \`${w.request}\` took ${ms(w.firstMs)} ms, ${ms(w.replayMs)} ms replayed.`);
      for (const q of w.queries.slice(0, 3)) out.push(`  - ${ms(q.ms)} ms: \`${q.sql.replace(/`/g, "'")}\``);
      for (const e of w.estimate) out.push(`  - reads ${e}`);
    }
  }
  return out.join('\n');
}

export function scaleReport(results: readonly ShapeResult[], opts: ScaleOptions): string {
  const first = results[0];
  // The sizes the measurement ran with (a --report-only run may not have been given them again).
  const o = first?.options ?? opts;
  const out: string[] = [];
  out.push(`## Scale, ${us(o.events)} events per shape (\`npm run bench -- --scale\`, \`bench/scale.ts\`)`);
  out.push('');
  if (!first) return `${out.join('\n')}\nNo shape was measured.`;
  out.push(`Run ${first.started.slice(0, 10)}, ${first.machine}.`);
  out.push('');
  out.push(
    `Datasets of ${us(o.events)} events over 365 days (2025), made inside the embedded engine with ` +
      'INSERT … SELECT FROM numbers() in chunks through the raw tables, so the materialized views fill the rollups as ' +
      `ingestion does; cached under \`${o.root}/<shape>-<events>/\` and reused. "product": the shape of ` +
      '`bench/dataset.ts` over a year (30,000 users, ~3,000 active a day, many events per user-day). "long-tail": ' +
      '100,000 users, 90% of the usage from 5,000 of them (Zipf-like), the other 95,000 active on 1–40 days each with ' +
      'few events; one session in ten runs from 22:00 to 02:00 (events and session_starts on two days); 1% of usage ' +
      'events and logs re-sent in later inserts. "wide" (run when asked for by name): 300,000 users in 5,000 teams, ' +
      'each event in any of 60 services, logs of 40, their names with spaces, quotes, a backslash, Cyrillic and ' +
      'emoji; 1% of usage events re-sent. All: 20% logs, 1% of them re-sent.',
  );
  out.push('');
  out.push(
    `Each case: ${us(o.requests)} timed requests at concurrency 1 through the HTTP API (Hono app on a local socket, ` +
      'JWT auth, as `bench/queries.ts` builds it; ' +
      `the HTTP client (\`bench/http-client.ts\`) in ${CLIENT_WHERE[o.client]}, timing from request to body read; ` +
      (o.early
        ? 'an uncached answer computed beside the version check, as the service does'
        : 'an uncached answer computed after the version check, BENCH_SCALE_EARLY=0') +
      '), every request different unless ' +
      'said otherwise (seeded: ranges of 1–365 days never aligned to months; filters team, service, user and their ' +
      'combinations), after 3 warm-up requests. system-events asks `limit=1` first (untimed) to learn how many logs ' +
      'match, then times page 1, a middle page or the last page (limit 100). The dashboard mix runs 8 clients at once ' +
      `(summary, timeseries, logs page 1, all different ranges), throughput over wall time. Each case stops after ${us(o.caseSeconds)} s ` +
      `(then fewer requests than planned). Then up to ${o.checks} more requests of each case (other seeds, so no cache has ` +
      'seen them) are asked of the API and at once computed from the raw tables (`bench/scale-truth.ts`: uniqExact over ' +
      'usage_events, exact without FINAL since copies repeat ids; OFFSET pages and counts on log_events FINAL): the answers ' +
      'must be equal, and the two timings, taken under the same load, give the rollup speed-up. The measuring process ' +
      `runs with \`npm start\`'s node flags (${START_NODE_FLAGS.join(' ') || 'none'}) and allocator settings.`,
  );
  out.push('');
  out.push(
    '| shape | dataset generation (first run) | summary p99 random ranges, no filter / filtered | repeated p99 | logs p99 | timeseries p99 | dashboard req/s | RSS MB |',
  );
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of results) {
    const c = (name: string) => r.cases.find((x) => x.name.startsWith(name));
    const p99 = (name: string) => ms(c(name)?.p99 ?? Number.NaN);
    out.push(
      `| ${r.shape} | ${(r.dataset.seconds / 60).toFixed(1)} min | ${p99('usage-summary, random ranges, no')} / ${p99('usage-summary, random ranges, filtered')} | ` +
        `${p99('usage-summary, one')} | ${p99('system-events')} | ${p99('usage-timeseries')} | ${(c('dashboard')?.rps ?? 0).toFixed(1)} | ${mb(r.rssBytes)} |`,
    );
  }
  out.push('| target | ≤ 40 min for both | ≤ 50 / ≤ 50 | ≤ 5 | ≤ 30 | ≤ 100 | ≥ 100 | ≤ 1,024 |');
  out.push('');
  out.push('Reads during a 10M-row export are measured by `bench/exports.ts`, not here.');
  for (const r of results) {
    out.push('');
    out.push(shapeSection(r));
  }
  return out.join('\n');
}
