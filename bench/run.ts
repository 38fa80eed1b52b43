// `npm run bench [-- --quick]`: starts the local Kafka broker if none answers, then runs the query, ingest and
// export benchmarks, each in a process of its own (the embedded engine allows one data directory per
// process), and each writes its section of bench/RESULTS.md.
import { spawnSync } from 'node:child_process';

const passthrough = process.argv.slice(2);
const step = (what: string, cmd: string, args: string[]) => {
  const t0 = performance.now();
  process.stderr.write(`bench: ${what}\n`);
  const r = spawnSync(cmd, args, { stdio: 'inherit' });
  if (r.status !== 0) {
    process.stderr.write(`bench: ${what} failed (exit ${r.status})\n`);
    process.exit(1);
  }
  process.stderr.write(`bench: ${what} done in ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
};
const node = (file: string) =>
  [process.execPath, ['--expose-gc', '--import', 'tsx', file, ...passthrough]] as const;

const t0 = performance.now();
// --scale: only the scale benchmark (issue 14), in a process of its own; it needs no broker.
if (passthrough.includes('--scale')) {
  const [cmd, args] = node('bench/scale.ts');
  step('scale', cmd, [...args]);
  process.exit(0);
}
// Idempotent: returns at once when a broker already serves on 127.0.0.1:9092.
step('kafka broker', 'bash', ['scripts/kafka.sh', 'up']);
for (const name of [
  'queries',
  'ingest',
  'read-your-writes',
  'exports',
  'read-cache',
  'reads-during-export',
  'restart',
]) {
  const [cmd, args] = node(`bench/${name}.ts`);
  step(name, cmd, [...args]);
}
process.stderr.write(
  `bench: all done in ${((performance.now() - t0) / 60_000).toFixed(1)} min; see bench/RESULTS.md\n`,
);
