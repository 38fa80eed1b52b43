// A ClickHouse for one test file: the server at CLICKHOUSE_URL if set, else the embedded engine in a fresh
// temporary directory; always on a database of its own whose name starts with test_, dropped afterwards.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ClickHouse, openClickHouse, quoteIdent } from '../../clickhouse/client.ts';
import { migrate } from '../../clickhouse/migrate.ts';

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
