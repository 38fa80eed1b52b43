// GET /reports/usage-timeseries: active users and sessions per day, week or month (optionally per team or
// service), from the daily rollup. Each row equals the usage summary of its clipped period and group.
import type { ClickHouse } from '../client.ts';
import { type Snapshot, UNVERSIONED } from '../derived-state.ts';
import { filterClause, type UsageFilters } from './filters.ts';
import { clippedPeriodStarts, type Interval } from './periods.ts';
import type { BuiltQuery } from './query.ts';
import { type OpenCounts, type OpenWindow, openContribution } from './usage-open-day.ts';
import { addDays, levelOf, type SealedView, sealState, userDaysReady, viewOf } from './usage-pairs.ts';
import { readyIndex, timeseriesFromIndex } from './usage-pairs-index.ts';

export type { Interval } from './periods.ts';
export type GroupBy = 'team' | 'service';

export interface UsageTimeseriesParams extends UsageFilters {
  start_date: string;
  end_date: string;
  interval: Interval;
  group_by?: GroupBy | undefined;
}

export interface TimeseriesRow {
  period: string;
  team_id?: string;
  service?: string;
  active_users: number;
  total_sessions: number;
}

// Fixed SQL per interval and group: chosen from closed sets, never from request text.
const PERIOD_SQL: Record<Interval, string> = {
  day: 'day',
  week: 'greatest(toStartOfWeek(day, 1), {start_date:Date})',
  month: 'greatest(toStartOfMonth(day), {start_date:Date})',
};
const GROUP_COLUMN: Record<GroupBy, 'team_id' | 'service'> = { team: 'team_id', service: 'service' };

// A period's active users are the distinct users with active = 1 on any of its days (active is a max()
// partial before merges, so one row with 1 is enough); its sessions merge the days' exact sets.
export function buildUsageTimeseriesQuery(p: UsageTimeseriesParams, byUser = false): BuiltQuery {
  const f = filterClause(p);
  const group = p.group_by === undefined ? undefined : GROUP_COLUMN[p.group_by];
  const groupSelect = group ? `, ${group} AS grp` : '';
  const groupKey = group ? ', grp' : '';
  // Grouped answers list only the (period, group) cells with activity; ungrouped ones fill every period.
  const having = group ? '\n    HAVING active_users > 0' : '';
  const query = `
    SELECT toString(${PERIOD_SQL[p.interval]}) AS period${groupSelect},
      uniqExactIf(user_id, active = 1) AS active_users,
      uniqExactMerge(sessions) AS total_sessions
    FROM ${byUser ? 'usage_user_days' : 'usage_daily'}
    WHERE day BETWEEN {start_date:Date} AND {end_date:Date}${f.sql}
    GROUP BY period${groupKey}${having}
    ORDER BY period${groupKey}`;
  return { query, query_params: { start_date: p.start_date, end_date: p.end_date, ...f.params } };
}

/**
 * The same rows from the sealed pairs (usage-pairs.ts): a period's distinct users or sessions are its points
 * whose previous point is before the period's (clipped) first day. A grouped series reads the level of its
 * group (team or service, crossed with the other filter), every key of it.
 */
export function buildPairsTimeseriesQuery(p: UsageTimeseriesParams, view: SealedView): BuiltQuery {
  const group = p.group_by === undefined ? undefined : GROUP_COLUMN[p.group_by];
  const { level } = levelOf({
    team_id: p.team_id ?? (p.group_by === 'team' ? '' : undefined),
    service: p.service ?? (p.group_by === 'service' ? '' : undefined),
  });
  const params: Record<string, string | number> = {
    level,
    start_date: p.start_date,
    end_date: p.end_date,
    keys: `[${view.keys.join(',')}]`,
    prefixes: `[${view.prefixes.join(',')}]`,
  };
  // The key columns the level does not group by are fixed: the filter's value, or '' at a coarser level.
  let keySql = '';
  for (const col of ['team_id', 'service'] as const) {
    if (col === group) {
      if (p[col] !== undefined) {
        keySql += ` AND ${col} = {${col}:String}`;
        params[col] = p[col];
      }
      continue;
    }
    keySql += ` AND ${col} = {${col}:String}`;
    params[col] = p[col] ?? '';
  }
  const groupSelect = group ? `, ${group} AS grp` : '';
  const groupKey = group ? ', grp' : '';
  // Open days' active users are added after (usage-open-day.ts): a cell whose actives are all there still has
  // its sessions here, and the cells without activity are dropped once both are added.
  const having = group ? '\n    HAVING active_users > 0 OR total_sessions > 0' : '';
  const query = `
    SELECT toString(${PERIOD_SQL[p.interval]}) AS period${groupSelect},
      sumIf(n, family = 'active') AS active_users,
      sumIf(n, family = 'session') AS total_sessions
    FROM usage_pairs FINAL
    WHERE family IN ('active', 'session') AND level = {level:String}${keySql}
      AND day BETWEEN {start_date:Date} AND {end_date:Date}
      AND prev < ${PERIOD_SQL[p.interval]}
      AND prefix = transform(toUInt64(toUInt8(family)) * 65536 + toUInt32(day), {keys:Array(UInt64)},
        {prefixes:Array(UInt64)}, toUInt64(0))
    GROUP BY period${groupKey}${having}
    ORDER BY period${groupKey}
    SETTINGS max_threads = 1`;
  return { query, query_params: params };
}

