import { describe, expect, it } from 'vitest';
import {
  addDays,
  type Domain,
  dashboardRequests,
  daysBetween,
  logsRequests,
  pageFor,
  query,
  randomRange,
  rng,
  summaryRequests,
  timeseriesRequests,
  touchesMonthEdge,
} from './scale-requests.ts';

const domain: Domain = {
  first: '2025-01-01',
  days: 365,
  users: 100_000,
  heavyUsers: 5_000,
  teams: 500,
  services: ['billing', 'search'],
  logServices: ['api', 'auth'],
};
const key = (q: { path: string; params: Record<string, string> }) => `${q.path}?${query(q.params)}`;

describe('scale request generators', () => {
  it('are pure functions of the seed', () => {
    expect(summaryRequests(7, 50, domain, true)).toEqual(summaryRequests(7, 50, domain, true));
    expect(summaryRequests(7, 50, domain, true)).not.toEqual(summaryRequests(8, 50, domain, true));
  });

  it('draws ranges inside the data, 1 to 365 days, never on a month edge', () => {
    const r = rng(1);
    let longest = 0;
    for (let i = 0; i < 5000; i++) {
      const { start_date, end_date } = randomRange(r, '2025-01-01', 365);
      const len = daysBetween(start_date, end_date) + 1;
      longest = Math.max(longest, len);
      expect(len).toBeGreaterThanOrEqual(1);
      expect(start_date >= '2025-01-01' && end_date <= '2025-12-31').toBe(true);
      expect(touchesMonthEdge(start_date, end_date)).toBe(false);
    }
    expect(longest).toBeGreaterThan(340);
  });

  it('makes every request different, and filtered ones cycle through every filter kind', () => {
    const qs = summaryRequests(3, 1200, domain, true);
    expect(new Set(qs.map(key)).size).toBe(1200);
    expect(new Set(qs.map((q) => q.kind)).size).toBe(6);
    const both = qs.find((q) => q.kind === 'team+service+user');
    // A user comes with its own team.
    expect(Number(both?.params.user_id?.slice(5)) % 500).toBe(Number(both?.params.team_id?.slice(5)));
    expect(new Set(timeseriesRequests(3, 1000, domain).map(key)).size).toBe(1000);
    expect(new Set(dashboardRequests(3, 900, domain).map(key)).size).toBe(900);
    const logs = logsRequests(3, 1000, domain);
    expect(new Set(logs.map((q) => JSON.stringify(q))).size).toBe(1000);
    expect(logs.slice(0, 3).map((q) => q.position)).toEqual(['first', 'middle', 'last']);
  });

  it('timeseries ranges are 365 days by week', () => {
    for (const q of timeseriesRequests(5, 100, domain)) {
      expect(daysBetween(q.params.start_date as string, q.params.end_date as string)).toBe(364);
      expect(q.params.interval).toBe('week');
    }
  });

  it('places first, middle and last pages', () => {
    expect(pageFor('first', 12_345, 100, 9)).toBe(1);
    expect(pageFor('last', 12_345, 100, 9)).toBe(124);
    expect(pageFor('last', 0, 100, 9)).toBe(1);
    for (let at = 1; at < 500; at++) {
      const p = pageFor('middle', 12_345, 100, at);
      expect(p).toBeGreaterThanOrEqual(42);
      expect(p).toBeLessThanOrEqual(83);
    }
  });

  it('adds days across months and years', () => {
    expect(addDays('2024-12-31', 1)).toBe('2025-01-01');
    expect(addDays('2025-03-01', -1)).toBe('2025-02-28');
  });
});
