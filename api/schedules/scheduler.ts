// The scheduler: each tick, every live schedule gets exactly one export job for each of its periods that has
// closed (missed ones are caught up, oldest first). Safe with several schedulers: the job id is a function of
// (schedule, period), the check-and-write runs under the process's claim lock, and a duplicate first row can
// neither be stored twice (dedup token) nor override a later state (it has the lowest version).
import type { ClickHouse } from '../../clickhouse/client.ts';
import { type ExportJob, getJob } from '../../clickhouse/queries/exports-jobs.ts';
import { type ExportSchedule, liveSchedules } from '../../clickhouse/queries/schedules.ts';
import { donePeriods, insertScheduledJob, writeRun } from '../../clickhouse/queries/schedules-runs.ts';
import type { Logger } from '../../core/logger.ts';
import type { KeyedMutex } from '../exports/lock.ts';
import type { ExportStore } from '../exports/store.ts';
import { processClaimLock } from '../exports/worker.ts';
import { scheduledJobId } from './job-id.ts';
import { closedPeriods, type Period } from './periods.ts';

export interface SchedulerOptions {
  ch: ClickHouse;
  store: ExportStore;
  logger: Logger;
  /** Between ticks (SCHEDULER_INTERVAL_SECONDS, default 60 s). */
  intervalMs?: number;
  /** Jobs created per tick at most, so a long downtime is caught up in bounded steps (default 500). */
  maxPerTick?: number;
  /** The in-process lock shared with the export workers' claims (default: theirs). */
  lock?: KeyedMutex;
  /** Told when jobs were queued (wakes the in-process export workers). */
  onQueued?: () => void;
  now?: () => number;
}

export class Scheduler {
  private readonly intervalMs: number;
  private readonly maxPerTick: number;
  private readonly lock: KeyedMutex;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: SchedulerOptions) {
    this.intervalMs = o.intervalMs ?? 60_000;
    this.maxPerTick = o.maxPerTick ?? 500;
    this.lock = o.lock ?? processClaimLock;
    this.now = o.now ?? Date.now;
  }

  /** Ticks now and then every interval; a failed tick is logged and the next one tries again. */
  start(): void {
    const tick = () => {
      this.running = this.tick().catch((err: unknown) =>
        this.o.logger.error({ err }, 'scheduler: tick failed'),
      );
    };
    tick();
    this.timer = setInterval(tick, this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** Creates the missing jobs of every closed period; returns how many it created. */
  async tick(): Promise<number> {
    const now = this.now();
    const [schedules, done] = await Promise.all([liveSchedules(this.o.ch), donePeriods(this.o.ch)]);
    let created = 0;
    for (const s of schedules) {
      const have = done.get(s.schedule_id);
      for (const p of closedPeriods(s.cadence, s.created_at, now)) {
        if (created >= this.maxPerTick) break;
        if (have?.has(p.start)) continue;
        if (await this.runPeriod(s, p, now)) created += 1;
      }
    }
    if (created > 0) {
      this.o.logger.info({ created }, 'scheduler: export jobs queued');
      this.o.onQueued?.();
    }
    return created;
  }

  /**
   * One period: the run row first (so the job's webhook can always find its schedule), then the job unless it
   * exists. Under the claim lock so that, in this process, no other scheduler or worker interleaves.
   */
  private runPeriod(s: ExportSchedule, p: Period, now: number): Promise<boolean> {
    const jobId = scheduledJobId(s.schedule_id, p.start);
    return this.lock.run('claim', async () => {
      const run = {
        schedule_id: s.schedule_id,
        period_start: p.start,
        period_end: p.end,
        job_id: jobId,
        user_id: s.user_id,
        created_at: now,
      };
      await writeRun(this.o.ch, run);
      if (await getJob(this.o.ch, jobId)) return false;
      await insertScheduledJob(
        this.o.ch,
        scheduledJob(s, p, jobId, this.o.store.fileName(jobId, s.format), now),
      );
      return true;
    });
  }
}

/** The export job of one closed period: the schedule's filters over the period's first to last UTC day. */
export function scheduledJob(
  s: ExportSchedule,
  p: Period,
  jobId: string,
  fileName: string,
  now: number,
): ExportJob {
  const filters = JSON.parse(s.params) as Record<string, string>;
  return {
    job_id: jobId,
    user_id: s.user_id,
    // The daily quota counts a user's jobs whose `day` is today; a scheduled job's `day` is its period's first
    // day, always before today, so scheduled jobs never spend the owner's quota (README "Scheduled exports").
    day: p.start,
    idempotency_key: '',
    report_type: s.report_type,
    format: s.format,
    params: JSON.stringify({ ...filters, start_date: p.start, end_date: p.end }),
    status: 'queued',
    attempts: 0,
    lease_owner: '',
    lease_expires_at: 0,
    rows_written: 0,
    bytes: 0,
    sha256: '',
    file_name: fileName,
    expires_at: 0,
    error: '',
    created_at: now,
    updated_at: now,
    version: 1,
  };
}
