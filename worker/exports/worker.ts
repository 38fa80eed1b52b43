// The export worker: claims one job at a time under a lease (one statement of the control store, FOR UPDATE
// SKIP LOCKED), streams its rows into the export store, keeps the lease alive with heartbeats that also report
// progress, and records the outcome under that lease. A job whose worker died is found by its expired lease and
// retried, up to maxAttempts claims, then failed with the reason.
import { randomUUID } from 'node:crypto';
import type { ClickHouse } from '../../clickhouse/client.ts';
import type { ExportSource } from '../../clickhouse/export-stream.ts';
import {
  buildLogExportQuery,
  buildUsageExportQuery,
  CLICKHOUSE_FORMAT,
  type LogExportParams,
  type UsageExportParams,
} from '../../clickhouse/queries/exports.ts';
import type { BuiltQuery } from '../../clickhouse/queries/query.ts';
import { retainedStart } from '../../clickhouse/retention.ts';
import type { SelfLog } from '../../clickhouse/self-log.ts';
import {
  claimJob,
  completeJob,
  type ExportJob,
  failJob,
  handBackJob,
  heartbeat,
  liveFiles,
} from '../../control/jobs.ts';
import type { ControlStore } from '../../control/store.ts';
import type { ExportStore } from '../../core/exports/store.ts';
import type { Logger } from '../../core/logger.ts';

export interface WorkerOptions {
  /** ClickHouse, which the export queries read. */
  ch: ClickHouse;
  /** The control store: the jobs and their leases. */
  control: ControlStore;
  source: ExportSource;
  store: ExportStore;
  selfLog: SelfLog;
  logger: Logger;
  /** How long a claim lasts without a heartbeat (default 30 s). */
  leaseMs?: number;
  /** Claims of one job before it is failed (default 3). */
  maxAttempts?: number;
  /** How long a completed file (and its links) lives (default 24 h). */
  fileTtlMs?: number;
  /** Sleep between polls when no job is waiting (default 1 s); notify() wakes the worker early. */
  pollMs?: number;
  /** Between sweeps of expired and orphaned files (default 10 min). */
  sweepMs?: number;
  now?: () => number;
  workerId?: string;
}

export function exportQuery(job: ExportJob, ch: ClickHouse): BuiltQuery {
  const params = JSON.parse(job.params) as Record<string, string>;
  if (job.report_type === 'usage-summary') {
    return buildUsageExportQuery(params as unknown as UsageExportParams, job.format);
  }
  // Under RETENTION_DAYS, the whole days no TTL has touched, as GET /logs/system-events shows them.
  const logs = params as LogExportParams;
  return buildLogExportQuery({ ...logs, start_date: retainedStart(ch, logs.start_date) }, job.format);
}

export class ExportWorker {
  readonly id: string;
  private readonly leaseMs: number;
  private readonly maxAttempts: number;
  private readonly fileTtlMs: number;
  private readonly pollMs: number;
  private readonly sweepMs: number;
  private readonly now: () => number;
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private current: AbortController | undefined;
  private lastSweep = 0;
  // schedules (issue 9): told of each job that reached completed or failed, so its webhook can fire.
  private readonly finished = new Set<(job: ExportJob) => void>();

