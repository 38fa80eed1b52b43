// The /clickhouse engine for the storage in use (embedded or server): see engine.ts.
import type { ClickHouse } from '../client.ts';
import type { SqlEngine, SqlLimits } from './engine.ts';

export type { SqlEngine, SqlLimits, SqlRequest, SqlResult, SqlSummary } from './engine.ts';
export { STREAMED_FORMATS } from './engine.ts';
export { CODES, errorText, fromEngine, SqlError, sqlError } from './errors.ts';
export { CLIENT_SETTINGS, LOWERABLE_LIMITS, PROTOCOL_PARAMS } from './policy.ts';

/** The engine's own /clickhouse engine (each storage opens its own: clickhouse/engine/*). */
export function openSqlEngine(ch: ClickHouse, limits: SqlLimits): Promise<SqlEngine> {
  return ch.openSql(limits);
}
