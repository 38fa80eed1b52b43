// Seeded request generators of the scale benchmark: each request a different range (days not aligned to
// months), filters drawn from the dataset's own users, teams and services. Pure functions of the seed, so a
// run can be repeated exactly and compared with another build.

/** A uniform number in [0, 1) from a 32-bit seed (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [lo, hi]. */
export const between = (r: () => number, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));

const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;

/** YYYY-MM-DD `n` days after `date` (UTC). */
export function addDays(date: string, n: number): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) + n * 86_400_000).toISOString().slice(0, 10);
}

/** Days from `a` to `b` (b − a). */
export const daysBetween = (a: string, b: string) =>
  Math.round((Date.parse(`${b}T00:00:00Z`) - Date.parse(`${a}T00:00:00Z`)) / 86_400_000);

/** True when the range starts on a month's first day or ends on a month's last day. */
export function touchesMonthEdge(start: string, end: string): boolean {
  return start.endsWith('-01') || addDays(end, 1).endsWith('-01');
}

export interface Range {
  start_date: string;
  end_date: string;
}

/**
 * A range of 1..maxDays days inside [first, first + days), length uniform, starting on no month's first day
 * and ending on no month's last day (a tier of months must not cover it whole).
 */
export function randomRange(r: () => number, first: string, days: number, maxDays = days): Range {
  for (;;) {
    const len = between(r, 1, Math.min(maxDays, days - 2));
    const offset = between(r, 0, days - len);
    const start_date = addDays(first, offset);
    const end_date = addDays(start_date, len - 1);
    if (!touchesMonthEdge(start_date, end_date)) return { start_date, end_date };
  }
}

export interface Domain {
  /** The first day of the data and how many days it spans. */
  first: string;
  days: number;
  users: number;
  /** Users 0 … heavyUsers−1 carry most events; the rest are the long tail (may equal `users`). */
  heavyUsers: number;
  teams: number;
  services: readonly string[];
  logServices: readonly string[];
}

export type Params = Record<string, string>;

export interface Request {
  /** What kind of request this is (a filter combination, a page position): reported per kind. */
  kind: string;
  path: string;
  params: Params;
}

export const SUMMARY_FILTERS = [
  'team',
  'service',
  'user',
  'team+service',
  'user+service',
  'team+service+user',
] as const;
export type SummaryFilter = (typeof SUMMARY_FILTERS)[number];

// A user drawn half from the heavy users and half from the tail, with the team the datasets give it
// (user u is in team u mod teams); its service is any, so some filtered answers are empty, as in real use.
function randomUser(r: () => number, d: Domain): { user_id: string; team_id: string } {
  const heavy = d.heavyUsers >= d.users || r() < 0.5;
  const u = heavy ? between(r, 0, d.heavyUsers - 1) : between(r, d.heavyUsers, d.users - 1);
  return { user_id: `user-${u}`, team_id: `team-${u % d.teams}` };
}

export function summaryFilter(r: () => number, d: Domain, kind: SummaryFilter): Params {
  const p: Params = {};
  const user = randomUser(r, d);
  if (kind.includes('user')) p.user_id = user.user_id;
  if (kind.includes('team'))
    p.team_id = kind.includes('user') ? user.team_id : `team-${between(r, 0, d.teams - 1)}`;
  if (kind.includes('service')) p.service = pick(r, d.services);
  return p;
}

export const query = (p: Params) => new URLSearchParams(p).toString();

