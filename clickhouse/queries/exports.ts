// The rows of each export, as one SELECT that ClickHouse itself writes as CSVWithNames or Parquet. For CSV,
// text cells that a spreadsheet would run as a formula get a leading ' in SQL, so ClickHouse stays the writer.
// Parquet columns carry real types (DATE, TIMESTAMP(MILLIS, UTC), signed INT64 counts: unsigned 64-bit is
// what Spark and several BI tools read badly).
import { CSV_LINE_END, type CsvEscape, FORMULA_PATTERN } from '../../core/csv.ts';
import type { Severity } from '../../core/events.ts';
import type { ExportFormat } from '../../core/exports/formats.ts';
import { filterClause, type UsageFilters } from './filters.ts';
import type { BuiltQuery } from './query.ts';

/** ClickHouse's output format for each export format. */
export const CLICKHOUSE_FORMAT: Record<ExportFormat, string> = { csv: 'CSVWithNames', parquet: 'Parquet' };

/**
 * Output settings stated in each export query (so they never depend on a session's leftovers). Parquet with
 * Snappy and plain encoding (no dictionary pages) is the flavour the oldest readers still decode; zstd and
 * RLE_DICTIONARY would make files smaller but unreadable to some of them (parquetjs-lite among others).
 */
export function formatSettings(format: ExportFormat): string {
  return format === 'parquet'
    ? "output_format_parquet_compression_method = 'snappy', output_format_parquet_max_dictionary_size = 0, " +
        // Row groups are buffered whole before they are written: bounded here so memory stays flat.
        'output_format_parquet_string_as_string = 1, output_format_parquet_row_group_size = 65536, ' +
        'output_format_parquet_row_group_size_bytes = 16777216, output_format_parquet_parallel_encoding = 0'
    : `output_format_csv_crlf_end_of_line = ${CSV_LINE_END === '\r\n' ? 1 : 0}`;
}

export type { CsvEscape };

export interface UsageExportParams extends UsageFilters {
  start_date: string;
  end_date: string;
  csv_escape?: CsvEscape | undefined;
}

export interface LogExportParams {
  severity?: Severity | undefined;
  service?: string | undefined;
  start_date?: string | undefined;
  end_date?: string | undefined;
  csv_escape?: CsvEscape | undefined;
}

/**
 * A string column as written: escaped against formula injection in CSV (unless the job asked for
 * csv_escape=none), as is in Parquet.
 */
export function textColumn(
  expr: string,
  alias: string,
  format: ExportFormat,
  csvEscape: CsvEscape = 'formula',
): string {
  if (format !== 'csv' || csvEscape === 'none') return `${expr} AS ${alias}`;
  // The pattern's backslashes doubled: it is written inside an SQL string literal.
  const pattern = FORMULA_PATTERN.replaceAll('\\', '\\\\');
  return `if(match(${expr}, '${pattern}'), concat('''', ${expr}), ${expr}) AS ${alias}`;
}

/**
 * A timestamp as written: in CSV the API's text (2025-01-02T10:00:00.000Z); in Parquet the DateTime64(3, 'UTC')
 * itself, which ClickHouse writes as TIMESTAMP(MILLIS, UTC), so readers get a real timestamp, not a string.
 */
export function timestampColumn(expr: string, format: ExportFormat): string {
  if (format !== 'csv') return `toDateTime64(${expr}, 3, 'UTC') AS timestamp`;
  return `concat(replaceOne(toString(${expr}), ' ', 'T'), 'Z') AS timestamp`;
}

/**
 * One row per (UTC date, team_id) for every date in range and every team with a matching user seen on or
 * before that date; each the single-day summary: active users and sessions from usage_daily, total_users the
 * running count of first days from usage_first_seen (first days before the range count on its first day).
 */
