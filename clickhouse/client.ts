// One interface over both engines: the embedded ClickHouse (chdb, in this process, data under DATA_DIR) when no
// CLICKHOUSE_URL is set, a ClickHouse server otherwise. Callers see the same @clickhouse/client either way.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type ClickHouseClient, type ClickHouseSettings, createClient } from '@clickhouse/client';

type ClientOptions = NonNullable<Parameters<typeof createClient>[0]>;

import { createChdbConnection } from 'chdb/connection';

export interface ClickHouseOptions {
  /** A ClickHouse server URL (credentials in it); undefined for the embedded engine. */
  url: string | undefined;
  /** The database every unqualified table name resolves to; created if missing. */
  database: string;
  /** Where the embedded engine keeps its data (ignored with a server). */
  dataDir: string;
}

export interface ClickHouse {
  readonly client: ClickHouseClient;
  readonly embedded: boolean;
  readonly database: string;
  close(): Promise<void>;
}

// The embedded connection applies per-query settings as session-wide `SET`s that outlive the query, so a
// setting given to one insert (a dedup token!) would silently apply to the next. Every query that sets
// something must set it explicitly; these are the defaults each insert restates.
export const INSERT_SETTINGS: ClickHouseSettings = {
  insert_deduplicate: 1,
  deduplicate_blocks_in_dependent_materialized_views: 1,
  async_insert: 0,
};

/** Opens the engine named by the options and makes `database` current. */
export async function openClickHouse(opts: ClickHouseOptions): Promise<ClickHouse> {
  if (opts.url) {
    const url = new URL(opts.url);
    // Creating the database needs a connection that does not already name it.
    const bootstrap = createClient({ url: opts.url, database: 'default' });
    try {
      await bootstrap.command({ query: `CREATE DATABASE IF NOT EXISTS ${quoteIdent(opts.database)}` });
    } finally {
      await bootstrap.close();
    }
    const client = createClient({
      url: url.toString(),
      database: opts.database,
      request_timeout: 300_000,
      clickhouse_settings: { date_time_output_format: 'iso' },
    });
    return { client, embedded: false, database: opts.database, close: () => client.close() };
  }
  const path = join(opts.dataDir, 'clickhouse');
  mkdirSync(path, { recursive: true });
  // chdb types its connection against its own copy of @clickhouse/client-common; the shapes are the same.
  const connection = createChdbConnection({ path }) as unknown as NonNullable<ClientOptions['connection']>;
  // Restated on every query so that a token set by one insert never leaks into the next (see above).
  const client = createClient({ connection, clickhouse_settings: { insert_deduplication_token: '' } });
  // The embedded engine ignores the client's `database` option; `USE` lasts for the process's session.
  await client.command({ query: `CREATE DATABASE IF NOT EXISTS ${quoteIdent(opts.database)}` });
  await client.command({ query: `USE ${quoteIdent(opts.database)}` });
  return { client, embedded: true, database: opts.database, close: () => client.close() };
}

/** Quotes an identifier that config has already restricted to [A-Za-z0-9_]. */
export function quoteIdent(name: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`unsafe identifier ${JSON.stringify(name)}`);
  return `\`${name}\``;
}
