// Streams an export query's output, written by ClickHouse itself (CSVWithNames / Parquet), chunk by chunk with
// bounded memory: on a server through the HTTP response stream, on the embedded engine through chdb's own
// streaming on a session of its own (the shared connection buffers whole results).
import { randomUUID } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ClickHouseSettings } from '@clickhouse/client';
import { Session } from 'chdb';
import type { ClickHouse } from './client.ts';
import { quoteIdent } from './client.ts';
import {
  type BuiltQuery,
  paramsAsData,
  quoteLiteral,
  STREAM_PARAMS_DDL,
  STREAM_PARAMS_TABLE,
} from './queries/query.ts';

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
  /** Exact row count when the stream could not tell it (server); undefined when the stream did. */
  countRows(q: BuiltQuery): Promise<number | undefined>;
  close(): void;
}

/**
 * The embedded engine: a second chdb Session on the same data directory (chdb shares the engine between
 * sessions of one path). Its settings and `USE` stay in this session, and the API's queries on the main
 * connection run alongside (measured: see docs/data-engineers.md, Exports).
 *
 * chdb's stream formats each chunk on its own: every CSVWithNames chunk starts with the header again, and
 * every Parquet chunk is a complete Parquet file (a 3.5M-row export came out as 422 files end to end, of which
 * a reader sees the last). So CSV keeps the first chunk's header only, and Parquet is written by the engine
 * into one file (INSERT INTO FUNCTION file, on this session: the API kept answering in ~20 ms meanwhile), then
 * streamed from there.
 */
export function embeddedSource(
  dataDir: string,
  database: string,
  /** What bounds the exports of this source (default EXPORT_SETTINGS; the benchmark's baseline: none). */
  bound: ClickHouseSettings = EXPORT_SETTINGS,
): ExportSource {
  let session: Session | undefined;
  // Asks system.processes how far a file write has got: the export session is busy running it.
  let monitor: Session | undefined;
  const outDir = join(dataDir, 'export-out');
  const open = () => {
    if (!session) {
      session = new Session(join(dataDir, 'clickhouse'));
      // The session's own current database; nothing here touches the main connection's session.
      session.query(`USE ${quoteIdent(database)}`, 'CSV');
      // This session's alone: the shared connection (the API's queries) never sees them. Names are our own,
      // values numbers.
      const set = Object.entries(bound).map(([k, v]) => `${k} = ${Number(v)}`);
      if (set.length > 0) session.query(`SET ${set.join(', ')}`, 'CSV');
      session.query(STREAM_PARAMS_DDL, 'CSV');
      clearOutDir(outDir);
    }
    return session;
  };
  // The query's values go in as data, on this session; nothing is bound (see paramsAsData), so a long export
  // neither waits for nor holds up the API's bound queries.
  const prepare = async (s: Session, q: BuiltQuery): Promise<string> => {
    const { query, rows } = paramsAsData(q, randomUUID());
    if (rows.length > 0) {
      await s.insert({
        table: STREAM_PARAMS_TABLE,
        values: Buffer.from(rows.map((r) => `${JSON.stringify(r)}\n`).join('')),
        format: 'JSONEachRow',
      });
    }
    return query;
  };
  return {
    async *stream(q, format, signal) {
      const s = open();
      const query = await prepare(s, q);
      if (format === 'Parquet') {
        monitor ??= new Session(join(dataDir, 'clickhouse'));
        yield* parquetViaFile(s, monitor, outDir, query, signal);
        return;
      }
      const stream = s.queryStream(query, { format, signal });
      let header: Buffer | undefined;
      try {
        for await (const chunk of stream) {
          let bytes = Buffer.from(chunk.raw());
          if (format.endsWith('WithNames')) {
            if (!header) {
              header = Buffer.from(bytes.subarray(0, bytes.indexOf(10) + 1));
            } else if (bytes.subarray(0, header.length).equals(header)) {
              // Never a data row: every export's first column is a date or a timestamp, not its own name.
              bytes = bytes.subarray(header.length);
            }
          }
          yield { bytes, rows: chunk.numRows };
        }
      } finally {
        if (!stream.closed) stream.cancel();
      }
    },
    countRows: async () => undefined,
    close() {
      session?.close();
      monitor?.close();
      session = undefined;
      monitor = undefined;
    },
  };
}

