// Calendar periods of the timeseries (UTC; weeks start on Monday), each clipped to the asked range. Day
// numbers count days since 1970-01-01, as ClickHouse's Date does.
export type Interval = 'day' | 'week' | 'month';

const DAY_MS = 86_400_000;

export const toDayNumber = (date: string): number => Date.parse(`${date}T00:00:00Z`) / DAY_MS;
export const fromDayNumber = (day: number): string => new Date(day * DAY_MS).toISOString().slice(0, 10);

function nextPeriod(day: number, interval: Interval): number {
  if (interval === 'day') return day + 1;
  // 1970-01-01 was a Thursday: (day + 3) mod 7 is 0 on Mondays.
  if (interval === 'week') return day - ((((day + 3) % 7) + 7) % 7) + 7;
  const d = new Date(day * DAY_MS);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) / DAY_MS;
}

/** The first day of every period that meets [start, end], clipped: the first is start itself. */
export function clippedPeriodStarts(start: string, end: string, interval: Interval): string[] {
  const last = toDayNumber(end);
  const out: string[] = [];
  for (let d = toDayNumber(start); d <= last; d = nextPeriod(d, interval)) out.push(fromDayNumber(d));
  return out;
}
