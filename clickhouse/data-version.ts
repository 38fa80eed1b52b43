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
//
// Beside each table's version, its content version (`~table`, DataVersions): the same across merges, which make
// new parts of the same rows. Under a live trickle at 100M events about half of the log tables' new versions
// were merges, and each cost the first logs request after it a read of the day sums (10-35 ms) for an answer
// that could not have changed. A route whose answers a merge cannot change keys on it (ROUTE_TABLES).
import { createHash } from 'node:crypto';
import { entry } from '../core/maps.ts';
import { type ClickHouse, quoteIdent } from './client.ts';
import { type BuiltQuery, quoteLiteral } from './queries/query.ts';

/**
 * The query of the version: one row per active part, `host`, `table`, `path` and `ttl` (DataVersions makes the
 * version of them). One node: this server's (or embedded engine's) parts of the current database, host ''. A
 * cluster: every replica's parts of the shard-local tables (`<name>_local`, what the Distributed tables read,
 * named here without the suffix), through clusterAllReplicas, with each host's name: system.parts is per host,
 * and a replica that has not yet fetched a part answers differently from one that has. A host that does not
 * answer fails the query, and the cache then answers uncached (api/read-cache.ts): it cannot tell what that
 * host holds.
 */
export function buildDataVersionQuery(opts: { cluster?: string | undefined; database: string }): BuiltQuery {
  // Whether a merge of the part may drop rows by a TTL (0: no), as DataVersions needs: its delete TTL's latest
  // time. (Also reading the TTL ... WHERE and GROUP BY infos cost the check 0.7 ms p50 more than without any,
  // against 0.35 for this one alone, at 100M events: RETENTION_DAYS sets delete TTLs only.)
  const ttl = 'toUnixTimestamp(delete_ttl_info_max) AS ttl';
  if (opts.cluster === undefined) {
    // currentDatabase(): nothing bound, so the same text runs on a chdb Session (binding there is shared state,
    // see clickhouse/queries/query.ts) and on a server client, whose database is ours.
    return {
      query: `SELECT '' AS host, table, path, ${ttl} FROM system.parts WHERE database = currentDatabase() AND active`,
      query_params: {},
    };
  }
  // Not aliased `table`: the WHERE would read the alias (the name without its suffix) instead of the column.
  return {
    query: `SELECT hostName() AS host, substring(table, 1, length(table) - 6) AS public_table, path, ${ttl}
      FROM clusterAllReplicas(${clusterLiteral(opts.cluster)}, system.parts)
      WHERE database = {database:String} AND active AND endsWith(table, '_local')`,
    query_params: { database: opts.database },
  };
}

/**
 * The version of the parts listed, without content versions: per table, a hash of its parts' hosts and paths
 * and their number, tables in name order. A part's path is its table's directory (named by the table's UUID)
 * and its name.
 */
export function versionFromParts(parts: Iterable<ListedPart>): string {
  return [...tablesOf(parts)].map(([table, t]) => `${table}=${tableVersion([...t.parts.keys()])}`).join(';');
}

/** A row of the version's query: host, table, path, and whether a delete TTL may drop its rows (0: no). */
export type ListedPart = readonly [host: string, table: string, path: string, ttl?: string];

/** A table's parts as listed, by host and path (what its version hashes), and its first directory. */
interface ListedTable {
  parts: Map<string, PartName | undefined>;
  dir: string;
}

