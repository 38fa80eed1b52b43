// `npm start` and the other roles: runs a TypeScript entry (`node bin/launch.mjs bin/start.ts [args]`) from
// JavaScript compiled ahead of time when this checkout has it, and through tsx otherwise. Plain JavaScript,
// because it must run before anything can load TypeScript.
//
// Why: a restart's time to /readyz was mostly module loading through tsx. tsx transforms (and caches) each
// module on a hooks thread, and every import still pays a round trip to that thread; on 2 cores under load the
// service's start took 1.2-1.8 CPU-seconds through tsx and 0.6-0.9 from compiled JavaScript (measured at the
// moment /readyz first answered, /proc/PID/task/*/stat, load 10-15). Node 20 has no module compile cache and
// `npm ci` runs no build step (no install scripts), so the first start of a checkout builds the compiled tree
// in the background, at the lowest CPU priority, and later starts use it:
// - .cache/launch/<fingerprint>/: every .ts of the service's folders transpiled one by one (TypeScript's
//   transpileModule, no type check: `npm run typecheck` does that), with the files the code reads beside its
//   modules (migrations). The fingerprint covers every source file's path, size and mtime, the compiler
//   options and the TypeScript version, so an edited checkout never runs stale code: it runs through tsx
//   until its own tree is built.
// - Nothing is written when .cache is not writable; the service then always runs through tsx, as before.
// `npm run build` (dist/, with a type check) stays what images run.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { setPriority } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** The service's folders (tsconfig.build.json's `include`), compiled without their tests. */
const SOURCES = ['api', 'worker', 'ingest', 'clickhouse', 'control', 'core', 'bin'];
/** Non-TypeScript files the code reads relative to its own module (as scripts/build.ts copies them). */
const ASSETS = ['clickhouse/migrations', 'control/migrations'];
const CACHE = join(ROOT, '.cache', 'launch');
/** A build older than this that has not finished is taken as abandoned (its builder was killed). */
const STALE_LOCK_MS = 5 * 60_000;

function sourceFiles() {
  const files = [];
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.d.ts'))
        files.push(p);
    }
  };
  for (const dir of SOURCES) if (existsSync(join(ROOT, dir))) walk(join(ROOT, dir));
  return files.sort();
}

function compilerOptions(ts) {
  return {
    module: ts.ModuleKind.ESNext,
    target: ts.ScriptTarget.ES2022,
    verbatimModuleSyntax: true,
    rewriteRelativeImportExtensions: true,
    sourceMap: true,
  };
}

/** A hash of what the compiled tree is made from (stat only: a start reads no source to decide). */
function fingerprint(files) {
  const h = createHash('sha256');
  const tsVersion = JSON.parse(
    readFileSync(createRequire(import.meta.url).resolve('typescript/package.json'), 'utf8'),
  ).version;
  h.update(`launch 1\0typescript ${tsVersion}\0`);
  h.update(readFileSync(fileURLToPath(import.meta.url)));
  for (const f of [...files, ...ASSETS.flatMap((d) => listAll(join(ROOT, d)))]) {
    const s = statSync(f);
    h.update(`${relative(ROOT, f)}\0${s.size}\0${s.mtimeMs}\0`);
  }
  return h.digest('hex').slice(0, 16);
}

function listAll(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listAll(join(dir, e.name)) : [join(dir, e.name)],
  );
}

/** Builds the tree for `fp` into a temporary folder, then renames it into place (the rename is atomic). */
async function build(fp) {
  const ts = (await import('typescript')).default;
  const files = sourceFiles();
  if (fingerprint(files) !== fp) return; // the checkout changed since the start that asked for this build
  const tmp = join(CACHE, `${fp}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  for (const file of files) {
    const rel = relative(ROOT, file);
    const out = ts.transpileModule(readFileSync(file, 'utf8'), {
      fileName: rel,
      compilerOptions: compilerOptions(ts),
    });
    const js = join(tmp, rel.replace(/\.ts$/, '.js'));
    mkdirSync(dirname(js), { recursive: true });
    writeFileSync(js, out.outputText);
    if (out.sourceMapText) {
      // For NODE_OPTIONS=--enable-source-maps (stack traces naming the .ts lines). Not on by default: Node 20
      // parses every module's map as it loads it, which cost 0.2-0.3 CPU-seconds of a start (load 17-20).
      const map = JSON.parse(out.sourceMapText);
      map.sources = [relative(dirname(js), file)];
      writeFileSync(`${js}.map`, JSON.stringify(map));
    }
  }
  for (const dir of ASSETS)
    if (existsSync(join(ROOT, dir))) cpSync(join(ROOT, dir), join(tmp, dir), { recursive: true });
  try {
    renameSync(tmp, join(CACHE, fp));
  } catch {
    rmSync(tmp, { recursive: true, force: true }); // another start built it first
  }
  // Trees of earlier checkouts' states, kept a day for services still running from them (lazy imports).
  for (const e of readdirSync(CACHE, { withFileTypes: true })) {
    const p = join(CACHE, e.name);
    if (e.name !== fp && !e.name.endsWith('.lock') && Date.now() - statSync(p).mtimeMs > 86_400_000)
      rmSync(p, { recursive: true, force: true });
  }
}

/** Starts a background build of `fp` unless one is under way; never fails the start. */
function buildInBackground(fp) {
  try {
    mkdirSync(CACHE, { recursive: true });
    const lock = join(CACHE, `${fp}.lock`);
    try {
      writeFileSync(lock, String(process.pid), { flag: 'wx' });
    } catch {
      if (Date.now() - statSync(lock).mtimeMs < STALE_LOCK_MS) return;
      writeFileSync(lock, String(process.pid));
    }
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--build', fp], {
      cwd: ROOT,
      detached: true,
      stdio: 'ignore',
    });
    child.on('error', () => undefined);
    if (child.pid !== undefined) {
      try {
        setPriority(child.pid, 19);
      } catch {
        // not allowed here: it builds at normal priority
      }
    }
    child.unref();
  } catch {
    // .cache not writable: this checkout runs through tsx
  }
}

const [mode, arg] = process.argv.slice(2);
if (mode === '--build-now') {
  // For benchmarks and tests that time starts: the tree of the checkout as it is, built unless it exists.
  const fp = fingerprint(sourceFiles());
  if (!existsSync(join(CACHE, fp))) {
    mkdirSync(CACHE, { recursive: true });
    await build(fp);
  }
  process.stdout.write(`${join(CACHE, fp)}\n`);
} else if (mode === '--build') {
  try {
    await build(arg);
  } finally {
    rmSync(join(CACHE, `${arg}.lock`), { force: true });
  }
} else {
  const entry = resolve(ROOT, mode ?? 'bin/start.ts');
  // The entry sees the usual argv: [node, its own file, ...its arguments].
  let fp;
  try {
    fp = fingerprint(sourceFiles());
  } catch {
    fp = undefined;
  }
  const compiled = fp && join(CACHE, fp, relative(ROOT, entry).replace(/\.ts$/, '.js'));
  if (compiled && existsSync(compiled)) {
    process.argv.splice(1, 2, compiled);
    await import(pathToFileURL(compiled).href);
  } else {
    if (fp) buildInBackground(fp);
    await import('tsx');
    process.argv.splice(1, 2, entry);
    await import(pathToFileURL(entry).href);
  }
}
