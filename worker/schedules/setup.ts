// Starts the scheduler (checking API-key owners in the control store) and the webhook dispatcher of a worker
// process. The dispatcher works from its outbox; the export workers' finished-job hook only wakes it early.
// The process's entry (bin/) hands it what it built once.
import type { SelfLog } from '../../clickhouse/self-log.ts';
import type { ControlStore } from '../../control/store.ts';
import type { LinkSigner } from '../../core/exports/link.ts';
import type { ExportStore } from '../../core/exports/store.ts';
import type { Logger } from '../../core/logger.ts';
import type { WebhookAllowList } from '../../core/webhooks/allow-list.ts';
import type { ExportWorker } from '../exports/worker.ts';
import { WebhookDispatcher } from '../webhooks/dispatcher.ts';
import { apiKeyOwners } from './owners.ts';
import { Scheduler } from './scheduler.ts';

export interface ScheduleServicesOptions {
  control: ControlStore;
  store: ExportStore;
  /** Signs the download links the webhooks carry. */
  links: LinkSigner;
  /** WEBHOOK_ALLOWED_HOSTS, checked again at every delivery. */
  allow: WebhookAllowList;
  /** The process's system log (skipped periods, given-up deliveries); closed by its owner. */
  selfLog: SelfLog;
  logger: Logger;
  /** SCHEDULER_INTERVAL_SECONDS, in ms. */
  intervalMs: number;
  /** WEBHOOK_RETRY_FOR_SECONDS, in ms. */
  webhookRetryForMs: number;
  /** WEBHOOK_TIMEOUT_SECONDS, in ms. */
  webhookTimeoutMs: number;
  /** The export workers of this process: their finished jobs wake the dispatcher. */
  workers: readonly ExportWorker[];
  /** Called after the scheduler queues a job (wakes an in-process worker). */
  onQueued?: (() => void) | undefined;
  /** For tests: how often the dispatcher looks for due deliveries when nothing wakes it (default 2 s). */
  webhookPollMs?: number | undefined;
}

export interface ScheduleServices {
  scheduler: Scheduler;
  webhooks: WebhookDispatcher;
  stop(): Promise<void>;
}

/**
 * Starts the scheduler and the webhook dispatcher (which picks up what an earlier process left pending), and
 * adds the dispatcher's wake-up to the finished-job listeners of the workers.
 */
export function startSchedules(o: ScheduleServicesOptions): ScheduleServices {
  const webhooks = new WebhookDispatcher({
    control: o.control,
    allow: o.allow,
    links: o.links,
    selfLog: o.selfLog,
    logger: o.logger.child({ role: 'webhooks' }),
    retryForMs: o.webhookRetryForMs,
    timeoutMs: o.webhookTimeoutMs,
    ...(o.webhookPollMs ? { pollMs: o.webhookPollMs } : {}),
  });
  const unhook = o.workers.map((w) => w.onFinished(webhooks.notify));
  const scheduler = new Scheduler({
    control: o.control,
    store: o.store,
    logger: o.logger.child({ role: 'scheduler' }),
    intervalMs: o.intervalMs,
    owners: apiKeyOwners(o.control),
    selfLog: o.selfLog,
    ...(o.onQueued ? { onQueued: o.onQueued } : {}),
  });
  scheduler.start();
  webhooks.start();
  return {
    scheduler,
    webhooks,
    stop: async () => {
      for (const off of unhook) off();
      await scheduler.stop();
      await webhooks.stop();
    },
  };
}