/** The listing by table, tables in name order. */
function tablesOf(parts: Iterable<ListedPart>): Map<string, ListedTable> {
  const byTable = new Map<string, ListedTable>();
  for (const [host, table, path, ttl] of parts) {
    const t = entry(byTable, table, () => ({ parts: new Map(), dir: '' }));
    const split = splitPath(path);
    t.parts.set(`${host}\t${path}`, partName(host, split, ttl));
    const dir = `${host}\t${split.dir}`;
    if (t.dir === '' || dir < t.dir) t.dir = dir;
  }
  return new Map([...byTable].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** A table's version from its parts' hosts and paths (`host\tpath`): a hash of them, and their number. */
function tableVersion(parts: readonly string[]): string {
  const list = [...parts].sort();
  // 96 bits of SHA-1: the part sets of one table a process ever sees are far too few to collide.
  const hash = createHash('sha1').update(list.join('\n')).digest('base64url').slice(0, 16);
  return `${hash}/${list.length}`;
}

/** A part's path as its table's directory and the part's name. */
function splitPath(path: string): { dir: string; name: string } {
  const trimmed = path.endsWith('/') ? path.slice(0, -1) : path;
  const at = trimmed.lastIndexOf('/');
  return { dir: trimmed.slice(0, at), name: trimmed.slice(at + 1) };
}

/** The version of one listing (with the content histories of the process: DataVersions). */
export function versionFromTsv(text: string): string {
  return new DataVersions().fromTsv(text);
}

/** A part's name, parsed: partition_min_max_level[_mutation] (partition ids have no '_'). */
interface PartName {
  name: string;
  /** Host, table directory and partition: the parts a merge can join. */
  group: string;
  /** The partition id. */
  partition: string;
  min: number;
  max: number;
  level: number;
  mutation: number;
  /** It has a delete TTL: a merge of it may drop rows. */
  ttl: boolean;
}

// A patch part (a lightweight UPDATE's, `patch-<hash>-<part>`) is not a part of rows: left unparsed.
const PART_NAME = /^(?!patch-)([^_]+)_(\d+)_(\d+)_(\d+)(?:_(\d+))?$/;

function partName(
  host: string,
  { dir, name }: { dir: string; name: string },
  ttl: string | undefined,
): PartName | undefined {
  const m = PART_NAME.exec(name);
  if (!m) return undefined;
  return {
    name,
    group: `${host}\t${dir}\t${m[1]}`,
    partition: m[1] as string,
    min: Number(m[2]),
    max: Number(m[3]),
    level: Number(m[4]),
    mutation: Number(m[5] ?? 0),
    ttl: ttl !== undefined && ttl !== '' && ttl !== '0',
  };
}

/**
 * The parts new in `after` (keys: host and path), and each part of `before` that `after` no longer lists matched
 * with the new part a merge made of it (same host, table directory and partition, its blocks within the other's
 * range, a higher level): by the merged part, the parts it holds. Undefined when a part that left has no such
 * merge (a drop, or a DELETE, which renames every part at its level), when a name does not parse, or when a
 * part involved has a delete TTL (a TTL merge drops rows).
 */
function mergesOf(
  before: ReadonlyMap<string, PartName | undefined>,
  after: ReadonlyMap<string, PartName | undefined>,
): { came: PartName[]; holds: Map<PartName, PartName[]> } | undefined {
  const came = [...after].filter(([k]) => !before.has(k)).map(([, p]) => p);
  const left = [...before].filter(([k]) => !after.has(k)).map(([, p]) => p);
  if (came.some((p) => p === undefined) || left.some((p) => p === undefined || p.ttl)) return undefined;
  const holds = new Map<PartName, PartName[]>();
  for (const r of left as PartName[]) {
    const a = (came as PartName[]).find(
      (x) => x.group === r.group && x.min <= r.min && r.max <= x.max && x.level > r.level && !x.ttl,
    );
    if (!a) return undefined;
    entry(holds, a, () => []).push(r);
  }
  return { came: came as PartName[], holds };
}

const maxMutation = (parts: readonly PartName[]): number => Math.max(0, ...parts.map((p) => p.mutation));

/**
 * Whether the parts `after` hold the rows of `before` through merges alone: every part that came is a merge of
 * parts that left (mergesOf), from the lowest of their blocks to the highest, with the highest mutation version
 * among them. A new block (an insert), a mutation (a DELETE), a part gone uncovered (a drop) or a TTL is not a
 * merge; no change at all is.
 */
export function mergedOnly(
  before: ReadonlyMap<string, PartName | undefined>,
  after: ReadonlyMap<string, PartName | undefined>,
): boolean {
  const m = mergesOf(before, after);
  if (!m) return false;
  return m.came.every((a) => {
    const from = m.holds.get(a);
    // Its range is theirs: a block beyond it is an insert merged before this listing saw it.
    return (
      from !== undefined &&
      a.mutation === maxMutation(from) &&
      a.min === Math.min(...from.map((r) => r.min)) &&
      a.max === Math.max(...from.map((r) => r.max))
    );
  });
}

/**
 * Whether `after` holds every row `before` did: each part of `before` is in `after` or inside a merge of it
 * (mergesOf) with no higher mutation version than the parts it holds. New blocks (inserts) may have come beside
 * them, alone or merged with those; a delete (a mutation), a drop or a TTL merge is not that.
 */
export function keptRows(
  before: ReadonlyMap<string, PartName | undefined>,
  after: ReadonlyMap<string, PartName | undefined>,
): boolean {
  const m = mergesOf(before, after);
  return m !== undefined && [...m.holds].every(([a, from]) => a.mutation <= maxMutation(from));
}

/** A table's active parts as a version listed them, by host and path (parsed names; undefined: unparsed). */
export type PartListing = ReadonlyMap<string, PartName | undefined>;

export type { PartName };

// The listings of the versions read lately, by table version ("table=hash/count"): what a reader that keeps a
// table's rows in memory needs to tell which parts it has read (parts-read.ts) without listing them again. A
// request's version is read after it arrives and before any of its reads, so its listing precedes them.
const listings = new Map<string, PartListing>();
const LISTINGS_MAX = 256;

/**
 * `table`'s active parts in `version` (a data version this process read), or undefined when that listing is no
 * longer held. A table with no part has none.
 */
export function partsAt(version: string, table: string): PartListing | undefined {
  const at = versionOf(version, [table]);
  if (at === `${table}=`) return new Map();
  return listings.get(at);
}

/** One table's active parts, listed now (one node: a reader with no version to take them from). */
export async function listParts(ch: ClickHouse, table: string): Promise<PartListing> {
  const { query } = buildDataVersionQuery({ database: '' });
  const rs = await ch.client.query({
    query: `${query} AND table = {table:String}`,
    query_params: { table },
    format: 'TabSeparated',
  });
  return tablesOf(tsvParts(await rs.text())).get(table)?.parts ?? new Map();
}

// Each table's content history: its last listing and content version, kept for the whole process, by table
// name and the directory of its first part (so that two databases' tables, or a table made again, never share
// one). Every source of versions reads and writes the same histories, so two sources that list the same parts
// give the same versions: a DerivedState may take its versions from either (the scale bench's read path has a
// source of its own beside the API's). The oldest go past the bound (a table's next change is then new).
const histories = new Map<string, { parts: Map<string, PartName | undefined>; id: string }>();
const HISTORIES_MAX = 4096;

/**
 * The versions of successive listings. Each table's version changes with any part; its content version (the
 * entry `~table`) keeps its value while every change since it was given is a merge (mergedOnly), else takes the
 * table's version: values never come back, as table versions do not.
 */
export class DataVersions {
  private last: { text: string; version: string } | undefined;

  /**
   * The version of the TSV the query gives (a row per line, as the engine escapes them). The same text as the
   * last one gives the last version without parsing or hashing it again: most checks find nothing changed,
   * and the work and garbage of each showed in the check's tail (p99 4.8-4.9 against 4.1-4.5 ms inside the
   * app at 100M events).
   */
  fromTsv(text: string): string {
    if (this.last?.text === text) return this.last.version;
    const version = this.fromParts(tsvParts(text));
    this.last = { text, version };
    return version;
  }

  fromParts(listed: Iterable<ListedPart>): string {
    const out: string[] = [];
    const contents: string[] = [];
    for (const [table, { parts, dir }] of tablesOf(listed)) {
      const version = tableVersion([...parts.keys()]);
      const key = `${table}\t${dir}`;
      const was = histories.get(key);
      const id = was && mergedOnly(was.parts, parts) ? was.id : version;
      // Most recently written last, for the bound.
      histories.delete(key);
      histories.set(key, { parts, id });
      if (histories.size > HISTORIES_MAX) histories.delete(histories.keys().next().value as string);
      out.push(`${table}=${version}`);
      listings.delete(`${table}=${version}`);
      listings.set(`${table}=${version}`, parts);
      if (listings.size > LISTINGS_MAX) listings.delete(listings.keys().next().value as string);
      contents.push(`~${table}=${id}`);
    }
    return [...out, ...contents].join(';');
  }
}

function tsvParts(text: string): ListedPart[] {
  const parts: ListedPart[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const [host = '', table = '', path = '', ttl = ''] = line.split('\t');
    parts.push([host, table, path, ttl]);
  }
  return parts;
}

/**
 * Which tables something depends on: a name prefix (every table whose name starts with it; '' for all), or
 * the names themselves; a name as `~table` stands for the table's content version (DataVersions), for what no
 * merge of it can change.
 */
export type TableSet = string | readonly string[];

/**
 * The tables each read route reads, and nothing else: a usage report reads only usage_* tables (and their
 * system.parts rows), a logs page only log_* tables, the ledger only ingest_ledger. Their cached answers are kept
 * by these tables' version. A route reading another table must say so here.
 *
 * A logs page reads log_events FINAL and the cells' counters (sums): what a merge folds (copies of a log, rows
 * of one cell) every read folds too, so it keys on the content versions. Under RETENTION_DAYS a TTL merge does
 * drop rows, but the tables then have a delete TTL (every change is then a new content version), and the pages
 * stop at the first day no TTL can have touched anyway (retention.ts). It reads log_day_counts too, but only
 * seals matched by the day's counter, each holding what log_events FINAL would count: a seal written changes no
 * answer, so it keys none.
 */
export const ROUTE_TABLES = {
  usage: 'usage_',
  logs: ['~log_cells_daily', '~log_events'],
  ledger: ['ingest_ledger'],
} as const;

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
