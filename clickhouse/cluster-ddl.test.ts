// The cluster DDL generator, on small statements (each rule) and over every migration (the invariants a
// cluster needs); the checksums that clusters migrated before it recorded, and those that nodes and clusters
// migrated by a later main recorded. The engine-backed checks (the generated schema created and compared with
// the single-node one, data through the Distributed tables) are in test/integration/cluster-migrations.test.ts.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { type ClusterSchema, clusterStatements, emptySchema, REPLICATION } from './cluster-ddl.ts';
import {
  type Applied,
  bookkeepingStatements,
  checkApplied,
  clusterMigrations,
  fillPlaceholders,
  landedTwins,
  loadMigrations,
  migrationsFor,
} from './migrate.ts';

const gen = (sql: string, schema: ClusterSchema = emptySchema()) => clusterStatements(sql, schema);

const TABLE = `-- a comment the cluster DDL leaves out
CREATE TABLE IF NOT EXISTS t
(
    a  String,
    -- a column comment
    b  Date
)
ENGINE = ReplacingMergeTree(v)
PARTITION BY toYear(b)
ORDER BY (a, b)
SETTINGS non_replicated_deduplication_window = 100`;

describe('cluster DDL generator', () => {
  it('makes a table a replicated local table behind a Distributed one sharded by its sort key', () => {
    expect(gen(TABLE)).toEqual([
      `CREATE TABLE IF NOT EXISTS {{database}}.t_local ON CLUSTER {{cluster}}
(
    a  String,
    b  Date
)
ENGINE = ReplicatedReplacingMergeTree(${REPLICATION}, v)
PARTITION BY toYear(b)
ORDER BY (a, b)
SETTINGS replicated_deduplication_window = 100, replicated_deduplication_window_seconds = 604800`,
      `CREATE TABLE IF NOT EXISTS {{database}}.t ON CLUSTER {{cluster}}
AS {{database}}.t_local
ENGINE = Distributed({{cluster}}, {{database}}, t_local, cityHash64(a, b))`,
    ]);
  });

  it('keeps a Null table unreplicated, and refuses an engine it cannot replicate', () => {
    // A Null table has no sort key: its sharding key is chosen in cluster-ddl.ts, or it is refused.
    const [local] = gen('CREATE TABLE IF NOT EXISTS ingest_arrivals\n(a String)\nENGINE = Null');
    expect(local).toMatch(/arrivals_local ON CLUSTER \{\{cluster\}\}\n\(a String\)\nENGINE = Null$/);
    expect(() => gen('CREATE TABLE IF NOT EXISTS n\n(a String)\nENGINE = Null')).toThrow(/no ORDER BY/);
    expect(() => gen('CREATE TABLE IF NOT EXISTS m\n(a String)\nENGINE = Memory')).toThrow(
      /no replicated form of ENGINE = Memory/,
    );
  });

  it('points views local to local, subqueries included, and back-fills through the Distributed tables', () => {
    const schema = emptySchema();
    gen(TABLE, schema);
    gen(TABLE.replace('EXISTS t', 'EXISTS r'), schema);
    expect(
      gen('CREATE MATERIALIZED VIEW IF NOT EXISTS r_mv TO r AS\nSELECT a FROM (SELECT a FROM t)', schema),
    ).toEqual([
      'CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.r_mv ON CLUSTER {{cluster}}\n' +
        'TO {{database}}.r_local AS\nSELECT a FROM (SELECT a FROM {{database}}.t_local)',
    ]);
    expect(gen('INSERT INTO r\nSELECT a, b FROM t', schema)).toEqual([
      'INSERT INTO {{database}}.r\nSELECT a, b FROM {{database}}.t',
    ]);
    expect(() => gen('CREATE MATERIALIZED VIEW IF NOT EXISTS v TO r AS SELECT a FROM x', schema)).toThrow(
      /x is not a table created by an earlier statement/,
    );
  });

  it('alters settings on the local table only, columns on both, and drops the front first', () => {
    const schema = emptySchema();
    gen(TABLE, schema);
    expect(gen('ALTER TABLE t MODIFY SETTING non_replicated_deduplication_window = 5', schema)).toEqual([
      'ALTER TABLE {{database}}.t_local ON CLUSTER {{cluster}}\n    MODIFY SETTING replicated_deduplication_window = 5, replicated_deduplication_window_seconds = 604800',
    ]);
    expect(gen('ALTER TABLE t ADD COLUMN c String', schema)).toEqual([
      'ALTER TABLE {{database}}.t_local ON CLUSTER {{cluster}}\n    ADD COLUMN c String',
      'ALTER TABLE {{database}}.t ON CLUSTER {{cluster}}\n    ADD COLUMN c String',
    ]);
    expect(gen('DROP TABLE IF EXISTS t', schema)).toEqual([
      'DROP TABLE IF EXISTS {{database}}.t ON CLUSTER {{cluster}} SYNC',
      'DROP TABLE IF EXISTS {{database}}.t_local ON CLUSTER {{cluster}} SYNC',
    ]);
    expect(schema.tables.has('t')).toBe(false);
  });

  it('refuses a statement it has no rule for, naming it', () => {
    expect(() => gen('RENAME TABLE a TO b')).toThrow(/no rule for this statement .*: RENAME TABLE a TO b/);
  });
});

