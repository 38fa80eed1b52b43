// `npm run build [-- --out DIR]`: compiles the service (bin, api, worker, ingest, clickhouse, control, core; no tests) to DIR
// (default dist/) with tsc and copies the files the code reads at run time beside the compiled modules, since
// they are resolved relative to the module (clickhouse/migrate.ts reads its SQL from its own folder).
import { spawnSync } from 'node:child_process';
import { cpSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** Folders of non-TypeScript files the compiled code needs, relative to the repository root. */
const ASSETS = ['clickhouse/migrations', 'control/migrations'];

let out: string;
try {
  const { values } = parseArgs({ options: { out: { type: 'string' } } });
  out = resolve(values.out ?? join(root, 'dist'));
} catch (err) {
  process.stderr.write(`build: ${(err as Error).message}\nusage: npm run build [-- --out DIR]\n`);
  process.exit(2);
}

// A clean output: a module deleted from the sources must not linger in the image.
rmSync(out, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const compiled = spawnSync(
  process.execPath,
  [tsc, '-p', join(root, 'tsconfig.build.json'), '--outDir', out],
  { stdio: 'inherit' },
);
if (compiled.status !== 0) process.exit(compiled.status ?? 1);
for (const dir of ASSETS) cpSync(join(root, dir), join(out, dir), { recursive: true });
process.stdout.write(`build: ${out}\n`);
