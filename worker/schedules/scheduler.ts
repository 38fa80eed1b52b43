// The scheduler: each tick, every live schedule gets exactly one export job for each of its periods that has
// closed (missed ones are caught up, oldest first). Safe with any number of schedulers: the run row (schedule,
// period) is a primary key, inserted with its job in one transaction, and a scheduler that finds it taken does
// nothing. A schedule owned by an API key that has been revoked or has expired gets no job: its closed periods
// are recorded as skipped (a run row without a job), so they are never made later either
// (docs/data-engineers.md "Scheduled exports").
import type { SelfLog } from '../../clickhouse/self-log.ts';
import { scheduledJobId } from '../../control/job-id.ts';
import type { NewJob } from '../../control/jobs.ts';
import { closedPeriods, type Period } from '../../control/periods.ts';
import { donePeriods, type ExportSchedule, liveSchedules, startRun } from '../../control/schedules.ts';
import type { ControlStore } from '../../control/store.ts';
import type { ExportStore } from '../../core/exports/store.ts';
import type { Logger } from '../../core/logger.ts';
import type { OwnerCheck, OwnerStanding } from './owners.ts';

export interface SchedulerOptions {
  control: ControlStore;
  store: ExportStore;
  logger: Logger;
  /** Between ticks (SCHEDULER_INTERVAL_SECONDS, default 60 s). */
  intervalMs?: number;
  /** Jobs created per tick at most, so a long downtime is caught up in bounded steps (default 500). */
  maxPerTick?: number;
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
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> = Promise.resolve();
  // Schedules already reported as waiting for an unknown owner (reported once per process).
  private readonly waiting = new Set<string>();

  constructor(private readonly o: SchedulerOptions) {
    this.intervalMs = o.intervalMs ?? 60_000;
    this.maxPerTick = o.maxPerTick ?? 500;
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
    const [schedules, done, owners] = await Promise.all([
      liveSchedules(this.o.control),
      donePeriods(this.o.control),
      this.o.owners?.(),
    ]);
    let created = 0;
    let written = 0;
    for (const s of schedules) {
      const have = done.get(s.schedule_id);
      const todo = closedPeriods(s.cadence, s.created_at, now).filter((p) => !have?.has(p.start));
      if (todo.length === 0) continue;
      const owner: OwnerStanding = owners ? owners(s.user_id, now) : 'active';
      if (owner === 'unknown') {
        if (!this.waiting.has(s.schedule_id)) {
          this.waiting.add(s.schedule_id);
          this.o.logger.warn(
            { schedule: s.schedule_id, owner: s.user_id },
            'scheduler: the owner key is not known to the control store; its periods wait',
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
    // At debug only: lets a test see that every scheduler has ticked again, rather than sleep and hope.
    this.o.logger.debug({ schedules: schedules.length, created }, 'scheduler: tick');
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

  /** One period of an unusable owner, recorded as skipped (false when a scheduler has recorded it already). */
  private skipPeriod(s: ExportSchedule, p: Period, now: number): Promise<boolean> {
    return startRun(this.o.control, this.run(s, p, now), undefined);
  }

  /** One period: its run row and its job in one transaction; false when another scheduler has made them. */
  private runPeriod(s: ExportSchedule, p: Period, now: number): Promise<boolean> {
    const jobId = scheduledJobId(s.schedule_id, p.start);
    const job = scheduledJob(s, p, jobId, this.o.store.fileName(jobId, s.format), now);
    return startRun(this.o.control, this.run(s, p, now), job);
  }

  private run(s: ExportSchedule, p: Period, now: number) {
    return {
      schedule_id: s.schedule_id,
      period_start: p.start,
      period_end: p.end,
      user_id: s.user_id,
      created_at: now,
    };
  }
}

/** The export job of one closed period: the schedule's filters over the period's first to last UTC day. */
export function scheduledJob(
  s: ExportSchedule,
  p: Period,
  jobId: string,
  fileName: string,
  now: number,
): NewJob {
  const filters = JSON.parse(s.params) as Record<string, string>;
  return {
    job_id: jobId,
    user_id: s.user_id,
    // A scheduled job's `day` is its period's first day; it spends none of the owner's daily quota (which is
    // taken only by POST /reports/export), docs/data-engineers.md "Scheduled exports".
    day: p.start,
    idempotency_key: '',
    report_type: s.report_type,
    format: s.format,
    params: JSON.stringify({ ...filters, start_date: p.start, end_date: p.end }),
    file_name: fileName,
    created_at: now,
  };
}
