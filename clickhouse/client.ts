// One interface over both engines, `Engine`: the embedded ClickHouse (chdb, in this process, data under
// DATA_DIR; engine/embedded.ts) when no CLICKHOUSE_URL is set, a ClickHouse server otherwise (engine/server.ts).
// Queries go through the same @clickhouse/client either way; what differs (inserts, export streams, data
// versions, time bounds) is a method of the engine, so no caller asks which one it has.
import type { ClickHouseClient, ClickHouseSettings } from '@clickhouse/client';
import type { DataVersionSource } from './data-version.ts';
import type { RecoveredRecord } from './engine/dedup-recovery.ts';
import { openServer } from './engine/server.ts';
import type { ExportSource } from './export-stream.ts';
import type { SqlEngine, SqlLimits } from './sql/engine.ts';

export interface ClickHouseOptions {
  /** A ClickHouse server URL (credentials in it); undefined for the embedded engine. */
  url: string | undefined;
  /** The database every unqualified table name resolves to; created if missing. */
  database: string;
  /** Where the embedded engine keeps its data (ignored with a server). */
  dataDir: string;
  /**
   * A cluster of the server's `remote_servers` (CLICKHOUSE_CLUSTER); undefined for one node. Set, the
   * database is created ON CLUSTER, the migrations run as cluster DDL (cluster-ddl.ts) and every query carries
   * CLUSTER_SETTINGS. Needs `url`: the embedded engine is one node.
   */
  cluster?: string | undefined;
  /**
   * Server only: the longest one of the API's own queries may wait for the server, in milliseconds (default
   * CLICKHOUSE_READ_TIMEOUT_SECONDS' default). See `readClient`.
   */
  readTimeoutMs?: number | undefined;
  /**
   * Embedded only: told which insert-deduplication records a crash had left without their part, as they are
   * undone before the engine loads (engine/dedup-recovery.ts). Default: nobody is told.
   */
  onDedupRecovery?: ((records: readonly RecoveredRecord[]) => void) | undefined;
}

export interface Engine {
  /** For migrations, ingestion, exports and background work: no short time bound. */
  readonly client: ClickHouseClient;
  /**
   * For the API's interactive queries. On a server, bounded in time: a server that accepts the connection
   * but never answers fails them after `readTimeoutMs` (the client's request timeout), and a query that runs
   * too long is stopped by the server itself (max_execution_time). On the embedded engine, a connection of its
   * own (one chdb Session, which runs its queries one at a time), so a read never queues behind background
   * work; no time bound there (its settings would outlive the query: see INSERT_SETTINGS).
   */
  readonly readClient: ClickHouseClient;
  readonly database: string;
  /** The cluster the schema spans (public names are Distributed tables), or undefined for one node. */
  readonly cluster: string | undefined;
  /** What the storage is, for people: "embedded ClickHouse in DIR", "ClickHouse server". */
  readonly label: string;
  /** What the storage keeps, as applied at start (clickhouse/retention.ts); shared by forApiReads' views. */
  readonly retention: Retention;
  /** Rows into a table with the insert's own settings (a dedup token), as the engine takes them best. */
  insert(p: RowsInsert): Promise<void>;
  /**
   * A source of streamed reads that must not starve the API's (exports, the pairs levels' loads), bounded by
   * EXPORT_SETTINGS unless `bound` says otherwise.
   */
  exportSource(bound?: ClickHouseSettings): ExportSource;
  /** The data version of the analytics tables, read where it does not queue behind the API's queries. */
  dataVersion(): DataVersionSource;
  /** /clickhouse's engine on this storage: read-only, under `limits` (clickhouse/sql/engine.ts). */
  openSql(limits: SqlLimits): Promise<SqlEngine>;
  close(): Promise<void>;
}

/** The handle every query function takes: the engine. */
export type ClickHouse = Engine;

export interface RowsInsert {
  table: string;
  columns: [string, ...string[]];
  /** The rows, or their JSONCompactEachRow text already built (a line per row), sent as it is. */
  values: unknown[][] | Buffer;
  /** Stated with this insert only. */
  settings: ClickHouseSettings;
}

