// The cluster DDL, generated from the single-node migrations (CLICKHOUSE_CLUSTER set): every table becomes a
// replicated shard-local `<name>_local` behind a `Distributed` table under the public name, views read and
// write the local tables, and every statement runs ON CLUSTER with qualified names (ON CLUSTER DDL runs on the
// other hosts, whose current database is not ours). `{{cluster}}` and `{{database}}` are filled in by
// migrate.ts; `{shard}`, `{replica}`, `{database}` and `{table}` in the replication path are the server's macros.
// A statement this does not know is an error naming it, rather than DDL that would only run on one host.

/** Replication path and replica name of every replicated table: Keeper paths unique per shard and table. */
export const REPLICATION = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'";

// Replicated tables deduplicate inserts by default (block ids in Keeper), which the ingester's
// insert_deduplication_token relies on. The block count is the single-node window's; the age is a week rather
// than the server's default hour, so a batch retried after a long outage is still recognised.
const DEDUP_SECONDS = 604_800;

/**
 * Sharding keys that are not the whole sort key. The default, a hash of the sort key, puts every row of one
 * key on one shard, which is what ReplacingMergeTree, FINAL and the aggregating merges need; these choose a
 * coarser key where a query or the dedup of a retried batch needs more rows together.
 */
const SHARD_BY: Readonly<Record<string, string>> = {
  // Every copy of an event on one shard, whatever its other columns: dedup and FINAL work within one table.
  usage_events: 'event_id',
  log_events: 'event_id',
  // A retried arrivals batch splits the same way and meets its token; the ledger's rows of a key stay together.
  ingest_ledger: 'day, team_id, service',
  ingest_arrivals: 'day, team_id, service',
  // A Kafka batch's events where their raw table puts them (0013: Null, its views write that shard's tables).
  usage_ingest: 'event_id',
  log_ingest: 'event_id',
  // One entity's points of a day together, whichever team or service they came from.
  usage_points: 'family, entity, day',
  // One user's rows together: reports filtered by user read one shard's rows.
  usage_user_days: 'user_id',
  // All runs of a schedule on one shard (retired in 0012).
  export_schedule_runs: 'schedule_id',
};

const DB = '{{database}}';
const ON_CLUSTER = 'ON CLUSTER {{cluster}}';

/** What earlier migrations created, so that later statements know which names have a shard-local twin. */
export interface ClusterSchema {
  tables: Set<string>;
  views: Set<string>;
}

export const emptySchema = (): ClusterSchema => ({ tables: new Set(), views: new Set() });

/** The cluster statements for one single-node statement; records what it creates or drops in `schema`. */
export function clusterStatements(statement: string, schema: ClusterSchema): string[] {
  const sql = statement
    .replace(/^\s*--.*$/gm, '')
    .replace(/\n{2,}/g, '\n')
    .trim();
  const rule = RULES.find((r) => r.match.test(sql));
  if (!rule) {
    throw new Error(
      `cluster DDL: no rule for this statement (clickhouse/cluster-ddl.ts): ${sql.split('\n')[0]}`,
    );
  }
  return rule.build(rule.match.exec(sql) as RegExpExecArray, schema);
}

interface Rule {
  match: RegExp;
  build: (m: RegExpExecArray, schema: ClusterSchema) => string[];
}

