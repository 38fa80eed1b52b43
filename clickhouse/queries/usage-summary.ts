// GET /reports/usage-summary, from the daily rollups (never the raw events).
import type { ClickHouse } from '../client.ts';
import { type Snapshot, UNVERSIONED } from '../derived-state.ts';
import { filterClause, type UsageFilters } from './filters.ts';
import type { BuiltQuery } from './query.ts';
import { openContribution } from './usage-open-day.ts';
import { pairsSummary, sealState, userDaysReady, viewOf } from './usage-pairs.ts';
import { readyIndex, summaryFromIndex } from './usage-pairs-index.ts';

export interface UsageSummaryParams extends UsageFilters {
  /** First UTC day, YYYY-MM-DD, inclusive. */
  start_date: string;
  /** Last UTC day, YYYY-MM-DD, inclusive. */
  end_date: string;
}

export interface UsageSummary {
  total_users: number;
  active_users: number;
  total_sessions: number;
}

// total_users: rows of usage_first_seen carry min() partials before merges; a key's true first day is <= end
// exactly when one of its rows is, so no FINAL is needed. active: likewise for max(). Sessions merge exact sets.
// Active users and sessions come from one scan of usage_daily (two scans cost ~10 ms more on 90 days of 10M
// events); the union of session sets is most of the time, see bench/RESULTS.md.
// With a user filter and usage_user_days back-filled (`byUser`), all three come from that user's rows of
// usage_user_days (the same rollup ordered by user): a few rows instead of every day of the range.
export function buildUsageSummaryQuery(p: UsageSummaryParams, byUser = false): BuiltQuery {
  const f = filterClause(p);
  const query_params = { start_date: p.start_date, end_date: p.end_date, ...f.params };
  if (byUser) {
    // One user's rows up to end_date, read once: seen on any of them, active and sessions within the range.
    const query = `
      SELECT uniqExact(user_id) AS total_users,
        uniqExactIf(user_id, active = 1 AND day >= {start_date:Date}) AS active_users,
        uniqExactMergeIf(sessions, day >= {start_date:Date}) AS total_sessions
      FROM usage_user_days
      WHERE day <= {end_date:Date}${f.sql}`;
    return { query, query_params };
  }
  const query = `
    SELECT
      (SELECT uniqExact(user_id) FROM usage_first_seen WHERE first_day <= {end_date:Date}${f.sql}) AS total_users,
      active_users,
      total_sessions
    FROM (
      SELECT uniqExactIf(user_id, active = 1) AS active_users, uniqExactMerge(sessions) AS total_sessions
      FROM usage_daily
      WHERE day BETWEEN {start_date:Date} AND {end_date:Date}${f.sql}
    )`;
  return { query, query_params };
}

export async function usageSummary(
  ch: ClickHouse,
  p: UsageSummaryParams,
  snap: Snapshot = UNVERSIONED,
): Promise<UsageSummary> {
  // Sealed pairs answer in time that does not grow with stored events, plus the open day (today under live
  // traffic) from usage-open-day.ts; a user filter, or another day not sealed yet (a fresh back-fill, late
  // events for an earlier day within the sealer's quiet time), is answered from the daily rollup below.
  // A filter asked for again at one data version is summed in memory from its pairs (usage-pairs-index.ts);
  // otherwise the pairs of the range are summed in SQL.
  if (p.user_id === undefined) {
    const state = await sealState(ch, snap);
    const view = viewOf(state, p.start_date, p.end_date);
    // A family's last day, open under live traffic, is added from its points' previous points (undefined:
    // too many of them not covered yet by the sealer, so the daily rollup answers).
    const open =
      view &&
      (await openContribution(
        ch,
        { open: view.open, filters: p, since: p.start_date, until: p.end_date },
        snap,
      ));
    if (view && open) {
      // The filter's index is kept while the sealed days stay the same, whatever else moves (usage-pairs-index.ts),
      // and sums each family's days before its open ones.
      const index = readyIndex(ch, p, state, snap, view);
      const sealed = index
        ? summaryFromIndex(index, p.start_date, p.end_date, view.open)
        : await pairsSummary(ch, p.start_date, p.end_date, p, view);
      const extra = open.get('');
      return {
        total_users: sealed.total_users + (extra?.seen ?? 0),
        active_users: sealed.active_users + (extra?.active ?? 0),
        total_sessions: sealed.total_sessions + (extra?.session ?? 0),
      };
    }
  }
  const byUser = p.user_id !== undefined && (await userDaysReady(ch, snap));
  // No per-query settings: on the embedded engine they would outlive the query. 64-bit counts may arrive as
  // strings (output_format_json_quote_64bit_integers), hence Number().
  const rs = await ch.client.query({ ...buildUsageSummaryQuery(p, byUser), format: 'JSONEachRow' });
  const [row] = await rs.json<Record<keyof UsageSummary, string | number>>();
  return {
    total_users: Number(row?.total_users ?? 0),
    active_users: Number(row?.active_users ?? 0),
    total_sessions: Number(row?.total_sessions ?? 0),
  };
}
