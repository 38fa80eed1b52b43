// The raw-table truth of the scale benchmark: each answer computed the slow, obvious way from usage_events and
// log_events, to spot-check the API's answers and to time the rollup speed-up. Distinct counts (uniqExact) are
// exact without FINAL (a re-sent event repeats ids already counted), so the usage truth reads the raw rows as
// they are, a faster baseline than FINAL (the speed-up it gives is conservative); logs are counted and paged
// on log_events FINAL, where a re-sent row would otherwise count twice.
import type { ClickHouse } from '../clickhouse/client.ts';
import type { Params } from './scale-requests.ts';

async function rows<T>(ch: ClickHouse, query: string, query_params: Params): Promise<T[]> {
  const rs = await ch.client.query({ query, query_params, format: 'JSONEachRow' });
  return rs.json<T>();
}

function usageFilters(p: Params): string {
  let sql = '';
  if (p.user_id !== undefined) sql += ' AND user_id = {user_id:String}';
  if (p.team_id !== undefined) sql += ' AND team_id = {team_id:String}';
  if (p.service !== undefined) sql += ' AND service = {service:String}';
  return sql;
}

/** usage-summary per the contract: active users and sessions in the range, users seen up to its end. */
export async function truthSummary(ch: ClickHouse, p: Params) {
  const f = usageFilters(p);
  const [r] = await rows<Record<string, string | number>>(
    ch,
    `SELECT
      (SELECT uniqExact(user_id) FROM usage_events WHERE toDate(timestamp) <= {end_date:Date}${f}) AS total_users,
      active_users, total_sessions
    FROM (SELECT uniqExactIf(user_id, type != 'user_registered') AS active_users,
                 uniqExactIf(session_id, type = 'session_start') AS total_sessions
          FROM usage_events WHERE toDate(timestamp) BETWEEN {start_date:Date} AND {end_date:Date}${f})`,
    p,
  );
  return {
    total_users: Number(r?.total_users),
    active_users: Number(r?.active_users),
    total_sessions: Number(r?.total_sessions),
  };
}

/** usage-timeseries by week (ungrouped): every clipped week of the range, empty weeks as zeros. */
export async function truthTimeseriesByWeek(ch: ClickHouse, p: Params) {
  const f = usageFilters(p);
  const got = await rows<{ period: string; active_users: string; total_sessions: string }>(
    ch,
    `SELECT toString(greatest(toStartOfWeek(toDate(timestamp), 1), {start_date:Date})) AS period,
       uniqExactIf(user_id, type != 'user_registered') AS active_users,
       uniqExactIf(session_id, type = 'session_start') AS total_sessions
     FROM usage_events WHERE toDate(timestamp) BETWEEN {start_date:Date} AND {end_date:Date}${f}
     GROUP BY period ORDER BY period`,
    p,
  );
  const byPeriod = new Map(got.map((r) => [r.period, r]));
  const out: Array<{ period: string; active_users: number; total_sessions: number }> = [];
  const start = p.start_date as string;
  const end = p.end_date as string;
  // Periods: the range's first day, then every Monday after it up to the end.
  for (let d = start; d <= end; ) {
    const r = byPeriod.get(d);
    out.push({
      period: d,
      active_users: Number(r?.active_users ?? 0),
      total_sessions: Number(r?.total_sessions ?? 0),
    });
    const t = new Date(`${d}T00:00:00Z`);
    const toMonday = (8 - t.getUTCDay()) % 7 || 7;
    d = new Date(t.getTime() + toMonday * 86_400_000).toISOString().slice(0, 10);
  }
  return out;
}

function logFilters(p: Params): string {
  let sql = '';
  if (p.severity !== undefined) sql += ' AND severity = {severity:String}';
  if (p.service !== undefined) sql += ' AND service = {service:String}';
  if (p.start_date !== undefined) sql += ' AND toDate(timestamp) >= {start_date:Date}';
  if (p.end_date !== undefined) sql += ' AND toDate(timestamp) <= {end_date:Date}';
  return sql;
}

/** A system-events page by OFFSET on log_events FINAL, and its total_pages from a FINAL count. */
export async function truthLogPage(ch: ClickHouse, filters: Params, page: number, limit: number) {
  const f = logFilters(filters);
  const ids = await rows<{ event_id: string }>(
    ch,
    `SELECT event_id FROM log_events FINAL WHERE 1 = 1${f}
     ORDER BY timestamp DESC, event_id DESC LIMIT {limit:UInt32} OFFSET {skip:UInt64}`,
    { ...filters, limit: String(limit), skip: String((page - 1) * limit) },
  );
  const [c] = await rows<{ n: string }>(
    ch,
    `SELECT count() AS n FROM log_events FINAL WHERE 1 = 1${f}`,
    filters,
  );
  return { ids: ids.map((r) => r.event_id), total_pages: Math.ceil(Number(c?.n) / limit) };
}
