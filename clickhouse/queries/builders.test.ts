// Property tests: whatever text arrives in a parameter, the SQL text of every query builder stays the same;
// values travel only in query_params. Also the pure paging arithmetic against a brute-force model.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildFinalDaysQuery, buildSealedDaysQuery } from './log-day-counts.ts';
import { clippedPeriodStarts } from './periods.ts';
import {
  type Bucket,
  Buckets,
  buildLogPageQuery,
  type LogFilters,
  locateAfter,
  locatePage,
  type Severity,
} from './system-events.ts';
import { buildUsageSummaryQuery } from './usage-summary.ts';
import { buildUsageTimeseriesQuery, type GroupBy, type Interval } from './usage-timeseries.ts';

const hostile = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.constantFrom("'", "\\'", "' OR 1=1 --", '{end_date:Date}', '}', '`', ';DROP TABLE x', '\u0000', '\n'),
);
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
/** The same shape with neutral free-text values (closed choices such as interval are kept). */
const neutral = <T extends object>(o: T, keep: readonly string[] = []): T =>
  Object.fromEntries(
    Object.entries(o).map(([k, v]) => [k, typeof v === 'string' && !keep.includes(k) ? 'x' : v]),
  ) as T;

const paramsHold = (params: Record<string, unknown>, given: object) => {
  for (const v of Object.values(given)) {
    if (typeof v === 'string') expect(Object.values(params)).toContain(v);
  }
};

