// The expected answers of the report routes for a generated dataset, computed by the truth (plain TypeScript,
// no ClickHouse): `npm run loadgen -- ... --answers FILE` writes them so anyone can check a running service.
import type { LogQuery, SummaryQuery, TimeseriesQuery, Truth } from './truth.ts';

export interface Answer {
  /** The request, ready to append to the service's origin. */
  path: string;
  /** The JSON body the route must answer (system-events: without next_cursor, which is opaque). */
  expected: unknown;
}

type Params = Record<string, string | number | undefined>;

function pathOf(route: string, params: Params): string {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) qs.set(k, String(v));
  return `${route}?${qs}`;
}

const SUMMARY = '/reports/usage-summary';
const TIMESERIES = '/reports/usage-timeseries';
const LOGS = '/logs/system-events';

/** The answer to one request path of a report route; throws on a route or parameter it cannot answer. */
export function answerFor(truth: Truth, path: string): Answer {
  const url = new URL(path, 'http://answers.invalid');
  const p = Object.fromEntries(url.searchParams);
  const need = (name: string): string => {
    const v = p[name];
    if (v === undefined) throw new RangeError(`${url.pathname} needs ${name}`);
    return v;
  };
  const usageFilters = {
    ...(p.user_id !== undefined ? { user_id: p.user_id } : {}),
    ...(p.team_id !== undefined ? { team_id: p.team_id } : {}),
    ...(p.service !== undefined ? { service: p.service } : {}),
  };
  switch (url.pathname) {
    case SUMMARY: {
      const q: SummaryQuery = { start_date: need('start_date'), end_date: need('end_date'), ...usageFilters };
      return { path, expected: truth.usageSummary(q) };
    }
    case TIMESERIES: {
      const interval = need('interval');
      if (interval !== 'day' && interval !== 'week' && interval !== 'month')
        throw new RangeError('interval must be day, week or month');
      const group_by = p.group_by;
      if (group_by !== undefined && group_by !== 'team' && group_by !== 'service')
        throw new RangeError('group_by must be team or service');
      const q: TimeseriesQuery = {
        start_date: need('start_date'),
        end_date: need('end_date'),
        interval,
        ...(group_by ? { group_by } : {}),
        ...usageFilters,
      };
      return { path, expected: { rows: truth.usageTimeseries(q) } };
    }
    case LOGS: {
      const severity = p.severity;
      if (severity !== undefined && severity !== 'info' && severity !== 'warning' && severity !== 'error')
        throw new RangeError('severity must be info, warning or error');
      const q: LogQuery = {
        ...(severity ? { severity } : {}),
        ...(p.service !== undefined ? { service: p.service } : {}),
        ...(p.start_date !== undefined ? { start_date: p.start_date } : {}),
        ...(p.end_date !== undefined ? { end_date: p.end_date } : {}),
        ...(p.limit !== undefined ? { limit: Number(p.limit) } : {}),
        ...(p.page !== undefined ? { page: Number(p.page) } : {}),
      };
      return { path, expected: truth.systemEvents(q) };
    }
    default:
      throw new RangeError(`no answers for ${url.pathname}: ${SUMMARY}, ${TIMESERIES} or ${LOGS}`);
  }
}

/** `perRoute` sampled requests of each report route over the data (deterministic for a seed), answered. */
export function sampledAnswers(truth: Truth, perRoute: number, seed: number): Answer[] {
  const out: Answer[] = [];
  for (const q of truth.sampleQueries(perRoute, seed)) out.push(answerFor(truth, pathOf(SUMMARY, { ...q })));
  for (const q of truth.sampleTimeseriesQueries(perRoute, seed))
    out.push(answerFor(truth, pathOf(TIMESERIES, { ...q })));
  for (const q of truth.sampleLogQueries(perRoute, seed)) out.push(answerFor(truth, pathOf(LOGS, { ...q })));
  return out;
}
