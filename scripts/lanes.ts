// Lanes, checked in CI (`npm run lanes`): fails naming each import that crosses a lane. The rules:
//   1. `ingest/`, `api/` and `worker/` never import one another (each may import `core/`, `clickhouse/`,
//      `control/`); only the roles' entries in `bin/` wire them together.
//   2. Only `clickhouse/` imports the ClickHouse libraries (`@clickhouse/client*`, `chdb`).
//   3. Only `ingest/kafka.ts` imports `kafkajs`, so another Kafka client could replace it in one module.
//   4. Only the control-plane store (`control/`) imports a PostgreSQL driver (`pg`, `@electric-sql/pglite`).
// Tests and benchmarks (`test/`, `bench/`, unit tests beside their file) may import any of the project's
// modules, but rules 2-4 hold for them too: they reach Kafka and ClickHouse through the project's modules, as
// the service does. Scripts and `bin/` follow rules 2-4 as well. The known exceptions are listed below, each
// with its reason; an exception that no longer occurs fails the check too, so the list only shrinks.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The folders that never import one another. */
export const LANES = ['ingest', 'api', 'worker'] as const;

/** A library and who may import it (a path prefix ending in `/`, or one exact file). */
export interface LibraryRule {
  /** Module specifiers, matched exactly or as `name/...` subpaths. */
  modules: readonly string[];
  allowed: readonly string[];
  why: string;
}

export const LIBRARY_RULES: readonly LibraryRule[] = [
  {
    modules: ['@clickhouse/client', '@clickhouse/client-common', '@clickhouse/client-web'],
    allowed: ['clickhouse/'],
    why: 'only clickhouse/ talks to ClickHouse',
  },
  {
    // clickhouse/client.ts imports that module only when the embedded engine is chosen (import()), so
    // processes on a server never load the embedded engine.
    modules: ['chdb'],
    // clickhouse/sql/embedded.ts (/clickhouse's sessions) is imported by the embedded engine only.
    allowed: ['clickhouse/engine/embedded.ts', 'clickhouse/sql/embedded.ts'],
    why: 'only the embedded engine loads chdb',
  },
  { modules: ['kafkajs'], allowed: ['ingest/kafka.ts'], why: 'only ingest/kafka.ts talks to kafkajs' },
  {
    modules: ['pg', '@electric-sql/pglite'],
    allowed: ['control/'],
    why: 'only the control-plane store talks to PostgreSQL',
  },
];

export interface KnownException {
  file: string;
  module: string;
  reason: string;
}

/** Current violations kept on purpose, each with why it is not fixed yet. */
export const KNOWN_EXCEPTIONS: readonly KnownException[] = [
  {
    file: 'test/integration/cluster-migrations.test.ts',
    module: 'chdb',
    reason:
      'emulates a cluster on a raw chdb Session (a config file with remote_servers), which openClickHouse cannot pass',
  },
  {
    file: 'test/integration/cluster-migrations.test.ts',
    module: '@clickhouse/client',
    reason: 'types of the client it wraps with cluster settings; goes with the chdb Session above',
  },
  {
    file: 'test/integration/operations.test.ts',
    module: '@clickhouse/client',
    reason:
      "checks the server client's own log level wiring against a raw client; goes with the Engine interface",
  },
  {
    file: 'test/e2e/sql-clients.test.ts',
    module: '@clickhouse/client',
    reason: "a data engineer's unmodified ClickHouse client against /clickhouse: the point of the test",
  },
];

export interface Violation {
  file: string;
  specifier: string;
  message: string;
}

const IMPORT_PATTERNS = [
  /\bimport\s+(?:type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?['"]([^'"]+)['"]/g,
  /\bexport\s+(?:type\s+)?(?:\*|\{[^}]*\})(?:\s+as\s+\w+)?\s+from\s+['"]([^'"]+)['"]/g,
  /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
  /\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
];

