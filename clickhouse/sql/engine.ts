// What the /clickhouse route asks of the engine: analyse a query with the engine's own parser and run it, read
// only, within limits the client cannot raise. One implementation per engine (embedded.ts, server.ts).

export interface SqlLimits {
  /** max_execution_time, seconds. */
  maxExecutionSeconds: number;
  /** max_result_rows (result_overflow_mode = throw). */
  maxResultRows: number;
  /** max_memory_usage, bytes. */
  maxMemoryBytes: number;
}

export interface SqlRequest {
  /** The SQL as the client sent it (URL `query` and body joined as ClickHouse does). */
  query: string;
  /** `param_<name>` values, in ClickHouse's text form, by name. */
  params: Readonly<Record<string, string>>;
  /** Client settings already checked against the allow-list (policy.ts), including lowered limits. */
  settings: Readonly<Record<string, string>>;
  /** The format when the query names none (`default_format`, else TabSeparated). */
  defaultFormat: string;
  /**
   * `client_protocol_version`: the client reads Native with that revision's block info and serialization
   * flags (clickhouse-go, Grafana's plugin). A server writes them; the embedded engine writes revision 0, which
   * embedded.ts re-frames (native.ts).
   */
  clientProtocolVersion?: string | undefined;
  signal: AbortSignal;
}

export interface SqlSummary {
  read_rows: number;
  read_bytes: number;
  result_rows: number;
  result_bytes: number;
  elapsed_ns: number;
}

/** A summary before the engine has reported anything. */
export const emptySummary = (): SqlSummary => ({
  read_rows: 0,
  read_bytes: 0,
  result_rows: 0,
  result_bytes: 0,
  elapsed_ns: 0,
});

export interface SqlResult {
  /** The output format (the query's FORMAT, else the default). */
  format: string;
  /** The output as the engine wrote it; the first chunk is already there when run() resolves. */
  body: AsyncIterable<Uint8Array>;
  /** What the engine reported so far (complete once `body` ends). */
  summary(): SqlSummary;
  /** Headers the engine gave (a server's X-ClickHouse-Summary, Content-Type), when it gave any. */
  headers?: Readonly<Record<string, string>>;
}

export interface SqlEngine {
  /** The engine's version (version()), for error texts and headers. */
  readonly version: string;
  /**
   * Analyses the query (throws the SqlError ClickHouse would give for anything refused), then starts it. Rejects
   * with a SqlError when the engine fails it before any output.
   */
  run(req: SqlRequest): Promise<SqlResult>;
  close(): void;
}

/** The time a query may take once its limit is applied: the service's limit, or the client's when lower. */
export function effectiveLimits(limits: SqlLimits, settings: Readonly<Record<string, string>>): SqlLimits {
  const lower = (name: string, own: number) => {
    const v = Number(settings[name]);
    return Number.isFinite(v) && v > 0 && v < own ? v : own;
  };
  return {
    maxExecutionSeconds: lower('max_execution_time', limits.maxExecutionSeconds),
    maxResultRows: lower('max_result_rows', limits.maxResultRows),
    maxMemoryBytes: lower('max_memory_usage', limits.maxMemoryBytes),
  };
}

/**
 * The settings every query runs with, fixed before the client's and locked by readonly = 1 after them: the
 * limits (throwing, never truncating silently), and a priority below the API's own reads.
 * - priority 10: a query yields at block boundaries to running queries of a higher priority (the API's run at
 *   API_QUERY_PRIORITY, 1), as exports do (clickhouse/export-stream.ts).
 * - os_thread_priority 19 (nice): the query's threads get the cores' leftovers where the process may renice.
 * - max_threads 1: one core at most, so the API's reads keep the other.
 */
export function fixedSettings(l: SqlLimits): Record<string, string | number> {
  return {
    max_execution_time: l.maxExecutionSeconds,
    timeout_overflow_mode: 'throw',
    max_result_rows: l.maxResultRows,
    result_overflow_mode: 'throw',
    max_memory_usage: l.maxMemoryBytes,
    priority: 10,
    os_thread_priority: 19,
    max_threads: 1,
  };
}

/** A setting's value as SQL: numbers as they are, anything else a quoted string. */
export function settingLiteral(v: string | number): string {
  if (typeof v === 'number' || /^-?\d+(\.\d+)?$/.test(v)) return String(v);
  return `'${String(v).replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** Formats whose output is still valid when written block by block (the engine's stream writes each block alone). */
export const STREAMED_FORMATS: ReadonlySet<string> = new Set([
  'Native',
  'RowBinary',
  'RowBinaryWithNamesAndTypes',
  'TabSeparated',
  'TSV',
  'TabSeparatedRaw',
  'TSVRaw',
  'CSV',
  'JSONEachRow',
  'JSONCompactEachRow',
  'JSONLines',
  'NDJSON',
]);
