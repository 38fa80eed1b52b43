// The only writes to the raw tables. Each insert carries a deduplication token that is a pure function of
// what it writes, so the same batch inserted again (a retry, a crash before the offset commit) adds nothing
// to the raw table nor, through the materialized views, to the rollups.

import type { ClickHouseSettings } from '@clickhouse/client';
import type { LogRow, UsageRow } from '../core/events.ts';
import { CLUSTER_SETTINGS, type ClickHouse, INSERT_SETTINGS } from './client.ts';

export interface EventRows {
  usage: UsageRow[];
  logs: LogRow[];
}

// JSONCompactEachRow (arrays in a fixed column order) rather than JSONEachRow: measured ~1.5x more rows/s
// into the embedded engine, materialized views included (bench/RESULTS.md, ingest section). The client
// cannot send RowBinary, and TabSeparated needed escaping in JS for no steadier gain.
const USAGE_COLUMNS: [string, ...string[]] = [
  'event_id',
  'type',
  'timestamp',
  'user_id',
  'team_id',
  'service',
  'session_id',
  'attributes',
];
const LOG_COLUMNS: [string, ...string[]] = ['event_id', 'timestamp', 'severity', 'service', 'message'];

const usageTuple = (r: UsageRow) => [
  r.event_id,
  r.type,
  r.timestamp,
  r.user_id,
  r.team_id,
  r.service,
  r.session_id,
  r.attributes,
];
const logTuple = (r: LogRow) => [r.event_id, r.timestamp, r.severity, r.service, r.message];

// Every setting the guarantee rests on, stated on each insert (the embedded connection keeps per-query
// settings for the session, so a token must never be left to linger). In a cluster the public names are
// Distributed tables, and the token only works if the insert is synchronous (distributed_foreground_insert,
// see CLUSTER_SETTINGS): a retry then splits the batch by event_id onto the same shards, each of which drops
// the block it already has. The client sends it too; restated here because exactly-once depends on it.
const insertSettings = (ch: ClickHouse, token: string): ClickHouseSettings => ({
  ...INSERT_SETTINGS,
  ...(ch.cluster === undefined ? {} : CLUSTER_SETTINGS),
  insert_deduplication_token: token,
});

/** Inserts a batch into the raw tables; `token` must identify the batch (e.g. topic/partition/offset range). */
export async function insertEvents(ch: ClickHouse, rows: EventRows, token: string): Promise<void> {
  if (rows.usage.length > 0) {
    await insertRows(ch, 'usage_events', USAGE_COLUMNS, rows.usage.map(usageTuple), `${token}/usage`);
  }
  if (rows.logs.length > 0) {
    await insertRows(ch, 'log_events', LOG_COLUMNS, rows.logs.map(logTuple), `${token}/logs`);
  }
}

/** Inserts rows with the guarantee's settings and `token` (also the ingestion ledger's writer). */
export async function insertRows(
  ch: ClickHouse,
  table: string,
  columns: [string, ...string[]],
  values: unknown[][],
  token: string,
): Promise<void> {
  await ch.insert({ table, columns, values, settings: insertSettings(ch, token) });
}