interface Row {
  period: string;
  grp?: string;
  active_users: string | number;
  total_sessions: string | number;
}

export async function usageTimeseries(
  ch: ClickHouse,
  p: UsageTimeseriesParams,
  snap: Snapshot = UNVERSIONED,
): Promise<TimeseriesRow[]> {
  // From the sealed pairs when every day is sealed but at most each family's last one (added from its points'
  // previous points, usage-open-day.ts) and no user is asked for (an ungrouped series summed in memory from
  // the filter's pairs once loaded at this data version, see readyIndex); a user's from their rows of
  // usage_user_days once back-filled; else from the daily rollup.
  const state = p.user_id === undefined ? await sealState(ch, snap) : undefined;
  const sealed = state ? viewOf(state, p.start_date, p.end_date) : undefined;
  const starts = clippedPeriodStarts(p.start_date, p.end_date, p.interval);
  const open = sealed ? await openCells(ch, p, sealed.open, starts, snap) : undefined;
  const view = open ? sealed : undefined;
  // The filter's index sums each family's sealed days before its open ones (see usage-summary.ts).
  const index = state && view && p.group_by === undefined ? readyIndex(ch, p, state, snap, view) : undefined;
  if (index && view) {
    const values = timeseriesFromIndex(index, starts, p.end_date, view.open);
    return starts.map((period, k) => ({
      period,
      active_users: (values[k]?.active_users ?? 0) + (open?.get(cellKey(period, ''))?.active ?? 0),
      total_sessions: (values[k]?.total_sessions ?? 0) + (open?.get(cellKey(period, ''))?.session ?? 0),
    }));
  }
  const byUser = p.user_id !== undefined && (await userDaysReady(ch, snap));
  const q = view ? buildPairsTimeseriesQuery(p, view) : buildUsageTimeseriesQuery(p, byUser);
  const rs = await ch.client.query({ ...q, format: 'JSONEachRow' });
  const rows = await rs.json<Row>();
  if (p.group_by !== undefined) {
    const key = GROUP_COLUMN[p.group_by];
    const cells = new Map(
      rows.map((r) => [
        cellKey(r.period, r.grp ?? ''),
        {
          period: r.period,
          grp: r.grp ?? '',
          active: Number(r.active_users),
          session: Number(r.total_sessions),
        },
      ]),
    );
    for (const [k, c] of open ?? []) {
      const [period, grp] = JSON.parse(k) as [string, string];
      const cell = cells.get(k) ?? { period, grp, active: 0, session: 0 };
      cell.active += c.active;
      cell.session += c.session;
      cells.set(k, cell);
    }
    // As the SQL lists them: cells with activity, by period then group.
    return [...cells.values()]
      .filter((c) => c.active > 0)
      .sort((a, b) => (a.period === b.period ? cmp(a.grp, b.grp) : cmp(a.period, b.period)))
      .map((c) => ({ period: c.period, [key]: c.grp, active_users: c.active, total_sessions: c.session }));
  }
  const byPeriod = new Map(rows.map((r) => [r.period, r]));
  return starts.map((period) => {
    const r = byPeriod.get(period);
    const extra = open?.get(cellKey(period, ''));
    return {
      period,
      active_users: Number(r?.active_users ?? 0) + (extra?.active ?? 0),
      total_sessions: Number(r?.total_sessions ?? 0) + (extra?.session ?? 0),
    };
  });
}

// Byte order, as ClickHouse sorts strings.
const cmp = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

const cellKey = (period: string, grp: string): string => JSON.stringify([period, grp]);

/**
 * The open days' active users and sessions per (period, group) cell: in each period that holds one of them, the
 * entities whose first point in the period is on an open day; undefined when the daily rollup must answer
 * instead (openContribution). One computation per data version serves every period (usage-open-day.ts).
 */
async function openCells(
  ch: ClickHouse,
  p: UsageTimeseriesParams,
  open: readonly OpenWindow[],
  starts: readonly string[],
  snap: Snapshot,
): Promise<Map<string, OpenCounts> | undefined> {
  const out = new Map<string, OpenCounts>();
  const windows = open.filter((w) => w.family !== 'seen');
  const groupBy = p.group_by === undefined ? undefined : GROUP_COLUMN[p.group_by];
  for (const [k, since] of starts.entries()) {
    const next = starts[k + 1];
    const until = next === undefined ? p.end_date : addDays(next, -1);
    if (!windows.some((w) => w.days.some((d) => d >= since && d <= until))) continue;
    const cells = await openContribution(ch, { open: windows, filters: p, groupBy, since, until }, snap);
    if (!cells) return undefined;
    for (const [grp, c] of cells) out.set(cellKey(since, grp), c);
  }
  return out;
}
