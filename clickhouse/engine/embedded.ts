// The embedded engine (chdb): ClickHouse in this process, its data under DATA_DIR/clickhouse. Loaded only when
// no CLICKHOUSE_URL is set (client.ts imports this module on demand), so server roles never load chdb.
// First: it configures the allocator that chdb's library initialises as it loads (allocator.ts).
import './allocator.ts';
import { randomUUID } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { type ClickHouseClient, type ClickHouseSettings, createClient } from '@clickhouse/client';
import { drainPending, Session } from 'chdb';
import { createChdbConnection } from 'chdb/connection';
import { API_QUERY_PRIORITY, type ClickHouseOptions, type Engine, quoteIdent, Retention } from '../client.ts';
import { buildDataVersionQuery, type DataVersionSource, DataVersions } from '../data-version.ts';
import { EXPORT_SETTINGS, type ExportSource, type OutputChunk } from '../export-stream.ts';
import {
  type BuiltQuery,
  paramsAsData,
  quoteLiteral,
  STREAM_PARAMS_DDL,
  STREAM_PARAMS_TABLE,
} from '../queries/query.ts';
import { embeddedSqlEngine } from '../sql/embedded.ts';
import { recoverDedupLogs } from './dedup-recovery.ts';
import { valuesAsData } from './values-as-data.ts';

type ClientOptions = NonNullable<Parameters<typeof createClient>[0]>;

/**
 * The engine's server settings, given to the first connection of the data directory (chdb starts one engine
 * per directory with the arguments of its first connection; later ones, chdb/connection's included, share it).
 * Each bounds the memory of the process that ingests (issue 15: peak RSS <= 600 MB), measured with
 * bench/ingest.ts (1,000,000 events through Kafka, 40,000-row batches; RSS sampled every 25 ms, the engine's
 * own share from system.metrics MemoryTracking, system.merges memory_usage and system.jemalloc_stats):
 * - background_pool_size 1 and a concurrency ratio of 1 (here 2 and 2: four merges at once): one merge at a
 *   time. Merges, not inserts, are most of the engine's memory while ingesting: an insert of a batch through
 *   every materialized view peaked at 30-40 MB, while merges of ingest_ledger's uniqExact states took 90-190
 *   MB each and usage_events' 60-80 MB, and up to four ran together. A 2-core machine gains little from
 *   parallel merges. Measured together with allocator.ts and `npm start`'s --max-semi-space-size=4, 3 runs
 *   each in one session: peak RSS 864 MB (849-886) before, 731 MB (707-771) after, and the end-to-end / engine
 *   ratio 0.48 before, 0.55 after (bench/RESULTS.md, ingest; load 2-24 from other work). The ledger's merges,
 *   then most of what was left above the ~340 MB at rest, are bounded by its tables' settings (migration 0016).
 */
export const ENGINE_ARGS: readonly string[] = [
  '--background_pool_size=1',
  '--background_merges_mutations_concurrency_ratio=1',
];

/**
 * Settings of every insert, beside the caller's (the dedup token). input_format_parallel_parsing = 0: an insert
 * body (at most INGEST_BATCH_BYTES) is parsed on one thread; in parallel the engine cuts it into 10 MB chunks
 * per thread and holds them all, and the batches are small enough that one thread keeps up. Single runs of the
 * ingest (bench/ingest-child.ts, load 6-16): peak RSS 703-720 MB with it, 742-778 MB without, at the same rate
 * within the machine's noise; a small gain, kept because it cannot cost memory.
 */
const INSERT_ENGINE_SETTINGS = { input_format_parallel_parsing: 0 } as const;

/**
 * A client on a chdb connection of its own (one Session) on the engine's data directory; `unbound`: its
 * statements' values go in as data, never bound (values-as-data.ts).
 */
async function chdbClient(
  path: string,
  settings: ClickHouseSettings,
  opts: { unbound?: boolean } = {},
): Promise<ClickHouseClient> {
  let connection = createChdbConnection({ path });
  if (opts.unbound) {
    // The session's own params table, before any statement needs it.
    await connection.command({ query: STREAM_PARAMS_DDL });
    connection = valuesAsData(connection);
  }
  // chdb types its connection against its own copy of @clickhouse/client-common; the shapes are the same.
  return createClient({
    connection: connection as unknown as NonNullable<ClientOptions['connection']>,
    clickhouse_settings: settings,
  });
}

/** Engines this process has open, per data directory: chdb runs one engine per directory, loaded once. */
const enginesOpen = new Map<string, number>();

