// Applies the plain-SQL migrations in clickhouse/migrations in order, once each, and records them. Every
// statement is idempotent (IF NOT EXISTS), so two processes migrating at once, or a crash between a
// statement and its record, leave the same schema behind.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClickHouse } from './client.ts';

export const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'migrations');
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
      checksum: createHash('sha256').update(sql).digest('hex'),
      statements: splitStatements(sql),
    };
  });
  migrations.forEach((m, i) => {
    if (m.version !== i + 1)
      throw new Error(`migration versions must be 1..N without gaps; found ${m.version}`);
  });
  return migrations;
}

/** Splits a file on statement-ending semicolons (at the end of a line), dropping comment-only chunks. */
export function splitStatements(sql: string): string[] {
  return sql
    .split(/;\s*$/m)
    .map((s) => s.trim())
    .filter((s) => s.replace(/--.*$/gm, '').trim().length > 0);
}

const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS schema_migrations
(
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY version`;

interface Applied {
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

/** Brings the schema up to date; returns the versions it applied. */
export async function migrate(ch: ClickHouse, migrations: Migration[] = loadMigrations()): Promise<number[]> {
  await ch.client.command({ query: CREATE_TABLE });
  const done = new Map((await applied(ch)).map((a) => [Number(a.version), a]));
  const ran: number[] = [];
  for (const m of migrations) {
    const prior = done.get(m.version);
    if (prior) {
      if (prior.checksum !== m.checksum) {
        throw new Error(
          `migration ${m.version}_${m.name} was edited after it was applied; add a new migration instead`,
        );
      }
      continue;
    }
    for (const statement of m.statements) await ch.client.command({ query: statement });
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

/** True when every known migration is recorded as applied (used by /readyz). */
export async function migrationsApplied(
  ch: ClickHouse,
  migrations: Migration[] = loadMigrations(),
): Promise<boolean> {
  const done = new Set((await applied(ch)).map((a) => Number(a.version)));
  return migrations.every((m) => done.has(m.version));
}
