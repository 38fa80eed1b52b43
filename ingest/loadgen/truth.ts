// Ground truth for the reports: the contract's answers computed in plain TypeScript from the events fed in.
import { parseEvent, type Severity, type UsageType } from '../../core/events.ts';
import { clippedPeriods, DAY_MS, formatDate, parseDate } from './dates.ts';
import {
  type Catalog,
  type LogQuery,
  type SummaryQuery,
  sampleLogQueries,
  sampleSummaryQueries,
  sampleTimeseriesQueries,
  type TimeseriesQuery,
  type UsageFilters,
} from './queries.ts';

export type { Interval } from './dates.ts';
export type { Catalog, LogQuery, SummaryQuery, TimeseriesQuery, UsageFilters } from './queries.ts';

export interface UsageSummary {
  total_users: number;
  active_users: number;
  total_sessions: number;
}

export interface TimeseriesRow {
  period: string;
  team_id?: string;
  service?: string;
  active_users: number;
  total_sessions: number;
}

export interface SystemEvent {
  timestamp: string;
  severity: Severity;
  message: string;
  service: string;
  event_id: string;
}

export interface SystemEventsPage {
  events: SystemEvent[];
  page: number;
  total_pages: number;
}

export interface ExportRow {
  date: string;
  team_id: string;
  active_users: number;
  total_sessions: number;
  total_users: number;
}

export type AddOutcome = 'accepted' | 'duplicate' | 'invalid';

interface UsageFact {
  day: number;
  type: UsageType;
  user: string;
  team: string;
  service: string;
  session: string;
}

interface LogFact {
  ms: number;
  day: number;
  event: SystemEvent;
}

