// Admission of a new export job: the idempotency-key lookup, the day's count and the insert form one atomic
// step per user, so 30 concurrent requests with a quota of 10 create exactly 10 jobs, and a restart (the
// count lives in ClickHouse) changes nothing.
import { randomUUID } from 'node:crypto';
import type { ClickHouse } from '../../clickhouse/client.ts';
import {
  countJobsOnDay,
  type ExportFormat,
  type ExportJob,
  findJobByIdempotencyKey,
  nextVersion,
  type ReportType,
  writeJob,
} from '../../clickhouse/queries/exports-jobs.ts';
import { RateLimited } from '../../core/errors.ts';
import { KeyedMutex } from './lock.ts';

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

/**
 * The atomic step, and the one place to replace for several API replicas on a ClickHouse server: there the
 * per-user lock below must become a shared one (the README names the options; KeeperMap in strict mode is
 * the one that keeps the state in ClickHouse). One process needs no more than this lock.
 */
export class JobAdmission {
  private readonly lock = new KeyedMutex();

  constructor(
    private readonly ch: ClickHouse,
    private readonly perDay: number,
    private readonly now: () => number = Date.now,
  ) {}

  admit(req: JobRequest, fileName: (jobId: string) => string): Promise<Admission> {
    return this.lock.run(req.userId, async () => {
      if (req.idempotencyKey !== undefined) {
        const prior = await findJobByIdempotencyKey(this.ch, req.userId, req.idempotencyKey);
        if (prior) return { job: prior, created: false };
      }
      const now = this.now();
      const day = utcDay(now);
      const used = await countJobsOnDay(this.ch, req.userId, day);
      if (used >= this.perDay) {
        throw new RateLimited(
          secondsToUtcMidnight(now),
          `export quota reached: ${this.perDay} jobs per UTC day; it renews at 00:00 UTC`,
        );
      }
      const jobId = randomUUID();
      const job: ExportJob = {
        job_id: jobId,
        user_id: req.userId,
        day,
        idempotency_key: req.idempotencyKey ?? '',
        report_type: req.reportType,
        format: req.format,
        params: JSON.stringify(req.params),
        status: 'queued',
        attempts: 0,
        lease_owner: '',
        lease_expires_at: 0,
        rows_written: 0,
        bytes: 0,
        sha256: '',
        file_name: fileName(jobId),
        expires_at: 0,
        error: '',
        created_at: now,
        updated_at: now,
        version: nextVersion(now),
      };
      await writeJob(this.ch, job);
      return { job, created: true };
    });
  }
}
