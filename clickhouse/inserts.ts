// The only writes to the raw tables. Each insert carries a deduplication token that is a pure function of
// what it writes, so the same batch inserted again (a retry, a crash before the offset commit) adds nothing
// to the raw table nor, through the materialized views, to the rollups.
import type { LogRow, UsageRow } from '../core/events.ts';
import { type ClickHouse, INSERT_SETTINGS } from './client.ts';

export interface EventRows {
  usage: UsageRow[];
  logs: LogRow[];
}

/** Inserts a batch into the raw tables; `token` must identify the batch (e.g. topic/partition/offset range). */
export async function insertEvents(ch: ClickHouse, rows: EventRows, token: string): Promise<void> {
  if (rows.usage.length > 0) {
    await ch.client.insert({
      table: 'usage_events',
      values: rows.usage,
      format: 'JSONEachRow',
      clickhouse_settings: { ...INSERT_SETTINGS, insert_deduplication_token: `${token}/usage` },
    });
  }
  if (rows.logs.length > 0) {
    await ch.client.insert({
      table: 'log_events',
      values: rows.logs,
      format: 'JSONEachRow',
      clickhouse_settings: { ...INSERT_SETTINGS, insert_deduplication_token: `${token}/logs` },
    });
  }
}
