import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DAY_MS, type PeriodUnit, startOfNextPeriod, startOfPeriod, utcDate } from './periods.ts';

const UNITS: PeriodUnit[] = ['day', 'week', 'month'];
const instant = fc.integer({ min: Date.UTC(2000, 0, 1), max: Date.UTC(2100, 0, 1) });

describe('UTC calendar periods', () => {
  it('contain their instant and start on a midnight, a Monday or a first of the month', () => {
    fc.assert(
      fc.property(instant, fc.constantFrom(...UNITS), (ms, unit) => {
        const start = startOfPeriod(unit, ms);
        const next = startOfNextPeriod(unit, ms);
        expect(start).toBeLessThanOrEqual(ms);
        expect(ms).toBeLessThan(next);
        expect(start % DAY_MS).toBe(0);
        expect(startOfPeriod(unit, next)).toBe(next);
        expect(startOfPeriod(unit, next - 1)).toBe(start);
        if (unit === 'week') expect(new Date(start).getUTCDay()).toBe(1);
        if (unit === 'month') expect(new Date(start).getUTCDate()).toBe(1);
      }),
    );
  });

  it('cross a year and a leap day', () => {
    expect(utcDate(startOfNextPeriod('month', Date.UTC(2024, 11, 31, 23)))).toBe('2025-01-01');
    expect(utcDate(startOfNextPeriod('day', Date.UTC(2024, 1, 28)))).toBe('2024-02-29');
    expect(utcDate(startOfPeriod('week', Date.UTC(2025, 0, 1)))).toBe('2024-12-30');
  });
});
