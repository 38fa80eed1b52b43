import { serve } from '@hono/node-server';
import { createApp } from '../api/app.ts';
import { recordAuthFailures } from '../api/auth/audit.ts';
import { JwksCache } from '../api/auth/jwks.ts';
import type { ExportDeps } from '../api/exports/deps.ts';
import { createAuthenticator } from '../api/middleware/auth.ts';
import { limitPerClient } from '../api/middleware/client-limit.ts';
import { createRateLimit } from '../api/middleware/rate-limit.ts';
import { RedisSlidingLogStore } from '../api/middleware/rate-limit-redis.ts';
import { limitPolicy } from '../api/middleware/rate-limit-store.ts';
import { ReadCache } from '../api/read-cache.ts';
import { scheduleDeps } from '../api/schedules/deps.ts';
import type { ClickHouse } from '../clickhouse/client.ts';
import { dataVersionSource } from '../clickhouse/data-version.ts';
import { insertEvents } from '../clickhouse/inserts.ts';
import { migrate } from '../clickhouse/migrate.ts';
import { readLegacyControl } from '../clickhouse/queries/legacy-control.ts';
import { startSealer } from '../clickhouse/sealer.ts';
import { SelfLog } from '../clickhouse/self-log.ts';
import { importLegacy, syncKeyFile } from '../control/import.ts';
import { getKey } from '../control/keys.ts';
import { type ControlStore, controlDir, openControl } from '../control/store.ts';
import { readKeys } from '../core/api-keys.ts';
import type { Config } from '../core/config.ts';
import type { StatusSource } from '../core/health.ts';
import { createLogger, type Logger } from '../core/logger.ts';
import type { EventSink } from '../core/sink.ts';
import { listenFailure, StartupError, storageFailure } from '../core/startup.ts';
import { Ingester } from '../ingest/consumer.ts';
import { createDirectSink } from '../ingest/direct.ts';
import { createKafka } from '../ingest/kafka.ts';
import { httpLedger, recordBatch } from '../ingest/ledger.ts';
import { connectingKafkaSink } from '../ingest/producer.ts';

/**
 * The upgrade step of a process that has the control store: the state an earlier version kept in ClickHouse
 * (and API_KEYS_FILE) is imported once (control/import.ts), API_KEYS_FILE's new keys are added, and only then is
 * ClickHouse migration 0012 applied, which drops the old tables. A process without a control store (the ingest
 * role) leaves this to the others.
 */
export async function retireLegacyTables(
  config: Config,
  ch: ClickHouse,
  control: ControlStore,
  logger: Logger,
): Promise<void> {
  const summary = await importLegacy(
    control,
    () => readLegacyControl(ch),
    () => readKeys(config.security.apiKeysPath),
    { retryForMs: config.schedules.webhookRetryForSeconds * 1000 },
  );
  if (summary) logger.info({ imported: summary }, 'control store: imported the state of the earlier version');
  const added = await syncKeyFile(control, readKeys(config.security.apiKeysPath));
  if (added > 0) logger.info({ added }, `control store: API keys added from ${config.security.apiKeysPath}`);
  const applied = await migrate(ch).catch((err: unknown) => {
    throw storageFailure(err, config.clickhouse.url) ?? err;
  });
  if (applied.length > 0) logger.info({ applied }, 'clickhouse: migrations applied');
}

/**
 * The control store: the PostgreSQL server of DATABASE_URL, or PGlite under DATA_DIR/control (this process
 * its one owner). Migrated, and the state an earlier version kept in ClickHouse imported once.
 */
export async function openControlStore(config: Config, logger: Logger): Promise<ControlStore> {
  const url = config.control.databaseUrl;
  let control: ControlStore;
  try {
    control = await openControl({ url, dataDir: config.dataDir });
  } catch (err) {
    if (err instanceof StartupError) throw err;
    const message = (err as Error).message ?? String(err);
    if (url) {
      throw new StartupError(
        `DATABASE_URL: cannot use the PostgreSQL server (${message.split('\n')[0]}); start it, or fix DATABASE_URL`,
        { cause: err },
      );
    }
    throw new StartupError(
      `DATA_DIR: cannot open the control store in ${controlDir(config.dataDir)} (${message})`,
      {
        cause: err,
      },
    );
  }
  logger.debug({ kind: control.kind }, 'control store open');
  return control;
}

