// Period arithmetic: ISO weeks across a year boundary, month lengths, and "closed" meaning the end has passed.
import { describe, expect, it } from 'vitest';
import { closedPeriods, periodStart } from './periods.ts';

const t = (iso: string) => Date.parse(iso);
const spans = (ps: Array<{ start: string; end: string }>) => ps.map((p) => `${p.start}..${p.end}`);

describe('periods', () => {
  it('starts ISO weeks on Monday, also when the week straddles a new year', () => {
    expect(new Date(periodStart('weekly', t('2026-01-01T12:00:00Z'))).toISOString()).toBe(
      '2025-12-29T00:00:00.000Z',
    );
    expect(new Date(periodStart('weekly', t('2025-12-28T23:59:59Z'))).toISOString()).toBe(
      '2025-12-22T00:00:00.000Z',
    );
  });

  it('lists only closed periods, the creation period first and whole', () => {
    expect(spans(closedPeriods('monthly', t('2024-01-31T10:00:00Z'), t('2024-03-31T23:59:59Z')))).toEqual([
      '2024-01-01..2024-01-31',
      '2024-02-01..2024-02-29',
    ]);
    expect(closedPeriods('monthly', t('2024-01-31T10:00:00Z'), t('2024-01-31T23:59:59.999Z'))).toEqual([]);
    expect(spans(closedPeriods('daily', t('2025-03-01T05:00:00Z'), t('2025-03-03T00:00:00Z')))).toEqual([
      '2025-03-01..2025-03-01',
      '2025-03-02..2025-03-02',
    ]);
    expect(spans(closedPeriods('weekly', t('2025-12-24T00:00:00Z'), t('2026-01-05T00:00:00Z')))).toEqual([
      '2025-12-22..2025-12-28',
      '2025-12-29..2026-01-04',
    ]);
  });

  it('stops at the limit', () => {
    expect(closedPeriods('daily', t('2025-01-01T00:00:00Z'), t('2026-01-01T00:00:00Z'), 3)).toHaveLength(3);
  });
});
