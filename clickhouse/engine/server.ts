// A ClickHouse server or cluster (CLICKHOUSE_URL, CLICKHOUSE_CLUSTER) through @clickhouse/client over HTTP.
import { Readable } from 'node:stream';
import {
  type ClickHouseClient,
  ClickHouseLogLevel,
  type ClickHouseSettings,
  createClient,
} from '@clickhouse/client';
import { DEFAULT_READ_TIMEOUT_SECONDS } from '../../core/config.ts';
import {
  API_QUERY_PRIORITY,
  CLUSTER_SETTINGS,
  type ClickHouseOptions,
  type Engine,
  quoteIdent,
  Retention,
  type RowsInsert,
} from '../client.ts';
import { buildDataVersionQuery, type DataVersionSource, DataVersions } from '../data-version.ts';
import { EXPORT_SETTINGS, type ExportSource } from '../export-stream.ts';
import type { BuiltQuery } from '../queries/query.ts';
import { serverSqlEngine } from '../sql/server.ts';

type ClientOptions = NonNullable<Parameters<typeof createClient>[0]>;

/** Creates the database (ON CLUSTER on a cluster), then opens the server's clients. */
export async function openServer(opts: ClickHouseOptions & { url: string }): Promise<Engine> {
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
): Engine {
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
  const bounds = { client, readClient, database, cluster };
  const engine: Engine = {
    ...bounds,
    label: 'ClickHouse server',
    retention: new Retention(),
    insert: (p) => insertWithClient(client, p),
    exportSource: (bound) => serverSource(client, bound),
    dataVersion: () => serverDataVersion(bounds),
    async openSql(limits) {
      // The server's own version, for the X-ClickHouse-Server-Display-Name clients read.
      const rs = await client.query({ query: 'SELECT version() AS v', format: 'JSONEachRow' });
      const [row] = await rs.json<{ v: string }>();
      return serverSqlEngine(engine, limits, row?.v ?? 'unknown');
    },
    close: async () => {
      await Promise.all([client.close(), readClient.close()]);
    },
  };
  return engine;
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

/** An insert through a client (a server's, or a test's wrapper around one). */
export async function insertWithClient(client: ClickHouseClient, p: RowsInsert): Promise<void> {
  if (Buffer.isBuffer(p.values)) {
    // The client's insert takes JSON formats only as values it serializes itself; exec sends the bytes as
    // they are.
    const result = await client.exec({
      query: `INSERT INTO ${p.table} (${p.columns.join(', ')}) FORMAT JSONCompactEachRow`,
      values: Readable.from([p.values], { objectMode: false }),
      clickhouse_settings: p.settings,
    });
    for await (const _ of result.stream) {
      // Drained: the response frees the connection.
    }
    return;
  }
  await client.insert({
    table: p.table,
    columns: p.columns,
    values: p.values,
    format: 'JSONCompactEachRow',
    clickhouse_settings: p.settings,
  });
}

/** A ClickHouse server: the HTTP body is streamed as it arrives (clickhouse-js `exec`). */
export function serverSource(
  client: ClickHouseClient,
  bound: ClickHouseSettings = EXPORT_SETTINGS,
): ExportSource {
  const body = async function* (q: BuiltQuery, format: string, signal: AbortSignal) {
    const { stream } = await client.exec({
      query: `${q.query}\nFORMAT ${format}`,
      query_params: q.query_params,
      abort_signal: signal,
      clickhouse_settings: bound,
    });
    yield* stream as AsyncIterable<Buffer>;
  };
  return {
    async *stream(q, format, signal) {
      for await (const chunk of body(q, format, signal)) yield { bytes: chunk, rows: 0 };
    },
    read: body,
    async countRows(q) {
      const rs = await client.query({
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

/** A ClickHouse server or cluster: the API's own (time-bounded) client. */
function serverDataVersion(ch: {
  readClient: ClickHouseClient;
  cluster: string | undefined;
  database: string;
}): DataVersionSource {
  const q = buildDataVersionQuery({ cluster: ch.cluster, database: ch.database });
  const client = ch.readClient;
  const versions = new DataVersions();
  return {
    async read() {
      const rs = await client.query({ ...q, format: 'TabSeparated' });
      return versions.fromTsv(await rs.text());
    },
    close: () => undefined,
  };
}
