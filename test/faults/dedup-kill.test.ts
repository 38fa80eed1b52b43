// A process killed inside one insert, at the one moment where the engine has recorded a block's deduplication
// id but not yet committed its part, then the same batch retried with the same token from a new process: every
// usage table ends as after one clean insert. The kill is placed, not timed: strace kills the inserting process
// with SIGKILL as it calls rename(2) on that table's temporary part, the step right after the record's write.
// Without the recovery of engine/dedup-recovery.ts the table keeps the record without the block, and the retry
// is dropped there as a duplicate: usage_first_seen loses the batch's users (the crash soak's total_users one
// short), usage_events its events. Embedded engine only (the kill is of the process that holds the engine).
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const CHILD = ['--import', 'tsx', 'test/helpers/insert-child.ts'];
const DATABASE = 'test_dedupkill';
const TOKEN = 'kafka:dedup-kill/0/100-1699/usage';
// The tables the batch's insert writes, each through its own view(s).
const TABLES = [
  'usage_events',
  'usage_daily',
  'usage_first_seen',
  'usage_points',
  'usage_points_by_day',
  'usage_user_days',
  'ingest_ledger',
];

const hasStrace = (() => {
  try {
    execFileSync('strace', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
// Under .ci/run (CI=true) a missing strace is a failure, not a silent skip: .ci/run installs it.
if (!hasStrace && process.env.CI === 'true') {
  throw new Error('CI: strace is not installed (Debian package strace); .ci/run installs it for this test');
}
if (!hasStrace) process.stderr.write('dedup-kill: strace is not installed; skipped\n');

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[]): Promise<Run> {
  const child: ChildProcess = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d) => {
    stdout += d;
  });
  child.stderr?.on('data', (d) => {
    stderr = (stderr + d).slice(-10_000);
  });
  return new Promise((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
}

async function child(dataDir: string, ...args: string[]): Promise<string> {
  const r = await run(process.execPath, [...CHILD, dataDir, DATABASE, ...args]);
  if (r.code !== 0) throw new Error(`insert-child ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout.trim();
}

/** Runs `insert TOKEN` in a child that strace kills with SIGKILL at its first `syscalls` on one of `paths`. */
function strace(paths: string[], syscalls: string, dataDir: string): Promise<Run> {
  return run('strace', [
    '-f',
    '-qq',
    '-o',
    '/dev/null',
    ...paths.flatMap((p) => ['-P', p]),
    '-e',
    `trace=${syscalls}`,
    '-e',
    `inject=${syscalls}:signal=KILL`,
    process.execPath,
    ...CHILD,
    dataDir,
    DATABASE,
    'insert',
    TOKEN,
  ]);
}

/** Names the first insert into a fresh table gives its part, whatever the partition and the insert level. */
const firstParts = (tableDir: string) =>
  ['all', '2025'].flatMap((p) => [0, 1].map((level) => join(tableDir, `tmp_insert_${p}_1_1_${level}/`)));

describe.skipIf(!hasStrace)('a kill between a block’s deduplication record and its part', () => {
  const dirs: string[] = [];
  const newDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'tally-dedup-kill-'));
    dirs.push(d);
    return d;
  };
  // Every case starts from a data directory just migrated, with no insert yet. It is migrated once (`tables`,
  // which also gives each table's data directory) and copied for each case: a copy of the closed engine's files
  // is the directory a migrating process would have left, without one more process start and migration per case
  // (the database keeps its tables under store/ and links them by relative paths, so the copy stands alone).
  let template: string;
  let templateTables: Record<string, string>;
  const freshDir = (): { dir: string; tables: Record<string, string> } => {
    const dir = newDir();
    cpSync(template, dir, { recursive: true, verbatimSymlinks: true });
    const tables: Record<string, string> = {};
    for (const [name, path] of Object.entries(templateTables)) {
      if (!path.startsWith(`${template}/`)) throw new Error(`${name}: ${path} is outside ${template}`);
      tables[name] = join(dir, path.slice(template.length + 1));
      if (!existsSync(tables[name])) throw new Error(`${name}: no ${tables[name]} in the copy`);
    }
    return { dir, tables };
  };
  let once: Record<string, unknown>;

  beforeAll(async () => {
    template = newDir();
    templateTables = JSON.parse(await child(template, 'tables')) as Record<string, string>;
    // The reference: the same batch inserted once, nothing killed.
    const { dir } = freshDir();
    expect(await child(dir, 'insert', TOKEN)).toBe('inserted');
    once = JSON.parse(await child(dir, 'dump'));
    for (const t of TABLES) expect((once[t] as { n: number }).n).toBeGreaterThan(0);
  }, 120_000);
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  // The control: killed as it writes the record, before it, the table has neither record nor part, and the
  // retry fills it (a view still gets a block its source table drops as a duplicate).
  it('in usage_first_seen, killed before the record: the retry stores what one insert stores', async () => {
    const { dir, tables } = freshDir();
    const tableDir = tables.usage_first_seen;
    if (!tableDir) throw new Error('no data directory for usage_first_seen');
    const logs = join(tableDir, 'deduplication_logs');
    const killed = await strace(
      readdirSync(logs).map((f) => join(logs, f)),
      'write,pwrite64,writev',
      dir,
    );
    expect(killed.stdout).toBe('');
    expect(readdirSync(logs).map((f) => readFileSync(join(logs, f), 'utf8'))).toEqual(['']);
    expect(await child(dir, 'insert', TOKEN)).toBe('inserted');
    expect(JSON.parse(await child(dir, 'dump'))).toEqual(once);
  });

  for (const table of TABLES) {
    it(`in ${table}: the retry from a new process stores what one insert stores`, async () => {
      const { dir, tables } = freshDir();
      const tableDir = tables[table];
      if (!tableDir) throw new Error(`no data directory for ${table}`);
      // SIGKILL at the rename that would commit the table's first part: its record is written by then.
      const killed = await strace(firstParts(tableDir), 'rename,renameat,renameat2', dir);
      expect({ signal: killed.signal, code: killed.code, stdout: killed.stdout }).toMatchObject({
        stdout: '',
        ...(killed.signal === null ? { code: 137 } : { signal: 'SIGKILL' }),
      });
      // The state the kill was meant to leave: the part still temporary, its block id already recorded.
      const entries = readdirSync(tableDir);
      expect(entries.some((e) => e.startsWith('tmp_insert_'))).toBe(true);
      const logs = join(tableDir, 'deduplication_logs');
      const records = readdirSync(logs).map((f) => readFileSync(join(logs, f), 'utf8'));
      expect(records.join('')).toMatch(/^1\t\S+_1_1_\d\t/m);

      expect(await child(dir, 'insert', TOKEN)).toBe('inserted');
      expect(JSON.parse(await child(dir, 'dump'))).toEqual(once);
    });
  }
});