/** Module specifiers a TypeScript/JavaScript source imports (static, re-exports, dynamic with a literal). */
export function importsOf(source: string): string[] {
  // Comments may mention imports in prose; strip them first (line comments not inside a string literal).
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
  const found = new Set<string>();
  for (const pattern of IMPORT_PATTERNS) {
    for (const m of code.matchAll(pattern)) if (m[1] !== undefined) found.add(m[1]);
  }
  return [...found];
}

function laneOf(file: string): string | undefined {
  const top = file.split('/')[0];
  return LANES.find((l) => l === top);
}

function matchesModule(specifier: string, module: string): boolean {
  return specifier === module || specifier.startsWith(`${module}/`);
}

function allowedBy(file: string, allowed: readonly string[]): boolean {
  return allowed.some((a) => (a.endsWith('/') ? file.startsWith(a) : file === a));
}

/** The rules' verdict on one file (a path relative to the repository root, `/`-separated) and its imports. */
export function checkFile(file: string, specifiers: readonly string[]): Violation[] {
  const out: Violation[] = [];
  const lane = laneOf(file);
  for (const specifier of specifiers) {
    if (specifier.startsWith('.')) {
      const target = posix.normalize(posix.join(posix.dirname(file), specifier));
      const targetLane = laneOf(target);
      if (lane && targetLane && targetLane !== lane) {
        out.push({
          file,
          specifier,
          message: `${file} imports ${specifier}: ${lane}/ and ${targetLane}/ are separate lanes (wire them in bin/)`,
        });
      }
      continue;
    }
    for (const rule of LIBRARY_RULES) {
      if (!rule.modules.some((m) => matchesModule(specifier, m))) continue;
      if (!allowedBy(file, rule.allowed)) {
        out.push({ file, specifier, message: `${file} imports ${specifier}: ${rule.why}` });
      }
    }
  }
  return out;
}

function isKnown(v: Violation, known: readonly KnownException[]): boolean {
  return known.some((k) => k.file === v.file && matchesModule(v.specifier, k.module));
}

export interface LaneReport {
  violations: Violation[];
  /** Known exceptions that no longer occur (remove them from the list). */
  stale: KnownException[];
}

/** Checks every file (path relative to the root → source) against the rules and the known exceptions. */
export function checkLanes(
  files: ReadonlyMap<string, string>,
  known: readonly KnownException[] = KNOWN_EXCEPTIONS,
): LaneReport {
  const all: Violation[] = [];
  for (const [file, source] of files) all.push(...checkFile(file, importsOf(source)));
  const violations = all.filter((v) => !isKnown(v, known));
  const stale = known.filter(
    (k) => !all.some((v) => v.file === k.file && matchesModule(v.specifier, k.module)),
  );
  return { violations, stale };
}

const SKIP = new Set(['node_modules', 'dist', '.cache', '.git', 'data', 'coverage']);

function sourceFiles(root: string, dir = root, out = new Map<string, string>()): Map<string, string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (SKIP.has(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) sourceFiles(root, path, out);
    else if (/\.(?:[cm]?ts|[cm]?js|tsx)$/.test(entry.name) && !entry.name.endsWith('.d.ts')) {
      out.set(relative(root, path).split('\\').join('/'), readFileSync(path, 'utf8'));
    }
  }
  return out;
}

function main(): void {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const files = sourceFiles(root);
  const { violations, stale } = checkLanes(files);
  for (const v of violations) console.error(`lanes: ${v.message}`);
  for (const k of stale) {
    console.error(`lanes: known exception no longer occurs, remove it: ${k.file} imports ${k.module}`);
  }
  const failed = violations.length + stale.length;
  console.log(
    failed === 0
      ? `lanes: ${files.size} files, no import crosses a lane (${KNOWN_EXCEPTIONS.length} known exceptions)`
      : `lanes: ${failed} problem(s) in ${files.size} files`,
  );
  process.exit(failed === 0 ? 0 : 1);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
