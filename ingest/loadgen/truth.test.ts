// Unit tests of the synthetic generator and of the truth calculator, on hand-computed small cases.
import { describe, expect, it } from 'vitest';
import { parseEvent, parseTimestamp } from '../../core/events.ts';
import { clippedPeriods, DAY_MS, formatDate, parseDate, weekday } from './dates.ts';
import {
  describeWorld,
  type GeneratedEvent,
  generateDataset,
  generateEvents,
  invalidExamples,
} from './generate.ts';
import { Rng } from './random.ts';
import { compareBytes, Truth } from './truth.ts';

const u = (
  event_id: string,
  type: string,
  timestamp: string,
  user: string,
  team: string,
  service: string,
  session?: string,
) => ({
  event_id,
  type,
  timestamp,
  user_id: user,
  team_id: team,
  service,
  ...(session === undefined ? {} : { session_id: session }),
});
const l = (
  event_id: string,
  timestamp: string,
  severity: string,
  service: string,
  message = `m ${event_id}`,
) => ({
  event_id,
  type: 'log',
  timestamp,
  severity,
  service,
  message,
});

// 2025-01-01 is a Wednesday; 2025-01-06 and 2025-01-13 are Mondays.
const USAGE = [
  u('e1', 'user_registered', '2025-01-01T09:00:00Z', 'u1', 't1', 'billing'),
  u('e2', 'session_start', '2025-01-01T10:00:00Z', 'u1', 't1', 'billing', 's1'),
  u('e3', 'activity', '2025-01-01T10:05:00.250Z', 'u1', 't1', 'billing', 's1'),
  u('e4', 'session_end', '2025-01-01T11:00:00Z', 'u1', 't1', 'billing', 's1'),
  // s2 spans midnight: starts on Jan 1, ends on Jan 2.
  u('e5', 'session_start', '2025-01-01T23:50:00Z', 'u2', 't1', 'search', 's2'),
  u('e6', 'session_end', '2025-01-02T00:10:00Z', 'u2', 't1', 'search', 's2'),
  // Offsets: local dates differ from the UTC ones (10:00Z on Jan 2, and 01:30Z on Jan 2).
  u('e7', 'activity', '2025-01-02T12:00:00+02:00', 'u3', 't2', 'billing'),
  u('e8', 'user_registered', '2025-01-03T08:00:00Z', 'u4', 't2', 'billing'),
  u('e9', 'activity', '2025-01-01T23:30:00-02:00', 'u5', 't2', 'search'),
  u('e10', 'session_start', '2025-01-06T09:00:00Z', 'u1', 't1', 'billing', 's3'),
  u('e11', 'activity', '2025-01-06T09:10:00Z', 'u1', 't1', 'search', 's3'),
  u('e12', 'session_start', '2025-01-13T10:00:00Z', 'u3', 't2', 'billing', 's4'),
  // Redeliveries: identical, and a conflicting one under an existing id (the first wins).
  u('e2', 'session_start', '2025-01-01T10:00:00Z', 'u1', 't1', 'billing', 's1'),
  u('e3', 'activity', '2025-01-01T10:05:00.250Z', 'u9', 't9', 'billing', 's9'),
  // Invalid events are ignored and do not claim their event_id.
  { ...u('e14', 'activity', '2025-01-20T10:00:00Z', 'x', 't3', 'reports'), user_id: 123 },
  u('e14', 'activity', '2025-01-20T10:00:00Z', 'u6', 't3', 'reports'),
  u('bad1', 'session_start', '2025-01-05T10:00:00Z', 'u7', 't1', 'billing'),
  u('bad2', 'click', '2025-01-05T10:00:00Z', 'u7', 't1', 'billing'),
  u('bad3', 'activity', '1999-12-31T23:59:59Z', 'u7', 't1', 'billing'),
  u('bad4', 'activity', '2025-01-05T10:00:00', 'u7', 't1', 'billing'),
  'not an object',
];

const LOGS = [
  l('l1', '2025-05-21T10:15:30Z', 'info', 'svcA'),
  l('l2', '2025-05-21T10:15:30.000Z', 'error', 'svcB'),
  l('l10', '2025-05-21T10:15:30Z', 'warning', 'svcA'),
  l('l3', '2025-05-22T00:00:00+02:00', 'info', 'svcA'),
  l('l4', '2025-05-20T23:59:59.999Z', 'info', 'svcB'),
  l('l2', '2025-05-21T10:15:30Z', 'info', 'svcC', 'a conflicting redelivery'),
  l('bad5', '2025-05-21T10:15:30Z', 'fatal', 'svcA'),
];