/** Compares by Unicode code point, which is the UTF-8 byte order ClickHouse uses for String. */
export function compareBytes(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (astral code points) sort after every BMP unit in UTF-8, unlike in UTF-16.
    const sx = x >= 0xd800 && x <= 0xdfff;
    const sy = y >= 0xd800 && y <= 0xdfff;
    if (sx !== sy) return sx ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

const isActive = (type: UsageType) => type !== 'user_registered';

function matches(f: UsageFact, q: UsageFilters): boolean {
  return (
    (q.user_id === undefined || f.user === q.user_id) &&
    (q.team_id === undefined || f.team === q.team_id) &&
    (q.service === undefined || f.service === q.service)
  );
}

function range(start: string, end: string): [number, number] {
  const s = parseDate(start);
  const e = parseDate(end);
  if (s > e) throw new RangeError(`start_date ${start} is after end_date ${end}`);
  return [s, e];
}

function positiveInt(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be an integer >= 1`);
  return value;
}

export interface TruthOptions {
  /** The receiving clock for parseEvent's "not more than 24 hours ahead" rule; default Date.now(). */
  nowMs?: number;
}

/**
 * Fed with events (valid or not, duplicated or not), answers the report queries as the contract defines them.
 * Validity is parseEvent's; duplicates are by event_id across usage and logs, the first valid one wins, and an
 * invalid event does not claim its id.
 */
export class Truth {
  readonly stats = { accepted: 0, duplicates: 0, invalid: 0 };
  private readonly nowMs: number;
  private readonly ids = new Set<string>();
  private readonly usage: UsageFact[] = [];
  private readonly logs: LogFact[] = [];
  private newestFirst: LogFact[] | null = null;

  constructor(opts: TruthOptions = {}) {
    this.nowMs = opts.nowMs ?? Date.now();
  }

  add(event: unknown): AddOutcome {
    const parsed = parseEvent(event, this.nowMs);
    if (!parsed.ok) {
      this.stats.invalid++;
      return 'invalid';
    }
    const row = parsed.event.row;
    // The instant comes from JavaScript's own date parser, not from parseEvent's row: a time-zone slip in the
    // product's parser must not be repeated here, where it would go unseen.
    const ms = Date.parse((event as { timestamp: string }).timestamp);
    const day = Math.floor(ms / DAY_MS);
    if (this.ids.has(row.event_id)) {
      this.stats.duplicates++;
      return 'duplicate';
    }
    this.ids.add(row.event_id);
    this.stats.accepted++;
    if (parsed.event.kind === 'usage') {
      const u = parsed.event.row;
      this.usage.push({
        day,
        type: u.type,
        user: u.user_id,
        team: u.team_id,
        service: u.service,
        session: u.session_id,
      });
    } else {
      const l = parsed.event.row;
      const iso = new Date(ms).toISOString();
      this.logs.push({
        ms,
        day,
        event: {
          timestamp: iso,
          severity: l.severity,
          message: l.message,
          service: l.service,
          event_id: l.event_id,
        },
      });
      this.newestFirst = null;
    }
    return 'accepted';
  }

  addAll(events: Iterable<unknown>): this {
    for (const e of events) this.add(e);
    return this;
  }

  /** A raw message as the Kafka consumer sees it: text that is not JSON counts as invalid. */
  addText(text: string): AddOutcome {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      this.stats.invalid++;
      return 'invalid';
    }
    return this.add(value);
  }

  usageSummary(q: SummaryQuery): UsageSummary {
    const [start, end] = range(q.start_date, q.end_date);
    const total = new Set<string>();
    const active = new Set<string>();
    const sessions = new Set<string>();
    for (const f of this.usage) {
      if (f.day > end || !matches(f, q)) continue;
      total.add(f.user);
      if (f.day < start) continue;
      if (isActive(f.type)) active.add(f.user);
      if (f.type === 'session_start') sessions.add(f.session);
    }
    return { total_users: total.size, active_users: active.size, total_sessions: sessions.size };
  }

  /**
   * One row per clipped period; `period` is the later of the period's first day and start_date. Ungrouped: every
   * period, zeros included. Grouped: only (period, group) pairs with at least one active user (a session start is
   * itself activity, so this is also "active users or sessions"). Sorted by period, then group in byte order.
   */
  usageTimeseries(q: TimeseriesQuery): TimeseriesRow[] {
    const [start, end] = range(q.start_date, q.end_date);
    const periods = clippedPeriods(start, end, q.interval);
    const periodOf = new Int32Array(end - start + 1);
    for (const [i, [first, last]] of periods.entries()) periodOf.fill(i, first - start, last - start + 1);
    const cells = new Map<
      string,
      { period: number; group: string; users: Set<string>; sessions: Set<string> }
    >();
    for (const f of this.usage) {
      if (f.day < start || f.day > end || !isActive(f.type) || !matches(f, q)) continue;
      const period = periodOf[f.day - start] as number;
      const group = q.group_by === 'team' ? f.team : q.group_by === 'service' ? f.service : '';
      const key = `${period}\u0000${group}`;
      let cell = cells.get(key);
      if (!cell) {
        cell = { period, group, users: new Set(), sessions: new Set() };
        cells.set(key, cell);
      }
      cell.users.add(f.user);
      if (f.type === 'session_start') cell.sessions.add(f.session);
    }
    if (q.group_by === undefined) {
      return periods.map(([first], i) => {
        const cell = cells.get(`${i}\u0000`);
        return {
          period: formatDate(first),
          active_users: cell?.users.size ?? 0,
          total_sessions: cell?.sessions.size ?? 0,
        };
      });
    }
    const key = q.group_by === 'team' ? 'team_id' : 'service';
    return [...cells.values()]
      .sort((a, b) => a.period - b.period || compareBytes(a.group, b.group))
      .map((c) => ({
        period: formatDate((periods[c.period] as [number, number])[0]),
        [key]: c.group,
        active_users: c.users.size,
        total_sessions: c.sessions.size,
      }));
  }

  /**
   * Rows for the usage-summary export: every date in [start, end] x every team with at least one matching usage
   * event on or before that date (i.e. exactly the pairs whose total_users is > 0), sorted by date then team_id.
   */
  usageExportRows(start_date: string, end_date: string, filters: UsageFilters = {}): ExportRow[] {
    const [start, end] = range(start_date, end_date);
    const firstSeen = new Map<string, Map<string, number>>(); // team -> user -> first day
    const daily = new Map<string, { users: Set<string>; sessions: Set<string> }>(); // `${day}|${team}`
    for (const f of this.usage) {
      if (f.day > end || !matches(f, filters)) continue;
      let users = firstSeen.get(f.team);
      if (!users) {
        users = new Map();
        firstSeen.set(f.team, users);
      }
      const seen = users.get(f.user);
      if (seen === undefined || f.day < seen) users.set(f.user, f.day);
      if (f.day < start || !isActive(f.type)) continue;
      const key = `${f.day}|${f.team}`;
      let cell = daily.get(key);
      if (!cell) {
        cell = { users: new Set(), sessions: new Set() };
        daily.set(key, cell);
      }
      cell.users.add(f.user);
      if (f.type === 'session_start') cell.sessions.add(f.session);
    }
    const teams = [...firstSeen.keys()].sort(compareBytes).map((team) => ({
      team,
      firsts: [...(firstSeen.get(team) as Map<string, number>).values()].sort((a, b) => a - b),
      reached: 0,
    }));
    const rows: ExportRow[] = [];
    for (let day = start; day <= end; day++) {
      for (const t of teams) {
        while (t.reached < t.firsts.length && (t.firsts[t.reached] as number) <= day) t.reached++;
        if (t.reached === 0) continue;
        const cell = daily.get(`${day}|${t.team}`);
        rows.push({
          date: formatDate(day),
          team_id: t.team,
          active_users: cell?.users.size ?? 0,
          total_sessions: cell?.sessions.size ?? 0,
          total_users: t.reached,
        });
      }
    }
    return rows;
  }

  /** Newest first (timestamp desc, then event_id desc in byte order); `limit` defaults to 100, `page` to 1. */
  systemEvents(q: LogQuery = {}): SystemEventsPage {
    const limit = positiveInt(q.limit ?? 100, 'limit');
    const page = positiveInt(q.page ?? 1, 'page');
    const all = this.logExportRows(q);
    return {
      events: all.slice((page - 1) * limit, page * limit),
      page,
      total_pages: Math.ceil(all.length / limit),
    };
  }

  countLogs(q: Omit<LogQuery, 'limit' | 'page'> = {}): number {
    return this.logExportRows(q).length;
  }

  /** Every matching log, newest first: the system-events export's rows (before CSV escaping). */
  logExportRows(q: Omit<LogQuery, 'limit' | 'page'> = {}): SystemEvent[] {
    const start = q.start_date === undefined ? Number.NEGATIVE_INFINITY : parseDate(q.start_date);
    const end = q.end_date === undefined ? Number.POSITIVE_INFINITY : parseDate(q.end_date);
    const out: SystemEvent[] = [];
    for (const l of this.sortedLogs()) {
      if (l.day < start || l.day > end) continue;
      if (q.severity !== undefined && l.event.severity !== q.severity) continue;
      if (q.service !== undefined && l.event.service !== q.service) continue;
      out.push({ ...l.event });
    }
    return out;
  }

  /** What the fed data contains, sorted, for building queries. */
  catalog(): Catalog {
    const users = new Map<string, number>();
    const teams = new Set<string>();
    const services = new Set<string>();
    const pairs = new Set<string>();
    let first = Number.POSITIVE_INFINITY;
    let last = Number.NEGATIVE_INFINITY;
    for (const f of this.usage) {
      users.set(f.user, (users.get(f.user) ?? 0) + 1);
      teams.add(f.team);
      services.add(f.service);
      pairs.add(`${f.user}\u0000${f.team}`);
      first = Math.min(first, f.day);
      last = Math.max(last, f.day);
    }
    for (const l of this.logs) {
      first = Math.min(first, l.day);
      last = Math.max(last, l.day);
    }
    const byActivity = [...users.entries()].sort((a, b) => b[1] - a[1] || compareBytes(a[0], b[0]));
    const fallback = parseDate('2025-01-01');
    return {
      firstDate: formatDate(Number.isFinite(first) ? first : fallback),
      lastDate: formatDate(Number.isFinite(last) ? last : fallback),
      users: [...users.keys()].sort(compareBytes),
      heavyUsers: byActivity.slice(0, 5).map(([u]) => u),
      teams: [...teams].sort(compareBytes),
      services: [...services].sort(compareBytes),
      memberships: [...pairs].sort(compareBytes).map((p) => p.split('\u0000') as [string, string]),
      logServices: [...new Set(this.logs.map((l) => l.event.service))].sort(compareBytes),
    };
  }

  /** A varied, deterministic list of usage-summary queries over this data (see queries.ts). */
  sampleQueries(n: number, seed: number): SummaryQuery[] {
    return sampleSummaryQueries(this.catalog(), n, seed);
  }

  sampleTimeseriesQueries(n: number, seed: number): TimeseriesQuery[] {
    return sampleTimeseriesQueries(this.catalog(), n, seed);
  }

  sampleLogQueries(n: number, seed: number): LogQuery[] {
    return sampleLogQueries(this.catalog(), n, seed);
  }

  private sortedLogs(): LogFact[] {
    this.newestFirst ??= [...this.logs].sort(
      (a, b) => b.ms - a.ms || compareBytes(b.event.event_id, a.event.event_id),
    );
    return this.newestFirst;
  }
}