/** The retention applied at start (RETENTION_DAYS), recorded by applyRetention and read by the read paths. */
export class Retention {
  #days = 0;
  get days(): number {
    return this.#days;
  }
  record(days: number): void {
    this.#days = Math.trunc(days);
  }
}

/**
 * The same engine seen by the API's request handlers: `client` is its `readClient` (time-bounded on a server).
 * A view: closing it closes nothing (the engine it came from owns both clients).
 */
export function forApiReads(ch: Engine): Engine {
  if (ch.readClient === ch.client) return ch;
  return { ...ch, client: ch.readClient, close: async () => undefined };
}

// The embedded connection applies per-query settings as session-wide `SET`s that outlive the query, so a
// setting given to one insert (a dedup token!) would silently apply to the next. Every query that sets
// something must set it explicitly; these are the defaults each insert restates.
export const INSERT_SETTINGS: ClickHouseSettings = {
  insert_deduplicate: 1,
  deduplicate_blocks_in_dependent_materialized_views: 1,
  async_insert: 0,
};

// What every query of a cluster deployment needs, set once on the client (a server client sends its settings
// with each request, so unlike the embedded connection nothing leaks from one query into the next):
// - distributed_foreground_insert (formerly insert_distributed_sync): an insert into a Distributed table
//   returns only once every shard has stored its rows, so an error reaches the caller, who retries with the
//   same insert_deduplication_token, and the same rows split the same way reach the same shards, where the
//   replicated tables drop what they already have. In the default background mode the initiator acknowledges
//   rows merely queued on its own disk and sends them later (possibly re-batched): the ingester would commit
//   Kafka offsets for rows no shard has yet, and shard failures would never reach it.
// - distributed_product_mode = 'global': `x IN (SELECT ... FROM <Distributed>)` inside a query on another
//   Distributed table (schedule runs joined to export jobs) is refused by default; 'global' runs the subquery
//   once and ships its result to the shards, which is right for tables sharded by different keys ('local'
//   would not be).
export const CLUSTER_SETTINGS: ClickHouseSettings = {
  distributed_foreground_insert: 1,
  distributed_product_mode: 'global',
};

/**
 * The priority of the API's queries (ClickHouse's `priority`: 1 is the highest, 0 none). Exports run at a
 * lower one (clickhouse/export-stream.ts, EXPORT_SETTINGS) and pause at block boundaries while one of these
 * runs, so a long export does not starve the reads. Queries of the same priority never wait for each other.
 */
export const API_QUERY_PRIORITY = '1';

/**
 * Opens the engine named by the options and makes `database` current. chdb is imported here, on demand, so a
 * process on a server never loads it.
 */
export async function openClickHouse(opts: ClickHouseOptions): Promise<Engine> {
  if (opts.cluster !== undefined && !opts.url) {
    throw new Error('a ClickHouse cluster needs a server (CLICKHOUSE_URL); the embedded engine is one node');
  }
  if (opts.url) return openServer({ ...opts, url: opts.url });
  const { openEmbedded } = await import('./engine/embedded.ts');
  return openEmbedded(opts);
}

/** Quotes an identifier that config has already restricted to [A-Za-z0-9_]. */
export function quoteIdent(name: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`unsafe identifier ${JSON.stringify(name)}`);
  return `\`${name}\``;
}

/**
 * The start of a statement deleting rows of `table` (`<start> <condition>`): a lightweight DELETE on one node;
 * on a cluster the rows live in the shard-local tables, reached ON CLUSTER.
 */
export function deleteWhere(ch: Pick<Engine, 'cluster' | 'database'>, table: string): string {
  return ch.cluster
    ? `ALTER TABLE ${quoteIdent(ch.database)}.${quoteIdent(`${table}_local`)} ON CLUSTER ${quoteIdent(ch.cluster)} DELETE WHERE`
    : `DELETE FROM ${quoteIdent(table)} WHERE`;
}
