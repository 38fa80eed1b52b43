// Admission of a new export job: one transaction of the control store (control/jobs.ts admitJob) takes the
// Idempotency-Key, one job of the user's UTC-day quota and the insert together, so 30 concurrent requests with a
// quota of 10 create exactly 10 jobs in any number of API processes, and a restart changes nothing.
import { randomUUID } from 'node:crypto';
import { admitJob, type ExportJob, type ReportType } from '../../control/jobs.ts';
import type { ControlStore } from '../../control/store.ts';
import { RateLimited } from '../../core/errors.ts';
import type { ExportFormat } from '../../core/exports/formats.ts';

export interface JobRequest {
  userId: string;
  reportType: ReportType;
  format: ExportFormat;
  params: Record<string, string>;
  idempotencyKey: string | undefined;
}

export interface Admission {
  job: ExportJob;
  /** False when an Idempotency-Key named a job created earlier (no quota spent). */
  created: boolean;
}

/** Seconds from `nowMs` to the next UTC midnight (at least 1): when the day's quota renews. */
export function secondsToUtcMidnight(nowMs: number): number {
  const d = new Date(nowMs);
  const next = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1);
  return Math.max(1, Math.ceil((next - nowMs) / 1000));
}

export function utcDay(nowMs: number): string {
  return new Date(nowMs).toISOString().slice(0, 10);
}

export class JobAdmission {
  constructor(
    private readonly db: ControlStore,
    /** EXPORT_JOBS_PER_DAY. */
    private readonly perDay: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Admits the job, or throws RateLimited (429 with Retry-After to the next UTC midnight). */
  async admit(req: JobRequest, fileName: (jobId: string) => string): Promise<Admission> {
    const now = this.now();
    const jobId = randomUUID();
    const r = await admitJob(
      this.db,
      {
        job_id: jobId,
        user_id: req.userId,
        day: utcDay(now),
        idempotency_key: req.idempotencyKey ?? '',
        report_type: req.reportType,
        format: req.format,
        params: JSON.stringify(req.params),
        file_name: fileName(jobId),
        created_at: now,
      },
      this.perDay,
    );
    if ('full' in r) {
      throw new RateLimited(
        secondsToUtcMidnight(now),
        `export quota reached: ${this.perDay} jobs per UTC day; it renews at 00:00 UTC`,
      );
    }
    return r;
  }
}