const RULES: Rule[] = [
  {
    match: /^CREATE TABLE IF NOT EXISTS (\w+)\s*(\([\s\S]*\))\s*ENGINE\s*=\s*(\w+)(?:\(([^)]*)\))?([\s\S]*)$/,
    build: ([, name, columns, engine, args, tail], schema) => {
      const table = name as string;
      schema.tables.add(table);
      return [
        `CREATE TABLE IF NOT EXISTS ${local(table)} ${ON_CLUSTER}\n${columns}\n` +
          `ENGINE = ${replicated(table, engine as string, args)}${replicatedSettings(tail as string)}`,
        `CREATE TABLE IF NOT EXISTS ${DB}.${table} ${ON_CLUSTER}\nAS ${local(table)}\n` +
          `ENGINE = Distributed({{cluster}}, ${DB}, ${table}_local, cityHash64(${shardingKey(table, tail as string)}))`,
      ];
    },
  },
  {
    match: /^CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+)\s+TO (\w+) AS\b([\s\S]*)$/,
    build: ([, view, target, query], schema) => {
      schema.views.add(view as string);
      return [
        `CREATE MATERIALIZED VIEW IF NOT EXISTS ${DB}.${view} ${ON_CLUSTER}\n` +
          `TO ${local(known(schema, target as string))} AS${fromTables(query as string, schema, local)}`,
      ];
    },
  },
  {
    // Back-fills go through the Distributed tables: read from every shard, written where the sharding key says.
    match: /^INSERT INTO (\w+)\b([\s\S]*)$/,
    build: ([, table, rest], schema) => [
      `INSERT INTO ${DB}.${known(schema, table as string)}${fromTables(rest as string, schema, distributed)}`,
    ],
  },
  {
    // Settings, TTLs and mutations belong to the stored rows: the shard-local table only.
    match: /^ALTER TABLE (\w+)\s+((?:MODIFY SETTING|MODIFY TTL|REMOVE TTL)\b[\s\S]*)$/,
    build: ([, table, change], schema) => [
      `ALTER TABLE ${local(known(schema, table as string))} ${ON_CLUSTER}\n    ${replicatedSettings(change as string)}`,
    ],
  },
  {
    // Columns: the local table first, then the Distributed front (which must not name a column the shards lack).
    match: /^ALTER TABLE (\w+)\s+((?:ADD|DROP|MODIFY|RENAME|COMMENT) COLUMN\b[\s\S]*)$/,
    build: ([, table, change], schema) => [
      `ALTER TABLE ${local(known(schema, table as string))} ${ON_CLUSTER}\n    ${change}`,
      `ALTER TABLE ${DB}.${table} ${ON_CLUSTER}\n    ${change}`,
    ],
  },
  {
    // The front first, so nothing is inserted through it into a dropped local table; SYNC so that a table of
    // the same name created later does not meet the old one's Keeper path.
    match: /^DROP (TABLE|VIEW) IF EXISTS (\w+)$/,
    build: ([, , name], schema) => {
      const n = name as string;
      if (schema.views.delete(n)) return [`DROP VIEW IF EXISTS ${DB}.${n} ${ON_CLUSTER} SYNC`];
      schema.tables.delete(known(schema, n));
      return [
        `DROP TABLE IF EXISTS ${DB}.${n} ${ON_CLUSTER} SYNC`,
        `DROP TABLE IF EXISTS ${local(n)} ${ON_CLUSTER} SYNC`,
      ];
    },
  },
];

function local(table: string): string {
  return `${DB}.${table}_local`;
}

function distributed(table: string): string {
  return `${DB}.${table}`;
}

function known(schema: ClusterSchema, table: string): string {
  if (!schema.tables.has(table)) {
    throw new Error(`cluster DDL: ${table} is not a table created by an earlier statement`);
  }
  return table;
}

/** Qualifies the tables a query reads (after FROM or JOIN); subqueries keep their own FROM. */
function fromTables(query: string, schema: ClusterSchema, name: (t: string) => string): string {
  return query.replace(/\b(FROM|JOIN)\s+(\w+)\b/g, (_all, word: string, table: string) => {
    return `${word} ${name(known(schema, table))}`;
  });
}

function replicated(table: string, engine: string, args: string | undefined): string {
  // A Null table keeps nothing to replicate: its views write the replicated tables.
  if (engine === 'Null') return 'Null';
  if (!/^\w*MergeTree$/.test(engine)) {
    throw new Error(`cluster DDL: ${table}: no replicated form of ENGINE = ${engine}`);
  }
  const extra = args?.trim() ? `, ${args.trim()}` : '';
  return `Replicated${engine}(${REPLICATION}${extra})`;
}

function replicatedSettings(sql: string): string {
  return sql.replace(
    /\bnon_replicated_deduplication_window\s*=\s*(\d+)/g,
    `replicated_deduplication_window = $1, replicated_deduplication_window_seconds = ${DEDUP_SECONDS}`,
  );
}

function shardingKey(table: string, tail: string): string {
  const chosen = SHARD_BY[table];
  if (chosen) return chosen;
  const order = /^\s*ORDER BY (.+)$/m.exec(tail)?.[1]?.trim();
  if (!order) throw new Error(`cluster DDL: ${table} has no ORDER BY to shard by`);
  return order.startsWith('(') && order.endsWith(')') ? order.slice(1, -1) : order;
}
