// A process that opens the embedded engine on a data directory the way the service does (openClickHouse, the
// migrations) and does one thing, for tests that kill it part-way: `tables` prints each MergeTree table's data
// directory; `insert <token>` inserts one Kafka batch of usage events through the ingester's insert path
// (insertEvents, usage_ingest and every view) with that token; `dump` prints every usage table's content,
// merged as the reports read it, as a count and a hash per table.
// Usage: node --import tsx test/helpers/insert-child.ts DATA_DIR DATABASE tables|insert TOKEN|dump
import { openClickHouse } from '../../clickhouse/client.ts';
import { encodeUsage, insertEvents } from '../../clickhouse/inserts.ts';
import { migrate } from '../../clickhouse/migrate.ts';
import { parseEvent } from '../../core/events.ts';
import { generateDataset } from '../../ingest/loadgen/generate.ts';

/** The batch: about 1,600 usage events of a few hundred users over 60 days of 2025, always the same. */
function batchLines(): string[] {
  const { events } = generateDataset({ events: 2_000, seed: 5, days: 60, duplicateRate: 0 });
  const lines: string[] = [];
  for (const e of events) {
    const r = parseEvent(e, Date.parse('2026-01-01'));
    if (r.ok && r.event.kind === 'usage') lines.push(encodeUsage(r.event.row));
  }
  return lines;
}

// Each table merged by its key, as a read sees it; a hash of the rows stands for the content.
const DUMPS: Record<string, string> = {
  usage_events: `SELECT count() AS n, toString(sum(cityHash64(event_id, type, timestamp, user_id, team_id,
      service, session_id))) AS h FROM usage_events FINAL`,
  usage_daily: `SELECT count() AS n, toString(sum(cityHash64(day, team_id, service, user_id, s, a))) AS h FROM (
      SELECT day, team_id, service, user_id, uniqExactMerge(sessions) AS s, max(active) AS a FROM usage_daily
      GROUP BY day, team_id, service, user_id)`,
  usage_user_days: `SELECT count() AS n, toString(sum(cityHash64(day, team_id, service, user_id, s, a))) AS h FROM (
      SELECT day, team_id, service, user_id, uniqExactMerge(sessions) AS s, max(active) AS a FROM usage_user_days
      GROUP BY day, team_id, service, user_id)`,
  usage_first_seen: `SELECT count() AS n, toString(sum(cityHash64(team_id, service, user_id, d, t))) AS h FROM (
      SELECT team_id, service, user_id, min(first_day) AS d, min(first_seen) AS t FROM usage_first_seen
      GROUP BY team_id, service, user_id)`,
  usage_points: `SELECT count() AS n, toString(sum(cityHash64(family, kind, entity, day, team_id, service, i))) AS h FROM (
      SELECT family, kind, entity, day, team_id, service, sum(inserted) AS i FROM usage_points
      GROUP BY family, kind, entity, day, team_id, service)`,
  usage_points_by_day: `SELECT count() AS n, toString(sum(cityHash64(family, day, kind, team_id, service, entity, i)))
      AS h FROM (SELECT family, day, kind, team_id, service, entity, sum(inserted) AS i FROM usage_points_by_day
      GROUP BY family, day, kind, team_id, service, entity)`,
  ingest_ledger: `SELECT count() AS n, toString(sum(cityHash64(day, team_id, service, outcome, reason, i, d))) AS h FROM (
      SELECT day, team_id, service, outcome, reason, uniqExactMerge(ids) AS i, uniqExactMerge(deliveries) AS d
      FROM ingest_ledger GROUP BY day, team_id, service, outcome, reason)`,
};

async function main(): Promise<void> {
  const [dataDir, database, mode, token] = process.argv.slice(2);
  if (!dataDir || !database || !mode) throw new Error('usage: DATA_DIR DATABASE tables|insert TOKEN|dump');
  const ch = await openClickHouse({ url: undefined, database, dataDir });
  try {
    await migrate(ch);
    if (mode === 'tables') {
      const rs = await ch.client.query({
        query: `SELECT name, data_paths FROM system.tables
          WHERE database = currentDatabase() AND engine LIKE '%MergeTree'`,
        format: 'JSONEachRow',
      });
      const out: Record<string, string> = {};
      for (const t of await rs.json<{ name: string; data_paths: string[] }>()) {
        if (t.data_paths[0]) out[t.name] = t.data_paths[0];
      }
      process.stdout.write(`${JSON.stringify(out)}\n`);
    } else if (mode === 'insert') {
      if (!token) throw new Error('insert needs a token');
      await insertEvents(ch, { usage: batchLines(), logs: [], delivery: `kafka:${token}` }, token);
      process.stdout.write('inserted\n');
    } else if (mode === 'dump') {
      const out: Record<string, { n: number; h: string }> = {};
      for (const [table, query] of Object.entries(DUMPS)) {
        const rs = await ch.client.query({ query, format: 'JSONEachRow' });
        const [row] = await rs.json<{ n: string | number; h: string | number }>();
        out[table] = { n: Number(row?.n ?? 0), h: String(row?.h ?? '') };
      }
      process.stdout.write(`${JSON.stringify(out)}\n`);
    } else {
      throw new Error(`unknown mode ${mode}`);
    }
  } finally {
    await ch.close();
  }
}

await main();
