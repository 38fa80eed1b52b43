// The read routes against the generator's truth on the real engine, through the HTTP app: usage-timeseries
// and system-events for many ranges, filters, page sizes and pages (first, last, past the end, limit 1 and
// 1000), by page and by cursor, in JSON and CSV; and re-sent events change no answer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../api/app.ts';
import { toCsv } from '../../api/csv.ts';
import { createAuthenticator } from '../../api/middleware/auth.ts';
import { CSV_COLUMNS } from '../../api/routes/logs.ts';
import { insertEvents } from '../../clickhouse/inserts.ts';
import { createLogger } from '../../core/logger.ts';
import { mintToken } from '../../core/tokens.ts';
import { createDirectSink } from '../../ingest/direct.ts';
import { generateDataset } from '../../ingest/loadgen/generate.ts';
import { type LogQuery, type TimeseriesQuery, Truth } from '../../ingest/loadgen/truth.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { rowsOf } from '../helpers/rows.ts';

const SECRET = 'reports-test-secret-reports-test-secret-0123';
const { events } = generateDataset({ events: 40_000, seed: 11, days: 75, duplicateRate: 0.03 });
const truth = new Truth().addAll(events);

const qs = (q: object) =>
  new URLSearchParams(
    Object.entries(q)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]): [string, string] => [k, String(v)]),
  ).toString();

interface LogPage {
  events: unknown[];
  page: number;
  total_pages: number;
  next_cursor?: string;
}