const NOW = Date.UTC(2025, 11, 31);
const usageTruth = () => new Truth({ nowMs: NOW }).addAll(USAGE);
const logTruth = () => new Truth({ nowMs: NOW }).addAll(LOGS);
const sum = (total_users: number, active_users: number, total_sessions: number) => ({
  total_users,
  active_users,
  total_sessions,
});

describe('Truth: usage summary', () => {
  it('dedupes by event_id (first wins) and ignores invalid events', () => {
    const t = usageTruth();
    expect(t.stats).toEqual({ accepted: 13, duplicates: 2, invalid: 6 });
    expect(t.catalog().users).toEqual(['u1', 'u2', 'u3', 'u4', 'u5', 'u6']);
  });

  it('counts per UTC day, with sessions spanning midnight and zone offsets', () => {
    const t = usageTruth();
    expect(t.usageSummary({ start_date: '2025-01-01', end_date: '2025-01-01' })).toEqual(sum(2, 2, 2));
    expect(t.usageSummary({ start_date: '2025-01-02', end_date: '2025-01-02' })).toEqual(sum(4, 3, 0));
    expect(t.usageSummary({ start_date: '2025-01-03', end_date: '2025-01-03' })).toEqual(sum(5, 0, 0));
    expect(t.usageSummary({ start_date: '2025-01-01', end_date: '2025-01-31' })).toEqual(sum(6, 5, 4));
  });

  it('counts total_users as of the end date, whatever the start', () => {
    const t = usageTruth();
    expect(t.usageSummary({ start_date: '2025-01-05', end_date: '2025-01-05' })).toEqual(sum(5, 0, 0));
    expect(t.usageSummary({ start_date: '2024-12-01', end_date: '2024-12-31' })).toEqual(sum(0, 0, 0));
    expect(t.usageSummary({ start_date: '2025-02-01', end_date: '2025-02-02' })).toEqual(sum(6, 0, 0));
  });

  it('narrows all three numbers by filters', () => {
    const t = usageTruth();
    const jan = { start_date: '2025-01-01', end_date: '2025-01-31' };
    expect(t.usageSummary({ ...jan, team_id: 't1' })).toEqual(sum(2, 2, 3));
    expect(t.usageSummary({ ...jan, service: 'billing' })).toEqual(sum(3, 2, 3));
    expect(t.usageSummary({ ...jan, service: 'search' })).toEqual(sum(3, 3, 1));
    expect(t.usageSummary({ ...jan, team_id: 't2', service: 'billing' })).toEqual(sum(2, 1, 1));
    expect(t.usageSummary({ ...jan, user_id: 'u1' })).toEqual(sum(1, 1, 2));
    expect(t.usageSummary({ ...jan, user_id: 'u1', team_id: 't2' })).toEqual(sum(0, 0, 0));
    expect(t.usageSummary({ ...jan, user_id: 'u9' })).toEqual(sum(0, 0, 0));
  });

  it('refuses bad dates and inverted ranges', () => {
    const t = usageTruth();
    expect(() => t.usageSummary({ start_date: '2025-01-02', end_date: '2025-01-01' })).toThrow(RangeError);
    expect(() => t.usageSummary({ start_date: '2025-02-30', end_date: '2025-03-01' })).toThrow(RangeError);
  });
});

