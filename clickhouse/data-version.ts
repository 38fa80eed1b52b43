// The data version of the analytics tables, read from the engine that answers the reads: a hash of the active
// parts of every table in the database. The API's result cache (api/read-cache.ts) keys answers on it, so a
// cached answer can only be served while the data it was computed from is unchanged.
//
// Why active parts' paths are exact: a MergeTree table's data is the set of its active parts, and a part's name
// (partition, min and max block, level, mutation version) never comes back once the part is replaced. Every
// change makes a new part or removes one: an insert (any path: Kafka, POST /events, a direct INSERT, and the
// materialized views it feeds) allocates a new block number; a merge raises the level; a mutation, a
// lightweight DELETE included, rewrites or re-links each part under a new mutation version; a TTL drop
// removes a whole part or merges it into one of a higher level; DROP PARTITION / TRUNCATE remove parts. A merge
// changes the version without changing an answer: a miss, never a stale hit. A part's path is its table's
// directory (named by the table's UUID) and its name, so a table dropped and created again with the same part
// names is another version too.
//
// The version is kept per table ("table=hash/count;…", tables in name order), so what depends on a few tables
// lives as long as they are unchanged (versionOf): a usage report's state and cached answers outlive a log
// insert, and the usage seal state outlives a merge of usage_events. Under a live trickle of usage and logs
// at 100M events, the whole version changed 102 times in 20 s, the log tables' 30 times, the seal state's
// tables' 35 times.
//
// Cost, measured on the embedded engine (2 cores): any system table costs ~0.8-1.1 ms above `SELECT 1`
// (~0.5 ms), and system.tables was no cheaper than system.parts. Listing the parts' paths and hashing them here
// (1.39 ms p50, 73 parts) is cheaper than one aggregate row computed by the engine (1.69 ms): the engine's
// aggregation costs more than 73 rows of text. On the embedded engine the check runs on a chdb Session of its
// own: on the shared connection it waited behind whatever report query was running (p50 165 ms while one
// ran). Each engine implements the source (engine/embedded.ts, engine/server.ts): `ch.dataVersion()`.
import { createHash } from 'node:crypto';
import { quoteIdent } from './client.ts';
import { type BuiltQuery, quoteLiteral } from './queries/query.ts';

/**
 * The query of the version: one row per active part, `host`, `table` and `path` (versionFromParts makes the
 * version of them). One node: this server's (or embedded engine's) parts of the current database, host ''. A
 * cluster: every replica's parts of the shard-local tables (`<name>_local`, what the Distributed tables read,
 * named here without the suffix), through clusterAllReplicas, with each host's name: system.parts is per host,
 * and a replica that has not yet fetched a part answers differently from one that has. A host that does not
 * answer fails the query, and the cache then answers uncached (api/read-cache.ts): it cannot tell what that
 * host holds.
 */
export function buildDataVersionQuery(opts: { cluster?: string | undefined; database: string }): BuiltQuery {
  if (opts.cluster === undefined) {
    // currentDatabase(): nothing bound, so the same text runs on a chdb Session (binding there is shared state,
    // see clickhouse/queries/query.ts) and on a server client, whose database is ours.
    return {
      query: `SELECT '' AS host, table, path FROM system.parts WHERE database = currentDatabase() AND active`,
      query_params: {},
    };
  }
  // Not aliased `table`: the WHERE would read the alias (the name without its suffix) instead of the column.
  return {
    query: `SELECT hostName() AS host, substring(table, 1, length(table) - 6) AS public_table, path
      FROM clusterAllReplicas(${clusterLiteral(opts.cluster)}, system.parts)
      WHERE database = {database:String} AND active AND endsWith(table, '_local')`,
    query_params: { database: opts.database },
  };
}

/**
 * The version of the parts listed: per table, a hash of its parts' hosts and paths and their number, tables in
 * name order. A part's path is its table's directory (named by the table's UUID) and its name.
 */
export function versionFromParts(
  parts: Iterable<readonly [host: string, table: string, path: string]>,
): string {
  const byTable = new Map<string, string[]>();
  for (const [host, table, path] of parts) {
    const list = byTable.get(table) ?? [];
    if (list.length === 0) byTable.set(table, list);
    list.push(`${host}\t${path}`);
  }
  const out: string[] = [];
  for (const table of [...byTable.keys()].sort()) {
    const list = (byTable.get(table) as string[]).sort();
    // 96 bits of SHA-1: the part sets of one table a process ever sees are far too few to collide.
    const hash = createHash('sha1').update(list.join('\n')).digest('base64url').slice(0, 16);
    out.push(`${table}=${hash}/${list.length}`);
  }
  return out.join(';');
}

/**
 * The version from the TSV the query gives (host, table, path per line, as the engine escapes them). The same
 * text as the last one read gives the last version without parsing or hashing it again: most checks find
 * nothing changed, and the work and garbage of each showed in the check's tail (p99 4.8-4.9 against 4.1-4.5
 * ms inside the app at 100M events).
 */
export function versionFromTsv(text: string): string {
  if (lastTsv?.text === text) return lastTsv.version;
  const version = versionFromParts(tsvParts(text));
  lastTsv = { text, version };
  return version;
}

let lastTsv: { text: string; version: string } | undefined;

function tsvParts(text: string): Array<[string, string, string]> {
  const parts: Array<[string, string, string]> = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const [host = '', table = '', path = ''] = line.split('\t');
    parts.push([host, table, path]);
  }
  return parts;
}

/**
 * Which tables something depends on: a name prefix (every table whose name starts with it; '' for all), or
 * the names themselves.
 */
export type TableSet = string | readonly string[];

/**
 * The tables each read route reads, and nothing else: a usage report reads only usage_* tables (and their
 * system.parts rows), a logs page only log_* tables, the ledger only ingest_ledger. Their cached answers are kept
 * by these tables' version. A route reading another table must say so here.
 */
export const ROUTE_TABLES = { usage: 'usage_', logs: 'log_', ledger: ['ingest_ledger'] } as const;

let parsed: { version: string; tables: Map<string, string> } | undefined;

/** The version of `tables` within a data version: equal strings mean the same data in each of them. */
export function versionOf(version: string, tables: TableSet): string {
  if (tables === '') return version;
  if (parsed?.version !== version) {
    const map = new Map<string, string>();
    for (const entry of version.split(';')) {
      const at = entry.indexOf('=');
      if (at > 0) map.set(entry.slice(0, at), entry.slice(at + 1));
    }
    parsed = { version, tables: map };
  }
  const map = parsed.tables;
  if (typeof tables === 'string') {
    const out: string[] = [];
    // Map order is the version's, tables in name order.
    for (const [table, v] of map) if (table.startsWith(tables)) out.push(`${table}=${v}`);
    return out.join(';');
  }
  // A table with no part has no entry: '' until it has one.
  return tables.map((t) => `${t}=${map.get(t) ?? ''}`).join(';');
}

// A table function's arguments are read before parameters are bound: the cluster's name from config (an
// identifier, checked by quoteIdent) goes in as a literal.
function clusterLiteral(cluster: string): string {
  quoteIdent(cluster);
  return quoteLiteral(cluster);
}

export interface DataVersionSource {
  /** The current version (versionFromParts): equal strings mean the same data in every table. */
  read(): Promise<string>;
  close(): void;
}
