// Query shapes of the report routes, and deterministic samplers of interesting cases over a dataset.
import type { Severity } from '../../core/events.ts';
import { formatDate, type Interval, parseDate } from './dates.ts';
import { Rng } from './random.ts';

/** An event matches when each given filter equals its field; an absent (undefined) filter matches all. */
export interface UsageFilters {
  user_id?: string;
  team_id?: string;
  service?: string;
}

export interface SummaryQuery extends UsageFilters {
  start_date: string;
  end_date: string;
}

export interface TimeseriesQuery extends SummaryQuery {
  interval: Interval;
  group_by?: 'team' | 'service';
}

export interface LogQuery {
  severity?: Severity;
  service?: string;
  start_date?: string;
  end_date?: string;
  limit?: number;
  page?: number;
}

/** What a dataset holds, sorted, so that samplers are deterministic whatever the feeding order. */
export interface Catalog {
  firstDate: string;
  lastDate: string;
  users: string[];
  /** The most active users first. */
  heavyUsers: string[];
  teams: string[];
  services: string[];
  /** [user_id, team_id] pairs seen together. */
  memberships: Array<[string, string]>;
  logServices: string[];
}

const UNKNOWN_USER = 'user-does-not-exist';
const UNKNOWN_TEAM = 'team-does-not-exist';
const UNKNOWN_SERVICE = 'service-does-not-exist';

/** Picks over a catalog, falling back to unknown ids when the data is empty. */
class Picker {
  readonly first: number;
  readonly last: number;

  constructor(
    readonly cat: Catalog,
    readonly rng: Rng,
  ) {
    this.first = parseDate(cat.firstDate);
    this.last = parseDate(cat.lastDate);
  }

  day(): number {
    return this.rng.int(this.first, this.last);
  }

  /** A range of about `len` days inside the data. */
  span(len: number): { start_date: string; end_date: string } {
    const s = this.rng.int(this.first, Math.max(this.first, this.last - len + 1));
    return { start_date: formatDate(s), end_date: formatDate(Math.min(s + len - 1, this.last)) };
  }

  whole(): { start_date: string; end_date: string } {
    return { start_date: formatDate(this.first), end_date: formatDate(this.last) };
  }

  single(day: number): { start_date: string; end_date: string } {
    return { start_date: formatDate(day), end_date: formatDate(day) };
  }

  user(): string {
    return this.cat.users.length ? this.rng.pick(this.cat.users) : UNKNOWN_USER;
  }

  heavyUser(): string {
    return this.cat.heavyUsers.length ? this.rng.pick(this.cat.heavyUsers) : UNKNOWN_USER;
  }

  team(): string {
    return this.cat.teams.length ? this.rng.pick(this.cat.teams) : UNKNOWN_TEAM;
  }

  service(): string {
    return this.cat.services.length ? this.rng.pick(this.cat.services) : UNKNOWN_SERVICE;
  }

  membership(): [string, string] {
    return this.cat.memberships.length ? this.rng.pick(this.cat.memberships) : [UNKNOWN_USER, UNKNOWN_TEAM];
  }

  /** A real team the user never acted for (an empty answer), or an unknown team. */
  foreignTeam(user: string): string {
    const own = new Set(this.cat.memberships.filter(([u]) => u === user).map(([, t]) => t));
    const others = this.cat.teams.filter((t) => !own.has(t));
    return others.length ? this.rng.pick(others) : UNKNOWN_TEAM;
  }

  filters(): UsageFilters {
    switch (this.rng.int(0, 5)) {
      case 0:
        return {};
      case 1:
        return { user_id: this.rng.chance(0.5) ? this.heavyUser() : this.user() };
      case 2:
        return { team_id: this.team() };
      case 3:
        return { service: this.service() };
      case 4:
        return { team_id: this.team(), service: this.service() };
      default: {
        const [user_id, team_id] = this.membership();
        return { user_id, team_id };
      }
    }
  }

  range(): { start_date: string; end_date: string } {
    const r = this.rng.next();
    if (r < 0.25) return this.single(this.day());
    if (r < 0.45) return this.span(7);
    if (r < 0.7) return this.span(30);
    if (r < 0.85) return this.whole();
    // Reaching outside the data on one side.
    const inside = this.day();
    return this.rng.chance(0.5)
      ? { start_date: formatDate(this.first - this.rng.int(1, 20)), end_date: formatDate(inside) }
      : { start_date: formatDate(inside), end_date: formatDate(this.last + this.rng.int(1, 20)) };
  }
}

function fill<T>(fixed: T[], n: number, more: () => T): T[] {
  const out = fixed.slice(0, n);
  while (out.length < n) out.push(more());
  return out;
}

/**
 * Usage-summary cases: the whole range, single days (first, last, any), ranges before and after the data or
 * straddling its edges, month boundaries, and filters none / user / team / service / team+service / user+team /
 * user with a foreign team / unknown ids. The first ~20 are fixed archetypes, the rest random mixes.
 */
