// A ClickHouse for one test file: the server at CLICKHOUSE_URL if set, else the embedded engine in a fresh
// temporary directory; always on a database of its own whose name starts with test_, dropped afterwards.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ClickHouse, openClickHouse, quoteIdent } from '../../clickhouse/client.ts';
import { migrate } from '../../clickhouse/migrate.ts';
import { waitFor } from './wait.ts';

export interface TestEngine {
  ch: ClickHouse;
  dataDir: string;
  database: string;
  dispose(): Promise<void>;
}

export async function openTestEngine(): Promise<TestEngine> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tally-test-'));
  const database = `test_${randomBytes(6).toString('hex')}`;
  const ch = await openClickHouse({ url: process.env.CLICKHOUSE_URL || undefined, database, dataDir });
  await migrate(ch);
  return {
    ch,
    dataDir,
    database,
    async dispose() {
      await dropTestDatabase(ch, database);
      await ch.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Drops a database, refusing any whose name does not mark it as a test database. */
export async function dropTestDatabase(ch: ClickHouse, database: string): Promise<void> {
  if (!/^test_[a-z0-9]+$/.test(database)) throw new Error(`refusing to drop non-test database ${database}`);
  await ch.client.command({ query: `DROP DATABASE IF EXISTS ${quoteIdent(database)}` });
}

/**
 * Holds background merges (all tables, or one) so row counts stay put, and returns only once no merge is
 * running: `SYSTEM STOP MERGES` does not wait for a merge already past its last cancellation check, and such
 * a merge still commits its part (and changes a table's row count) a moment later.
 */
export async function holdMerges(client: ClickHouse['client'], table?: string): Promise<void> {
  await client.command({ query: `SYSTEM STOP MERGES${table ? ` ${quoteIdent(table)}` : ''}` });
  const where = table ? `database = currentDatabase() AND table = {table:String}` : '1';
  await waitFor(
    'running merges to end',
    async () => {
      const rs = await client.query({
        query: `SELECT count() AS n FROM system.merges WHERE ${where}`,
        query_params: { table: table ?? '' },
        format: 'JSONEachRow',
      });
      return Number((await rs.json<{ n: string }>())[0]?.n) === 0;
    },
    { everyMs: 20 },
  );
}
