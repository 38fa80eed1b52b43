// The UTC periods of a cadence (day, ISO week starting Monday, calendar month) and which of them have closed.
// Pure arithmetic on epoch milliseconds, so the scheduler's tests can drive it with any clock.
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

const DAY_MS = 86_400_000;
const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** Start of the period of `cadence` containing `ms`. */
export function periodStart(cadence: Cadence, ms: number): number {
  const d = new Date(ms);
  const midnight = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  if (cadence === 'daily') return midnight;
  if (cadence === 'weekly') return midnight - ((d.getUTCDay() + 6) % 7) * DAY_MS; // Monday = 0
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

/** Start of the period after the one starting at `startMs`. */
export function nextPeriodStart(cadence: Cadence, startMs: number): number {
  if (cadence === 'daily') return startMs + DAY_MS;
  if (cadence === 'weekly') return startMs + 7 * DAY_MS;
  const d = new Date(startMs);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

/**
 * The periods that have closed by `nowMs`, oldest first, beginning with the one containing `fromMs` (a
 * schedule's creation: that period is reported whole) and at most `limit` of them.
 */
export function closedPeriods(cadence: Cadence, fromMs: number, nowMs: number, limit = Infinity): Period[] {
  const out: Period[] = [];
  for (let s = periodStart(cadence, fromMs); out.length < limit; ) {
    const next = nextPeriodStart(cadence, s);
    if (next > nowMs) break;
    out.push({ start: day(s), end: day(next - DAY_MS), closesAt: next });
    s = next;
  }
  return out;
}
