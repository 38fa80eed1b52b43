// Streams an export query's output, written by ClickHouse itself (CSVWithNames / Parquet), chunk by chunk with
// bounded memory: on a server through the HTTP response stream, on the embedded engine through chdb's own
// streaming on a session of its own (the shared connection buffers whole results).
import { join } from 'node:path';
import { Session } from 'chdb';
import type { ClickHouse } from '../../clickhouse/client.ts';
import { quoteIdent } from '../../clickhouse/client.ts';
import type { BuiltQuery } from '../../clickhouse/queries/query.ts';

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
 * sessions of one path). Its settings and `USE` stay in this session, and between two chunks the API's queries
 * on the main connection get their turn (measured: see the README's Exports section).
 */
export function embeddedSource(dataDir: string, database: string): ExportSource {
  let session: Session | undefined;
  const open = () => {
    if (!session) {
      session = new Session(join(dataDir, 'clickhouse'));
      // The session's own current database; nothing here touches the main connection's session.
      session.query(`USE ${quoteIdent(database)}`, 'CSV');
    }
    return session;
  };
  return {
    async *stream(q, format, signal) {
      const s = open().queryStreamBind(q.query, q.query_params, { format, signal });
      try {
        for await (const chunk of s) yield { bytes: chunk.raw(), rows: chunk.numRows };
      } finally {
        if (!s.closed) s.cancel();
      }
    },
    countRows: async () => undefined,
    close() {
      session?.close();
      session = undefined;
    },
  };
}

/** A ClickHouse server: the HTTP body is streamed as it arrives (clickhouse-js `exec`). */
export function serverSource(ch: ClickHouse): ExportSource {
  return {
    async *stream(q, format, signal) {
      const { stream } = await ch.client.exec({
        query: `${q.query}\nFORMAT ${format}`,
        query_params: q.query_params,
        abort_signal: signal,
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