// Files of writes cut short by a crash: the embedded engine's data directory belongs to this one process, so
// whatever is there when its first export source opens is left over.
let outDirCleared = false;
function clearOutDir(dir: string): void {
  if (!outDirCleared) rmSync(dir, { recursive: true, force: true });
  outDirCleared = true;
  mkdirSync(dir, { recursive: true });
}

async function* parquetViaFile(
  s: Session,
  monitor: Session,
  outDir: string,
  query: string,
  signal: AbortSignal,
): AsyncIterable<OutputChunk> {
  const id = randomUUID();
  // Our own directory and UUID: nothing from a request is in the path.
  const path = join(outDir, `${id}.parquet`);
  const file = `file(${quoteLiteral(path)}, 'Parquet')`;
  try {
    const write = s.queryAsync(`INSERT INTO FUNCTION ${file} ${query}`, { signal });
    let finished = false;
    const settle = () => {
      finished = true;
    };
    write.then(settle, settle);
    // Progress while the engine writes: rows as empty chunks, so the job's rows_written moves.
    let reported = 0;
    while (!finished) {
      await new Promise((r) => setTimeout(r, 500));
      if (finished) break;
      const written = await progressOf(monitor, id);
      if (written > reported) {
        yield { bytes: Buffer.alloc(0), rows: written - reported };
        reported = written;
      }
    }
    await write;
    if (!existsSync(path)) {
      // No rows, so no file: the same query's empty result, schema and all, is small enough to take whole.
      const empty = await s.queryAsync(query, { format: 'Parquet', signal });
      yield { bytes: Buffer.from(empty.bytes()), rows: -reported };
      return;
    }
    // The exact row count is in the file's footer; what was reported on the way is settled against it.
    const counted = await s.queryAsync(`SELECT count() FROM ${file}`, { format: 'TSV' });
    let rows = Number(counted.text().trim()) - reported;
    for await (const bytes of createReadStream(path, { highWaterMark: 1 << 20 })) {
      yield { bytes: bytes as Buffer, rows };
      rows = 0;
    }
  } finally {
    rmSync(path, { force: true });
  }
}

async function progressOf(monitor: Session, id: string): Promise<number> {
  // The engine lists the query as it formats it (no comments, values substituted): the file's name, which holds
  // our own UUID, is what finds it.
  if (!/^[0-9a-f-]{36}$/.test(id)) return 0;
  try {
    const r = await monitor.queryAsync(
      `SELECT max(written_rows) FROM system.processes WHERE position(query, '${id}.parquet') > 0 AND position(query, 'system.processes') = 0`,
      { format: 'TSV' },
    );
    return Number(r.text().trim()) || 0;
  } catch {
    return 0;
  }
}

/** A ClickHouse server: the HTTP body is streamed as it arrives (clickhouse-js `exec`). */
export function serverSource(ch: ClickHouse): ExportSource {
  return {
    async *stream(q, format, signal) {
      const { stream } = await ch.client.exec({
        query: `${q.query}\nFORMAT ${format}`,
        query_params: q.query_params,
        abort_signal: signal,
        clickhouse_settings: EXPORT_SETTINGS,
      });
      for await (const chunk of stream as AsyncIterable<Buffer>) yield { bytes: chunk, rows: 0 };
    },
    async countRows(q) {
      const rs = await ch.client.query({
        query: `SELECT count() AS n FROM (${q.query})`,
        query_params: q.query_params,
        format: 'JSONEachRow',
      });
      const [row] = await rs.json<{ n: string | number }>();
      return Number(row?.n ?? 0);
    },
    close: () => undefined,
  };
}

export function exportSource(ch: ClickHouse, dataDir: string): ExportSource {
  return ch.embedded ? embeddedSource(dataDir, ch.database) : serverSource(ch);
}
