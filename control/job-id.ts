// The job id of a schedule's period: a pure function of (schedule_id, period_start), so every scheduler,
// replica or retry names the same job and "one job per period" cannot become two.
import { createHash } from 'node:crypto';

/** A UUID (version 5 layout: SHA-1 of a namespaced name) for the schedule's period starting on `periodStart`. */
export function scheduledJobId(scheduleId: string, periodStart: string): string {
  const h = createHash('sha1').update(`tally-schedule-v1|${scheduleId}|${periodStart}`).digest();
  h[6] = ((h[6] ?? 0) & 0x0f) | 0x50; // version 5
  h[8] = ((h[8] ?? 0) & 0x3f) | 0x80; // RFC 4122 variant
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}
