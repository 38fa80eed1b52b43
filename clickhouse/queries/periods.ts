// Calendar periods of the timeseries (UTC; weeks start on Monday), each clipped to the asked range. Day
// numbers count days since 1970-01-01, as ClickHouse's Date does.
import { DAY_MS, type PeriodUnit, startOfNextPeriod, utcDate } from '../../core/periods.ts';

export type Interval = PeriodUnit;

export const toDayNumber = (date: string): number => Date.parse(`${date}T00:00:00Z`) / DAY_MS;
export const fromDayNumber = (day: number): string => utcDate(day * DAY_MS);

const nextPeriod = (day: number, interval: Interval): number =>
  startOfNextPeriod(interval, day * DAY_MS) / DAY_MS;

/** The first day of every period that meets [start, end], clipped: the first is start itself. */
export function clippedPeriodStarts(start: string, end: string, interval: Interval): string[] {
  const last = toDayNumber(end);
  const out: string[] = [];
  for (let d = toDayNumber(start); d <= last; d = nextPeriod(d, interval)) out.push(fromDayNumber(d));
  return out;
}
