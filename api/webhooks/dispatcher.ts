// Completion webhooks of scheduled exports, delivered from a durable outbox (webhook_deliveries). When a job of
// a schedule with a webhook_url completes or fails, a signed JSON POST goes to it, retried with capped
// exponential backoff until accepted or until the retry time (counted from the job's finish) runs out; giving up
// is recorded as an error system log. Nothing lives only in memory: every dispatcher (one per worker process),
// on start and every poll, finds finished jobs without a delivery row and pending deliveries that are due, claims
// one under a lease exactly as export workers claim jobs (with RATE_LIMIT_REDIS_URL, each attempt taken in Redis
// first, so no two dispatchers make the same attempt), attempts it and records the outcome. Delivery is still
// at-least-once (docs/data-engineers.md "Scheduled exports"): X-Tally-Delivery is the same on every attempt, for deduplication.
import { randomUUID } from 'node:crypto';
import type { ClickHouse } from '../../clickhouse/client.ts';
import { type ExportJob, getJob, nextVersion } from '../../clickhouse/queries/exports-jobs.ts';
import { getSchedule } from '../../clickhouse/queries/schedules.ts';
import { runOfJob } from '../../clickhouse/queries/schedules-runs.ts';
import {
  type DueDelivery,
  dueDeliveries,
  getDelivery,
  type WebhookDelivery,
  writeDelivery,
} from '../../clickhouse/queries/webhook-deliveries.ts';
import type { SelfLog } from '../../clickhouse/self-log.ts';
import type { Logger } from '../../core/logger.ts';
import { AttemptGuard, type ClaimStore } from '../exports/claims.ts';
import type { KeyedMutex } from '../exports/lock.ts';
import { processClaimLock } from '../exports/worker.ts';
import type { WebhookAllowList } from './allow-list.ts';
import { type AttemptResult, postWebhook } from './deliver.ts';
import { type LinkSigner, signedDownloadUrl } from './link.ts';
import { SIGNATURE_HEADER, signPayload } from './signature.ts';

export interface WebhookOptions {
  ch: ClickHouse;
  allow: WebhookAllowList;
  links: LinkSigner;
  selfLog: SelfLog;
  logger: Logger;
  /**
   * Give up when the next attempt would start later than this after the job finished
   * (WEBHOOK_RETRY_FOR_SECONDS, default 1 h). Finished jobs older than this with no delivery row are not
   * picked up (their budget is spent).
   */
  retryForMs?: number;
  /** One attempt's overall limit, lookup to answer (WEBHOOK_TIMEOUT_SECONDS, default 10 s). */
  timeoutMs?: number;
  /** First retry delay, doubled each time up to maxDelayMs (defaults 1 s and 5 min), jittered. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Between looks for due deliveries when there is nothing to do (default 2 s); notify() looks at once. */
  pollMs?: number;
  /** How long a claim holds; an attempt cannot outlast it (default timeoutMs + 30 s). */
  leaseMs?: number;
  /**
   * Wait between writing a claim and reading it back (default 0 on the embedded engine, where one process
   * claims under one lock; 500 ms on a server). A dispatcher of another process that selected the same
   * delivery before our write is then seen, and the newer claim wins; see docs/data-engineers.md for what remains.
   */
  claimSettleMs?: number;
  /** Deliveries attempted at once by this dispatcher (default 4): a slow receiver does not hold up the rest. */
  concurrency?: number;
  /** Selecting and claiming a delivery is one step under this lock (default: the process's claim lock). */
  claimLock?: KeyedMutex;
  /**
   * Shared by every dispatcher process (RATE_LIMIT_REDIS_URL): each attempt of a delivery is taken there before
   * its claim row is written, so one dispatcher in all makes it (default: none, the lock and read-back alone).
   */
  claims?: ClaimStore;
  dispatcherId?: string;
  now?: () => number;
  /** One attempt; tests may wrap it. */
  attempt?: typeof postWebhook;
}