  constructor(private readonly o: WorkerOptions) {
    this.id = o.workerId ?? `worker-${process.pid}-${randomUUID()}`;
    this.leaseMs = o.leaseMs ?? 30_000;
    this.maxAttempts = o.maxAttempts ?? 3;
    this.fileTtlMs = o.fileTtlMs ?? 24 * 3600_000;
    this.pollMs = o.pollMs ?? 1000;
    this.sweepMs = o.sweepMs ?? 600_000;
    this.now = o.now ?? Date.now;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Stops taking jobs; a job in progress is handed back to the queue (not counted as a lost attempt). */
  async stop(): Promise<void> {
    this.running = false;
    this.current?.abort();
    this.wake?.();
    await this.loop;
    this.o.source.close();
  }

  /**
   * schedules: `listener` sees every job this worker completes or fails, after the job's final state is
   * written. Any number of listeners, each called once per job in the order added, never awaited; one that
   * throws is logged and does not stop the others. A hint only: a crash between the write and the call loses
   * the call, so whoever must act on every finished job (the webhook outbox) also finds them in export_jobs.
   * Returns a function that removes the listener.
   */
  onFinished(listener: (job: ExportJob) => void): () => void {
    this.finished.add(listener);
    return () => {
      this.finished.delete(listener);
    };
  }

  private tellFinished(job: ExportJob): void {
    for (const listener of [...this.finished]) {
      try {
        listener(job);
      } catch (err) {
        this.o.logger.warn({ err, job: job.job_id }, 'export worker: a finished-job listener threw');
      }
    }
  }

  /** A job was queued: poll now instead of at the next tick. */
  notify(): void {
    this.wake?.();
  }

  private async run(): Promise<void> {
    while (this.running) {
      let worked = false;
      try {
        if (this.now() - this.lastSweep >= this.sweepMs) await this.sweep();
        worked = await this.runOnce();
      } catch (err) {
        this.o.logger.error({ err }, 'export worker: poll failed');
      }
      if (!worked && this.running) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, this.pollMs);
          this.wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        this.wake = undefined;
      }
    }
  }

  /** Claims and runs one job; false when none was waiting. */
  async runOnce(): Promise<boolean> {
    const job = await this.claim();
    if (!job) return false;
    await this.execute(job);
    return true;
  }

  /**
   * Claims the oldest claimable job in one statement (control/jobs.ts claimJob). A job whose attempts are spent
   * comes back failed from the same statement: it is reported, and the next one is claimed.
   */
  async claim(): Promise<ExportJob | undefined> {
    for (;;) {
      const job = await claimJob(this.o.control, this.id, this.now(), this.leaseMs, this.maxAttempts);
      if (job?.status !== 'failed') return job;
      this.reportFailed(job);
    }
  }

  private async execute(job: ExportJob): Promise<void> {
    const abort = new AbortController();
    this.current = abort;
    let rows = 0;
    let bytes = 0;
    let beat: Promise<void> = Promise.resolve();
    // Extends the lease and reports progress; a lost lease (another worker took the job) stops this run.
    const tick = () => {
      beat = beat.then(async () => {
        const held = await heartbeat(this.o.control, job.job_id, this.id, this.now(), this.leaseMs, {
          rows,
          bytes,
        });
        if (!held) abort.abort(new Error('the lease was lost'));
      });
      beat.catch((err: unknown) => this.o.logger.warn({ err, job: job.job_id }, 'export heartbeat failed'));
    };
    const timer = setInterval(tick, Math.max(50, Math.floor(this.leaseMs / 3)));
    const query = exportQuery(job, this.o.ch);
    try {
      const source = this.o.source.stream(query, CLICKHOUSE_FORMAT[job.format], abort.signal);
      const counted = (async function* () {
        for await (const chunk of source) {
          rows += chunk.rows;
          yield chunk.bytes;
        }
      })();
      const file = await this.o.store.write(job.file_name, job.attempts, counted, (b) => {
        bytes = b;
      });
      const total = (await this.o.source.countRows(query)) ?? rows;
      clearInterval(timer);
      await beat.catch(() => undefined);
      const now = this.now();
      const done = await completeJob(this.o.control, job.job_id, this.id, now, {
        rows: total,
        bytes: file.bytes,
        sha256: file.sha256,
        expiresAt: now + this.fileTtlMs,
      });
      if (!done) {
        this.o.logger.warn(
          { job: job.job_id },
          'export finished after its lease was lost; another worker has it',
        );
        return;
      }
      this.tellFinished(done); // wakes the webhook dispatcher (the outbox row is already written)
      this.o.logger.info({ job: job.job_id, rows: total, bytes: file.bytes }, 'export completed');
    } catch (err) {
      clearInterval(timer);
      await beat.catch(() => undefined);
      if (abort.signal.aborted && !this.running) {
        // Shutting down: hand the job back untouched rather than spend one of its attempts.
        await handBackJob(this.o.control, job.job_id, this.id, this.now()).catch(() => undefined);
        return;
      }
      if (abort.signal.aborted) {
        this.o.logger.warn({ job: job.job_id }, 'export stopped: its lease was lost to another worker');
        return;
      }
      this.o.logger.error({ err, job: job.job_id }, 'export failed');
      const failed = await failJob(
        this.o.control,
        job.job_id,
        this.id,
        this.now(),
        `the export query failed: ${reason(err)}`,
      );
      if (failed) this.reportFailed(failed);
    } finally {
      this.current = undefined;
    }
  }

  /** A job that reached `failed`: listeners told, and an error system log. */
  private reportFailed(job: ExportJob): void {
    this.tellFinished(job);
    this.o.selfLog.record(
      'error',
      'export-failed',
      `export ${job.job_id} (${job.report_type}, ${job.format}) failed: ${job.error}`,
    );
  }

  /** Removes expired exports and files no live job owns (a crashed worker's partial files). */
  async sweep(): Promise<string[]> {
    const now = this.now();
    this.lastSweep = now;
    const keep = new Set<string>();
    for (const f of await liveFiles(this.o.control, now)) {
      keep.add(f.status === 'completed' ? f.file_name : `${f.file_name}#processing`);
    }
    return this.o.store.sweep(keep, now);
  }
}

/** The first line of an error, short, without anything that looks like SQL text. */
function reason(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  const line = (msg.split('\n')[0] ?? '').replace(/\s+/g, ' ').trim();
  const cut = line.search(/\b(SELECT|WITH|FROM)\b/);
  return (cut > 0 ? line.slice(0, cut) : line).slice(0, 200) || 'unknown error';
}
