// The only writes to the raw tables. Each insert carries a deduplication token that is a pure function of
// what it writes, so the same batch inserted again (a retry, a crash before the offset commit) adds nothing
// to the raw table nor, through the materialized views, to the rollups.

import type { ClickHouseSettings } from '@clickhouse/client';
import type { LogRow, UsageRow } from '../core/events.ts';
import { CLUSTER_SETTINGS, type ClickHouse, INSERT_SETTINGS } from './client.ts';
import { EncodedLines } from './encoded-lines.ts';

export interface EventRows {
  usage: UsageRow[];
  logs: LogRow[];
}

/**
 * A Kafka batch, each valid event already in the insert's format (encodeUsage / encodeLog: one short string
 * per event held until the insert, instead of an object graph), with the batch's delivery prefix. Inserted into
 * usage_ingest / log_ingest (migration 0013): the events reach the raw tables and, in the same insert, the
 * ingestion ledger records each one's arrival under `<delivery>/u<i>` (or `/l<i>`), i its place among the
 * batch's events of its kind.
 */
export interface EncodedRows {
  /** As the ingester holds them (EncodedLines, outside V8's heap), or as strings. */
  usage: EncodedLines | readonly string[];
  logs: EncodedLines | readonly string[];
  /** kafka:<batch token>: a pure function of the batch, so a re-formed batch has the same deliveries. */
  delivery: string;
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

// An encoded row is its JSONCompactEachRow line without the closing bracket: the delivery is appended at the
// insert, once the batch (and so its token) is known.
/** A usage row as it is held until its insert (EncodedRows). */
export const encodeUsage = (r: UsageRow): string => JSON.stringify(usageTuple(r)).slice(0, -1);
/** A log row as it is held until its insert (EncodedRows). */
export const encodeLog = (r: LogRow): string => JSON.stringify(logTuple(r)).slice(0, -1);

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

/**
 * Inserts a batch into the raw tables; `token` must identify the batch (e.g. topic/partition/offset range).
 * Encoded rows (a Kafka batch) also record their arrivals in the ingestion ledger.
 */
export async function insertEvents(
  ch: ClickHouse,
  rows: EventRows | EncodedRows,
  token: string,
): Promise<void> {
  if ('delivery' in rows) return insertEncoded(ch, rows, token);
  if (rows.usage.length > 0) {
    await insertRows(ch, 'usage_events', USAGE_COLUMNS, rows.usage.map(usageTuple), `${token}/usage`);
  }
  if (rows.logs.length > 0) {
    await insertRows(ch, 'log_events', LOG_COLUMNS, rows.logs.map(logTuple), `${token}/logs`);
  }
}

async function insertEncoded(ch: ClickHouse, rows: EncodedRows, token: string): Promise<void> {
  // The delivery as a JSON string's inside: topic names are [A-Za-z0-9._-], but nothing here relies on it.
  const at = JSON.stringify(rows.delivery).slice(1, -1);
  if (rows.usage.length > 0) {
    await insertLines(ch, 'usage_ingest', USAGE_INGEST_COLUMNS, rows.usage, `,"${at}/u`, `${token}/usage`);
  }
  if (rows.logs.length > 0) {
    await insertLines(ch, 'log_ingest', LOG_INGEST_COLUMNS, rows.logs, `,"${at}/l`, `${token}/logs`);
  }
}

const USAGE_INGEST_COLUMNS: [string, ...string[]] = [...USAGE_COLUMNS, 'delivery'];
const LOG_INGEST_COLUMNS: [string, ...string[]] = [...LOG_COLUMNS, 'delivery'];

/** Encoded rows, each closed with its delivery (`tail` + its index). */
async function insertLines(
  ch: ClickHouse,
  table: string,
  columns: [string, ...string[]],
  lines: EncodedLines | readonly string[],
  tail: string,
  token: string,
): Promise<void> {
  const body = lines instanceof EncodedLines ? lines.body(tail) : linesBody(lines, tail);
  await ch.insert({ table, columns, values: body, settings: insertSettings(ch, token) });
}

/** The insert's body of rows given as strings, in the one format EncodedLines.body writes. */
export function linesBody(lines: readonly string[], tail: string): Buffer {
  const encoded = new EncodedLines();
  for (const line of lines) encoded.push(line);
  return encoded.body(tail);
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
