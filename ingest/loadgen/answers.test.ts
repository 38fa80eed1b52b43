import { describe, expect, it } from 'vitest';
import { answerFor, sampledAnswers } from './answers.ts';
import { generateDataset } from './generate.ts';
import { Truth } from './truth.ts';

const { events } = generateDataset({ events: 3_000, seed: 5, days: 20 });
const truth = new Truth().addAll(events);

describe('expected answers of a generated dataset', () => {
  it('answers each report route from the truth', () => {
    const s = answerFor(truth, '/reports/usage-summary?start_date=2025-01-01&end_date=2025-01-10');
    expect(s.expected).toEqual(truth.usageSummary({ start_date: '2025-01-01', end_date: '2025-01-10' }));
    const t = answerFor(
      truth,
      '/reports/usage-timeseries?start_date=2025-01-01&end_date=2025-01-20&interval=week&group_by=team',
    );
    expect(t.expected).toEqual({
      rows: truth.usageTimeseries({
        start_date: '2025-01-01',
        end_date: '2025-01-20',
        interval: 'week',
        group_by: 'team',
      }),
    });
    const l = answerFor(truth, '/logs/system-events?severity=error&limit=7&page=2');
    expect(l.expected).toEqual(truth.systemEvents({ severity: 'error', limit: 7, page: 2 }));
    expect((l.expected as { events: unknown[] }).events).toHaveLength(7);
  });

  it('refuses what it cannot answer, naming it', () => {
    expect(() => answerFor(truth, '/reports/usage-summary?start_date=2025-01-01')).toThrow(/end_date/);
    expect(() => answerFor(truth, '/reports/export')).toThrow(/no answers for \/reports\/export/);
    expect(() =>
      answerFor(truth, '/reports/usage-timeseries?start_date=2025-01-01&end_date=2025-01-02&interval=year'),
    ).toThrow(/interval/);
  });

  it('samples every route, the same requests for the same seed', () => {
    const a = sampledAnswers(truth, 4, 9);
    expect(a).toHaveLength(12);
    expect(a.map((x) => x.path)).toEqual(sampledAnswers(truth, 4, 9).map((x) => x.path));
    expect(new Set(a.map((x) => new URL(x.path, 'http://x').pathname)).size).toBe(3);
  });
});