/**{@link Engine} on chdb. Its API reads need no time bound: they run in this process. */
export async function openEmbedded(opts: ClickHouseOptions): Promise<Engine> {
  const path = join(opts.dataDir, 'clickhouse');
  mkdirSync(path, { recursive: true });
  // Before the engine loads the tables, and only then (see dedup-recovery.ts): records a kill left without
  // their part would otherwise make the retried batch a duplicate in their table.
  if (!enginesOpen.has(path)) {
    const recovered = recoverDedupLogs(path);
    if (recovered.length > 0) opts.onDedupRecovery?.(recovered);
  }
  // Opened first and held until close, so that the engine starts with ENGINE_ARGS (see there).
  const engineSession = new Session(path, { connectionArgs: [...ENGINE_ARGS] });
  enginesOpen.set(path, (enginesOpen.get(path) ?? 0) + 1);
  // Restated on every query so that a token set by one insert never leaks into the next (INSERT_SETTINGS).
  // priority: every query of the shared connection (background work, migrations) outranks an export.
  // Unbound: the background work on it (the sealer's statements above all) never holds the API's bound reads
  // on chdb's process-wide chain (values-as-data.ts).
  const client = await chdbClient(
    path,
    { insert_deduplication_token: '', priority: API_QUERY_PRIORITY },
    { unbound: true },
  );
  // The embedded engine ignores the client's `database` option; `USE` lasts for the process's session.
  await client.command({ query: `CREATE DATABASE IF NOT EXISTS ${quoteIdent(opts.database)}` });
  await client.command({ query: `USE ${quoteIdent(opts.database)}` });
  // The API's reads on a connection (a chdb Session) of their own: a connection runs its queries one at a time,
  // and on the shared one a read queued behind whatever the sealer, the ingester or retention ran there (same-
  // path sessions run in parallel). Queries with bound parameters are one at a time across every connection
  // of the process (chdb chains them, as its binding state is shared: see queries/query.ts), which is why the
  // shared connection's are not bound.
  // Its priority is set once on its session, where it lasts: given as a client setting, chdb's connection sends
  // `SET priority = 1;` ahead of every statement, two statements per read (SELECT 1: p50 2.06 against 1.71 ms,
  // alternating, 1,500 each). The API's reads set nothing per query, so nothing else lasts on this session.
  const readClient = await chdbClient(path, {});
  await readClient.command({ query: `USE ${quoteIdent(opts.database)}` });
  await readClient.command({ query: `SET priority = ${Number(API_QUERY_PRIORITY)}` });
  // Inserts run on a chdb Session of their own (same-path sessions run in parallel): on the shared connection
  // a read waited for the insert ahead of it, ~40 ms for a second's events and logs through every view at 100M
  // events; measured, reads during inserts every 300 ms had a p99 of 25-30 ms there and 13-14 on their own.
  const insertSession = new Session(path);
  await insertSession.queryAsync(`USE ${quoteIdent(opts.database)}`, { format: 'TSV' });
  // The client's insert turns the rows into one SQL string (INSERT ... FORMAT X + body) that the engine parses
  // again; chdb's own raw insert hands the payload over without a copy. Measured with 10,000-row batches of
  // generated events into the raw tables and their views: 86,000 -> 94,000-120,000 rows/s.
  const { dataDir, database } = opts;
  return {
    client,
    readClient,
    database,
    cluster: undefined,
    label: `embedded ClickHouse in ${dataDir}`,
    retention: new Retention(),
    async insert({ table, columns, values, settings }) {
      // The same JSONCompactEachRow the client would send, built here so the engine gets the bytes as they are.
      let body = '';
      if (!Buffer.isBuffer(values)) for (const v of values) body += `${JSON.stringify(v)}\n`;
      await insertSession.insert({
        table,
        columns,
        format: 'JSONCompactEachRow',
        values: Buffer.isBuffer(values) ? values : Buffer.from(body),
        // Stated in the INSERT's own SETTINGS clause, so nothing outlives the insert.
        settings: { ...INSERT_ENGINE_SETTINGS, ...(settings as Record<string, string | number>) },
      });
    },
    exportSource: (bound) => embeddedSource(dataDir, database, bound),
    dataVersion: () => embeddedDataVersion(dataDir, database),
    // Sessions of its own on the same data directory: nothing a query sets reaches the service's.
    openSql: async (limits) => embeddedSqlEngine({ dataDir, database, limits }),
    async close() {
      await readClient.close();
      await client.close();
      insertSession.close();
      engineSession.close();
      // No query may still run in the engine when the process exits: chdb closes its sessions on exit without
      // waiting, and the engine's teardown then crashed (SIGSEGV) or hung under a running one.
      await drainPending();
      const left = (enginesOpen.get(path) ?? 1) - 1;
      if (left > 0) enginesOpen.set(path, left);
      else enginesOpen.delete(path);
    },
  };
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
    const { query, body } = paramsAsData(q, randomUUID());
    if (body !== '') {
      await s.insert({ table: STREAM_PARAMS_TABLE, values: Buffer.from(body), format: 'JSONEachRow' });
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
    async *read(q, format, signal) {
      const s = open();
      const result = await s.queryAsync(await prepare(s, q), { format, signal });
      yield result.bytes();
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

/**
 * The embedded engine: a chdb Session of its own on the same data directory (chdb shares one engine between
 * the sessions of a path), so a version check never queues behind the API's queries on the shared connection.
 * Nothing is bound on it; its one setting is the API's query priority.
 */
export function embeddedDataVersion(dataDir: string, database: string): DataVersionSource {
  let session: Session | undefined;
  const { query } = buildDataVersionQuery({ database });
  const versions = new DataVersions();
  return {
    async read() {
      if (!session) {
        const s = new Session(join(dataDir, 'clickhouse'));
        // USE lasts for this session only; the name is config's, already an identifier. The API's priority, as
        // on the shared connection: a /clickhouse query (priority 10) then yields to a version check too.
        // The query planned by the engine's older analyzer, which plans this one-table listing sooner: at 100M
        // events (~100 parts), 3,000 checks each way interleaved, p50 1.75 against 1.99 ms, p99 2.64 against
        // 2.99 (SELECT 1: ~0.7), the same rows. chdb's engine version is pinned, so the setting is known to it;
        // a server's check keeps the server's own planner.
        await s.queryAsync(`USE ${quoteIdent(database)}`, { format: 'TSV' });
        await s.queryAsync(`SET priority = ${API_QUERY_PRIORITY}, enable_analyzer = 0`, { format: 'TSV' });
        session = s;
      }
      const r = await session.queryAsync(query, { format: 'TSV' });
      return versions.fromTsv(r.text());
    },
    close() {
      session?.close();
      session = undefined;
    },
  };
}

/** What the embedded engine counts of its own memory (bench/engine-memory.ts samples it while ingesting). */
export interface EngineMemory {
  /** system.metrics MemoryTracking: what the engine counts as allocated by it. */
  tracked: number;
  /** system.merges: each running merge's memory, as `table:MB`. */
  merges: string[];
  /** system.processes: memory of the running queries (the inserts), bytes. */
  queries: number;
  /** jemalloc (the engine's allocator, its own copy inside chdb's library): allocated and resident bytes. */
  allocated: number;
  resident: number;
}

const ENGINE_MEMORY_QUERY = `SELECT
  (SELECT value FROM system.metrics WHERE metric = 'MemoryTracking') AS tracked,
  (SELECT groupArray(concat(table, ':', toString(round(memory_usage / 1e6)))) FROM system.merges) AS merges,
  (SELECT sum(memory_usage) FROM system.processes WHERE query NOT LIKE '%system.metrics%') AS queries`;

/**
 * Reads the embedded engine's memory figures on a chdb Session of its own (as embeddedDataVersion), so a
 * reading never queues behind the service's inserts. jemalloc's totals come from its statistics text (chdb
 * has no system.asynchronous_metrics): the line `Allocated: N, active: N, metadata: N (...), resident: N, ...`.
 */
export function embeddedMemory(dataDir: string): { read(): Promise<EngineMemory>; close(): void } {
  const session = new Session(join(dataDir, 'clickhouse'));
  return {
    async read() {
      const r = await session.queryAsync(ENGINE_MEMORY_QUERY, { format: 'JSONEachRow' });
      const e = JSON.parse(r.text()) as { tracked: string; merges: string[]; queries: string };
      const stats = await session.queryAsync('SELECT stats FROM system.jemalloc_stats', { format: 'TSVRaw' });
      const line = /^Allocated: (\d+), active: \d+, metadata: \d+.*?resident: (\d+)/m.exec(stats.text());
      return {
        tracked: Number(e.tracked),
        merges: e.merges,
        queries: Number(e.queries),
        allocated: Number(line?.[1] ?? 0),
        resident: Number(line?.[2] ?? 0),
      };
    },
    close: () => session.close(),
  };
}
