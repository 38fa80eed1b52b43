// The single-node migrations on the real engine: a fresh database gets every migration once and records it;
// applying them again applies nothing and changes no table; a migration file changed after it was applied is
// refused with a message naming it, before anything (even a new migration after it) is applied.
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClickHouse, openClickHouse } from '../../clickhouse/client.ts';
import { loadMigrations, MIGRATIONS_DIR, migrate, migrationsApplied } from '../../clickhouse/migrate.ts';
import { dropTestDatabase } from '../helpers/engine.ts';

describe('single-node migrations', () => {
  let ch: ClickHouse;
  let dataDir: string;
  let copies: string;
  const database = `test_${randomBytes(6).toString('hex')}`;
  const migrations = loadMigrations();

  const select = async <T>(query: string, query_params: Record<string, string> = {}) =>
    (await ch.client.query({ query, query_params, format: 'JSONEachRow' })).json<T>();

  /** The tables of the test database with their full CREATE statements, to see that nothing changed. */
  const schema = async () =>
    select<{ name: string; create_table_query: string }>(
      'SELECT name, create_table_query FROM system.tables WHERE database = {db:String} ORDER BY name',
      { db: database },
    );
  const recorded = async () =>
    select<{ version: number; n: string }>(
      'SELECT version, count() AS n FROM schema_migrations FINAL GROUP BY version ORDER BY version',
    );

  /** A copy of the migration files in a directory of its own, to edit without touching the real ones. */
  const copyOfMigrations = () => {
    const dir = mkdtempSync(join(copies, 'set-'));
    for (const f of readdirSync(MIGRATIONS_DIR)) copyFileSync(join(MIGRATIONS_DIR, f), join(dir, f));
    return dir;
  };

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'tally-migrations-'));
    copies = mkdtempSync(join(tmpdir(), 'tally-migration-files-'));
    ch = await openClickHouse({ url: process.env.CLICKHOUSE_URL || undefined, database, dataDir });
  });
  afterAll(async () => {
    if (ch) {
      await dropTestDatabase(ch, database);
      await ch.close();
    }
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(copies, { recursive: true, force: true });
  });

  it('applies every migration once on a fresh database, and nothing the second time', async () => {
    expect(migrations.length).toBeGreaterThan(0);
    expect(await migrate(ch)).toEqual(migrations.map((m) => m.version));
    expect(await migrationsApplied(ch)).toBe(true);
    const first = await schema();
    expect(first.map((t) => t.name)).toEqual(expect.arrayContaining(['schema_migrations', 'usage_events']));

    expect(await migrate(ch)).toEqual([]);
    expect(await migrate(ch)).toEqual([]);
    expect(await schema()).toEqual(first);
    // One record per migration, however often migrate ran.
    const rows = await recorded();
    expect(rows.map((r) => Number(r.version))).toEqual(migrations.map((m) => m.version));
    expect(rows.every((r) => Number(r.n) === 1)).toBe(true);
  });

  it('refuses a migration changed after it was applied, naming it, and applies nothing', async () => {
    expect(await migrationsApplied(ch)).toBe(true);
    const before = await schema();
    const dir = copyOfMigrations();
    const target = migrations[1] ?? migrations[0];
    if (!target) throw new Error('no migrations');
    const file = `${String(target.version).padStart(4, '0')}_${target.name}.sql`;
    // Even a harmless-looking edit (a comment) changes what was applied: it is refused all the same.
    writeFileSync(join(dir, file), `${readFileSync(join(dir, file), 'utf8')}\n-- edited afterwards\n`);
    // And a new migration after it, which a refused run must not apply.
    const next = migrations.length + 1;
    const newTable = `refused_${randomBytes(3).toString('hex')}`;
    writeFileSync(
      join(dir, `${String(next).padStart(4, '0')}_new_table.sql`),
      `CREATE TABLE IF NOT EXISTS ${newTable} (x UInt8) ENGINE = MergeTree ORDER BY x;\n`,
    );
    const edited = loadMigrations(dir);
    expect(edited).toHaveLength(migrations.length + 1);

    const refusal = await migrate(ch, edited).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(refusal).toBeInstanceOf(Error);
    expect(refusal?.message).toContain(`migration ${file} was changed after it was applied`);
    expect(refusal?.message).toMatch(/forward-only/);
    expect(refusal?.message).toMatch(/new migration/);

    expect(await schema()).toEqual(before);
    expect((await schema()).map((t) => t.name)).not.toContain(newTable);
    expect((await recorded()).map((r) => Number(r.version))).not.toContain(next);

    // The files as they were applied, plus the new one, go through: only the new one is applied.
    const fixed = copyOfMigrations();
    copyFileSync(
      join(dir, `${String(next).padStart(4, '0')}_new_table.sql`),
      join(fixed, `${String(next).padStart(4, '0')}_new_table.sql`),
    );
    expect(await migrate(ch, loadMigrations(fixed))).toEqual([next]);
    expect((await schema()).map((t) => t.name)).toContain(newTable);
  });
});
