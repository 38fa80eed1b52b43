// `npm run bench -- --scale [--quick] [--generate-only]`: the scale benchmark of issue 14. For each shape, a
// child process makes (or reuses) the cached dataset, and another serves it and times the cases (a fresh
// process, so its RSS is the serving one's); then the section `scale-<size>` of bench/RESULTS.md is written
// from their result.json files (quick runs print it instead). Exits non-zero if an answer differed from the
// raw-table truth.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { datasetDir } from './scale-dataset.ts';
import { scaleOptions } from './scale-options.ts';
import { scaleReport } from './scale-report.ts';
import type { ShapeResult } from './scale-result.ts';
import { START_ENV, START_NODE_FLAGS } from './start-flags.ts';
import { writeSection } from './stats.ts';

if (process.argv.includes('--help')) {
  process.stdout.write(`npm run bench -- --scale [--quick] [--generate-only]

  Generates (once, into BENCH_SCALE_DIR, default .cache/scale/<shape>-<events>/) and measures the scale datasets.
  --generate-only   make or resume the datasets, measure nothing (run it with nice in the background)
  --report-only     write the RESULTS.md section again from the last measurement's result.json files
  --quick           a smoke run on 200,000 events, ~30 s; prints the report instead of writing RESULTS.md
  BENCH_SCALE_EVENTS (100000000), BENCH_SCALE_SHAPES (product,long-tail), BENCH_SCALE_REQUESTS (1000),
  BENCH_SCALE_CASE_SECONDS (900), BENCH_SCALE_CHECKS (20), BENCH_SCALE_CHECK_SECONDS (300),
  BENCH_SCALE_SETTLE_SECONDS (600), BENCH_SCALE_DIR (.cache/scale)
`);
  process.exit(0);
}
const opts = scaleOptions();
const generateOnly = process.argv.includes('--generate-only');
// Writes the section again from the result.json files left by the last measurement, measuring nothing.
const reportOnly = process.argv.includes('--report-only');
const passthrough = process.argv.slice(2).filter((a) => a === '--quick');
const log = (s: string) => process.stderr.write(`bench scale: ${s}\n`);

const run = (what: string, args: string[]): boolean => {
  const t0 = performance.now();
  log(what);
  // As `npm start` runs the service: its node flags (a small young generation) and allocator settings.
  const r = spawnSync(
    process.execPath,
    [...START_NODE_FLAGS, '--import', 'tsx', 'bench/scale-shape.ts', ...args, ...passthrough],
    {
      stdio: 'inherit',
      env: { ...START_ENV, ...process.env },
    },
  );
  log(`${what}: exit ${r.status} after ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  return r.status === 0;
};

let failed = false;
for (const shape of reportOnly ? [] : opts.shapes) {
  if (!run(`generate ${shape}, ${opts.events.toLocaleString('en-US')} events`, ['generate', shape])) {
    process.exit(1);
  }
}
if (generateOnly) process.exit(0);
const results: ShapeResult[] = [];
for (const shape of opts.shapes) {
  const path = join(datasetDir(opts.root, shape, opts.events), 'result.json');
  if (!reportOnly) {
    rmSync(path, { force: true });
    if (!run(`measure ${shape}`, ['measure', shape])) failed = true;
  }
  if (existsSync(path)) results.push(JSON.parse(readFileSync(path, 'utf8')) as ShapeResult);
}
const body = scaleReport(results, opts);
if (opts.quick) process.stdout.write(`${body}\n`);
else {
  const label = opts.events % 1_000_000 === 0 ? `${opts.events / 1_000_000}m` : String(opts.events);
  writeSection(join('bench', 'RESULTS.md'), `scale-${label}`, body);
  log(`wrote the scale-${label} section of bench/RESULTS.md`);
}
for (const r of results) {
  for (const m of r.mismatches) process.stderr.write(`MISMATCH (${r.shape}) ${m}\n`);
}
if (failed || results.some((r) => r.mismatches.length > 0)) {
  log('FAILED: an answer differed from the raw-table truth, or a measurement failed (see above)');
  process.exit(1);
}