describe('the generated cluster migrations', () => {
  const single = loadMigrations();
  const cluster = migrationsFor({ cluster: 'c' });
  const statements = [...bookkeepingStatements({ cluster: 'c' }), ...cluster.flatMap((m) => m.statements)];
  const filled = statements.map((s) => fillPlaceholders(s, { cluster: 'c', database: 'd' }));

  it('are the single-node migrations, version for version, chosen by the connection', () => {
    expect(cluster.map((m) => [m.version, m.name])).toEqual(single.map((m) => [m.version, m.name]));
    expect(migrationsFor({ cluster: undefined })).toEqual(single);
    for (const m of single) expect(m.statements.join('\n')).not.toMatch(/\{\{/);
  });

  it('put every DDL ON CLUSTER, replicate every stored table and front it with a Distributed table', () => {
    expect(filled.join('\n')).not.toMatch(/\{\{|\}\}|non_replicated_deduplication_window/);
    const ddl = filled.filter((s) => /^(CREATE|ALTER|DROP)\b/.test(s));
    for (const s of ddl) expect(s, s).toMatch(/\bON CLUSTER `c`/);
    const created = ddl
      .filter((s) => s.startsWith('CREATE TABLE'))
      .map((s) => ({ name: /^CREATE TABLE IF NOT EXISTS `d`\.(\w+)/.exec(s)?.[1] ?? '?', sql: s }));
    const names = new Set(created.map((c) => c.name));
    for (const { name, sql } of created) {
      if (name.endsWith('_local')) {
        expect(names.has(name.slice(0, -'_local'.length)), `${name} has a front`).toBe(true);
        if (!sql.endsWith('ENGINE = Null')) expect(sql, name).toContain(`ENGINE = Replicated`);
        if (!sql.endsWith('ENGINE = Null')) expect(sql, name).toContain(REPLICATION);
      } else {
        expect(sql, name).toContain(
          `AS \`d\`.${name}_local\nENGINE = Distributed(\`c\`, \`d\`, ${name}_local, `,
        );
      }
    }
    // Raw tables shard by event_id: dedup and FINAL need every copy of an event on one shard.
    for (const raw of ['usage_events', 'log_events']) {
      expect(created.find((c) => c.name === raw)?.sql).toMatch(/cityHash64\(event_id\)\)$/);
    }
    for (const s of ddl.filter((d) => d.startsWith('CREATE MATERIALIZED VIEW'))) {
      expect(s).toMatch(/\bTO `d`\.\w+_local AS\b/);
      expect(s).not.toMatch(/\bFROM (?!`d`\.\w+_local\b|\()/);
    }
  });

  it('keep the checksums that clusters migrated by the hand-written DDL recorded', () => {
    const recorded = JSON.parse(
      readFileSync(new URL('../test/fixtures/cluster-schema-migrations.json', import.meta.url), 'utf8'),
    ) as { rows: Applied[] };
    expect(recorded.rows.length).toBeGreaterThanOrEqual(12);
    const done = new Map(recorded.rows.map((r) => [r.version, r]));
    expect(() => checkApplied(cluster, done)).not.toThrow();
    for (const r of recorded.rows) expect(cluster[r.version - 1]).toMatchObject(r);
    // A landed file edited after the fact is refused, as on one node.
    const edited = single.map((m) => (m.version === 3 ? { ...m, checksum: 'f'.repeat(64) } : m));
    expect(() => checkApplied(clusterMigrations(edited), done)).toThrow(/0003_usage_daily.sql was changed/);
    // Migrations after the generator: the single-node checksum, whatever the cluster.
    for (const m of cluster.filter((c) => !landedTwins().has(c.version))) {
      expect(m.checksum).toBe(single[m.version - 1]?.checksum);
    }
  });

  it('keep the checksums that nodes and clusters migrated by main at 3787a07 recorded', () => {
    const recorded = JSON.parse(
      readFileSync(new URL('../test/fixtures/schema-migrations-3787a07.json', import.meta.url), 'utf8'),
    ) as { single: Applied[]; cluster: Applied[] };
    expect(recorded.single).toHaveLength(16);
    for (const [set, rows] of [
      [single, recorded.single],
      [cluster, recorded.cluster],
    ] as const) {
      expect(() => checkApplied(set, new Map(rows.map((r) => [r.version, r])))).not.toThrow();
      for (const r of rows) expect(set[r.version - 1]).toMatchObject(r);
    }
  });

  it('fill placeholders as quoted identifiers and refuse what they cannot fill', () => {
    expect(fillPlaceholders('ON CLUSTER {{cluster}} {{database}}.t', { cluster: 'c1', database: 'db' })).toBe(
      'ON CLUSTER `c1` `db`.t',
    );
    expect(() => fillPlaceholders('ON CLUSTER {{cluster}}', { database: 'db' })).toThrow(/has no value/);
    expect(() => fillPlaceholders('{{schema}}', { cluster: 'c', database: 'db' })).toThrow(/has no value/);
    expect(() => fillPlaceholders('{{cluster}}', { cluster: 'a`b', database: 'db' })).toThrow(/unsafe/);
  });

  it('keep the migrations record once per cluster: replicated local table behind a Distributed one', () => {
    expect(bookkeepingStatements({ cluster: undefined })).toHaveLength(1);
    const [local, dist] = bookkeepingStatements({ cluster: 'c' });
    expect(local).toMatch(
      /schema_migrations_local ON CLUSTER \{\{cluster\}\}[\s\S]*ReplicatedReplacingMergeTree/,
    );
    expect(dist).toMatch(/schema_migrations ON CLUSTER \{\{cluster\}\}[\s\S]*ENGINE = Distributed/);
  });
});
