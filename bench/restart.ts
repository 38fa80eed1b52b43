// Restart benchmark: `npm start`'s time from spawn to the first 200 of /readyz after a SIGKILL, over one data
// directory that is already migrated, with Kafka configured (the ingester joins in the background). Two ways of
// loading the same code, alternated in rounds so that both see the same load: through bin/launch.mjs as
// `npm start` runs it (compiled JavaScript from .cache/launch, built first), and through tsx
// (`node --import tsx bin/start.ts`, how every start ran before; the baseline). Also the CPU time the process
// had used when /readyz first answered (all its threads, /proc), which the machine's other work changes less
// than the wall time. Writes the restart section of bench/RESULTS.md.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { benchOptions } from './options.ts';
import { START_NODE_FLAGS } from './start-flags.ts';
import { fmtSpread, percentile, spread, writeSection } from './stats.ts';

const opts = benchOptions();
/** Restarts per way of loading (at least 10), in rounds of 4 alternating between the two. */
const RESTARTS = Math.max(10, opts.quick ? 10 : 12);
const log = (s: string) => process.stderr.write(`bench restart: ${s}\n`);
const run = `${Date.now()}`;
const dataDir = mkdtempSync(join(tmpdir(), 'tally-bench-restart-'));
const port = 20_000 + (Number(run) % 10_000);
const env: Record<string, string> = {
  PATH: process.env.PATH ?? '',
  HOME: process.env.HOME ?? '',
  LOG_LEVEL: 'warn',
  DATA_DIR: dataDir,
  PORT: String(port),
  KAFKA_BROKERS: '127.0.0.1:9092',
  KAFKA_TOPIC_SESSIONS: `bench.restart.sessions.${run}`,
  KAFKA_TOPIC_LOGS: `bench.restart.logs.${run}`,
  KAFKA_GROUP_ID: `bench-restart-${run}`,
};
// `npm start` exactly as package.json runs it: its node flags, then the launcher.
const WAYS = {
  launcher: [...START_NODE_FLAGS, 'bin/launch.mjs', 'bin/start.ts'],
  tsx: [...START_NODE_FLAGS, '--import', 'tsx', 'bin/start.ts'],
};
type Way = keyof typeof WAYS;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** CPU milliseconds the process has used, every thread. */
function cpuMs(pid: number): number {
  let ticks = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // the thread ended meanwhile
    }
  }
  return ticks * 10; // USER_HZ is 100 on Linux
}

async function start(way: Way): Promise<{ child: ChildProcess; ms: number; cpu: number }> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [...WAYS[way]], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (d) => {
    err = (err + d).slice(-4000);
  });
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  for (;;) {
    if (exited) throw new Error(`the service exited before it was ready: ${err}`);
    if (performance.now() - t0 > 60_000) throw new Error('no /readyz within 60 s');
    const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
    await sleep(25);
  }
  const ms = performance.now() - t0;
  return { child, ms, cpu: child.pid === undefined ? Number.NaN : cpuMs(child.pid) };
}

async function kill(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

// The compiled tree as `npm start` builds it for itself, built up front here so that every measured start
// uses it: the first start of a checkout runs through tsx and builds it in the background.
const fp = spawnSync(process.execPath, ['bin/launch.mjs', '--build-now'], { encoding: 'utf8' });
if (fp.status !== 0) throw new Error(`bin/launch.mjs --build-now: ${fp.stderr}`);
// First start: migrations and the generated secret, not measured.
await kill((await start('launcher')).child);

const results: Record<Way, { ms: number[]; cpu: number[]; loads: number[] }> = {
  launcher: { ms: [], cpu: [], loads: [] },
  tsx: { ms: [], cpu: [], loads: [] },
};
while (results.tsx.ms.length < RESTARTS) {
  for (const way of ['tsx', 'launcher'] as const) {
    for (let i = 0; i < 4 && results[way].ms.length < RESTARTS; i++) {
      results[way].loads.push(loadavg()[0] ?? 0);
      const { child, ms, cpu } = await start(way);
      results[way].ms.push(ms);
      results[way].cpu.push(cpu);
      // Up a moment, as a service is when it crashes: the ingester has joined its group.
      await sleep(1_500);
      await kill(child);
    }
  }
  log(`${results.tsx.ms.length} of ${RESTARTS} restarts each`);
}
rmSync(dataDir, { recursive: true, force: true });

const row = (way: Way, label: string) => {
  const r = results[way];
  const sorted = [...r.ms].sort((a, b) => a - b);
  const cpu = [...r.cpu].sort((a, b) => a - b);
  return `| ${label} | ${r.ms.length} | ${Math.round(percentile(sorted, 50))} | ${Math.round(percentile(sorted, 90))} | ${Math.round(sorted.at(-1) ?? Number.NaN)} | ${fmtSpread(spread(cpu), 0)} | ${Math.min(...r.loads).toFixed(1)}–${Math.max(...r.loads).toFixed(1)} |`;
};
const body = `## Restart (\`bench/restart.ts\`)

Run ${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores (${cpus()[0]?.model.trim()}), ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.versions.node}; embedded engine, Kafka configured (local broker; the ingester joins in the background).
\`npm start\` killed with SIGKILL ${RESTARTS} times after being ready for 1.5 s, each time started again on the same
data directory (already migrated) and timed from spawn to the first 200 of \`/readyz\`; the two ways of loading
the same code alternate in rounds of 4, so both see the same load (the 1-minute load average before each start
is in the table). "CPU ms" is what the process (every thread) had used when \`/readyz\` first answered:
median (min–max). Milliseconds.

| start | restarts | median | p90 | max | CPU ms | load average |
|---|---:|---:|---:|---:|---:|---:|
${row('launcher', '`npm start` (bin/launch.mjs: compiled JavaScript from .cache/launch)')}
${row('tsx', 'baseline: `node --import tsx bin/start.ts` (every module through tsx)')}
`;
writeSection(join('bench', 'RESULTS.md'), 'restart', body);
log('wrote bench/RESULTS.md');