describe('Truth: usage timeseries', () => {
  it('starts weeks on Monday and clips the first period to the range', () => {
    const t = usageTruth();
    const q = { start_date: '2025-01-01', end_date: '2025-01-15', interval: 'week' as const };
    expect(t.usageTimeseries(q)).toEqual([
      { period: '2025-01-01', active_users: 4, total_sessions: 2 },
      { period: '2025-01-06', active_users: 1, total_sessions: 1 },
      { period: '2025-01-13', active_users: 1, total_sessions: 1 },
    ]);
    expect(t.usageTimeseries({ ...q, group_by: 'team' })).toEqual([
      { period: '2025-01-01', team_id: 't1', active_users: 2, total_sessions: 2 },
      { period: '2025-01-01', team_id: 't2', active_users: 2, total_sessions: 0 },
      { period: '2025-01-06', team_id: 't1', active_users: 1, total_sessions: 1 },
      { period: '2025-01-13', team_id: 't2', active_users: 1, total_sessions: 1 },
    ]);
    expect(t.usageTimeseries({ ...q, group_by: 'service' })).toEqual([
      { period: '2025-01-01', service: 'billing', active_users: 2, total_sessions: 1 },
      { period: '2025-01-01', service: 'search', active_users: 2, total_sessions: 1 },
      { period: '2025-01-06', service: 'billing', active_users: 1, total_sessions: 1 },
      { period: '2025-01-06', service: 'search', active_users: 1, total_sessions: 0 },
      { period: '2025-01-13', service: 'billing', active_users: 1, total_sessions: 1 },
    ]);
  });

  it('keeps empty periods when ungrouped, by day and by month', () => {
    const t = usageTruth();
    expect(t.usageTimeseries({ start_date: '2025-01-01', end_date: '2025-01-03', interval: 'day' })).toEqual([
      { period: '2025-01-01', active_users: 2, total_sessions: 2 },
      { period: '2025-01-02', active_users: 3, total_sessions: 0 },
      { period: '2025-01-03', active_users: 0, total_sessions: 0 },
    ]);
    expect(
      t.usageTimeseries({ start_date: '2024-12-30', end_date: '2025-02-03', interval: 'month' }),
    ).toEqual([
      { period: '2024-12-30', active_users: 0, total_sessions: 0 },
      { period: '2025-01-01', active_users: 5, total_sessions: 4 },
      { period: '2025-02-01', active_users: 0, total_sessions: 0 },
    ]);
    expect(t.usageTimeseries({ start_date: '2025-01-06', end_date: '2025-01-06', interval: 'week' })).toEqual(
      [{ period: '2025-01-06', active_users: 1, total_sessions: 1 }],
    );
  });

  it('gives each row the summary numbers of its clipped period', () => {
    const t = usageTruth();
    const rows = t.usageTimeseries({
      start_date: '2024-12-31',
      end_date: '2025-01-20',
      interval: 'week',
      team_id: 't2',
    });
    const periods = clippedPeriods(parseDate('2024-12-31'), parseDate('2025-01-20'), 'week');
    expect(rows.map((r) => r.period)).toEqual(['2024-12-31', '2025-01-06', '2025-01-13', '2025-01-20']);
    rows.forEach((row, i) => {
      const [first, last] = periods[i] as [number, number];
      const s = t.usageSummary({ start_date: formatDate(first), end_date: formatDate(last), team_id: 't2' });
      expect([row.active_users, row.total_sessions]).toEqual([s.active_users, s.total_sessions]);
    });
  });
});

describe('Truth: usage export rows', () => {
  it('lists every (date, team) with users so far, each the single-day summary', () => {
    expect(usageTruth().usageExportRows('2025-01-01', '2025-01-03')).toEqual([
      { date: '2025-01-01', team_id: 't1', active_users: 2, total_sessions: 2, total_users: 2 },
      { date: '2025-01-02', team_id: 't1', active_users: 1, total_sessions: 0, total_users: 2 },
      { date: '2025-01-02', team_id: 't2', active_users: 2, total_sessions: 0, total_users: 2 },
      { date: '2025-01-03', team_id: 't1', active_users: 0, total_sessions: 0, total_users: 2 },
      { date: '2025-01-03', team_id: 't2', active_users: 0, total_sessions: 0, total_users: 3 },
    ]);
    expect(usageTruth().usageExportRows('2025-01-01', '2025-01-02', { service: 'search' })).toEqual([
      { date: '2025-01-01', team_id: 't1', active_users: 1, total_sessions: 1, total_users: 1 },
      { date: '2025-01-02', team_id: 't1', active_users: 1, total_sessions: 0, total_users: 1 },
      { date: '2025-01-02', team_id: 't2', active_users: 1, total_sessions: 0, total_users: 1 },
    ]);
  });
});

describe('Truth: system events', () => {
  it('orders newest first, breaking timestamp ties by event_id bytes, descending', () => {
    const t = logTruth();
    expect(t.stats).toEqual({ accepted: 5, duplicates: 1, invalid: 1 });
    const all = t.systemEvents({ limit: 100 });
    expect(all.events.map((e) => e.event_id)).toEqual(['l3', 'l2', 'l10', 'l1', 'l4']);
    expect(all.events[0]).toEqual({
      timestamp: '2025-05-21T22:00:00.000Z',
      severity: 'info',
      message: 'm l3',
      service: 'svcA',
      event_id: 'l3',
    });
    expect(all.events[1]?.service).toBe('svcB'); // the first l2 won
    expect(all).toMatchObject({ page: 1, total_pages: 1 });
  });

  it('pages with total_pages = ceil(matching / limit) and empty pages past the end', () => {
    const t = logTruth();
    const ids = (page: number) => t.systemEvents({ limit: 2, page }).events.map((e) => e.event_id);
    expect([ids(1), ids(2), ids(3), ids(4)]).toEqual([['l3', 'l2'], ['l10', 'l1'], ['l4'], []]);
    expect(t.systemEvents({ limit: 2, page: 4 })).toEqual({ events: [], page: 4, total_pages: 3 });
    expect(t.systemEvents({ service: 'nope' })).toEqual({ events: [], page: 1, total_pages: 0 });
    expect(() => t.systemEvents({ limit: 0 })).toThrow(RangeError);
  });

  it('filters by severity, service and UTC dates', () => {
    const t = logTruth();
    expect(t.countLogs({ service: 'svcA' })).toBe(3);
    expect(t.countLogs({ severity: 'info' })).toBe(3);
    expect(t.countLogs({ start_date: '2025-05-21', end_date: '2025-05-21' })).toBe(4);
    expect(t.countLogs({ end_date: '2025-05-20' })).toBe(1);
    expect(t.countLogs({ start_date: '2025-05-22' })).toBe(0);
    expect(t.logExportRows({ service: 'svcA', severity: 'info' }).map((e) => e.event_id)).toEqual([
      'l3',
      'l1',
    ]);
  });
});

