// Assembles the export parts from the configuration: the routes' dependencies and the in-process workers.
import type { ClickHouse } from '../../clickhouse/client.ts';
import { SelfLog } from '../../clickhouse/self-log.ts';
import type { Config } from '../../core/config.ts';
import type { Logger } from '../../core/logger.ts';
import type { ExportDeps } from './deps.ts';
import { JobAdmission, RedisQuota } from './quota.ts';
import { loadOrCreateKeyRing } from './signing.ts';
import { ExportStore } from './store.ts';
import { exportSource } from './stream.ts';
import { ExportWorker } from './worker.ts';

export function exportDeps(config: Config, ch: ClickHouse, onQueued?: () => void): ExportDeps {
  // The Redis that the replicas share for the rate limit also holds the export quota's atomic step.
  const redisUrl = config.security.rateLimitRedisUrl;
  return {
    ch,
    admission: new JobAdmission(
      ch,
      config.exportJobsPerDay,
      Date.now,
      redisUrl ? new RedisQuota({ url: redisUrl }) : undefined,
    ),
    store: new ExportStore(config.exports.dir),
    keys: loadOrCreateKeyRing(config.dataDir),
    publicBaseUrl: config.publicBaseUrl,
    urlTtlSeconds: config.exportUrlTtlSeconds,
    ...(onQueued ? { onQueued } : {}),
  };
}

export interface ExportWorkers {
  readonly workers: readonly ExportWorker[];
  /** Wakes the workers (a job was queued). */
  notify(): void;
  stop(): Promise<void>;
}

/** Starts config.exports.workers workers, each with its own streaming session; they claim under one lock. */
export function startExportWorkers(config: Config, ch: ClickHouse, logger: Logger): ExportWorkers {
  const store = new ExportStore(config.exports.dir);
  const selfLog = new SelfLog(ch);
  const workers = Array.from(
    { length: config.exports.workers },
    () =>
      new ExportWorker({
        ch,
        source: exportSource(ch, config.dataDir),
        store,
        selfLog,
        logger: logger.child({ role: 'export-worker' }),
        leaseMs: config.exports.leaseSeconds * 1000,
        maxAttempts: config.exports.maxAttempts,
        fileTtlMs: config.exports.fileTtlSeconds * 1000,
      }),
  );
  for (const w of workers) w.start();
  return {
    workers,
    notify: () => {
      for (const w of workers) w.notify();
    },
    stop: async () => {
      await Promise.all(workers.map((w) => w.stop()));
      // Also the summaries of records held back in the current window.
      await selfLog.close();
    },
  };
}
