// The /clickhouse engine for the storage in use (embedded or server): see engine.ts.
import type { ClickHouse } from '../client.ts';
import { embeddedSqlEngine } from './embedded.ts';
import type { SqlEngine, SqlLimits } from './engine.ts';
import { serverSqlEngine } from './server.ts';

export type { SqlEngine, SqlLimits, SqlRequest, SqlResult, SqlSummary } from './engine.ts';
export { STREAMED_FORMATS } from './engine.ts';
export { CODES, errorText, fromEngine, SqlError, sqlError } from './errors.ts';
export { CLIENT_SETTINGS, LOWERABLE_LIMITS, PROTOCOL_PARAMS } from './policy.ts';

export async function openSqlEngine(ch: ClickHouse, dataDir: string, limits: SqlLimits): Promise<SqlEngine> {
  if (ch.embedded) return embeddedSqlEngine({ dataDir, database: ch.database, limits });
  const rs = await ch.client.query({ query: 'SELECT version() AS v', format: 'JSONEachRow' });
  const [row] = await rs.json<{ v: string }>();
  return serverSqlEngine(ch, limits, row?.v ?? 'unknown');
}
