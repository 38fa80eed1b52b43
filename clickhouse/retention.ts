// RETENTION_DAYS as table TTLs on the raw tables. The rollups are kept: summaries of dropped days still answer.
// In a cluster the TTL belongs to the shard-local tables (a Distributed table stores nothing), altered ON
// CLUSTER so that every shard and replica expires the same days.
import { type ClickHouse, quoteIdent } from './client.ts';

const RAW_TABLES = ['usage_events', 'log_events'] as const;

/** Where the rows of a raw table live, and the ALTER target that reaches all of them. */
function storage(
  ch: Pick<ClickHouse, 'cluster' | 'database'>,
  table: (typeof RAW_TABLES)[number],
): { name: string; alter: string } {
  if (ch.cluster === undefined) return { name: table, alter: table };
  const name = `${table}_local`;
  // Qualified: ON CLUSTER DDL runs on the other hosts, whose current database is not ours.
  return {
    name,
    alter: `${quoteIdent(ch.database)}.${name} ON CLUSTER ${quoteIdent(ch.cluster)}`,
  };
}

/** The ALTER that sets (days > 0) or removes (days = 0) a raw table's TTL. */
export function retentionStatement(
  ch: Pick<ClickHouse, 'cluster' | 'database'>,
  table: (typeof RAW_TABLES)[number],
  days: number,
): string {
  const { alter } = storage(ch, table);
  // days is an integer from validated config, not request input.
  return days > 0
    ? `ALTER TABLE ${alter} MODIFY TTL toDateTime(timestamp) + INTERVAL ${Math.trunc(days)} DAY`
    : `ALTER TABLE ${alter} REMOVE TTL`;
}

/** Sets (days > 0) or removes (days = 0) the TTL on every raw table; a no-op when already so. */
export async function applyRetention(ch: ClickHouse, days: number): Promise<void> {
  for (const table of RAW_TABLES) {
    // This host's copy is checked: an ON CLUSTER ALTER stays queued for hosts that were down and reaches them
    // when they return, so one host's state is the cluster's.
    const rs = await ch.client.query({
      query:
        'SELECT create_table_query FROM system.tables WHERE database = currentDatabase() AND name = {t:String}',
      query_params: { t: storage(ch, table).name },
      format: 'JSONEachRow',
    });
    const [row] = await rs.json<{ create_table_query: string }>();
    const hasTtl = row ? /\bTTL\b/.test(row.create_table_query) : false;
    if (days > 0) {
      const want = `toDateTime(timestamp) + toIntervalDay(${Math.trunc(days)})`;
      if (hasTtl && row?.create_table_query.includes(want)) continue;
      await ch.client.command({ query: retentionStatement(ch, table, days) });
    } else if (hasTtl) {
      await ch.client.command({ query: retentionStatement(ch, table, 0) });
    }
  }
}
