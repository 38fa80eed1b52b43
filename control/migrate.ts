// Applies control/migrations/NNNN_*.sql in order, each once, recorded in control_migrations, all under a
// transaction-scoped advisory lock so that processes starting together on one server apply each exactly once.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Db } from './db.ts';

const DIR = join(dirname(fileURLToPath(import.meta.url)), 'migrations');
/** The advisory lock key of migrations and of the one-time import (any constant the service alone uses). */
export const MIGRATION_LOCK = 7_310_016;

export async function migrateControl(db: Db): Promise<string[]> {
  const files = readdirSync(DIR)
    .filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f))
    .sort();
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await tx.query(
      'CREATE TABLE IF NOT EXISTS control_migrations (name text PRIMARY KEY, applied_at bigint NOT NULL)',
    );
    const done = new Set(
      (await tx.query<{ name: string }>('SELECT name FROM control_migrations')).map((r) => r.name),
    );
    const applied: string[] = [];
    for (const f of files) {
      if (done.has(f)) continue;
      // Statements one by one: a server's extended protocol takes one statement per query.
      for (const statement of splitStatements(readFileSync(join(DIR, f), 'utf8'))) await tx.query(statement);
      await tx.query('INSERT INTO control_migrations (name, applied_at) VALUES ($1, $2)', [f, Date.now()]);
      applied.push(f);
    }
    return applied;
  });
}

/** Splits a migration into statements at `;` line ends, keeping `$$ ... $$` bodies whole; drops comments. */
export function splitStatements(sql: string): string[] {
  const out: string[] = [];
  let current = '';
  let inBody = false;
  for (const line of sql.split('\n')) {
    if (!inBody && /^\s*--/.test(line)) continue;
    current += `${line}\n`;
    if ((line.match(/\$\$/g) ?? []).length % 2 === 1) inBody = !inBody;
    if (!inBody && /;\s*$/.test(line)) {
      out.push(current.trim());
      current = '';
    }
  }
  if (current.trim()) out.push(current.trim());
  return out;
}
