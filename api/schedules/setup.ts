// Assembles the schedule parts from the configuration: the routes' dependencies, the scheduler (checking API-key
// owners against API_KEYS_FILE) and the webhook dispatcher. The dispatcher works from its outbox table; the
// export workers' finished-job hook only wakes it early (one listener among any others the workers have).
import type { ClickHouse } from '../../clickhouse/client.ts';
import { SelfLog } from '../../clickhouse/self-log.ts';
import type { Config } from '../../core/config.ts';
import type { Logger } from '../../core/logger.ts';
import type { ExportDeps } from '../exports/deps.ts';
import { sharedClaims } from '../exports/setup.ts';
import { loadOrCreateKeyRing } from '../exports/signing.ts';
import { ExportStore } from '../exports/store.ts';
import type { ExportWorker } from '../exports/worker.ts';
import { WebhookAllowList } from '../webhooks/allow-list.ts';
import { WebhookDispatcher } from '../webhooks/dispatcher.ts';
import type { ScheduleDeps } from './deps.ts';
import { apiKeyOwners } from './owners.ts';
import { Scheduler } from './scheduler.ts';

export function scheduleDeps(config: Config, exports: ExportDeps): ScheduleDeps {
  return {
    exports,
    allow: new WebhookAllowList(config.schedules.webhookAllowedHosts),
    perUser: config.schedules.perUser,
  };
}

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
  logger: Logger,
  workers: readonly ExportWorker[],
  onQueued?: () => void,
  /** For tests: how often the dispatcher looks for due deliveries when nothing wakes it (default 2 s). */
  tuning: { webhookPollMs?: number } = {},
): ScheduleServices {
  const selfLog = new SelfLog(ch);
  // With RATE_LIMIT_REDIS_URL every attempt of a delivery is taken in Redis first: one dispatcher in all makes it.
  const claims = sharedClaims(config);
  const webhooks = new WebhookDispatcher({
    ch,
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
    ...(claims ? { claims } : {}),
  });
  const unhook = workers.map((w) => w.onFinished(webhooks.notify));
  const scheduler = new Scheduler({
    ch,
    store: new ExportStore(config.exports.dir),
    logger: logger.child({ role: 'scheduler' }),
    intervalMs: config.schedules.intervalSeconds * 1000,
    owners: apiKeyOwners(config.security.apiKeysPath),
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
      await claims?.close();
      await selfLog.close();
    },
  };
}
