// The UTC periods of a cadence (day, ISO week starting Monday, calendar month) and which of them have closed.
// The calendar arithmetic is core/periods.ts; pure, so the scheduler's tests can drive it with any clock.
import { DAY_MS, type PeriodUnit, startOfNextPeriod, startOfPeriod, utcDate } from '../core/periods.ts';
import type { Cadence } from './schedules.ts';

export type { Cadence };

export interface Period {
  /** First UTC day, YYYY-MM-DD. */
  start: string;
  /** Last UTC day, YYYY-MM-DD (inclusive, as the export's end_date). */
  end: string;
  /** The instant the period closes (start of the next one), ms since the epoch. */
  closesAt: number;
}

const UNIT: Record<Cadence, PeriodUnit> = { daily: 'day', weekly: 'week', monthly: 'month' };

/** Start of the period of `cadence` containing `ms`. */
export const periodStart = (cadence: Cadence, ms: number): number => startOfPeriod(UNIT[cadence], ms);

/** Start of the period after the one starting at `startMs`. */
export const nextPeriodStart = (cadence: Cadence, startMs: number): number =>
  startOfNextPeriod(UNIT[cadence], startMs);

/**
 * The periods that have closed by `nowMs`, oldest first, beginning with the one containing `fromMs` (a
 * schedule's creation: that period is reported whole) and at most `limit` of them.
 */
export function closedPeriods(cadence: Cadence, fromMs: number, nowMs: number, limit = Infinity): Period[] {
  const out: Period[] = [];
  for (let s = periodStart(cadence, fromMs); out.length < limit; ) {
    const next = nextPeriodStart(cadence, s);
    if (next > nowMs) break;
    out.push({ start: utcDate(s), end: utcDate(next - DAY_MS), closesAt: next });
    s = next;
  }
  return out;
}
