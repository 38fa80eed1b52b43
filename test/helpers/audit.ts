// Test instrumentation: a plain MergeTree fed by materialized views from both raw tables. Plain MergeTree
// never collapses rows, so its row count is the number of event rows ever inserted (after insert-token
// deduplication): equal to the messages published exactly when nothing was lost or stored twice.
import type { ClickHouse } from '../../clickhouse/client.ts';
import { SELF_SERVICE } from '../../clickhouse/self-log.ts';

export async function createAudit(ch: ClickHouse): Promise<void> {
  await ch.client.command({
    query: `CREATE TABLE IF NOT EXISTS test_ingest_audit (event_id String, kind LowCardinality(String))
      ENGINE = MergeTree ORDER BY tuple() SETTINGS non_replicated_deduplication_window = 10000`,
  });
  await ch.client.command({
    query: `CREATE MATERIALIZED VIEW IF NOT EXISTS test_ingest_audit_usage_mv TO test_ingest_audit
      AS SELECT event_id, 'usage' AS kind FROM usage_events`,
  });
  // Not the service's own logs (self-log.ts): they are not published events. One error record of a restarted
  // ingester ("offset commit failed ... The coordinator is not aware of this member") made a 500,000-event
  // soak count 1 row "stored twice".
  await ch.client.command({
    query: `CREATE MATERIALIZED VIEW IF NOT EXISTS test_ingest_audit_logs_mv TO test_ingest_audit
      AS SELECT event_id, 'log' AS kind FROM log_events WHERE service != '${SELF_SERVICE}'`,
  });
  // Each Kafka-inserted row with the batch that inserted it (kafka:<topic>/<partition>/<first>-<last>/...):
  // a row stored twice then shows whether two batches held it (re-formed under another token), one batch
  // twice (a token the engine did not deduplicate), or the log itself held it twice (a producer's retry).
  await ch.client.command({
    query: `CREATE TABLE IF NOT EXISTS test_ingest_deliveries (event_id String, delivery String)
      ENGINE = MergeTree ORDER BY tuple() SETTINGS non_replicated_deduplication_window = 10000`,
  });
  for (const source of ['usage_ingest', 'log_ingest']) {
    await ch.client.command({
      query: `CREATE MATERIALIZED VIEW IF NOT EXISTS test_${source}_deliveries_mv TO test_ingest_deliveries
        AS SELECT event_id, delivery FROM ${source}`,
    });
  }
}

export async function scalar(ch: ClickHouse, query: string): Promise<number> {
  const rs = await ch.client.query({ query, format: 'JSONEachRow' });
  const [row] = await rs.json<Record<string, string | number>>();
  return Number(Object.values(row ?? {})[0]);
}

export interface StoredCounts {
  /** Event rows ever inserted (each published message should be exactly one). */
  inserted: number;
  /** Distinct usage / log events stored (FINAL), the service's own logs excluded. */
  usage: number;
  logs: number;
}

export async function storedCounts(ch: ClickHouse): Promise<StoredCounts> {
  return {
    inserted: await scalar(ch, 'SELECT count() FROM test_ingest_audit'),
    usage: await scalar(ch, 'SELECT count() FROM usage_events FINAL'),
    logs: await scalar(ch, "SELECT count() FROM log_events FINAL WHERE service != 'tally'"),
  };
}

/** Distinct stored events per UTC day, as `YYYY-MM-DD -> n`. */
export async function eventsPerDay(ch: ClickHouse): Promise<Record<string, number>> {
  const rs = await ch.client.query({
    query: `SELECT d, toUInt64(sum(n)) AS n FROM (
        SELECT toString(toDate(timestamp)) AS d, count() AS n FROM usage_events FINAL GROUP BY d
        UNION ALL
        SELECT toString(toDate(timestamp)) AS d, count() AS n FROM log_events FINAL WHERE service != 'tally' GROUP BY d
      ) GROUP BY d ORDER BY d`,
    format: 'JSONEachRow',
  });
  const out: Record<string, number> = {};
  for (const r of await rs.json<{ d: string; n: string | number }>()) out[r.d] = Number(r.n);
  return out;
}

/** The same figures computed from the published events, without ClickHouse. */
export function expectedCounts(events: readonly { event_id: string; type: string; timestamp: string }[]) {
  const seen = new Set<string>();
  let usage = 0;
  let logs = 0;
  const perDay: Record<string, number> = {};
  for (const e of events) {
    if (seen.has(e.event_id)) continue;
    seen.add(e.event_id);
    if (e.type === 'log') logs += 1;
    else usage += 1;
    const day = new Date(Date.parse(e.timestamp)).toISOString().slice(0, 10);
    perDay[day] = (perDay[day] ?? 0) + 1;
  }
  return { published: events.length, usage, logs, perDay };
}

/** Writes whose offset ranges overlap under different tokens: each one is a message stored twice. */
export function overlaps(writes: { member: string; token: string; at: number }[]): string[] {
  const out: string[] = [];
  const parsed = writes.map((w) => {
    const m = /^(.*)\/(\d+)\/(\d+)-(\d+)$/.exec(w.token);
    return { ...w, tp: `${m?.[1]}/${m?.[2]}`, first: Number(m?.[3]), last: Number(m?.[4]) };
  });
  for (const a of parsed) {
    for (const b of parsed) {
      if (
        a.at <= b.at &&
        a !== b &&
        a.tp === b.tp &&
        a.token !== b.token &&
        a.first <= b.last &&
        b.first <= a.last
      )
        out.push(`${a.member}@${a.at} ${a.token} overlaps ${b.member}@${b.at} ${b.token}`);
    }
  }
  return out;
}
