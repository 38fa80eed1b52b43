// The day the ledger records a rejected event without a valid timestamp on: its arrival's (one arrival time per
// Kafka batch or HTTP request). A test takes "today" before sending and after, so that a run across midnight
// accepts either side of it instead of failing on the day's change.
import { expect } from 'vitest';
import type { LedgerRow } from '../../clickhouse/queries/ingest-ledger.ts';

export const utcToday = (): string => new Date().toISOString().slice(0, 10);
/** The day before today (UTC): for arrivals made earlier in the same file, minutes ago. */
export const utcYesterday = (): string => new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);

/** The one day of `rows` other than the events' own `eventDay`, checked to lie in [sentOn, doneOn]. */
export function arrivalDay(
  rows: readonly LedgerRow[],
  eventDay: string,
  sentOn: string,
  doneOn: string,
): string {
  const days = [...new Set(rows.map((r) => r.day).filter((d) => d !== eventDay))];
  expect(days).toHaveLength(1);
  expect([sentOn, doneOn]).toContain(days[0]);
  return days[0] as string;
}