describe('reports against the truth', () => {
  let engine: TestEngine;
  let app: ReturnType<typeof createApp>;
  let admin: string;

  const get = async (path: string, token: string = admin, headers: Record<string, string> = {}) => {
    const res = await app.request(path, { headers: { authorization: `Bearer ${token}`, ...headers } });
    return res;
  };
  const getJson = async <T>(path: string, token?: string): Promise<{ status: number; body: T }> => {
    const res = await get(path, token);
    return { status: res.status, body: (await res.json()) as T };
  };

  beforeAll(async () => {
    engine = await openTestEngine();
    for (let i = 0; i < events.length; i += 5_000) {
      await insertEvents(engine.ch, rowsOf(events.slice(i, i + 5_000)), `reports/0/${i}`);
    }
    app = createApp({
      ch: engine.ch,
      sink: createDirectSink(engine.ch),
      logger: createLogger('silent'),
      auth: createAuthenticator({ secret: SECRET, issuer: undefined, audience: undefined }),
    });
    admin = await mintToken(SECRET, { sub: 'admin' });
  });
  afterAll(async () => engine?.dispose());

  const seriesQueries = truth.sampleTimeseriesQueries(40, 5);
  const logQueries: LogQuery[] = [
    ...truth.sampleLogQueries(40, 9),
    { limit: 1 },
    { limit: 1, page: 1000 },
    { limit: 1000, page: Math.ceil(truth.countLogs() / 1000) },
    { limit: 7, page: Math.ceil(truth.countLogs() / 7) },
    { limit: 7, page: Math.ceil(truth.countLogs() / 7) + 1 },
    { limit: 100, page: 1000 },
  ];

  async function expectSeriesMatch(q: TimeseriesQuery) {
    const { status, body } = await getJson<{ rows: unknown }>(`/reports/usage-timeseries?${qs(q)}`);
    expect({ q, status, rows: body.rows }).toEqual({ q, status: 200, rows: truth.usageTimeseries(q) });
  }

  async function expectLogsMatch(q: LogQuery) {
    const { status, body } = await getJson<LogPage>(`/logs/system-events?${qs(q)}`);
    const want = truth.systemEvents(q);
    const { next_cursor, ...page } = body;
    expect({ q, status, page }).toEqual({ q, status: 200, page: want });
    // A cursor exactly when another page follows.
    expect({ q, hasNext: next_cursor !== undefined }).toEqual({ q, hasNext: want.page < want.total_pages });
  }

  it('answers 40 timeseries exactly as the truth (day / week / month, grouped or not, filtered)', async () => {
    expect(new Set(seriesQueries.map((q) => `${q.interval}/${q.group_by}`)).size).toBeGreaterThanOrEqual(7);
    // Non-trivial answers: a wrong count would show.
    const busy = seriesQueries.filter((q) => truth.usageTimeseries(q).some((r) => r.total_sessions > 20));
    expect(busy.length).toBeGreaterThan(10);
    for (const q of seriesQueries) await expectSeriesMatch(q);
  });

  it('each timeseries row equals the summary of its clipped period and group', async () => {
    const q: TimeseriesQuery = { ...seriesQueries[3], interval: 'week', group_by: 'team' } as TimeseriesQuery;
    const { body } = await getJson<{ rows: Array<Record<string, string | number>> }>(
      `/reports/usage-timeseries?${qs({ start_date: '2025-01-08', end_date: '2025-02-20', interval: 'week', group_by: 'team' })}`,
    );
    expect(q.interval).toBe('week');
    expect(body.rows.length).toBeGreaterThan(6);
    const periods = [...new Set(body.rows.map((r) => String(r.period)))];
    expect(periods[0]).toBe('2025-01-08'); // clipped to start_date, a Wednesday
    expect(periods[1]).toBe('2025-01-13'); // then Mondays
    for (const row of body.rows.slice(0, 12)) {
      const i = periods.indexOf(String(row.period));
      const next = periods[i + 1];
      const end = next
        ? new Date(Date.parse(`${next}T00:00:00Z`) - 86_400_000).toISOString().slice(0, 10)
        : '2025-02-20';
      const s = await getJson<{ active_users: number; total_sessions: number }>(
        `/reports/usage-summary?${qs({ start_date: row.period, end_date: end, team_id: row.team_id })}`,
      );
      expect({ row, s: s.body }).toMatchObject({
        row: { active_users: s.body.active_users, total_sessions: s.body.total_sessions },
      });
    }
  });

  it('answers timeseries as CSV with a header row', async () => {
    for (const q of seriesQueries.slice(0, 8)) {
      const res = await get(`/reports/usage-timeseries?${qs({ ...q, format: 'csv' })}`);
      expect(res.headers.get('content-type')).toMatch(/^text\/csv/);
      const group = q.group_by === 'team' ? ['team_id'] : q.group_by === 'service' ? ['service'] : [];
      const want = toCsv(['period', ...group, 'active_users', 'total_sessions'], truth.usageTimeseries(q));
      expect({ q, csv: await res.text() }).toEqual({ q, csv: want });
    }
  });

  it('pages system events exactly as the truth: filters, limit 1..1000, last page, past the end', async () => {
    expect(truth.countLogs()).toBeGreaterThan(5_000);
    expect(truth.systemEvents({ limit: 100, page: 1000 }).events).toEqual([]);
    expect(truth.systemEvents({ limit: 1, page: 1000 }).events).toHaveLength(1);
    for (const q of logQueries) await expectLogsMatch(q);
  });

  it('walks every page by cursor, in the same order, ending without a cursor', async () => {
    for (const q of [
      { limit: 1000 },
      { limit: 97, severity: 'error' as const },
      { limit: 50, ...truth.sampleLogQueries(10, 3)[8] },
    ]) {
      const base = { ...q, page: undefined };
      const want = truth.logExportRows(base);
      const seen: unknown[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const { status, body } = await getJson<LogPage>(`/logs/system-events?${qs({ ...base, cursor })}`);
        expect(status).toBe(200);
        pages++;
        expect(body.page).toBe(pages);
        seen.push(...body.events);
        cursor = body.next_cursor;
      } while (cursor !== undefined && pages < 100);
      expect(pages).toBe(Math.max(1, Math.ceil(want.length / base.limit)));
      expect(seen).toEqual(want);
    }
  });

  it('refuses a cursor used with other filters, a forged cursor, and cursor with page', async () => {
    const first = await getJson<LogPage>('/logs/system-events?limit=10&severity=error');
    const cursor = first.body.next_cursor as string;
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    for (const bad of [
      `limit=10&severity=warning&cursor=${cursor}`,
      `limit=11&severity=error&cursor=${cursor}`,
      `limit=10&cursor=${cursor}`,
      'limit=10&cursor=not-a-cursor',
      `limit=10&cursor=${Buffer.from('{"v":1}').toString('base64url')}`,
    ]) {
      const r = await getJson<{ error: string; message: string }>(`/logs/system-events?${bad}`);
      expect({ bad, status: r.status, error: r.body.error }).toEqual({
        bad,
        status: 400,
        error: 'Bad Request',
      });
      expect(r.body.message).toMatch(/^cursor: /);
    }
    const both = await getJson<{ message: string }>(
      `/logs/system-events?limit=10&severity=error&page=2&cursor=${cursor}`,
    );
    expect(both.status).toBe(400);
    expect(both.body.message).toMatch(/^page: /);
  });

  it('answers system events as CSV with escaping and paging headers', async () => {
    for (const q of logQueries.slice(0, 6)) {
      const res = await get(`/logs/system-events?${qs(q)}`, admin, { accept: 'text/csv' });
      expect(res.headers.get('content-type')).toMatch(/^text\/csv/);
      const want = truth.systemEvents(q);
      expect(res.headers.get('x-total-pages')).toBe(String(want.total_pages));
      expect({ q, csv: await res.text() }).toEqual({ q, csv: toCsv(CSV_COLUMNS, want.events) });
    }
    // The generator writes messages starting with @ and +: they reach CSV neutralised.
    const all = await (await get('/logs/system-events?limit=1000&format=csv')).text();
    expect(all).toMatch(/\r\n[^,]+,[a-z]+,[^,]+,'[@+]/);
  });

  it('re-sent logs and usage events change no answer', async () => {
    const again = events.filter((_, i) => i % 10 === 7);
    for (let i = 0; i < again.length; i += 1_000) {
      await insertEvents(engine.ch, rowsOf(again.slice(i, i + 1_000)), `reports/1/${i}`);
    }
    for (const q of logQueries.slice(0, 12)) await expectLogsMatch(q);
    for (const q of seriesQueries.slice(0, 6)) await expectSeriesMatch(q);
  });

  it('keeps team-bound tokens to their team, and off platform-wide logs', async () => {
    const team = truth.catalog().teams[1] as string;
    const other = truth.catalog().teams[2] as string;
    const token = await mintToken(SECRET, { sub: 't', scope: 'read:analytics', team_id: team });
    const q: TimeseriesQuery = {
      ...(seriesQueries[0] as TimeseriesQuery),
      interval: 'week',
      group_by: 'team',
    };
    const own = await getJson<{ rows: unknown }>(`/reports/usage-timeseries?${qs(q)}`, token);
    expect(own.body.rows).toEqual(truth.usageTimeseries({ ...q, team_id: team }));
    expect((await get(`/reports/usage-timeseries?${qs({ ...q, team_id: other })}`, token)).status).toBe(403);
    const logs = await getJson<{ error: string }>('/logs/system-events', token);
    expect(logs).toEqual({ status: 403, body: expect.objectContaining({ error: 'Forbidden' }) });
    const noScope = await mintToken(SECRET, { sub: 'w', scope: 'write:events' });
    expect((await get('/logs/system-events', noScope)).status).toBe(403);
    expect((await get(`/reports/usage-timeseries?${qs(q)}`, noScope)).status).toBe(403);
  });

  it('refuses bad parameters with a 400 naming them', async () => {
    const cases: [string, RegExp][] = [
      ['/logs/system-events?limit=0', /^limit: must be an integer from 1 to 1000/],
      ['/logs/system-events?limit=1001', /^limit: /],
      ['/logs/system-events?limit=1.5', /^limit: /],
      ['/logs/system-events?page=0', /^page: /],
      ['/logs/system-events?page=-1', /^page: /],
      ['/logs/system-events?page=1&page=2', /^page: must be given once/],
      ['/logs/system-events?severity=fatal', /^severity: must be info, warning or error/],
      ['/logs/system-events?service=', /^service: must not be empty/],
      ['/logs/system-events?start_date=2025-02-30', /^start_date: must be a calendar date/],
      ['/logs/system-events?start_date=2025-02-02&end_date=2025-02-01', /^start_date: must not be after/],
      ['/logs/system-events?sort=asc', /^sort: is not a parameter/],
      ['/reports/usage-timeseries?start_date=2025-01-01&end_date=2025-01-31', /^interval: is required/],
      [
        '/reports/usage-timeseries?start_date=2025-01-01&end_date=2025-01-31&interval=year',
        /^interval: must be day, week or month/,
      ],
      [
        '/reports/usage-timeseries?start_date=2025-01-01&end_date=2025-01-31&interval=day&group_by=user',
        /^group_by: must be team or service/,
      ],
      [
        '/reports/usage-timeseries?start_date=2025-02-01&end_date=2025-01-31&interval=day',
        /^start_date: must not be after/,
      ],
      ['/reports/usage-timeseries?end_date=2025-01-31&interval=day', /^start_date: is required/],
    ];
    for (const [path, message] of cases) {
      const r = await getJson<{ error: string; message: string }>(path);
      expect({ path, status: r.status, error: r.body.error }).toEqual({
        path,
        status: 400,
        error: 'Bad Request',
      });
      expect(r.body.message, path).toMatch(message);
    }
  });
});