export interface Stoppable {
  stop(): Promise<void>;
}

/**
 * The sink of POST /events: Kafka when configured, else the raw tables directly. Never waits for Kafka: the
 * service starts while the broker is down, and POST /events answers 503 with Retry-After until it is back.
 */
export async function createSink(
  config: Config,
  ch: ClickHouse,
  logger: Logger,
): Promise<EventSink & Stoppable> {
  if (!config.kafka.brokers) return { ...createDirectSink(ch), stop: async () => undefined };
  const kafka = createKafka({ brokers: config.kafka.brokers, clientId: 'tally-api', logger });
  return connectingKafkaSink(kafka, {
    brokers: config.kafka.brokers,
    topics: { sessions: config.kafka.topicSessions, logs: config.kafka.topicLogs },
    groupId: config.kafka.groupId,
    compression: config.kafka.compression,
    logger,
  });
}

/**
 * The ingester, started in the background: it connects and joins its group on its own (restarting after any
 * stop), so nothing waits on Kafka; its status shows in /readyz and /metrics.
 */
export function startIngester(config: Config, ch: ClickHouse, logger: Logger): Ingester {
  if (!config.kafka.brokers) throw new Error('the ingester needs KAFKA_BROKERS');
  const selfLog = new SelfLog(ch);
  const ingester = new Ingester({
    kafka: createKafka({ brokers: config.kafka.brokers, clientId: 'tally-ingest', logger }),
    write: (rows, token) => insertEvents(ch, rows, token),
    ledger: (batch) => recordBatch(ch, batch),
    reportFault: (kind, message) => selfLog.record('error', kind, message),
    topics: [config.kafka.topicSessions, config.kafka.topicLogs],
    groupId: config.kafka.groupId,
    limits: {
      rows: config.ingest.batchRows,
      bytes: config.ingest.batchBytes,
      waitMs: config.ingest.batchWaitMs,
    },
    logger: logger.child({ role: 'ingest' }),
    sessionTimeoutMs: config.ingest.sessionTimeoutMs,
    compression: config.kafka.compression,
    testCommitDelayMs: config.ingest.testCommitDelayMs,
  });
  ingester.startInBackground();
  return ingester;
}

