// The scale benchmark's open day: "today" (LIVE_DAY, the day after the dataset's last) taking events while
// reports ask for ranges that end on it, as dashboards do under live traffic. Its events are the last day's
// events a day later, under new event ids: the same teams and services, users coming back (one in twenty a new
// user), sessions resumed across midnight (half of them) or new. A pure function of the dataset, so a later
// run inserts the same events again: copies, which change no answer but move the day's counters, so the day
// is open again in every run and the cached dataset's answers stay what they were.
import type { ClickHouse } from '../clickhouse/client.ts';
import { addDays } from './scale-requests.ts';

/** The open day: the day after the datasets' last (2025-12-31). */
export const LIVE_DAY = '2026-01-01';
const SOURCE_DAY = addDays(LIVE_DAY, -1);

/**
 * Inserts the live events whose hash slot (of `slots`) is in [from, to): a slice of about
 * (to − from) / slots of the source day's usage events. Straight into usage_events, as a back-fill or any
 * producer's insert reaches the rollups. Returns the rows inserted.
 */
export async function insertLive(ch: ClickHouse, from: number, to: number, slots: number): Promise<number> {
  const where = `toDate(timestamp) = {source:Date}
    AND cityHash64(event_id, 1) % {slots:UInt32} >= {from:UInt32} AND cityHash64(event_id, 1) % {slots:UInt32} < {to:UInt32}`;
  const params = { source: SOURCE_DAY, slots, from, to };
  await ch.client.command({
    query: `INSERT INTO usage_events (event_id, type, timestamp, user_id, team_id, service, session_id, attributes)
      SETTINGS insert_deduplicate = 0
      SELECT concat('live-', event_id), type, timestamp + INTERVAL 1 DAY,
        if(cityHash64(user_id, 7) % 20 = 0, concat('live-', user_id), user_id),
        team_id, service,
        if(session_id != '' AND cityHash64(session_id, 8) % 2 = 0, concat('live-', session_id), session_id),
        attributes
      FROM usage_events WHERE ${where}`,
    query_params: params,
  });
  const rs = await ch.client.query({
    query: `SELECT count() AS n FROM usage_events WHERE ${where}`,
    query_params: params,
    format: 'JSONEachRow',
  });
  return Number((await rs.json<{ n: string }>())[0]?.n ?? 0);
}