describe('helpers', () => {
  it('compares strings in UTF-8 byte order', () => {
    expect(['l2', 'l10', 'l1', 'b', 'B', 'é', '😀', '\uffff'].sort(compareBytes)).toEqual([
      'B',
      'b',
      'l1',
      'l10',
      'l2',
      'é',
      '\uffff',
      '😀',
    ]);
  });

  it('knows Mondays and month starts', () => {
    expect(weekday(parseDate('2025-01-06'))).toBe(0);
    expect(
      clippedPeriods(parseDate('2025-01-30'), parseDate('2025-03-01'), 'month').map(([a, b]) => [
        formatDate(a),
        formatDate(b),
      ]),
    ).toEqual([
      ['2025-01-30', '2025-01-31'],
      ['2025-02-01', '2025-02-28'],
      ['2025-03-01', '2025-03-01'],
    ]);
  });

  it('draws the same numbers for the same seed', () => {
    const a = new Rng(5);
    const b = new Rng(5);
    const xs = Array.from({ length: 100 }, () => a.next());
    expect(Array.from({ length: 100 }, () => b.next())).toEqual(xs);
    expect(new Rng(6).next()).not.toBe(xs[0]);
  });
});

describe('generator', () => {
  const opts = { events: 20_000, seed: 7, duplicateRate: 0.05 };
  const data = generateDataset(opts);
  const startMs = Date.UTC(2025, 0, 1);
  const endMs = startMs + 90 * DAY_MS;

  it('is deterministic for a seed, and the lazy stream equals the collected one', () => {
    const again = generateDataset(opts);
    expect(JSON.stringify(again.events)).toBe(JSON.stringify(data.events));
    expect([...generateEvents(opts)]).toEqual(data.events);
    expect(JSON.stringify(generateDataset({ ...opts, seed: 8 }).events)).not.toBe(
      JSON.stringify(data.events),
    );
    expect(generateDataset({ events: 0, seed: 1 }).events).toEqual([]);
  });

  it('emits only events that pass parseEvent, inside the date range', () => {
    const now = Date.now();
    for (const e of data.events) {
      const r = parseEvent(e, now);
      if (!r.ok) throw new Error(`${JSON.stringify(e)}: ${r.error}`);
      const ms = parseTimestamp(e.timestamp) as number;
      expect(ms >= startMs && ms < endMs).toBe(true);
    }
    const custom = generateDataset({ events: 3000, seed: 3, start: '2024-02-27', days: 3 });
    for (const e of custom.events) {
      const ms = parseTimestamp(e.timestamp) as number;
      expect(ms >= Date.UTC(2024, 1, 27) && ms < Date.UTC(2024, 2, 1)).toBe(true);
    }
  });

  it('redelivers about duplicateRate of the events, verbatim and later in the stream', () => {
    const first = new Map<string, string>();
    let duplicates = 0;
    for (const e of data.events) {
      const json = JSON.stringify(e);
      const seen = first.get(e.event_id);
      if (seen === undefined) first.set(e.event_id, json);
      else {
        duplicates++;
        expect(json).toBe(seen);
      }
    }
    expect(data.events).toHaveLength(20_000);
    expect(duplicates).toBe(data.duplicates);
    expect(duplicates / data.events.length).toBeCloseTo(0.05, 2);
    const t = new Truth().addAll(data.events);
    expect(t.stats).toEqual({ accepted: data.originals, duplicates: data.duplicates, invalid: 0 });
  });

  it('looks like real traffic: logs share, formats, attributes, midnight sessions, sign-ups', () => {
    const originals = new Map<string, GeneratedEvent>();
    for (const e of data.events) if (!originals.has(e.event_id)) originals.set(e.event_id, e);
    const events = [...originals.values()];
    const logs = events.filter((e) => e.type === 'log');
    expect(logs.length / events.length).toBeCloseTo(0.2, 2);
    expect(new Set(logs.map((e) => e.type === 'log' && e.severity))).toEqual(
      new Set(['info', 'warning', 'error']),
    );
    expect(events.some((e) => /[+-]\d\d:\d\d$/.test(e.timestamp))).toBe(true);
    expect(events.some((e) => /\.\d{3}Z$/.test(e.timestamp))).toBe(true);
    expect(events.some((e) => 'attributes' in e)).toBe(true);
    expect(events.some((e) => e.type === 'activity' && e.session_id === undefined)).toBe(true);

    const startDay = new Map<string, string>();
    const endDay = new Map<string, string>();
    for (const e of events) {
      if (e.type !== 'session_start' && e.type !== 'session_end') continue;
      const day = new Date(parseTimestamp(e.timestamp) as number).toISOString().slice(0, 10);
      (e.type === 'session_start' ? startDay : endDay).set(e.session_id as string, day);
    }
    const crossing = [...endDay].filter(([s, d]) => startDay.has(s) && startDay.get(s) !== d);
    expect(crossing.length).toBeGreaterThan(10);
    expect([...startDay.keys()].filter((s) => !endDay.has(s)).length).toBeGreaterThan(10);

    const world = describeWorld(7);
    expect(world.teams.length).toBeGreaterThanOrEqual(5);
    const t = new Truth().addAll(events);
    const whole = t.usageSummary({ start_date: '2025-01-01', end_date: '2025-03-31' });
    expect(whole.total_users).toBeGreaterThan(whole.active_users); // some sign up and never come back
    const registered = new Set(
      events.filter((e) => e.type === 'user_registered').map((e) => 'user_id' in e && e.user_id),
    );
    expect(t.catalog().users.some((user) => !registered.has(user))).toBe(true); // some never registered
  });

  it('keeps the truth self-consistent on generated data', () => {
    const t = new Truth().addAll(data.events);
    const queries = t.sampleQueries(30, 1);
    expect(queries).toHaveLength(30);
    expect(new Set(queries.map((q) => JSON.stringify(q))).size).toBeGreaterThanOrEqual(25);
    expect(t.sampleQueries(30, 1)).toEqual(queries);
    expect(queries.some((q) => Object.values(t.usageSummary(q)).every((n) => n === 0))).toBe(true);
    expect(queries.some((q) => t.usageSummary(q).active_users > 0)).toBe(true);

    const days = t.usageTimeseries({ start_date: '2025-01-01', end_date: '2025-03-31', interval: 'day' });
    const whole = t.usageSummary({ start_date: '2025-01-01', end_date: '2025-03-31' });
    expect(days.reduce((n, r) => n + r.total_sessions, 0)).toBe(whole.total_sessions);

    const team = t.catalog().teams[0] as string;
    for (const row of t.usageExportRows('2025-02-10', '2025-02-12', { team_id: team })) {
      const s = t.usageSummary({ start_date: row.date, end_date: row.date, team_id: row.team_id });
      expect([row.active_users, row.total_sessions, row.total_users]).toEqual([
        s.active_users,
        s.total_sessions,
        s.total_users,
      ]);
    }
    const page = t.systemEvents({ limit: 50, page: 2 });
    expect(page.total_pages).toBe(Math.ceil(t.countLogs() / 50));
    expect(t.sampleTimeseriesQueries(14, 1)).toHaveLength(14);
    expect(t.sampleLogQueries(15, 1)).toHaveLength(15);
  });
});

describe('invalid examples', () => {
  it('each breaks parsing at the field it names', () => {
    const examples = invalidExamples(1);
    expect(examples.length).toBeGreaterThanOrEqual(12);
    for (const ex of examples) {
      let value: unknown;
      try {
        value = JSON.parse(ex.text);
      } catch {
        expect(ex.field).toBeNull();
        continue;
      }
      const r = parseEvent(value);
      expect(r.ok, ex.name).toBe(false);
      if (r.ok) continue;
      if (ex.field === null) expect(r.error, ex.name).toBe('event must be a JSON object');
      else expect(r.error.startsWith(`${ex.field}`), `${ex.name}: ${r.error}`).toBe(true);
    }
    const t = new Truth();
    for (const ex of examples) expect(t.addText(ex.text)).toBe('invalid');
  });
});
