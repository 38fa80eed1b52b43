// Assembles the export parts from the configuration: the routes' dependencies and the in-process workers.
// With RATE_LIMIT_REDIS_URL, the Redis the replicas share also holds the export quota, the Idempotency-Keys and
// the claims of job attempts (api/exports/claims.ts): exact across processes, not only within one.
import type { ClickHouse } from '../../clickhouse/client.ts';
import { exportSource } from '../../clickhouse/export-stream.ts';
import { SelfLog } from '../../clickhouse/self-log.ts';
import type { Config } from '../../core/config.ts';
import type { Logger } from '../../core/logger.ts';
import { RedisClaims } from './claims.ts';
import type { ExportDeps } from './deps.ts';
import { JobAdmission, RedisQuota } from './quota.ts';
import { loadOrCreateKeyRing } from './signing.ts';
import { ExportStore } from './store.ts';
import { ExportWorker } from './worker.ts';

/**
 * The claim store shared by every process through RATE_LIMIT_REDIS_URL, or undefined without it (then the
 * in-process lock is the only atomic step). Its owner closes it.
 */
export function sharedClaims(config: Config): RedisClaims | undefined {
  const redisUrl = config.security.rateLimitRedisUrl;
  return redisUrl ? new RedisClaims({ url: redisUrl }) : undefined;
}

export function exportDeps(config: Config, ch: ClickHouse, onQueued?: () => void): ExportDeps {
  // The Redis that the replicas share for the rate limit also holds the export quota's atomic step and the
  // Idempotency-Key reservations; admission.close() (at the API's stop) closes both connections.
  const redisUrl = config.security.rateLimitRedisUrl;
  const claims = sharedClaims(config);
  return {
    ch,
    admission: new JobAdmission(
      ch,
      config.exportJobsPerDay,
      Date.now,
      redisUrl ? new RedisQuota({ url: redisUrl }) : undefined,
      claims ? { claims } : {},
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

/**
 * Starts config.exports.workers workers, each with its own streaming session; they claim under one lock and,
 * with RATE_LIMIT_REDIS_URL, take each job attempt in Redis first (one connection for all of them).
 */
export function startExportWorkers(config: Config, ch: ClickHouse, logger: Logger): ExportWorkers {
  const store = new ExportStore(config.exports.dir);
  const selfLog = new SelfLog(ch);
  const claims = sharedClaims(config);
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
        ...(claims ? { claims } : {}),
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
      // After the workers: a job handed back on stop gives its attempt back in Redis.
      await claims?.close();
      // Also the summaries of records held back in the current window.
      await selfLog.close();
    },
  };
}
