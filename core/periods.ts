// UTC calendar periods: a day, an ISO week (Monday first) or a calendar month. Pure arithmetic on epoch
// milliseconds, shared by the timeseries buckets (clickhouse/queries/periods.ts) and the schedules' periods
// (control/periods.ts), so a week or a month starts on the same day in both.
export type PeriodUnit = 'day' | 'week' | 'month';

export const DAY_MS = 86_400_000;

/** YYYY-MM-DD of the UTC day containing `ms`. */
export const utcDate = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

/** Start of the period of `unit` containing `ms`. */
export function startOfPeriod(unit: PeriodUnit, ms: number): number {
  const d = new Date(ms);
  const midnight = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  if (unit === 'day') return midnight;
  if (unit === 'week') return midnight - ((d.getUTCDay() + 6) % 7) * DAY_MS; // Monday = 0
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

/** Start of the period after the one of `unit` containing `ms`. */
export function startOfNextPeriod(unit: PeriodUnit, ms: number): number {
  const start = startOfPeriod(unit, ms);
  if (unit === 'day') return start + DAY_MS;
  if (unit === 'week') return start + 7 * DAY_MS;
  const d = new Date(start);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}
