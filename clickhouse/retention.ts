// RETENTION_DAYS as table TTLs on the raw tables. The rollups are kept: summaries of dropped days still answer.
import type { ClickHouse } from './client.ts';

const RAW_TABLES = ['usage_events', 'log_events'] as const;

/** Sets (days > 0) or removes (days = 0) the TTL on every raw table; a no-op when already so. */
export async function applyRetention(ch: ClickHouse, days: number): Promise<void> {
  for (const table of RAW_TABLES) {
    const rs = await ch.client.query({
      query:
        'SELECT create_table_query FROM system.tables WHERE database = currentDatabase() AND name = {t:String}',
      query_params: { t: table },
      format: 'JSONEachRow',
    });
    const [row] = await rs.json<{ create_table_query: string }>();
    const hasTtl = row ? /\bTTL\b/.test(row.create_table_query) : false;
    if (days > 0) {
      const want = `toDateTime(timestamp) + toIntervalDay(${Math.trunc(days)})`;
      if (hasTtl && row?.create_table_query.includes(want)) continue;
      // days is an integer from validated config, not request input.
      await ch.client.command({
        query: `ALTER TABLE ${table} MODIFY TTL toDateTime(timestamp) + INTERVAL ${Math.trunc(days)} DAY`,
      });
    } else if (hasTtl) {
      await ch.client.command({ query: `ALTER TABLE ${table} REMOVE TTL` });
    }
  }
}
