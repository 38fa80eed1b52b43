// UTC calendar arithmetic on day numbers (days since 1970-01-01), shared by the generator and the truth.

export const DAY_MS = 86_400_000;

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** 'YYYY-MM-DD' to a day number; throws on anything that is not a real calendar date. */
export function parseDate(text: string): number {
  const m = DATE.exec(text);
  if (m) {
    const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
    const ms = Date.UTC(y, mo - 1, d);
    const check = new Date(ms);
    if (check.getUTCFullYear() === y && check.getUTCMonth() === mo - 1 && check.getUTCDate() === d) {
      return ms / DAY_MS;
    }
  }
  throw new RangeError(`not a YYYY-MM-DD calendar date: ${JSON.stringify(text)}`);
}

export function formatDate(day: number): string {
  return new Date(day * DAY_MS).toISOString().slice(0, 10);
}

/** 0 = Monday ... 6 = Sunday; day 0 (1970-01-01) was a Thursday. */
export function weekday(day: number): number {
  return (((day + 3) % 7) + 7) % 7;
}

export type Interval = 'day' | 'week' | 'month';

/** First day of the calendar period holding `day` (weeks start on Monday). */
export function periodStart(day: number, interval: Interval): number {
  if (interval === 'day') return day;
  if (interval === 'week') return day - weekday(day);
  const d = new Date(day * DAY_MS);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1) / DAY_MS;
}

/** First day of the period after the one holding `day`. */
export function nextPeriodStart(day: number, interval: Interval): number {
  if (interval === 'day') return day + 1;
  if (interval === 'week') return periodStart(day, 'week') + 7;
  const d = new Date(day * DAY_MS);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) / DAY_MS;
}

/** The periods covering [start, end], each clipped to the range: [first, last] day numbers. */
export function clippedPeriods(start: number, end: number, interval: Interval): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let p = start; p <= end; p = nextPeriodStart(p, interval)) {
    out.push([p, Math.min(nextPeriodStart(p, interval) - 1, end)]);
  }
  return out;
}
