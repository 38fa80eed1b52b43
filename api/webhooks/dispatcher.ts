// Completion webhooks of scheduled exports: when a job of a schedule with a webhook_url completes or fails, a
// signed JSON POST goes to it, retried with capped exponential backoff until accepted or until the retry time
// runs out; giving up is recorded as an error system log. Deliveries live in this process's memory (README).
import type { ClickHouse } from '../../clickhouse/client.ts';
import type { ExportJob } from '../../clickhouse/queries/exports-jobs.ts';
import { getSchedule } from '../../clickhouse/queries/schedules.ts';
import { runOfJob } from '../../clickhouse/queries/schedules-runs.ts';
import type { SelfLog } from '../../clickhouse/self-log.ts';
import type { Logger } from '../../core/logger.ts';
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
  /** Give up when the next attempt would start later than this after the first (WEBHOOK_RETRY_FOR_SECONDS). */
  retryForMs?: number;
  /** One attempt's limit (WEBHOOK_TIMEOUT_SECONDS, default 10 s). */
  timeoutMs?: number;
  /** First retry delay, doubled each time up to maxDelayMs (defaults 1 s and 5 min). */
  baseDelayMs?: number;
  maxDelayMs?: number;
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

export type DeliveryOutcome =
  | { delivered: true; attempts: number }
  | { delivered: false; attempts: number; reason: string };

export class WebhookDispatcher {
  private readonly pending = new Set<Promise<unknown>>();
  private readonly abort = new AbortController();
  private readonly now: () => number;

  constructor(private readonly o: WebhookOptions) {
    this.now = o.now ?? Date.now;
  }

  /** The export worker's hook: fire and forget (the worker never waits for a receiver). */
  readonly notify = (job: ExportJob): void => {
    const p = this.handle(job).catch((err: unknown) =>
      this.o.logger.error({ err, job: job.job_id }, 'webhook: could not prepare the delivery'),
    );
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  };

  /** Delivers the webhook of a finished scheduled job; undefined when it has none. */
  async handle(job: ExportJob): Promise<DeliveryOutcome | undefined> {
    if (job.status !== 'completed' && job.status !== 'failed') return undefined;
    const run = await runOfJob(this.o.ch, job.job_id);
    if (!run) return undefined;
    const schedule = await getSchedule(this.o.ch, run.schedule_id);
    if (!schedule?.webhook_url) return undefined;
    const now = this.now();
    const link =
      job.status === 'completed' && job.expires_at > now
        ? signedDownloadUrl(this.o.links, job, now)
        : undefined;
    const payload: WebhookPayload = {
      event: job.status === 'completed' ? 'export.completed' : 'export.failed',
      job_id: job.job_id,
      schedule_id: run.schedule_id,
      period_start: run.period_start,
      period_end: run.period_end,
      status: job.status,
      row_count: job.status === 'completed' ? job.rows_written : null,
      bytes: job.status === 'completed' ? job.bytes : null,
      sha256: job.status === 'completed' ? job.sha256 : null,
      download_url: link?.url ?? null,
      expires_at: link ? new Date(link.expiresAt).toISOString() : null,
      error: job.status === 'failed' ? job.error || 'the export failed' : null,
    };
    const outcome = await this.deliver(schedule.webhook_url, schedule.webhook_secret, payload);
    if (!outcome.delivered) {
      this.o.selfLog.record(
        'error',
        'webhook-failed',
        `webhook of export ${job.job_id} (schedule ${run.schedule_id}) not delivered after ${outcome.attempts} attempt(s): ${outcome.reason}`,
      );
    }
    return outcome;
  }

  /** Attempts until accepted, refused for good, or out of retry time. */
  async deliver(url: string, secret: string, payload: WebhookPayload): Promise<DeliveryOutcome> {
    const attempt = this.o.attempt ?? postWebhook;
    const body = JSON.stringify(payload);
    const started = this.now();
    const retryFor = this.o.retryForMs ?? 3_600_000;
    let delay = this.o.baseDelayMs ?? 1000;
    for (let n = 1; ; n += 1) {
      const headers = {
        'content-type': 'application/json',
        'user-agent': 'tally-webhooks/1',
        'x-tally-event': payload.event,
        // The same for every attempt of one delivery: receivers deduplicate on it.
        'x-tally-delivery': `${payload.job_id}:${payload.status}`,
        [SIGNATURE_HEADER.toLowerCase()]: signPayload(secret, body, Math.floor(this.now() / 1000)),
      };
      const r: AttemptResult = await attempt(this.o.allow, url, body, headers, this.o.timeoutMs ?? 10_000);
      if (r.ok) return { delivered: true, attempts: n };
      this.o.logger.warn({ job: payload.job_id, attempt: n, reason: r.reason }, 'webhook attempt failed');
      const jittered = delay / 2 + Math.random() * (delay / 2);
      if (!r.retry || this.abort.signal.aborted || this.now() + jittered - started > retryFor) {
        return { delivered: false, attempts: n, reason: r.reason };
      }
      await sleep(jittered, this.abort.signal);
      if (this.abort.signal.aborted) return { delivered: false, attempts: n, reason: 'the service stopped' };
      delay = Math.min(delay * 2, this.o.maxDelayMs ?? 300_000);
    }
  }

  /** Stops retrying (deliveries waiting for their next attempt end now) and waits for those in flight. */
  async stop(): Promise<void> {
    this.abort.abort();
    await Promise.allSettled([...this.pending]);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });
}
