// Applies the plain-SQL migrations in order, once each, and records them. Every statement is idempotent (IF
// NOT EXISTS), so two processes migrating at once, or a crash between a statement and its record, leave the
// same schema behind. One source, clickhouse/migrations; on a sharded, replicated cluster (CLICKHOUSE_CLUSTER)
// each statement runs as the DDL cluster-ddl.ts generates from it.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ClickHouse, quoteIdent } from './client.ts';
import { clusterStatements, emptySchema } from './cluster-ddl.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
export const MIGRATIONS_DIR = join(HERE, 'migrations');
const FILE = /^(\d{4})_([a-z0-9_]+)\.sql$/;

export interface Migration {
  version: number;
  name: string;
  checksum: string;
  statements: string[];
}

/** Reads the migration files, sorted by version; refuses gaps and duplicate versions. */
export function loadMigrations(dir: string = MIGRATIONS_DIR): Migration[] {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort();
  const migrations = files.map((file) => {
    const m = FILE.exec(file);
    if (!m) throw new Error(`migration file ${file}: expected NNNN_snake_name.sql`);
    const sql = readFileSync(join(dir, file), 'utf8');
    return {
      version: Number(m[1]),
      name: m[2] as string,
      // Of the file as written, before placeholders are filled in: renaming the cluster or the database is
      // not an edit of the migration.
      checksum: sha256(sql),
      statements: splitStatements(sql),
    };
  });
  migrations.forEach((m, i) => {
    if (m.version !== i + 1)
      throw new Error(`migration versions must be 1..N without gaps; found ${m.version}`);
  });
  return migrations;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

interface LandedTwin {
  version: number;
  name: string;
  /** sha256 of the single-node file. */
  source: string;
  /** sha256 of its hand-written cluster twin, as clusters recorded it. */
  cluster: string;
}

/**
 * Until 0012 the cluster DDL was a hand-written twin of each file, and clusters recorded the twin's checksum.
 * While a single-node file is the one its twin was written from, its cluster checksum is the recorded one;
 * an edited file gets its own checksum, which the record then refuses like any edit.
 */
export function landedTwins(dir: string = MIGRATIONS_DIR): Map<number, LandedTwin> {
  const { landed } = JSON.parse(readFileSync(join(dir, 'cluster-checksums.json'), 'utf8')) as {
    landed: LandedTwin[];
  };
  return new Map(landed.map((t) => [t.version, t]));
}

/** The cluster set: each migration's statements as the cluster DDL generated from them, in order. */
export function clusterMigrations(
  migrations: Migration[],
  twins: ReadonlyMap<number, LandedTwin> = landedTwins(),
): Migration[] {
  const schema = emptySchema();
  return migrations.map((m) => {
    const twin = twins.get(m.version);
    return {
      ...m,
      checksum: twin && twin.source === m.checksum ? twin.cluster : m.checksum,
      statements: m.statements.flatMap((s) => clusterStatements(s, schema)),
    };
  });
}

/** The migration set this connection runs: the generated cluster DDL when it names a cluster. */
export function migrationsFor(ch: Pick<ClickHouse, 'cluster'>): Migration[] {
  return ch.cluster ? clusterMigrations(loadMigrations()) : loadMigrations();
}

/** Splits a file on statement-ending semicolons (at the end of a line), dropping comment-only chunks. */
export function splitStatements(sql: string): string[] {
  return sql
    .split(/;\s*$/m)
    .map((s) => s.trim())
    .filter((s) => s.replace(/--.*$/gm, '').trim().length > 0);
}

const PLACEHOLDER = /\{\{([a-z]+)\}\}/g;

/**
 * Fills in `{{cluster}}` and `{{database}}` of the cluster migrations. Their values are identifiers that
 * config restricted to [A-Za-z0-9_], quoted again here. A placeholder with no value (a cluster statement on
 * a single node, a misspelt name) is an error rather than SQL the server would misread.
 */
export function fillPlaceholders(
  sql: string,
  values: { cluster?: string | undefined; database: string },
): string {
  return sql.replace(PLACEHOLDER, (whole, name: string) => {
    const value = name === 'cluster' ? values.cluster : name === 'database' ? values.database : undefined;
    if (value === undefined) throw new Error(`migration placeholder ${whole} has no value here`);
    return quoteIdent(value);
  });
}

const COLUMNS = `(
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)`;

const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS schema_migrations
${COLUMNS}
ENGINE = ReplacingMergeTree
ORDER BY version`;

// In a cluster the record must be one for the whole cluster, whichever host a process connects to: a
// replicated table per shard behind a Distributed schema_migrations, like every other table. Sharded by
// version, so a record written twice (two processes migrating at once) meets its first copy and its token.
const CREATE_CLUSTER_TABLES = [
  `CREATE TABLE IF NOT EXISTS {{database}}.schema_migrations_local ON CLUSTER {{cluster}}
${COLUMNS}
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
ORDER BY version`,
  `CREATE TABLE IF NOT EXISTS {{database}}.schema_migrations ON CLUSTER {{cluster}}
AS {{database}}.schema_migrations_local
ENGINE = Distributed({{cluster}}, {{database}}, schema_migrations_local, version)`,
];

/** The statements that create the bookkeeping table on this connection's kind of deployment. */
export function bookkeepingStatements(ch: Pick<ClickHouse, 'cluster'>): string[] {
  return ch.cluster ? CREATE_CLUSTER_TABLES : [CREATE_TABLE];
}

export interface Applied {
  version: number;
  name: string;
  checksum: string;
}

async function applied(ch: ClickHouse): Promise<Applied[]> {
  const rs = await ch.client.query({
    query:
      'SELECT version, any(name) AS name, any(checksum) AS checksum FROM schema_migrations GROUP BY version',
    format: 'JSONEachRow',
  });
  return rs.json<Applied>();
}

/**
 * Refuses a migration set that disagrees with what the database recorded: a file changed (or replaced) after it
 * was applied. Migrations are forward-only; a change is a new migration, never an edit (CONVENTIONS 6).
 */
export function checkApplied(migrations: Migration[], done: ReadonlyMap<number, Applied>): void {
  for (const m of migrations) {
    const prior = done.get(m.version);
    if (prior && prior.checksum !== m.checksum) {
      const file = `${String(m.version).padStart(4, '0')}_${m.name}.sql`;
      throw new Error(
        `migration ${file} was changed after it was applied (recorded sha256 ${prior.checksum.slice(0, 12)}…, ` +
          `file sha256 ${m.checksum.slice(0, 12)}…): migrations are forward-only, so restore the file as it ` +
          'was applied and put the change in a new migration',
      );
    }
  }
}

/**
 * Brings the schema up to date; returns the versions it applied (none when it is up to date). Every recorded
 * migration is checked first, so a refused set applies nothing at all.
 */
export async function migrate(
  ch: ClickHouse,
  migrations: Migration[] = migrationsFor(ch),
): Promise<number[]> {
  const fill = (sql: string) => fillPlaceholders(sql, { cluster: ch.cluster, database: ch.database });
  for (const statement of bookkeepingStatements(ch)) await ch.client.command({ query: fill(statement) });
  const done = new Map((await applied(ch)).map((a) => [Number(a.version), a]));
  checkApplied(migrations, done);
  const ran: number[] = [];
  for (const m of migrations) {
    if (done.has(m.version)) continue;
    for (const statement of m.statements) await ch.client.command({ query: fill(statement) });
    await ch.client.insert({
      table: 'schema_migrations',
      values: [{ version: m.version, name: m.name, checksum: m.checksum }],
      format: 'JSONEachRow',
      clickhouse_settings: { insert_deduplication_token: `migration-${m.version}-${m.checksum}` },
    });
    ran.push(m.version);
  }
  return ran;
}

/**
 * The migration that drops the control-plane tables of earlier versions (0012). It runs only after their
 * one-time import into the control store (bin/runtime.ts), so a process may serve before it; nothing reads
 * those tables, and /readyz does not wait for it.
 */
export const RETIRE_MIGRATION = 12;

/** True when every known migration (but the retirement, above) is recorded as applied (used by /readyz). */
export async function migrationsApplied(
  ch: ClickHouse,
  migrations: Migration[] = migrationsFor(ch).filter((m) => m.version !== RETIRE_MIGRATION),
): Promise<boolean> {
  const done = new Set((await applied(ch)).map((a) => Number(a.version)));
  return migrations.every((m) => done.has(m.version));
}
