// Starts the scheduler (checking API-key owners in the control store) and the webhook dispatcher of a worker
// process. The dispatcher works from its outbox; the export workers' finished-job hook only wakes it early.
import type { ClickHouse } from '../../clickhouse/client.ts';
import type { SelfLog } from '../../clickhouse/self-log.ts';
import type { ControlStore } from '../../control/store.ts';
import type { Config } from '../../core/config.ts';
import { loadOrCreateKeyRing } from '../../core/exports/signing.ts';
import { ExportStore } from '../../core/exports/store.ts';
import type { Logger } from '../../core/logger.ts';
import { WebhookAllowList } from '../../core/webhooks/allow-list.ts';
import type { ExportWorker } from '../exports/worker.ts';
import { WebhookDispatcher } from '../webhooks/dispatcher.ts';
import { apiKeyOwners } from './owners.ts';
import { Scheduler } from './scheduler.ts';

export interface ScheduleServices {
  scheduler: Scheduler;
  webhooks: WebhookDispatcher;
  stop(): Promise<void>;
}

/**
 * Starts the scheduler and the webhook dispatcher (which picks up what an earlier process left pending), and
 * adds the dispatcher's wake-up to the finished-job listeners of `workers` (the export workers of this process).
 */
export function startSchedules(
  config: Config,
  ch: ClickHouse,
  control: ControlStore,
  logger: Logger,
  /** The process's system log (skipped periods, given-up deliveries); closed by its owner. */
  selfLog: SelfLog,
  workers: readonly ExportWorker[],
  onQueued?: () => void,
  /** For tests: how often the dispatcher looks for due deliveries when nothing wakes it (default 2 s). */
  tuning: { webhookPollMs?: number } = {},
): ScheduleServices {
  const webhooks = new WebhookDispatcher({
    control,
    allow: new WebhookAllowList(config.schedules.webhookAllowedHosts),
    links: {
      keys: loadOrCreateKeyRing(config.dataDir),
      publicBaseUrl: config.publicBaseUrl,
      urlTtlSeconds: config.exportUrlTtlSeconds,
    },
    selfLog,
    logger: logger.child({ role: 'webhooks' }),
    retryForMs: config.schedules.webhookRetryForSeconds * 1000,
    timeoutMs: config.schedules.webhookTimeoutSeconds * 1000,
    ...(tuning.webhookPollMs ? { pollMs: tuning.webhookPollMs } : {}),
  });
  const unhook = workers.map((w) => w.onFinished(webhooks.notify));
  const scheduler = new Scheduler({
    control,
    store: new ExportStore(config.exports.dir),
    logger: logger.child({ role: 'scheduler' }),
    intervalMs: config.schedules.intervalSeconds * 1000,
    owners: apiKeyOwners(control),
    selfLog,
    ...(onQueued ? { onQueued } : {}),
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