/** `n` requests, all different, made by `make` (which may repeat itself: repeats are drawn again). */
export function distinct(n: number, make: () => Request, maxTries = n * 50): Request[] {
  const seen = new Set<string>();
  const out: Request[] = [];
  for (let i = 0; out.length < n && i < maxTries; i++) {
    const q = make();
    const key = `${q.path}?${query(q.params)}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(q);
  }
  if (out.length < n) throw new Error(`only ${out.length} distinct requests of ${n}`);
  return out;
}

/** usage-summary over random ranges up to the whole year, unfiltered or with every filter kind in turn. */
export function summaryRequests(seed: number, n: number, d: Domain, filtered: boolean): Request[] {
  const r = rng(seed);
  let i = 0;
  return distinct(n, () => {
    const kind = filtered ? SUMMARY_FILTERS[i++ % SUMMARY_FILTERS.length] : undefined;
    const params = { ...randomRange(r, d.first, d.days), ...(kind ? summaryFilter(r, d, kind) : {}) };
    return { kind: kind ?? 'none', path: '/reports/usage-summary', params };
  });
}

/** usage-timeseries by week over 365 days, starting in the month before the data, unfiltered or one filter. */
export function timeseriesRequests(seed: number, n: number, d: Domain): Request[] {
  const r = rng(seed);
  return distinct(n, () => {
    const start_date = addDays(d.first, -between(r, 0, 31));
    const params: Params = { start_date, end_date: addDays(start_date, 364), interval: 'week' };
    const x = r();
    let kind = 'none';
    if (x >= 0.5 && x < 0.75) {
      kind = 'team';
      params.team_id = `team-${between(r, 0, d.teams - 1)}`;
    } else if (x >= 0.75) {
      kind = 'service';
      params.service = pick(r, d.services);
    }
    return { kind, path: '/reports/usage-timeseries', params };
  });
}

export type PagePosition = 'first' | 'middle' | 'last';
export const PAGE_POSITIONS: readonly PagePosition[] = ['first', 'middle', 'last'];
export const SEVERITIES = ['info', 'warning', 'error'] as const;

export interface LogsRequest {
  kind: string;
  position: PagePosition;
  /** Filters only: the harness asks `limit=1` first to learn how many logs match, then sets the page. */
  filters: Params;
  /** Where a middle page falls (1..1,000,000), see pageFor. */
  at: number;
}

/**
 * system-events with limit 100: page first, middle or last in turn; severity and service each in half of the
 * requests, a random date range in half; all different (a middle page's place counts).
 */
export function logsRequests(seed: number, n: number, d: Domain): LogsRequest[] {
  const r = rng(seed);
  let i = 0;
  return distinct(n, () => {
    const position = PAGE_POSITIONS[i++ % PAGE_POSITIONS.length] as PagePosition;
    const filters: Params = {};
    if (r() < 0.5) filters.severity = pick(r, SEVERITIES);
    if (r() < 0.5) filters.service = pick(r, d.logServices);
    if (r() < 0.5) Object.assign(filters, randomRange(r, d.first, d.days));
    const kind = `${position} page, ${Object.keys(filters).length === 0 ? 'no filter' : 'filtered'}`;
    const at = position === 'middle' ? between(r, 1, 1_000_000) : 0;
    return { kind, path: '/logs/system-events', params: { ...filters, position, at: String(at) } };
  }).map((q) => {
    const { position, at, ...filters } = q.params;
    return { kind: q.kind, position: position as PagePosition, filters, at: Number(at) };
  });
}

/** The page of a position, given how many logs match: first 1, last ceil(n/limit), middle anywhere between. */
export function pageFor(position: PagePosition, matching: number, limit: number, at: number): number {
  const pages = Math.max(1, Math.ceil(matching / limit));
  if (position === 'first') return 1;
  if (position === 'last') return pages;
  // Middle: within the middle third, placed by `at` (1..1,000,000).
  const lo = Math.floor(pages / 3) + 1;
  const hi = Math.max(lo, Math.ceil((2 * pages) / 3));
  return lo + (at % (hi - lo + 1));
}

/**
 * The dashboard mix: a summary (random range, a filter in half), a timeseries (random range, by day up to 60
 * days, by week beyond) and a logs page 1 (random range), in turn.
 */
export function dashboardRequests(seed: number, n: number, d: Domain): Request[] {
  const r = rng(seed);
  let i = 0;
  return distinct(n, () => {
    const range = randomRange(r, d.first, d.days);
    switch (i++ % 3) {
      case 0: {
        const kind = r() < 0.5 ? undefined : pick(r, SUMMARY_FILTERS);
        const params = { ...range, ...(kind ? summaryFilter(r, d, kind) : {}) };
        return { kind: 'usage-summary', path: '/reports/usage-summary', params };
      }
      case 1: {
        const interval = daysBetween(range.start_date, range.end_date) < 60 ? 'day' : 'week';
        return {
          kind: 'usage-timeseries',
          path: '/reports/usage-timeseries',
          params: { ...range, interval },
        };
      }
      default:
        return {
          kind: 'system-events page 1',
          path: '/logs/system-events',
          params: { ...range, limit: '100' },
        };
    }
  });
}
