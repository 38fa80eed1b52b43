// Refused authentications become warning system logs of service "tally" (who was claimed, from which address,
// why; never the credential), rate-limited per reason by SelfLog so that an attack cannot flood the table.
import type { Severity } from '../../core/events.ts';
import type { AuthFailureReport } from '../middleware/auth.ts';

export interface SystemLog {
  record(severity: Severity, kind: string, message: string, opts?: { subject?: string }): void;
}

export function recordAuthFailures(log: SystemLog): (f: AuthFailureReport) => void {
  return (f) =>
    log.record(
      'warning',
      `auth-failed:${f.reason}`,
      `refused authentication (${f.reason}: ${f.message}); who: ${f.who ?? 'unknown'}; from: ${f.address}`,
      // Named in the summary of the records held back in a window, so an attack's targets are on record.
      { subject: `${f.who ?? 'unknown'} from ${f.address}` },
    );
}
