// One interface over both engines: the embedded ClickHouse (chdb, in this process, data under DATA_DIR) when no
// CLICKHOUSE_URL is set, a ClickHouse server otherwise. Callers see the same @clickhouse/client either way.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  type ClickHouseClient,
  ClickHouseLogLevel,
  type ClickHouseSettings,
  createClient,
} from '@clickhouse/client';
import { DEFAULT_READ_TIMEOUT_SECONDS } from '../core/config.ts';

type ClientOptions = NonNullable<Parameters<typeof createClient>[0]>;

import { createChdbConnection } from 'chdb/connection';

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
}

export interface ClickHouse {
  readonly client: ClickHouseClient;
  readonly embedded: boolean;
  readonly database: string;
  /** The cluster the schema spans (public names are Distributed tables), or undefined for one node. */
  readonly cluster?: string | undefined;
  /** Embedded engine only: an insert whose payload bytes go to the engine's parser as they are. */
  readonly insertRaw?: (p: RawInsert) => Promise<void>;
  /**
   * Server only: a client for the API's interactive queries, bounded in time. A server that accepts the
   * connection but never answers fails them after `readTimeoutMs` (the client's request timeout), and a query
   * that runs too long is stopped by the server itself (max_execution_time). The main `client` keeps a long
   * timeout for exports, ingestion and migrations, which are long by nature. The embedded engine runs in this
   * process and has none (its settings would outlive the query: see INSERT_SETTINGS).
   */
  readonly readClient?: ClickHouseClient;
  /**
   * What the storage keeps, as applied at start (clickhouse/retention.ts): one object shared by every view of
   * this connection (forApiReads copies the reference), so the API's reads see what was applied.
   */
  readonly retention?: { days: number };
  close(): Promise<void>;
}

/**
 * The same connection seen by the API's request handlers: `client` is the time-bounded `readClient` where
 * there is one. A view: closing it closes nothing (the ClickHouse it came from owns both clients).
 */
export function forApiReads(ch: ClickHouse): ClickHouse {
  if (!ch.readClient) return ch;
  return { ...ch, client: ch.readClient, close: async () => undefined };
}