export interface WebhookPayload {
  event: 'export.completed' | 'export.failed';
  job_id: string;
  schedule_id: string;
  period_start: string;
  period_end: string;
  status: 'completed' | 'failed';
  row_count: number | null;
  bytes: number | null;
  sha256: string | null;
  download_url: string | null;
  /** When download_url stops working (UTC, RFC 3339). */
  expires_at: string | null;
  error: string | null;
}

/** What one processed delivery came to. */
export type DeliveryStep =
  | { state: 'delivered'; attempts: number; status: number }
  | { state: 'pending'; attempts: number; reason: string; nextAttemptAt: number }
  | { state: 'gave_up'; attempts: number; reason: string };

export class WebhookDispatcher {
  readonly id: string;
  private readonly now: () => number;
  private readonly retryForMs: number;
  private readonly timeoutMs: number;
  private readonly leaseMs: number;
  private readonly settleMs: number;
  private readonly lock: KeyedMutex;
  private running = false;
  private loop: Promise<void> | undefined;
  private readonly sleepers = new Set<() => void>();
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Attempts taken in the shared claim store (RATE_LIMIT_REDIS_URL), before a claim row is written. */
  private readonly attempts: AttemptGuard;

  constructor(private readonly o: WebhookOptions) {
    this.id = o.dispatcherId ?? `webhooks-${randomUUID()}`;
    this.attempts = new AttemptGuard('webhook', o.claims, this.id, o.logger, ['webhooks', 'delivery']);
    this.now = o.now ?? Date.now;
    this.retryForMs = o.retryForMs ?? 3_600_000;
    this.timeoutMs = o.timeoutMs ?? 10_000;
    this.leaseMs = o.leaseMs ?? this.timeoutMs + 30_000;
    this.settleMs = o.claimSettleMs ?? (o.ch.embedded ? 0 : 500);
    this.lock = o.claimLock ?? processClaimLock;
  }

  /** Starts delivering: looks for due deliveries now (what a previous process left included), then polls. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /**
   * Stops claiming; attempts in flight finish (each within timeoutMs) and record their outcome, so a pending
   * delivery stays pending in the table for the next dispatcher.
   */
  async stop(): Promise<void> {
    this.running = false;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.wake();
    await this.loop;
    this.loop = undefined;
  }

  /**
   * The export worker's hook (ExportWorker.onFinished): a job just finished, look now rather than at the next
   * poll. Only a hint: the job is found in export_jobs whether or not this is called.
   */
  readonly notify = (_job?: ExportJob): void => {
    this.wake();
  };

  /** Claims one due delivery and processes it; undefined when none was due (or another dispatcher won it). */
  async runOnce(): Promise<DeliveryStep | undefined> {
    const claimed = await this.claim();
    return claimed ? this.process(claimed) : undefined;
  }

