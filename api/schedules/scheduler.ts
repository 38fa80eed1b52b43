// The scheduler: each tick, every live schedule gets exactly one export job for each of its periods that has
// closed (missed ones are caught up, oldest first). Safe with several schedulers: the job id is a function of
// (schedule, period), the check-and-write runs under the process's claim lock, and a duplicate first row can
// neither be stored twice (dedup token) nor override a later state (it has the lowest version). A schedule
// owned by an API key that has been revoked or has expired gets no job: its closed periods are recorded as
// skipped (a run row without a job), so they are never made later either (docs/data-engineers.md "Scheduled exports").
import type { ClickHouse } from '../../clickhouse/client.ts';
import { type ExportJob, getJob } from '../../clickhouse/queries/exports-jobs.ts';
import { type ExportSchedule, liveSchedules } from '../../clickhouse/queries/schedules.ts';
import { donePeriods, insertScheduledJob, writeRun } from '../../clickhouse/queries/schedules-runs.ts';
import { skippedPeriods, writeSkippedRun } from '../../clickhouse/queries/schedules-skips.ts';
import type { SelfLog } from '../../clickhouse/self-log.ts';
import type { Logger } from '../../core/logger.ts';
import type { KeyedMutex } from '../exports/lock.ts';
import type { ExportStore } from '../exports/store.ts';
import { processClaimLock } from '../exports/worker.ts';
import { scheduledJobId } from './job-id.ts';
import type { OwnerCheck, OwnerStanding } from './owners.ts';
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
  /**
   * The owners' standing, one snapshot per tick (default: every owner active). Periods of a schedule whose
   * owner is `revoked` / `expired` are skipped for good; `unknown` ones wait for a later tick.
   */
  owners?: OwnerCheck;
  /** Where skipped periods are reported (a warning system log per schedule and tick); none by default. */
  selfLog?: SelfLog;
  now?: () => number;
}

export class Scheduler {
  private readonly intervalMs: number;
  private readonly maxPerTick: number;
  private readonly lock: KeyedMutex;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> = Promise.resolve();
  // Schedules already reported as waiting for an unknown owner (reported once per process).
  private readonly waiting = new Set<string>();

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
    const [schedules, done, skipped, owners] = await Promise.all([
      liveSchedules(this.o.ch),
      donePeriods(this.o.ch),
      skippedPeriods(this.o.ch),
      this.o.owners?.(),
    ]);
    let created = 0;
    let written = 0;
    for (const s of schedules) {
      const have = done.get(s.schedule_id);
      const passed = skipped.get(s.schedule_id);
      const todo = closedPeriods(s.cadence, s.created_at, now).filter(
        (p) => !have?.has(p.start) && !passed?.has(p.start),
      );
      if (todo.length === 0) continue;
      const owner: OwnerStanding = owners ? owners(s.user_id, now) : 'active';
      if (owner === 'unknown') {
        if (!this.waiting.has(s.schedule_id)) {
          this.waiting.add(s.schedule_id);
          this.o.logger.warn(
            { schedule: s.schedule_id, owner: s.user_id },
            'scheduler: the owner key is not in API_KEYS_FILE here; its periods wait',
          );
        }
        continue;
      }
      this.waiting.delete(s.schedule_id);
      const skipping: Period[] = [];
      for (const p of todo) {
        if (written >= this.maxPerTick) break;
        written += 1;
        if (owner !== 'active') {
          if (await this.skipPeriod(s, p, now)) skipping.push(p);
        } else if (await this.runPeriod(s, p, now)) created += 1;
      }
      if (skipping.length > 0) this.reportSkipped(s, owner, skipping);
    }
    if (created > 0) {
      this.o.logger.info({ created }, 'scheduler: export jobs queued');
      this.o.onQueued?.();
    }
    return created;
  }

  private reportSkipped(s: ExportSchedule, owner: OwnerStanding, periods: Period[]): void {
    const first = periods[0] as Period;
    const last = periods[periods.length - 1] as Period;
    const span = periods.length === 1 ? first.start : `${first.start}..${last.end}`;
    const message = `schedule ${s.schedule_id} of ${s.user_id} made no export for ${periods.length} period(s) (${span}): its API key is ${owner}; such periods are skipped for good`;
    this.o.logger.warn({ schedule: s.schedule_id, owner: s.user_id, periods: periods.length }, message);
    this.o.selfLog?.record('warning', 'schedule-skipped', message, {
      subject: s.schedule_id,
      perSubject: true,
    });
  }

  /**
   * One period of an unusable owner: recorded as skipped unless a job exists already (made by a scheduler
   * that still saw the key usable). Under the claim lock, like runPeriod.
   */
  private skipPeriod(s: ExportSchedule, p: Period, now: number): Promise<boolean> {
    const jobId = scheduledJobId(s.schedule_id, p.start);
    return this.lock.run('claim', async () => {
      if (await getJob(this.o.ch, jobId)) return false;
      await writeSkippedRun(this.o.ch, {
        schedule_id: s.schedule_id,
        period_start: p.start,
        period_end: p.end,
        user_id: s.user_id,
        created_at: now,
      });
      return true;
    });
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
    // day, always before today, so scheduled jobs never spend the owner's quota (docs/data-engineers.md "Scheduled exports").
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
