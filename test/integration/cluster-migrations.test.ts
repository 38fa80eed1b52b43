// The cluster DDL generated from the migrations (clickhouse/cluster-ddl.ts), on the real engine. No ClickHouse
// server or Keeper runs here, so: every cluster statement is parsed by the engine's own parser; the schema it
// creates is compared with the single-node one table by table; and it is created on the embedded engine
// with a one-shard localhost cluster from a config file, the Replicated engines rewritten to their plain
// counterparts and ON CLUSTER stripped (both need Keeper). The Distributed tables are real: batches inserted
// through the public names go through them to the shard-local tables and, by the views, to the rollups.
// What this cannot show: replication, several shards, ON CLUSTER execution (docs/operators.md "Scaling out").
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClickHouseClient, ClickHouseSettings } from '@clickhouse/client';
import { Session } from 'chdb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLUSTER_SETTINGS, type ClickHouse, openClickHouse } from '../../clickhouse/client.ts';
import { insertWithClient } from '../../clickhouse/engine/server.ts';
import { type EventRows, encodeLog, encodeUsage, insertEvents } from '../../clickhouse/inserts.ts';
import {
  type Applied,
  bookkeepingStatements,
  fillPlaceholders,
  migrate,
  migrationsApplied,
  migrationsFor,
} from '../../clickhouse/migrate.ts';
import { type Arrival, ingestLedger, insertArrivals } from '../../clickhouse/queries/ingest-ledger.ts';
import { sealLogDays } from '../../clickhouse/queries/log-day-counts.ts';
import { systemEvents } from '../../clickhouse/queries/system-events.ts';
import { sealedView } from '../../clickhouse/queries/usage-pairs.ts';
import { usageSummary } from '../../clickhouse/queries/usage-summary.ts';
import { usageTimeseries } from '../../clickhouse/queries/usage-timeseries.ts';
import { applyRetention, retentionStatement } from '../../clickhouse/retention.ts';
import { QuietDays, sealUsage } from '../../clickhouse/sealer.ts';
import { generateDataset } from '../../ingest/loadgen/generate.ts';
import { Truth } from '../../ingest/loadgen/truth.ts';
import { dropTestDatabase, holdMerges } from '../helpers/engine.ts';
import { rowsOf } from '../helpers/rows.ts';

const CLUSTER = 'tally_test';
// Never listened on: the embedded engine opens no port. A replica is "local" (served in-process, with
// prefer_localhost_replica) when its host is this machine and its port is the configured tcp_port.
const PORT = 19_731;

const CONFIG = `<clickhouse>
  <tcp_port>${PORT}</tcp_port>
  <remote_servers>
    <${CLUSTER}>
      <shard>
        <internal_replication>true</internal_replication>
        <replica><host>localhost</host><port>${PORT}</port></replica>
      </shard>
    </${CLUSTER}>
  </remote_servers>
  <macros><shard>01</shard><replica>r1</replica></macros>
</clickhouse>
`;

/**
 * What the cluster DDL becomes on one Keeper-less node: plain engines (replication arguments dropped), no ON
 * CLUSTER, and the replicated dedup window as the plain one, so tokens are honoured as they would be there.
 */
