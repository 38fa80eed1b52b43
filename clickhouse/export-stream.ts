// Streams an export query's output, written by ClickHouse itself (CSVWithNames / Parquet), chunk by chunk with
// bounded memory: on a server through the HTTP response stream, on the embedded engine through chdb's own
// streaming on a session of its own (the shared connection buffers whole results).
// Each engine implements it (engine/embedded.ts, engine/server.ts); callers get theirs from `ch.exportSource()`.
import type { ClickHouseSettings } from '@clickhouse/client';
import type { BuiltQuery } from './queries/query.ts';

/**
 * What bounds an export so that it does not starve the API's reads (measured: bench/RESULTS.md, "Reads during
 * an export"). The engine's two cores were the contended resource, not the event loop (its delay stayed in the
 * tens of ms during a 10M-row export) nor a lock: a usage summary's p50 went from ~20 to ~56 ms during a CSV
 * export with `max_threads = 1` already set, and back to ~21-32 ms with these.
 * - priority: a query yields to running queries of a higher priority (a lower number) at block boundaries,
 *   waiting up to low_priority_query_wait_time_ms (1 s) each time. The API's queries run at
 *   API_QUERY_PRIORITY, so an export pauses while one runs, and goes on between them. Needs no privilege.
 * - os_thread_priority (nice 19): the export's threads get the cores' leftovers. Needs CAP_SYS_NICE in the
 *   engine's process, else the engine ignores it (priority alone then). The engine resets the threads' nice
 *   value when they leave the query (seen: no thread of the process kept it after an export).
 * - max_threads = 1: one core at most (the log export states it in its own SQL too; the usage export did not).
 * - max_memory_usage: an export that would grow past 1 GiB fails rather than take the service's memory (a
 *   10M-row log export adds ~100 MB: bench/RESULTS.md, Exports).
 * On the embedded engine they are SET on the export's own chdb Session, so they never reach the API's queries
 * on the shared connection; on a server they go with the export's request only.
 */
// Strings: the client types 64-bit settings so; the SET below writes them unquoted.
export const EXPORT_SETTINGS = {
  priority: '10',
  os_thread_priority: '19',
  max_threads: 1,
  max_memory_usage: String(1024 ** 3),
} satisfies ClickHouseSettings;

export interface OutputChunk {
  bytes: Uint8Array;
  /** Rows in this chunk when the engine says so (embedded), else 0. */
  rows: number;
}

export interface ExportSource {
  /** The query's output in `format` (a ClickHouse format name), as it is produced. */
  stream(q: BuiltQuery, format: string, signal: AbortSignal): AsyncIterable<OutputChunk>;
  /**
   * The query's whole output in `format`, for a result held in memory anyway (a pairs level's load): in pieces as
   * they arrive on a server; on the embedded engine in one piece, with nothing of the query run on the event
   * loop but the result's hand-over (~1 ms per MB: 51 ms for a level's 49 MB family). chdb starts a stream on
   * the event loop: its plan held it 14-87 ms for a level's family.
   */
  read(q: BuiltQuery, format: string, signal: AbortSignal): AsyncIterable<Uint8Array>;
  /** Exact row count when the stream could not tell it (server); undefined when the stream did. */
  countRows(q: BuiltQuery): Promise<number | undefined>;
  close(): void;
}

const NEVER = new AbortController().signal;

/**
 * A query's rows as JSONCompactEachRow, each parsed from the bytes as they come (source.read), a line at a time:
 * no text of the whole result is ever made (a level's family is ~50 MB of it for 5,000 teams, which the
 * buffered client turned into strings and rows in one 200 ms piece of the main thread). A line split between
 * pieces (a server's) is joined before it is decoded, so a character split between them stays whole.
 */
export async function* jsonLines<T>(source: ExportSource, q: BuiltQuery): AsyncIterable<T> {
  let head: Buffer[] = [];
  for await (const bytes of source.read(q, 'JSONCompactEachRow', NEVER)) {
    const chunk = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let at = 0;
    for (let nl = chunk.indexOf(10); nl >= 0; nl = chunk.indexOf(10, at)) {
      const line =
        head.length === 0 ? chunk.subarray(at, nl) : Buffer.concat([...head, chunk.subarray(at, nl)]);
      head = [];
      at = nl + 1;
      if (line.length > 0) yield JSON.parse(line.toString('utf8')) as T;
    }
    if (at < chunk.length) head.push(chunk.subarray(at));
  }
  if (head.length > 0) yield JSON.parse(Buffer.concat(head).toString('utf8')) as T;
}
