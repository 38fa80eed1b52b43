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
// names is another version too. Tables no read route reads (the migrations record) count as well: they change
// only when migrations run, and a miss then costs nothing.
//
// Cost, measured on the embedded engine (2 cores, see bench/RESULTS.md "Result cache"): any system table costs
// ~0.8-1.1 ms above `SELECT 1` (~0.5 ms); system.tables (total_rows, not exact) was no cheaper than system.parts
// filtered by database, and one aggregate row is cheaper than the names themselves. Hashing the path alone,
// without a table filter, took 1.5-1.6 ms against 1.9 for (table, name, path) with the control-plane tables
// left out. What made it cheap under load is where it runs: on the shared connection a version check waited
// behind whatever report query was running (p50 165 ms while one ran), so on the embedded engine it runs on a
// chdb Session of its own. Each engine implements the source (engine/embedded.ts, engine/server.ts):
// `ch.dataVersion()`.
import { quoteIdent } from './client.ts';
import { type BuiltQuery, quoteLiteral } from './queries/query.ts';

/**
 * The query of the version: one row, `v` (the XOR of the parts' hashes) and `n` (their number), both as text.
 * One node: this server's (or embedded engine's) parts of the current database. A cluster: every replica's
 * parts of the shard-local tables (`<name>_local`, what the Distributed tables read), through
 * clusterAllReplicas, with each host's name in the hash: system.parts is per host, and a replica that has not
 * yet fetched a part answers differently from one that has. A host that does not answer fails the query, and
 * the cache then answers uncached (api/read-cache.ts): it cannot tell what that host holds.
 */
export function buildDataVersionQuery(opts: { cluster?: string | undefined; database: string }): BuiltQuery {
  if (opts.cluster === undefined) {
    // currentDatabase(): nothing bound, so the same text runs on a chdb Session (binding there is shared state,
    // see clickhouse/queries/query.ts) and on a server client, whose database is ours.
    return {
      query: `SELECT toString(groupBitXor(cityHash64(path))) AS v, toString(count()) AS n
        FROM system.parts WHERE database = currentDatabase() AND active`,
      query_params: {},
    };
  }
  return {
    query: `SELECT toString(groupBitXor(cityHash64(hostName(), path))) AS v, toString(count()) AS n
      FROM clusterAllReplicas(${clusterLiteral(opts.cluster)}, system.parts)
      WHERE database = {database:String} AND active AND endsWith(table, '_local')`,
    query_params: { database: opts.database },
  };
}

// A table function's arguments are read before parameters are bound: the cluster's name from config (an
// identifier, checked by quoteIdent) goes in as a literal.
function clusterLiteral(cluster: string): string {
  quoteIdent(cluster);
  return quoteLiteral(cluster);
}

export interface DataVersionSource {
  /** The current version: equal strings mean the same data in every versioned table. */
  read(): Promise<string>;
  close(): void;
}