export interface RawInsert {
  table: string;
  columns: readonly string[];
  format: 'JSONCompactEachRow';
  body: Buffer;
  /** Stated in the INSERT's own SETTINGS clause, so nothing outlives the insert. */
  settings: Record<string, string | number>;
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

/** Opens the engine named by the options and makes `database` current. */
export async function openClickHouse(opts: ClickHouseOptions): Promise<ClickHouse> {
  if (opts.cluster !== undefined && !opts.url) {
    throw new Error('a ClickHouse cluster needs a server (CLICKHOUSE_URL); the embedded engine is one node');
  }
  if (opts.url) {
    const cluster = opts.cluster;
    // Creating the database needs a connection that does not already name it.
    // Its own error log is off: a server that cannot be reached is reported once, by the caller, in one line.
    const bootstrap = createClient({
      url: opts.url,
      database: 'default',
      log: { level: ClickHouseLogLevel.OFF },
    });
    try {
      if (cluster !== undefined) await checkCluster(bootstrap, cluster);
      // ON CLUSTER: the migrations' ON CLUSTER DDL needs the database on every host, not just this one.
      const onCluster = cluster === undefined ? '' : ` ON CLUSTER ${quoteIdent(cluster)}`;
      await bootstrap.command({
        query: `CREATE DATABASE IF NOT EXISTS ${quoteIdent(opts.database)}${onCluster}`,
      });
    } finally {
      await bootstrap.close();
    }
    return serverClickHouse(opts.url, opts.database, { cluster, readTimeoutMs: opts.readTimeoutMs });
  }
  const path = join(opts.dataDir, 'clickhouse');
  mkdirSync(path, { recursive: true });
  // chdb types its connection against its own copy of @clickhouse/client-common; the shapes are the same.
  const chdb = createChdbConnection({ path });
  const connection = chdb as unknown as NonNullable<ClientOptions['connection']>;
  // Restated on every query so that a token set by one insert never leaks into the next (see above).
  // priority: every query of the shared connection (the API's reads, ingestion) outranks an export.
  const client = createClient({
    connection,
    clickhouse_settings: { insert_deduplication_token: '', priority: API_QUERY_PRIORITY },
  });
  // The embedded engine ignores the client's `database` option; `USE` lasts for the process's session.
  await client.command({ query: `CREATE DATABASE IF NOT EXISTS ${quoteIdent(opts.database)}` });
  await client.command({ query: `USE ${quoteIdent(opts.database)}` });
  // The client's insert turns the rows into one SQL string (INSERT ... FORMAT X + body) that the engine parses
  // again; chdb's own raw insert hands the payload over without a copy. Measured with 10,000-row batches of
  // generated events into the raw tables and their views: 86,000 -> 94,000-120,000 rows/s.
  const insertRaw = async (p: RawInsert) => {
    await chdb.chdb.rawInsert({
      table: p.table,
      columns: p.columns,
      format: p.format,
      values: p.body,
      settings: p.settings,
    });
  };
  return {
    client,
    embedded: true,
    database: opts.database,
    insertRaw,
    retention: { days: 0 },
    close: () => client.close(),
  };
}

/**
 * The clients of a ClickHouse server whose database exists already (openClickHouse creates it first): the main
 * one, and the API's time-bounded `readClient`. Connects lazily: nothing is sent until the first query.
 */
export function serverClickHouse(
  url: string,
  database: string,
  opts: {
    cluster?: string | undefined;
    readTimeoutMs?: number | undefined;
    /** The clients' own logging (default: @clickhouse/client's, warnings and errors to the console). */
    log?: ClientOptions['log'];
  } = {},
): ClickHouse {
  const { cluster, log } = opts;
  const readTimeoutMs = opts.readTimeoutMs ?? DEFAULT_READ_TIMEOUT_SECONDS * 1000;
  const settings: ClickHouseSettings = {
    date_time_output_format: 'iso',
    ...(cluster === undefined ? {} : CLUSTER_SETTINGS),
  };
  const client = createClient({
    url: new URL(url).toString(),
    database,
    request_timeout: 300_000,
    clickhouse_settings: settings,
    ...(log ? { log } : {}),
  });
  const readClient = createClient({
    url: new URL(url).toString(),
    database,
    request_timeout: readTimeoutMs,
    clickhouse_settings: {
      ...settings,
      // The server stops the query a little before the client would give up on it, so the caller gets its
      // TIMEOUT_EXCEEDED rather than a bare socket timeout, and no abandoned query keeps running.
      max_execution_time: Math.max(1, Math.floor(readTimeoutMs / 1000) - 1),
      // Exports (on the main client) run at a lower priority and yield to these (see API_QUERY_PRIORITY).
      priority: API_QUERY_PRIORITY,
      cancel_http_readonly_queries_on_client_close: 1,
    },
    ...(log ? { log } : {}),
  });
  return {
    client,
    readClient,
    embedded: false,
    database,
    cluster,
    retention: { days: 0 },
    close: async () => {
      await Promise.all([client.close(), readClient.close()]);
    },
  };
}

// A misspelt CLICKHOUSE_CLUSTER would otherwise surface as an obscure error from the first ON CLUSTER DDL.
async function checkCluster(client: ClickHouseClient, cluster: string): Promise<void> {
  const rs = await client.query({
    query: 'SELECT count() AS n FROM system.clusters WHERE cluster = {cluster:String}',
    query_params: { cluster },
    format: 'JSONEachRow',
  });
  const [row] = await rs.json<{ n: string | number }>();
  if (Number(row?.n ?? 0) === 0) {
    throw new Error(
      `CLICKHOUSE_CLUSTER: the server has no cluster ${JSON.stringify(cluster)} in its remote_servers (see system.clusters)`,
    );
  }
}

/** Quotes an identifier that config has already restricted to [A-Za-z0-9_]. */
export function quoteIdent(name: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`unsafe identifier ${JSON.stringify(name)}`);
  return `\`${name}\``;
}
