// The control store on a PostgreSQL server (DATABASE_URL), shared by every process: a pg pool; a transaction
// holds one pooled connection from BEGIN to COMMIT.
import pg from 'pg';
import type { Db, Row, Sql } from './db.ts';

const quoteIdent = (s: string) => `"${s.replace(/"/g, '""')}"`;

export async function openServerDb(url: string, schema: string | undefined, max: number): Promise<Db> {
  const pool = new pg.Pool({
    connectionString: url,
    max,
    connectionTimeoutMillis: 5000,
    ...(schema ? { options: `-c search_path=${schema}` } : {}),
  });
  // An idle connection the server drops is an error on the pool: the next query takes another connection.
  pool.on('error', () => undefined);
  if (schema) await pool.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`);
  const run = (c: Pick<pg.Pool, 'query'>): Sql => ({
    async query<T extends Row>(text: string, params: readonly unknown[] = []): Promise<T[]> {
      return (await c.query(text, params as unknown[])).rows as T[];
    },
  });
  return {
    kind: 'server',
    ...run(pool),
    async transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const out = await fn(run(client));
        await client.query('COMMIT');
        return out;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    },
    exec: async (text) => {
      await pool.query(text);
    },
    close: () => pool.end(),
  };
}