function withoutReplication(sql: string): string {
  const plain = sql
    .replace(/\s+ON CLUSTER\s+`?\w+`?/g, '')
    .replace(
      /\bReplicated(\w*MergeTree)\('\/clickhouse\/tables\/\{shard\}\/\{database\}\/\{table\}', '\{replica\}'(?:, )?/g,
      '$1(',
    )
    .replace(/\breplicated_deduplication_window\b/g, 'non_replicated_deduplication_window');
  // A Replicated engine left over (another path) would wait for a Keeper that never answers.
  if (/\bReplicated\w*MergeTree\b/.test(plain)) throw new Error(`cannot run without Keeper: ${sql}`);
  return plain;
}

// Cluster statements through an embedded client: rewritten as above, every query carrying the settings a
// cluster client sends (client.ts CLUSTER_SETTINGS), as a server connection in cluster mode would.
function clusterClient(client: ClickHouseClient): ClickHouseClient {
  const settings = (s: ClickHouseSettings | undefined) => ({ ...CLUSTER_SETTINGS, ...s });
  return new Proxy(client, {
    get(target, prop) {
      if (prop === 'command' || prop === 'query' || prop === 'exec') {
        return (p: { query: string; clickhouse_settings?: ClickHouseSettings }) =>
          target[prop]({
            ...p,
            query: withoutReplication(p.query),
            clickhouse_settings: settings(p.clickhouse_settings),
          } as never);
      }
      if (prop === 'insert') {
        return (p: Parameters<ClickHouseClient['insert']>[0]) =>
          target.insert({ ...p, clickhouse_settings: settings(p.clickhouse_settings) });
      }
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

const { events } = generateDataset({ events: 12_000, seed: 7, days: 40, duplicateRate: 0.03 });
const truth = new Truth().addAll(events);

interface TableInfo {
  name: string;
  engine: string;
  sorting_key: string;
  partition_key: string;
  primary_key: string;
  as_select: string;
  create_table_query: string;
}

interface ColumnInfo {
  table: string;
  name: string;
  type: string;
  default_kind: string;
  default_expression: string;
}

async function rows<T>(ch: ClickHouse, query: string, params: Record<string, string> = {}): Promise<T[]> {
  const rs = await ch.client.query({ query, query_params: params, format: 'JSONEachRow' });
  return rs.json<T>();
}

async function tables(ch: ClickHouse, database: string): Promise<Map<string, TableInfo>> {
  const list = await rows<TableInfo>(
    ch,
    `SELECT name, engine, sorting_key, partition_key, primary_key, as_select, create_table_query
     FROM system.tables WHERE database = {db:String}`,
    { db: database },
  );
  return new Map(list.map((t) => [t.name, t]));
}

async function columns(
  ch: ClickHouse,
  database: string,
  table: string,
): Promise<Omit<ColumnInfo, 'table'>[]> {
  return rows<ColumnInfo>(
    ch,
    `SELECT name, type, default_kind, default_expression FROM system.columns
     WHERE database = {db:String} AND table = {t:String} ORDER BY position`,
    { db: database, t: table },
  );
}

async function count(ch: ClickHouse, query: string): Promise<number> {
  const [row] = await rows<{ n: string | number }>(ch, query);
  return Number(row?.n);
}

describe('cluster migrations (clickhouse/cluster/)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tally-cluster-'));
  const suffix = randomBytes(5).toString('hex');
  const singleDb = `test_${suffix}s`;
  const clusterDb = `test_${suffix}c`;
  let session: Session;
  let single: ClickHouse;
  let cluster: ClickHouse;
  let firstRun: number[];

  beforeAll(async () => {
    writeFileSync(join(dataDir, 'config.xml'), CONFIG);
    mkdirSync(join(dataDir, 'clickhouse'));
    // The engine reads its configuration when the first connection opens the data directory; the clients
    // below open the same directory and share that engine.
    session = new Session(join(dataDir, 'clickhouse'), {
      connectionArgs: [`--config-file=${join(dataDir, 'config.xml')}`],
    });
    single = await openClickHouse({ url: undefined, database: singleDb, dataDir });
    const embedded = await openClickHouse({ url: undefined, database: clusterDb, dataDir });
    // The embedded engine with its client wrapped as above: inserts go through that client, as a server's do.
    const client = clusterClient(embedded.client);
    cluster = {
      ...embedded,
      client,
      readClient: client,
      cluster: CLUSTER,
      insert: (p) => insertWithClient(client, p),
    };
    await migrate(single);
    firstRun = await migrate(cluster);
  });

  afterAll(async () => {
    if (single) await dropTestDatabase(single, singleDb);
    if (single) await dropTestDatabase(single, clusterDb);
    await cluster?.close();
    await single?.close();
    session?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('refuses a cluster on the embedded engine', async () => {
    await expect(
      openClickHouse({ url: undefined, database: 'x', dataDir, cluster: CLUSTER }),
    ).rejects.toThrow(/needs a server \(CLICKHOUSE_URL\)/);
  });

  it("parses every cluster statement with the engine's parser", async () => {
    const statements = [
      ...bookkeepingStatements(cluster),
      ...migrationsFor(cluster).flatMap((m) => m.statements),
    ].map((s) => fillPlaceholders(s, { cluster: CLUSTER, database: clusterDb }));
    statements.push(
      retentionStatement(cluster, 'usage_events', 30),
      retentionStatement(cluster, 'log_events', 0),
    );
    expect(statements.length).toBeGreaterThan(20);
    for (const q of statements) {
      // formatQuery parses without executing; a syntax error throws with the statement attached.
      const [row] = await rows<{ f: string }>(single, 'SELECT formatQuery({q:String}) AS f', { q });
      expect(row?.f, q).toBeTruthy();
    }
  });

  it('creates the whole cluster schema (Replicated rewritten to plain engines), idempotently', async () => {
    // The cluster exists and its one replica is served in-process: the Distributed tables below are real.
    const [c] = await rows<{ is_local: number }>(
      single,
      'SELECT is_local FROM system.clusters WHERE cluster = {c:String}',
      { c: CLUSTER },
    );
    expect(Number(c?.is_local)).toBe(1);
    expect(firstRun).toEqual(migrationsFor(cluster).map((m) => m.version));
    expect(await migrate(cluster)).toEqual([]);
    expect(await migrationsApplied(cluster)).toBe(true);
    const t = await tables(single, clusterDb);
    expect(t.get('usage_events')?.engine).toBe('Distributed');
    expect(t.get('usage_events_local')?.engine).toBe('ReplacingMergeTree');
    expect(t.get('schema_migrations')?.engine).toBe('Distributed');
  });

  it('matches the single-node schema table for table: columns, types, keys, engines, views', async () => {
    const plain = await tables(single, singleDb);
    const clustered = await tables(single, clusterDb);
    expect(plain.size).toBeGreaterThan(10);
    const strip = (sql: string, db: string) =>
      sql
        .replaceAll(`${db}.`, '')
        .replaceAll(`\`${db}\`.`, '')
        .replace(/(\w)_local\b/g, '$1');
    const accounted = new Set<string>();
    for (const [name, p] of plain) {
      if (p.engine === 'MaterializedView') {
        const v = clustered.get(name);
        expect(v?.engine, `${name}: a view of the same name`).toBe('MaterializedView');
        expect(strip(v?.as_select ?? '', clusterDb), name).toBe(strip(p.as_select, singleDb));
        const target = (q: string, db: string) => strip(/ TO (\S+)/.exec(q)?.[1] ?? '', db);
        expect(target(v?.create_table_query ?? '', clusterDb), name).toBe(
          target(p.create_table_query, singleDb),
        );
        accounted.add(name);
        continue;
      }
      const local = clustered.get(`${name}_local`);
      const dist = clustered.get(name);
      expect(local, `${name}_local`).toBeDefined();
      expect(dist?.engine, `${name} is Distributed`).toBe('Distributed');
      // Engines compare after the rewrite (ReplicatedX became X), so the family must be the same.
      for (const key of ['engine', 'sorting_key', 'partition_key', 'primary_key'] as const) {
        expect(local?.[key], `${name}_local ${key}`).toBe(p[key]);
      }
      const want = await columns(single, singleDb, name);
      expect(await columns(single, clusterDb, `${name}_local`), `${name}_local columns`).toEqual(want);
      expect(await columns(single, clusterDb, name), `${name} columns`).toEqual(want);
      accounted.add(name).add(`${name}_local`);
    }
    // Nothing in the cluster schema that the single-node one lacks.
    expect([...clustered.keys()].filter((n) => !accounted.has(n))).toEqual([]);
  });

  describe('data through the public names', () => {
    const batches: EventRows[] = [];

    beforeAll(async () => {
      for (let i = 0; i < events.length; i += 2_000) batches.push(rowsOf(events.slice(i, i + 2_000)));
      for (const [i, b] of batches.entries()) {
        await insertEvents(single, b, `test/0/${i}`);
        await insertEvents(cluster, b, `test/0/${i}`);
      }
    });

    it('reaches the shard-local tables and the rollups, and answers like one node', async () => {
      expect(await count(cluster, 'SELECT count() AS n FROM usage_events_local')).toBeGreaterThan(0);
      expect(await count(cluster, 'SELECT count() AS n FROM usage_daily_local')).toBeGreaterThan(0);
      for (const q of truth.sampleQueries(12, 3)) {
        const want = truth.usageSummary(q);
        expect({ q, a: await usageSummary(cluster, q) }).toEqual({ q, a: want });
        expect({ q, a: await usageSummary(single, q) }).toEqual({ q, a: want });
      }
      // Sealed through the Distributed tables (points of one user on several shards, counters summed): the
      // summaries then come from the pairs, and stay exact.
      expect(await sealUsage(cluster, new QuietDays(), 0, Date.now())).toBeGreaterThan(0);
      expect(await sealedView(cluster, '2025-01-01', '2025-02-15')).toBeDefined();
      for (const q of truth.sampleQueries(12, 4)) {
        expect({ q, a: await usageSummary(cluster, q) }).toEqual({ q, a: truth.usageSummary(q) });
      }
      const ts = {
        start_date: '2025-01-01',
        end_date: '2025-02-15',
        interval: 'week',
        group_by: 'team',
      } as const;
      const series = await usageTimeseries(cluster, ts);
      expect(series.length).toBeGreaterThan(10);
      expect(series).toEqual(await usageTimeseries(single, ts));
      const page = { limit: 50, page: 3 };
      const logs = await systemEvents(cluster, page);
      expect(logs.total).toBeGreaterThan(150);
      expect(logs).toEqual(await systemEvents(single, page));
      // Sealed through the Distributed tables: each shard's logs counted in FINAL against the sum of the counters.
      expect(await sealLogDays(cluster)).toBeGreaterThan(0);
      expect(await sealLogDays(cluster)).toBe(0);
      expect(await systemEvents(cluster, page)).toEqual(logs);
    });

    it('a Kafka batch goes through usage_ingest / log_ingest into the raw tables and the ledger, once', async () => {
      const b = batches[1] as EventRows;
      const encoded = {
        usage: b.usage.map(encodeUsage),
        logs: b.logs.map(encodeLog),
        delivery: 'kafka:cluster-test/0/0-1999',
      };
      const accepted = (ch: ClickHouse) =>
        count(ch, "SELECT uniqExactMerge(deliveries) AS n FROM ingest_ledger WHERE outcome = 'accepted'");
      const stored = (ch: ClickHouse) =>
        count(ch, 'SELECT (SELECT count() FROM usage_events) + (SELECT count() FROM log_events) AS n');
      await holdMerges(cluster.client);
      try {
        const before = await stored(cluster);
        await insertEvents(single, encoded, 'kafka/cluster-test');
        await insertEvents(cluster, encoded, 'kafka/cluster-test');
        const once = [await accepted(cluster), await stored(cluster)];
        // Each message is one delivery; copies of an event within the batch collapse as the part is written.
        expect(once[0]).toBe(b.usage.length + b.logs.length);
        expect(once[1]).toBeGreaterThan(before);
        expect(await accepted(single)).toBe(once[0]);
        await insertEvents(cluster, encoded, 'kafka/cluster-test');
        expect([await accepted(cluster), await stored(cluster)]).toEqual(once);
      } finally {
        await cluster.client.command({ query: 'SYSTEM START MERGES' });
      }
    });

    it('a batch re-sent with its token adds nothing, through the Distributed tables and the views', async () => {
      const tables = [
        'usage_events',
        'log_events',
        'usage_daily',
        'usage_first_seen',
        'log_counts_hourly',
        'log_cells_daily',
        'ingest_ledger',
      ];
      // Row counts of the rollups move with background merges: hold them while counting.
      await holdMerges(cluster.client);
      try {
        const before = await Promise.all(tables.map((t) => count(cluster, `SELECT count() AS n FROM ${t}`)));
        for (const [i, b] of batches.entries()) await insertEvents(cluster, b, `test/0/${i}`);
        const after = await Promise.all(tables.map((t) => count(cluster, `SELECT count() AS n FROM ${t}`)));
        expect(after).toEqual(before);
        // The same rows under a new token are stored again (so the check above was not vacuous).
        await insertEvents(cluster, batches[0] as EventRows, 'test/1/0');
        const again = await Promise.all(tables.map((t) => count(cluster, `SELECT count() AS n FROM ${t}`)));
        for (const [i, n] of again.entries()) expect(n, tables[i]).toBeGreaterThan(before[i] ?? 0);
      } finally {
        await cluster.client.command({ query: 'SYSTEM START MERGES' });
      }
      // ... and change no answer: duplicates are absorbed by FINAL and the idempotent rollups, as on one node.
      for (const q of truth.sampleQueries(5, 11))
        expect(await usageSummary(cluster, q)).toEqual(truth.usageSummary(q));
      expect(await systemEvents(cluster, { limit: 50, page: 2 })).toEqual(
        await systemEvents(single, { limit: 50, page: 2 }),
      );
    });
  });

  it('keeps the ingestion ledger through the Distributed tables, as on one node, a re-sent batch adding nothing', async () => {
    const arrivals: Arrival[] = [
      {
        day: '2025-01-02',
        team_id: 't1',
        service: 's',
        outcome: 'accepted',
        reason: '',
        identity: 'e1',
        delivery: 'a',
      },
      {
        day: '2025-01-02',
        team_id: 't1',
        service: 's',
        outcome: 'accepted',
        reason: '',
        identity: 'e1',
        delivery: 'b',
      },
      {
        day: '2025-01-02',
        team_id: '(none)',
        service: 's',
        outcome: 'rejected',
        reason: 'not_json',
        identity: 'x',
        delivery: 'c',
      },
    ];
    for (const ch of [single, cluster]) {
      await insertArrivals(ch, arrivals, 'ledger/test/1');
      await insertArrivals(ch, arrivals, 'ledger/test/1');
    }
    const p = { start_date: '2025-01-01', end_date: '2025-01-03' };
    const got = await ingestLedger(cluster, p);
    expect(got).toEqual(await ingestLedger(single, p));
    expect(got.find((r) => r.team_id === 't1')).toMatchObject({ received: 1, duplicates: 1, rejected: 0 });
    expect(got.find((r) => r.team_id === '(none)')).toMatchObject({
      received: 1,
      rejected: 1,
      rejected_by_reason: { not_json: 1 },
    });
    // Stored counts come from the raw tables' views, on each shard.
    expect(got.reduce((n, r) => n + r.stored, 0)).toBeGreaterThan(0);
  });

  it('sets and removes the retention TTL on the shard-local raw tables', async () => {
    const ttl = async () =>
      (await tables(single, clusterDb)).get('usage_events_local')?.create_table_query.includes('TTL');
    await applyRetention(cluster, 30);
    expect(await ttl()).toBe(true);
    expect((await tables(single, clusterDb)).get('log_events_local')?.create_table_query).toMatch(
      /TTL toDateTime\(timestamp\) \+ toIntervalDay\(30\)/,
    );
    expect((await tables(single, clusterDb)).get('log_counts_hourly_local')?.create_table_query).toMatch(
      /TTL hour \+ toIntervalDay\(31\)/,
    );
    await applyRetention(cluster, 0);
    expect(await ttl()).toBe(false);
  });

  // Last: it replaces the records of this database.
  it('starts on the records a cluster migrated by the hand-written DDL holds: nothing re-applied or refused', async () => {
    const { rows: recorded } = JSON.parse(
      readFileSync(new URL('../fixtures/cluster-schema-migrations.json', import.meta.url), 'utf8'),
    ) as { rows: Applied[] };
    await cluster.client.command({ query: 'TRUNCATE TABLE schema_migrations_local' });
    await cluster.client.insert({ table: 'schema_migrations', values: recorded, format: 'JSONEachRow' });
    expect(await migrate(cluster)).toEqual(
      migrationsFor(cluster)
        .map((m) => m.version)
        .filter((v) => !recorded.some((r) => r.version === v)),
    );
    expect(await migrationsApplied(cluster)).toBe(true);
  });
});