export async function startApi(
  config: Config,
  deps: {
    ch: ClickHouse;
    control: ControlStore;
    sink: EventSink;
    secret: string;
    logger: Logger;
    exports?: ExportDeps;
    ingester?: StatusSource;
  },
): Promise<Stoppable & { url: string }> {
  // security: JWT (secret and JWKS), API keys, the per-identity limit, failed logins as system logs.
  const policy = limitPolicy(config.rateLimitPerMinute, config.security.rateLimitOverrides);
  // POST /events: a budget of its own (INGEST_RATE_LIMIT_PER_MINUTE), counted apart from the reads'.
  const ingestPolicy = limitPolicy(config.ingestRateLimitPerMinute, new Map());
  const redisUrl = config.security.rateLimitRedisUrl;
  const limitStore = redisUrl ? new RedisSlidingLogStore(policy, { url: redisUrl }) : undefined;
  const ingestStore = redisUrl
    ? new RedisSlidingLogStore(ingestPolicy, { url: redisUrl, prefix: 'tally:ratelimit:events:' })
    : undefined;
  // Redis (the shared limit and export quota) connected before the first request: without its offline
  // queue, a command sent earlier fails, and the first requests would get 503.
  try {
    await Promise.all([limitStore?.ready(), ingestStore?.ready()]);
  } catch (err) {
    await limitStore?.shutdown();
    await ingestStore?.shutdown();
    throw new StartupError(`RATE_LIMIT_REDIS_URL: ${(err as Error).message}`, { cause: err });
  }
  const authLog = new SelfLog(deps.ch);
  // Seals for the read path: wherever reads are served, so a deployment without a worker has them too.
  const sealer = startSealer(deps.ch, deps.logger);
  const downloadLimit = limitPerClient({
    perMinute: config.security.downloadRateLimitPerMinute,
    trustProxy: config.security.trustProxy,
  });
  // Answers of the read routes by data version, read from the engine that answers (api/read-cache.ts).
  const readCache =
    config.readCacheMaxBytes > 0
      ? new ReadCache({
          version: dataVersionSource(deps.ch, config.dataDir),
          maxBytes: config.readCacheMaxBytes,
          retentionDays: () => deps.ch.retention?.days ?? 0,
          logger: deps.logger,
        })
      : undefined;
  const app = createApp({
    ch: deps.ch,
    sink: deps.sink,
    ...(readCache ? { readCache } : {}),
    ledger: httpLedger(deps.ch),
    logger: deps.logger,
    auth: createAuthenticator({
      secret: deps.secret,
      issuer: config.auth.issuer,
      audience: config.auth.audience,
      jwks: config.auth.jwksUrl
        ? new JwksCache({ url: config.auth.jwksUrl, logger: deps.logger })
        : undefined,
      keys: { get: (id) => getKey(deps.control, id) },
    }),
    rateLimit: createRateLimit({ policy, ...(limitStore ? { store: limitStore } : {}) }),
    ingestRateLimit: createRateLimit({
      policy: ingestPolicy,
      ...(ingestStore ? { store: ingestStore } : {}),
    }),
    ...(deps.ingester ? { ingester: deps.ingester } : {}),
    onAuthFailure: recordAuthFailures(authLog),
    downloadLimit,
    corsOrigins: config.security.corsAllowedOrigins,
    adminKeys: deps.control,
    ...(deps.exports ? { exports: deps.exports } : {}),
    // schedules: mounted wherever exports are (the scheduler itself runs with the export workers).
    ...(deps.exports ? { schedules: scheduleDeps(config, deps.exports) } : {}),
  });
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, port: config.port, hostname: config.host }, (info) => {
      const host = info.family === 'IPv6' ? `[${info.address}]` : info.address;
      resolve({
        url: `http://${host}:${info.port}`,
        stop: async () => {
          await new Promise<void>((r) => server.close(() => r()));
          await limitStore?.shutdown();
          await ingestStore?.shutdown();
          downloadLimit.stop();
          await sealer.stop();
          await authLog.close();
          readCache?.close();
        },
      });
    });
    server.once('error', (err) => reject(listenFailure(err, config.host, config.port) ?? err));
  });
}

/** Serves a small app (the ingest role's probes) on PORT / HOST; resolves once it listens. */
export function serveApp(
  config: Config,
  fetch: (req: Request) => Response | Promise<Response>,
): Promise<Stoppable & { url: string }> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch, port: config.port, hostname: config.host }, (info) => {
      const host = info.family === 'IPv6' ? `[${info.address}]` : info.address;
      resolve({
        url: `http://${host}:${info.port}`,
        stop: () => new Promise<void>((r) => server.close(() => r())),
      });
    });
    server.once('error', reject);
  });
}

/** Runs `stop` on SIGTERM / SIGINT, then exits; a second signal or the drain timeout exits at once. */
export function onShutdown(logger: Logger, stop: () => Promise<void>, drainMs = 20_000): void {
  let stopping = false;
  const handler = (signal: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    logger.info({ signal }, 'shutting down');
    setTimeout(() => {
      logger.error('drain timeout: exiting');
      process.exit(1);
    }, drainMs).unref();
    stop().then(
      () => process.exit(0),
      (err) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => handler('SIGTERM'));
  process.on('SIGINT', () => handler('SIGINT'));
}

// The start-up steps that need neither the API nor the ingester live in boot.ts (npm start loads the rest while
// the storage opens); re-exported for the other entry points.
export { checkListenAddress, configOrExit, openStorage, orExit } from './boot.ts';
export { createLogger };