export function buildUsageExportQuery(p: UsageExportParams, format: ExportFormat): BuiltQuery {
  const f = filterClause(p);
  const query = `
    WITH
      firsts AS (
        SELECT team_id, user_id, min(first_day) AS fd FROM usage_first_seen
        WHERE first_day <= {end_date:Date}${f.sql}
        GROUP BY team_id, user_id
      ),
      arrivals AS (
        SELECT team_id, greatest(fd, {start_date:Date}) AS date, count() AS n FROM firsts GROUP BY team_id, date
      ),
      teams AS (SELECT team_id, min(date) AS team_first FROM arrivals GROUP BY team_id),
      -- range() rather than numbers(): a table function's arguments must be constants, and on the embedded
      -- engine the dates arrive as scalar subqueries (clickhouse/queries/query.ts, paramsAsData).
      days AS (
        SELECT toDate({start_date:Date} + n) AS date
        FROM (SELECT arrayJoin(range(toUInt64(dateDiff('day', {start_date:Date}, {end_date:Date}) + 1))) AS n)
      ),
      daily AS (
        SELECT day AS date, team_id, uniqExactIf(user_id, active = 1) AS active_users,
               uniqExactMerge(sessions) AS total_sessions
        FROM usage_daily
        WHERE day BETWEEN {start_date:Date} AND {end_date:Date}${f.sql}
        GROUP BY day, team_id
      ),
      grid AS (
        SELECT d.date AS date, t.team_id AS team_id FROM days AS d CROSS JOIN teams AS t WHERE t.team_first <= d.date
      )
    SELECT
      g.date AS date,
      ${textColumn('g.team_id', 'team_id', format, p.csv_escape)},
      toInt64(ifNull(dl.active_users, 0)) AS active_users,
      toInt64(ifNull(dl.total_sessions, 0)) AS total_sessions,
      toInt64(sum(ifNull(a.n, 0)) OVER (PARTITION BY g.team_id ORDER BY g.date ROWS UNBOUNDED PRECEDING)) AS total_users
    FROM grid AS g
    LEFT JOIN daily AS dl ON dl.date = g.date AND dl.team_id = g.team_id
    LEFT JOIN arrivals AS a ON a.date = g.date AND a.team_id = g.team_id
    ORDER BY g.date, g.team_id
    SETTINGS join_use_nulls = 1, ${formatSettings(format)}`;
  return { query, query_params: { start_date: p.start_date, end_date: p.end_date, ...f.params } };
}

/**
 * Every matching log once, newest first: timestamp, then event_id, both descending.
 *
 * Not `FINAL ... ORDER BY ... DESC`: the engine cannot read FINAL in reverse order, so it sorts the whole
 * result in memory (10 million logs: +1.2 GB, measured; the external-sort setting did not spill on the embedded
 * engine). Instead the table is read in reverse sort-key order, which streams, and a copy of an event (same
 * (timestamp, event_id), the key ReplacingMergeTree collapses) is dropped when the row before it has the same
 * key. Within a key the newest insert comes first (ingested_at descending, sorted run by run, still
 * streaming), the row FINAL keeps. Severity and service filters apply after that choice, as they do after FINAL;
 * the date range is on the key, so it can narrow the read. One thread keeps the output in order, and no
 * read-ahead buffers before the merge of parts (read_in_order_use_buffering = 0: measured on 10M logs, the
 * export's added memory went from ~190 to ~105 MB for CSV and ~155 to ~70 MB for Parquet, no slower).
 */
export function buildLogExportQuery(p: LogExportParams, format: ExportFormat): BuiltQuery {
  let range = '';
  let filter = '';
  const params: Record<string, string> = {};
  // The same filters as GET /logs/system-events (clickhouse/queries/system-events.ts), on log_events.
  if (p.severity !== undefined) {
    filter += ' AND sev = {severity:String}';
    params.severity = p.severity;
  }
  if (p.service !== undefined) {
    filter += ' AND svc = {service:String}';
    params.service = p.service;
  }
  if (p.start_date !== undefined) {
    range += " AND timestamp >= toDateTime({start_date:Date}, 'UTC')";
    params.start_date = p.start_date;
  }
  if (p.end_date !== undefined) {
    range += " AND timestamp < toDateTime({end_date:Date} + 1, 'UTC')";
    params.end_date = p.end_date;
  }
  // Inner names differ from the output names: a SELECT alias would otherwise shadow the column in WHERE.
  const query = `
    SELECT
      ${timestampColumn('ts', format)},
      toString(sev) AS severity,
      ${textColumn('toString(svc)', 'service', format, p.csv_escape)},
      ${textColumn('msg', 'message', format, p.csv_escape)},
      ${textColumn('eid', 'event_id', format, p.csv_escape)}
    FROM (
      SELECT timestamp AS ts, severity AS sev, service AS svc, message AS msg, event_id AS eid,
        lagInFrame(event_id, 1, '') OVER newest_first AS prev_eid,
        lagInFrame(timestamp, 1) OVER newest_first AS prev_ts
      FROM log_events
      WHERE 1 = 1${range}
      WINDOW newest_first AS (
        ORDER BY timestamp DESC, event_id DESC, ingested_at DESC ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
    )
    -- An event_id is never empty, so the first row (no row before it) always stays.
    WHERE NOT (prev_eid = eid AND prev_ts = ts)${filter}
    SETTINGS max_threads = 1, read_in_order_use_buffering = 0, ${formatSettings(format)}`;
  return { query, query_params: params };
}