describe('query builders keep request values out of the SQL text', () => {
  it('usage summary', () => {
    fc.assert(
      fc.property(
        fc.record({
          start_date: hostile,
          end_date: hostile,
          user_id: maybe(hostile),
          team_id: maybe(hostile),
          service: maybe(hostile),
        }),
        (p) => {
          const built = buildUsageSummaryQuery(p);
          expect(built.query).toBe(buildUsageSummaryQuery(neutral(p)).query);
          paramsHold(built.query_params, p);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('usage timeseries', () => {
    fc.assert(
      fc.property(
        fc.record({
          start_date: hostile,
          end_date: hostile,
          interval: fc.constantFrom<Interval>('day', 'week', 'month'),
          group_by: maybe(fc.constantFrom<GroupBy>('team', 'service')),
          user_id: maybe(hostile),
          team_id: maybe(hostile),
          service: maybe(hostile),
        }),
        (p) => {
          const built = buildUsageTimeseriesQuery(p);
          expect(built.query).toBe(buildUsageTimeseriesQuery(neutral(p, ['interval', 'group_by'])).query);
          paramsHold(built.query_params, { ...p, interval: undefined, group_by: undefined });
        },
      ),
      { numRuns: 300 },
    );
  });

  const logFilters = fc.record({
    // severity is an enum by the time it gets here; hostile text is tried anyway (it is only ever bound).
    severity: maybe(hostile.map((s) => s as Severity)),
    service: maybe(hostile),
    start_date: maybe(hostile),
    end_date: maybe(hostile),
  });

  it('system-events counts and pages, cursor keys included', () => {
    fc.assert(
      fc.property(
        logFilters,
        maybe(fc.record({ ms: fc.integer(), event_id: hostile })),
        fc.nat(),
        fc.integer({ min: 1, max: 1000 }),
        (f: LogFilters, after, skip, limit) => {
          // The counts take no request value: day numbers and counters only, bound.
          expect(buildFinalDaysQuery([20_000, 20_001]).query).toBe(buildFinalDaysQuery([1]).query);
          expect(buildSealedDaysQuery([[20_000, 7, '3_9']]).query).toBe(
            buildSealedDaysQuery([[1, 1, '']]).query,
          );
          const w = { after, skip, limit, fromMs: 0, toMs: 1 };
          const page = buildLogPageQuery(f, w);
          const neutralAfter = after ? { ...after, event_id: 'x' } : undefined;
          expect(page.query).toBe(buildLogPageQuery(neutral(f), { ...w, after: neutralAfter }).query);
          if (after) expect(page.query_params.after_id).toBe(after.event_id);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('paging arithmetic', () => {
  const HOUR = 3_600_000;
  // Hours newest first, each with a count (zero-count hours never come from the rollup).
  const hoursArb = fc
    .array(fc.integer({ min: 1, max: 30 }), { maxLength: 40 })
    .map((ns) => ns.map((n, i): Bucket => ({ startMs: (1000 - i) * HOUR, endMs: (1001 - i) * HOUR, n })));

  it('the located window holds the whole page and skips exactly the rows before it', () => {
    fc.assert(
      fc.property(hoursArb, fc.nat(400), fc.integer({ min: 1, max: 50 }), (hours, offset, limit) => {
        // Model: one row per unit of count, newest first, tagged with its hour.
        const rows = hours.flatMap((h) => Array.from({ length: h.n }, () => h.startMs));
        const w = locatePage(Buckets.of(hours), offset, limit);
        if (offset >= rows.length) {
          expect(w).toBeUndefined();
          return;
        }
        expect(w).toBeDefined();
        if (!w || w.fromMs === undefined || w.toMs === undefined) return;
        const inWindow = rows.filter((t) => t >= (w.fromMs as number) && t < (w.toMs as number));
        const before = rows.filter((t) => t >= (w.toMs as number)).length;
        expect(before + w.skip).toBe(offset);
        expect(inWindow.length - w.skip).toBeGreaterThanOrEqual(Math.min(limit, rows.length - offset));
      }),
      { numRuns: 500 },
    );
  });

  it('the window after a cursor holds `limit` rows when that many remain', () => {
    fc.assert(
      fc.property(hoursArb, fc.nat(39), fc.integer({ min: 1, max: 50 }), (hours, k, limit) => {
        const at = hours[k % Math.max(1, hours.length)];
        if (!at) return;
        const w = locateAfter(Buckets.of(hours), { ms: at.startMs + 5, event_id: 'e' }, limit);
        const older = hours.filter((h) => h.startMs < at.startMs);
        const inWindow = older.filter((h) => w.fromMs === undefined || h.startMs >= w.fromMs);
        const total = older.reduce((s, h) => s + h.n, 0);
        expect(inWindow.reduce((s, h) => s + h.n, 0)).toBeGreaterThanOrEqual(Math.min(limit, total));
      }),
      { numRuns: 500 },
    );
  });

  it('locates within [from, to) exactly as within those buckets alone', () => {
    fc.assert(
      fc.property(
        hoursArb,
        fc.nat(40),
        fc.nat(40),
        fc.nat(400),
        fc.integer({ min: 1, max: 50 }),
        (hours, a, b, offset, limit) => {
          const from = Math.min(a, b, hours.length);
          const to = Math.min(Math.max(a, b), hours.length);
          const all = Buckets.of(hours);
          const alone = Buckets.of(hours.slice(from, to));
          expect(locatePage(all, offset, limit, from, to)).toEqual(locatePage(alone, offset, limit));
          const at = hours[from];
          if (!at) return;
          const after = { ms: at.startMs + 5, event_id: 'e' };
          expect(locateAfter(all, after, limit, from, to)).toEqual(locateAfter(alone, after, limit));
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('clipped periods', () => {
  it('start at start_date, then on Mondays / first days, and never pass end_date', () => {
    expect(clippedPeriodStarts('2025-01-01', '2025-01-20', 'week')).toEqual([
      '2025-01-01',
      '2025-01-06',
      '2025-01-13',
      '2025-01-20',
    ]);
    expect(clippedPeriodStarts('2025-01-15', '2025-03-01', 'month')).toEqual([
      '2025-01-15',
      '2025-02-01',
      '2025-03-01',
    ]);
    expect(clippedPeriodStarts('2024-02-28', '2024-03-01', 'day')).toEqual([
      '2024-02-28',
      '2024-02-29',
      '2024-03-01',
    ]);
  });
});
