// Answers computed the slow, obvious way from the raw tables (FINAL, OFFSET paging): the baselines the
// rollup and keyset paths are measured against, and the truth their answers are checked equal to.
import type { ClickHouse } from '../clickhouse/client.ts';

async function sql<T>(ch: ClickHouse, query: string, query_params: Record<string, string | number>) {
  const rs = await ch.client.query({ query, query_params, format: 'JSONEachRow' });
  return rs.json<T>();
}

/** usage-summary from usage_events FINAL. */
export async function rawSummary(ch: ClickHouse, start: string, end: string, team?: string) {
  const byTeam = team ? 'AND team_id = {team:String}' : '';
  const [r] = await sql<Record<string, string | number>>(
    ch,
    `SELECT
      (SELECT uniqExact(user_id) FROM usage_events FINAL WHERE toDate(timestamp) <= {end:Date} ${byTeam}) AS total_users,
      (SELECT uniqExactIf(user_id, type != 'user_registered') FROM usage_events FINAL
        WHERE toDate(timestamp) BETWEEN {start:Date} AND {end:Date} ${byTeam}) AS active_users,
      (SELECT uniqExactIf(session_id, type = 'session_start') FROM usage_events FINAL
        WHERE toDate(timestamp) BETWEEN {start:Date} AND {end:Date} ${byTeam}) AS total_sessions`,
    { start, end, ...(team ? { team } : {}) },
  );
  return {
    total_users: Number(r?.total_users),
    active_users: Number(r?.active_users),
    total_sessions: Number(r?.total_sessions),
  };
}

/** A system-events page by OFFSET on log_events FINAL, with a FINAL count. */
export async function offsetPage(ch: ClickHouse, page: number, limit: number) {
  const rows = await sql<{ event_id: string }>(
    ch,
    `SELECT event_id FROM log_events FINAL ORDER BY timestamp DESC, event_id DESC
     LIMIT {limit:UInt32} OFFSET {skip:UInt64}`,
    { limit, skip: (page - 1) * limit },
  );
  const [c] = await sql<{ n: string | number }>(ch, 'SELECT count() AS n FROM log_events FINAL', {});
  return { ids: rows.map((r) => r.event_id), total_pages: Math.ceil(Number(c?.n) / limit) };
}
