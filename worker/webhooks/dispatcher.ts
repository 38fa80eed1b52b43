// Completion webhooks of scheduled exports, delivered from a durable outbox (control store,
// webhook_deliveries). The transaction that finishes a job of a schedule with a webhook_url also writes its
// delivery row; a signed JSON POST then goes out, retried with capped exponential backoff until accepted or
// until the retry time (counted from the job's finish) runs out; giving up is recorded as an error system log.
// Every dispatcher (one per worker process) claims due deliveries with one statement (FOR UPDATE SKIP LOCKED,
// under a lease), attempts it and records the outcome under that lease. Delivery is at least once: a
// dispatcher that dies mid-attempt leaves its lease to expire and another makes the attempt again, with the same
// X-Tally-Delivery for deduplication (docs/data-engineers.md "Scheduled exports").
import { randomUUID } from 'node:crypto';
import type { SelfLog } from '../../clickhouse/self-log.ts';
import type { ExportJob } from '../../control/jobs.ts';
import type { ControlStore } from '../../control/store.ts';
import type { WebhookDelivery } from '../../control/webhooks.ts';
import { type ClaimedDelivery, claimDelivery, recordDelivery } from '../../control/webhooks.ts';
import { type LinkSigner, signedDownloadUrl } from '../../core/exports/link.ts';
import type { Logger } from '../../core/logger.ts';
import type { WebhookAllowList } from '../../core/webhooks/allow-list.ts';
import { type AttemptResult, postWebhook } from './deliver.ts';
import { SIGNATURE_HEADER, signPayload } from './signature.ts';

export interface WebhookOptions {
  control: ControlStore;
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
  /** How long a claim holds; an attempt cannot outlast it (default timeoutMs + 5 s). */
  leaseMs?: number;
  /** Deliveries attempted at once by this dispatcher (default 4): a slow receiver does not hold up the rest. */
  concurrency?: number;
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
  private running = false;
  private loop: Promise<void> | undefined;
  private readonly sleepers = new Set<() => void>();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly o: WebhookOptions) {
    // The process id in the name tells an operator (and the race test) whose claim a lease is.
    this.id = o.dispatcherId ?? `webhooks-${process.pid}-${randomUUID()}`;
    this.now = o.now ?? Date.now;
    this.retryForMs = o.retryForMs ?? 3_600_000;
    this.timeoutMs = o.timeoutMs ?? 10_000;
    // An attempt ends within timeoutMs (its own deadline), and its outcome is written at once.
    this.leaseMs = o.leaseMs ?? this.timeoutMs + 5_000;
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
      let next: ClaimedDelivery | undefined;
      try {
        next = await this.claim();
      } catch (err) {
        this.o.logger.error({ err }, 'webhooks: looking for due deliveries failed');
      }
      if (!next) {
        if (this.running) await this.sleep(this.o.pollMs ?? 2000);
        continue;
      }
      const job = next.delivery.job_id;
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

  /** Claims the delivery due longest, in one statement of the control store (control/webhooks.ts). */
  claim(): Promise<ClaimedDelivery | undefined> {
    return claimDelivery(this.o.control, this.id, this.now(), this.leaseMs);
  }

  /** One attempt of a claimed delivery (or none, when it cannot be made), and its outcome recorded. */
  private async process(c: ClaimedDelivery): Promise<DeliveryStep> {
    const d = c.delivery;
    if (!c.webhook_url) {
      // Deleted schedules send no further webhooks: closed without an attempt and without an error log.
      return this.record(
        d,
        { state: 'gave_up', attempts: d.attempts, reason: 'the schedule was deleted' },
        0,
        false,
      );
    }
    // No budget check here: an attempt is only ever scheduled within the retry time (else the delivery was
    // given up), and one that is late because no dispatcher ran is still made, once: the delay was ours.
    const started = this.now();
    const payload = this.payload(
      c.job,
      { schedule_id: d.schedule_id, period_start: c.period_start, period_end: c.period_end },
      started,
    );
    const body = JSON.stringify(payload);
    const headers = {
      'content-type': 'application/json',
      'user-agent': 'tally-webhooks/1',
      'x-tally-event': payload.event,
      // The same for every attempt of one delivery, by any dispatcher: receivers deduplicate on it.
      'x-tally-delivery': d.delivery_id,
      [SIGNATURE_HEADER.toLowerCase()]: signPayload(c.webhook_secret, body, Math.floor(started / 1000)),
    };
    const attempt = this.o.attempt ?? postWebhook;
    const r: AttemptResult = await attempt(this.o.allow, c.webhook_url, body, headers, this.timeoutMs);
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

  /** Records the outcome under this dispatcher's claim (releasing it); a give-up is also a system log. */
  private async record(
    d: WebhookDelivery,
    step: DeliveryStep,
    lastStatus: number,
    log: boolean,
  ): Promise<DeliveryStep> {
    const held = await recordDelivery(this.o.control, d.job_id, this.id, this.now(), {
      state: step.state,
      attempts: step.attempts,
      ...(step.state === 'pending' ? { nextAttemptAt: step.nextAttemptAt } : {}),
      lastStatus,
      lastError: step.state === 'delivered' ? '' : step.reason,
    });
    if (!held) {
      this.o.logger.warn(
        { job: d.job_id },
        'webhooks: the claim expired during the attempt; another dispatcher has it',
      );
      return step;
    }
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