  /**
   * One poller: claims due deliveries while fewer than `concurrency` are in flight, each attempted beside the
   * others; when none is due it sleeps pollMs (or until woken), so an idle dispatcher costs one query a poll.
   */
  private async run(): Promise<void> {
    const limit = Math.max(1, this.o.concurrency ?? 4);
    const inFlight = new Set<Promise<void>>();
    while (this.running) {
      if (inFlight.size >= limit) {
        await Promise.race(inFlight);
        continue;
      }
      let next: WebhookDelivery | 'none' | 'lost' = 'none';
      try {
        next = await this.tryClaim();
      } catch (err) {
        this.o.logger.error({ err }, 'webhooks: looking for due deliveries failed');
      }
      if (next === 'lost') continue;
      if (next === 'none') {
        if (this.running) await this.sleep(this.o.pollMs ?? 2000);
        continue;
      }
      const job = next.job_id;
      const p: Promise<void> = this.process(next)
        .then(() => undefined)
        .catch((err: unknown) =>
          // The claim stays until its lease expires; then any dispatcher tries again (at-least-once).
          this.o.logger.error({ err, job }, 'webhooks: a delivery could not be processed'),
        )
        .finally(() => {
          inFlight.delete(p);
          this.wake(); // a slot is free
        });
      inFlight.add(p);
    }
    await Promise.allSettled([...inFlight]);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.sleepers.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.sleepers.add(done);
    });
  }

  private wake(): void {
    for (const done of [...this.sleepers]) done();
  }

  /** Wakes the poller when a retry this dispatcher scheduled falls due (other dispatchers find it by polling). */
  private wakeAt(atMs: number): void {
    if (!this.running) return;
    const t = setTimeout(
      () => {
        this.timers.delete(t);
        this.wake();
      },
      Math.max(0, atMs - this.now()),
    );
    t.unref();
    this.timers.add(t);
  }

  /**
   * Selecting the oldest due delivery and writing the claim (a new version naming this dispatcher, with a lease)
   * is one step under the process's lock. With a shared claim store, the attempt about to be made is first taken
   * there (atomic for all processes): only its taker writes the claim, and a dispatcher that finds it taken
   * claims nothing until its next poll (its reads may still show the delivery as due). The claim is then read
   * back after the settle time: the newest version wins, and a dispatcher that does not find its own claim there
   * walks away (as ExportWorker.claim does).
   */
  async claim(): Promise<WebhookDelivery | undefined> {
    const r = await this.tryClaim();
    return typeof r === 'string' ? undefined : r;
  }

  private async tryClaim(): Promise<WebhookDelivery | 'none' | 'lost'> {
    const claimed = await this.lock.run('webhook-claim', async () => {
      const now = this.now();
      const [due] = await dueDeliveries(this.o.ch, now, now - this.retryForMs, 1);
      if (!due) return undefined;
      const current = due.delivery ?? firstVersion(due, now);
      if (!(await this.attempts.take(current.job_id, current.attempts + 1, this.leaseMs))) return undefined;
      const next: WebhookDelivery = {
        ...current,
        lease_owner: this.id,
        lease_expires_at: now + this.leaseMs,
        updated_at: now,
        version: nextVersion(now),
      };
      await writeDelivery(this.o.ch, next);
      return next;
    });
    if (!claimed) return 'none';
    if (this.settleMs > 0) await new Promise((r) => setTimeout(r, this.settleMs));
    const seen = await getDelivery(this.o.ch, claimed.job_id);
    return seen?.lease_owner === this.id && seen.version === claimed.version ? claimed : 'lost';
  }

  /** One attempt of a claimed delivery (or none, when it cannot be made), and its outcome recorded. */
  private async process(d: WebhookDelivery): Promise<DeliveryStep> {
    const [job, run] = await Promise.all([getJob(this.o.ch, d.job_id), runOfJob(this.o.ch, d.job_id)]);
    const schedule = run ? await getSchedule(this.o.ch, run.schedule_id) : undefined;
    if (!job || !run || !schedule?.webhook_url) {
      // Deleted schedules send no further webhooks: closed without an attempt and without an error log.
      const reason = !job || !run ? 'the job or its run is gone' : 'the schedule was deleted';
      return this.record(d, { state: 'gave_up', attempts: d.attempts, reason }, 0, false);
    }
    // No budget check here: an attempt is only ever scheduled within the retry time (else the delivery was
    // given up), and one that is late because no dispatcher ran is still made, once: the delay was ours.
    const started = this.now();
    const payload = this.payload(job, run, started);
    const body = JSON.stringify(payload);
    const headers = {
      'content-type': 'application/json',
      'user-agent': 'tally-webhooks/1',
      'x-tally-event': payload.event,
      // The same for every attempt of one delivery, by any dispatcher: receivers deduplicate on it.
      'x-tally-delivery': d.delivery_id,
      [SIGNATURE_HEADER.toLowerCase()]: signPayload(
        schedule.webhook_secret,
        body,
        Math.floor(started / 1000),
      ),
    };
    const attempt = this.o.attempt ?? postWebhook;
    const r: AttemptResult = await attempt(this.o.allow, schedule.webhook_url, body, headers, this.timeoutMs);
    const attempts = d.attempts + 1;
    if (r.ok) return this.record(d, { state: 'delivered', attempts, status: r.status }, r.status, false);
    this.o.logger.warn({ job: d.job_id, attempt: attempts, reason: r.reason }, 'webhook attempt failed');
    const base = this.o.baseDelayMs ?? 1000;
    const delay = Math.min(base * 2 ** (attempts - 1), this.o.maxDelayMs ?? 300_000);
    const jittered = delay / 2 + Math.random() * (delay / 2);
    const now = this.now();
    const status = r.status ?? 0;
    if (!r.retry || now + jittered - d.finished_at > this.retryForMs) {
      return this.record(d, { state: 'gave_up', attempts, reason: r.reason }, status, true);
    }
    const step: DeliveryStep = {
      state: 'pending',
      attempts,
      reason: r.reason,
      nextAttemptAt: now + jittered,
    };
    return this.record(d, step, status, false);
  }

  private payload(
    job: ExportJob,
    run: { schedule_id: string; period_start: string; period_end: string },
    now: number,
  ): WebhookPayload {
    const completed = job.status === 'completed';
    const link = completed && job.expires_at > now ? signedDownloadUrl(this.o.links, job, now) : undefined;
    return {
      event: completed ? 'export.completed' : 'export.failed',
      job_id: job.job_id,
      schedule_id: run.schedule_id,
      period_start: run.period_start,
      period_end: run.period_end,
      status: completed ? 'completed' : 'failed',
      row_count: completed ? job.rows_written : null,
      bytes: completed ? job.bytes : null,
      sha256: completed ? job.sha256 : null,
      download_url: link?.url ?? null,
      expires_at: link ? new Date(link.expiresAt).toISOString() : null,
      error: completed ? null : job.error || 'the export failed',
    };
  }

  /** Writes the outcome as the delivery's next version (releasing the claim); a give-up is also a system log. */
  private async record(
    d: WebhookDelivery,
    step: DeliveryStep,
    lastStatus: number,
    log: boolean,
  ): Promise<DeliveryStep> {
    const now = this.now();
    await writeDelivery(this.o.ch, {
      ...d,
      state: step.state,
      attempts: step.attempts,
      next_attempt_at: step.state === 'pending' ? step.nextAttemptAt : d.next_attempt_at,
      lease_owner: '',
      lease_expires_at: 0,
      last_status: lastStatus,
      last_error: step.state === 'delivered' ? '' : step.reason,
      updated_at: now,
      version: nextVersion(now),
    });
    if (step.state === 'pending') this.wakeAt(step.nextAttemptAt);
    if (step.state === 'gave_up' && log) {
      // Keyed by job: two jobs given up within the rate-limit window are two records, each naming its job.
      this.o.selfLog.record(
        'error',
        'webhook-failed',
        `webhook of export ${d.job_id} (schedule ${d.schedule_id}) not delivered after ${step.attempts} attempt(s): ${step.reason}`,
        { subject: d.job_id, perSubject: true },
      );
    }
    return step;
  }
}

/** A delivery's first row, made by the claim of a finished job that has none yet. */
function firstVersion(due: DueDelivery, now: number): WebhookDelivery {
  return {
    job_id: due.job_id,
    delivery_id: `${due.job_id}:${due.job_status}`,
    schedule_id: due.schedule_id,
    user_id: due.user_id,
    event: due.job_status === 'completed' ? 'export.completed' : 'export.failed',
    url: due.webhook_url,
    state: 'pending',
    attempts: 0,
    finished_at: due.finished_at,
    next_attempt_at: now,
    lease_owner: '',
    lease_expires_at: 0,
    last_status: 0,
    last_error: '',
    created_at: now,
    updated_at: now,
    version: 0,
  };
}
