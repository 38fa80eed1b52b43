// The scale benchmark's open day: "today" (LIVE_DAY, the day after the dataset's last) taking events while
// reports ask for ranges that end on it, as dashboards do under live traffic. Its events are the last day's
// events a day later, under new event ids: the same teams and services, users coming back (one in twenty a new
// user), sessions resumed across midnight (half of them) or new. A pure function of the dataset, so a later
// run inserts the same events again: copies, which change no answer but move the day's counters, so the day
// is open again in every run and the cached dataset's answers stay what they were.
import type { ClickHouse } from '../clickhouse/client.ts';
import type { UsageRow } from '../core/events.ts';
import { addDays } from './scale-requests.ts';

/** The open day: the day after the datasets' last (2025-12-31). */
export const LIVE_DAY = '2026-01-01';
const SOURCE_DAY = addDays(LIVE_DAY, -1);

// The source rows are picked in a subquery: outside it, `timestamp` would be the shifted alias.
const LIVE_SELECT = `SELECT concat('live-', event_id) AS event_id, type,
    formatDateTime(timestamp + INTERVAL 1 DAY, '%Y-%m-%d %H:%i:%s.%f', 'UTC') AS timestamp,
    if(cityHash64(user_id, 7) % 20 = 0, concat('live-', user_id), user_id) AS user_id,
    team_id, service,
    if(session_id != '' AND cityHash64(session_id, 8) % 2 = 0, concat('live-', session_id), session_id) AS session_id,
    attributes
  FROM (
    SELECT * FROM usage_events
    WHERE toDate(timestamp) = {source:Date}
      AND cityHash64(event_id, 1) % {slots:UInt32} >= {from:UInt32} AND cityHash64(event_id, 1) % {slots:UInt32} < {to:UInt32}
  )`;

/**
 * Inserts the live events whose hash slot (of `slots`) is in [from, to): a slice of about
 * (to − from) / slots of the source day's usage events. Straight into usage_events, as a back-fill reaches the
 * rollups. Returns the rows inserted.
 */
export async function insertLive(ch: ClickHouse, from: number, to: number, slots: number): Promise<number> {
  const params = { source: SOURCE_DAY, slots, from, to };
  await ch.client.command({
    query: `INSERT INTO usage_events (event_id, type, timestamp, user_id, team_id, service, session_id, attributes)
      SETTINGS insert_deduplicate = 0 ${LIVE_SELECT}`,
    query_params: params,
  });
  const rs = await ch.client.query({
    query: `SELECT count() AS n FROM (${LIVE_SELECT})`,
    query_params: params,
    format: 'JSONEachRow',
  });
  return Number((await rs.json<{ n: string }>())[0]?.n ?? 0);
}

/**
 * The live events of slots [from, to), read once up front: a trickle then inserts them a few at a time through
 * the ingest path's insert (small batches, as a live producer's arrive), not an INSERT … SELECT that scans the
 * source day each time.
 */
export async function liveRows(ch: ClickHouse, from: number, to: number, slots: number): Promise<LiveRows> {
  const rs = await ch.client.query({
    query: LIVE_SELECT,
    query_params: { source: SOURCE_DAY, slots, from, to },
    format: 'JSONEachRow',
  });
  return new LiveRows(await rs.text());
}

/**
 * Rows kept as their JSON lines and parsed as they are taken. The bench runs in the serving process, and
 * ~22,000 row objects held for the whole live phase were a sixth of that process's heap objects, all marked by
 * every full collection: the service's pauses, lengthened by the bench's own state.
 */
export class LiveRows {
  private at = 0;

  constructor(private readonly text: string) {}

  /** The next `count` rows, fewer at the end. */
  take(count: number): UsageRow[] {
    const out: UsageRow[] = [];
    while (out.length < count && this.at < this.text.length) {
      const nl = this.text.indexOf('\n', this.at);
      const end = nl < 0 ? this.text.length : nl;
      if (end > this.at) out.push(JSON.parse(this.text.slice(this.at, end)) as UsageRow);
      this.at = end + 1;
    }
    return out;
  }
}