export function sampleSummaryQueries(cat: Catalog, n: number, seed: number): SummaryQuery[] {
  const p = new Picker(cat, new Rng(seed, 'summary-queries'));
  const [memberUser, memberTeam] = p.membership();
  const heavy = p.heavyUser();
  const firstMonthEnd = parseDate(`${cat.firstDate.slice(0, 8)}01`) + 27; // day 28: reaches into next month
  const fixed: SummaryQuery[] = [
    p.whole(),
    p.single(p.day()),
    { start_date: formatDate(p.first - 60), end_date: formatDate(p.first - 1) },
    { start_date: formatDate(p.last + 1), end_date: formatDate(p.last + 30) },
    { ...p.span(30), team_id: p.team() },
    { ...p.span(7), service: p.service() },
    { ...p.whole(), user_id: heavy },
    { ...p.span(45), team_id: p.team(), service: p.service() },
    { ...p.span(60), user_id: memberUser, team_id: memberTeam },
    { ...p.whole(), user_id: UNKNOWN_USER },
    { ...p.whole(), team_id: UNKNOWN_TEAM },
    { ...p.whole(), user_id: memberUser, team_id: p.foreignTeam(memberUser) },
    p.single(p.first),
    p.single(p.last),
    { start_date: formatDate(p.first - 10), end_date: formatDate(p.first + 5) },
    { ...p.single(p.day()), team_id: p.team() },
    { ...p.whole(), service: UNKNOWN_SERVICE },
    { ...p.span(20), user_id: p.user(), service: p.service() },
    { start_date: formatDate(firstMonthEnd), end_date: formatDate(firstMonthEnd + 10), team_id: p.team() },
    { ...p.single(p.day()), user_id: heavy },
    { ...p.whole(), team_id: p.team(), service: UNKNOWN_SERVICE },
  ];
  return fill(fixed, n, () => ({ ...p.range(), ...p.filters() }));
}

/** Usage-timeseries cases: every interval, ungrouped and grouped, ranges starting mid-week and mid-month. */
export function sampleTimeseriesQueries(cat: Catalog, n: number, seed: number): TimeseriesQuery[] {
  const p = new Picker(cat, new Rng(seed, 'timeseries-queries'));
  const midWeek = p.first + 2;
  const midMonth = parseDate(`${cat.firstDate.slice(0, 8)}01`) + 14;
  const fixed: TimeseriesQuery[] = [
    { ...p.whole(), interval: 'day' },
    { ...p.whole(), interval: 'week' },
    { ...p.whole(), interval: 'month' },
    { ...p.whole(), interval: 'week', group_by: 'team' },
    { ...p.whole(), interval: 'month', group_by: 'service' },
    { start_date: formatDate(midWeek), end_date: formatDate(midWeek + 23), interval: 'week' },
    {
      start_date: formatDate(midMonth),
      end_date: formatDate(midMonth + 50),
      interval: 'month',
      group_by: 'team',
    },
    { ...p.single(p.day()), interval: 'week' },
    { ...p.span(10), interval: 'day', group_by: 'service' },
    { ...p.span(40), interval: 'week', group_by: 'service', team_id: p.team() },
    { ...p.span(14), interval: 'day', group_by: 'team', service: p.service() },
    { ...p.whole(), interval: 'month', user_id: p.heavyUser() },
    { start_date: formatDate(p.first - 30), end_date: formatDate(p.first - 1), interval: 'week' },
    {
      start_date: formatDate(p.first - 5),
      end_date: formatDate(p.first + 12),
      interval: 'week',
      group_by: 'team',
    },
  ];
  const intervals: Interval[] = ['day', 'week', 'month'];
  const groups = [undefined, 'team', 'service'] as const;
  return fill(fixed, n, () => {
    const q: TimeseriesQuery = { ...p.range(), ...p.filters(), interval: p.rng.pick(intervals) };
    const group_by = p.rng.pick(groups);
    if (group_by) q.group_by = group_by;
    return q;
  });
}

/** System-events cases: defaults, paging (including past the end), severity, service and date filters. */
export function sampleLogQueries(cat: Catalog, n: number, seed: number): LogQuery[] {
  const p = new Picker(cat, new Rng(seed, 'log-queries'));
  const service = () => (cat.logServices.length ? p.rng.pick(cat.logServices) : UNKNOWN_SERVICE);
  const severities: Severity[] = ['info', 'warning', 'error'];
  const day = formatDate(p.day());
  const fixed: LogQuery[] = [
    {},
    { limit: 10 },
    { limit: 10, page: 2 },
    { limit: 1000 },
    { severity: 'error' },
    { severity: 'warning', limit: 50, page: 3 },
    { service: service() },
    { service: service(), severity: 'error', limit: 20 },
    { start_date: day, end_date: day },
    { start_date: formatDate(p.day()) },
    { end_date: formatDate(p.day()), limit: 7 },
    { limit: 1000, page: 10_000 },
    { start_date: formatDate(p.first - 30), end_date: formatDate(p.first - 1) },
    { service: UNKNOWN_SERVICE },
    { ...p.span(7), severity: 'info', limit: 25, page: 2 },
  ];
  return fill(fixed, n, () => {
    const q: LogQuery = { limit: p.rng.pick([1, 5, 10, 100, 1000]), page: p.rng.int(1, 5) };
    if (p.rng.chance(0.4)) q.severity = p.rng.pick(severities);
    if (p.rng.chance(0.4)) q.service = service();
    if (p.rng.chance(0.5)) Object.assign(q, p.range());
    return q;
  });
}
