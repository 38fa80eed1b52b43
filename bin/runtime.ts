// Wiring shared by the entry points: each role (API, ingester) is assembled here from its parts.

import { serve } from '@hono/node-server';
import { createApp } from '../api/app.ts';
import { recordAuthFailures } from '../api/auth/audit.ts';
import { JwksCache } from '../api/auth/jwks.ts';
import type { ExportDeps } from '../api/exports/deps.ts';
import { JobAdmission } from '../api/exports/quota.ts';
import { createAuthenticator } from '../api/middleware/auth.ts';
import { limitPerClient } from '../api/middleware/client-limit.ts';
import { createRateLimit } from '../api/middleware/rate-limit.ts';
import { connectRedis, RedisSlidingLogStore, redisReady } from '../api/middleware/rate-limit-redis.ts';
import { limitPolicy, SlidingLogStore } from '../api/middleware/rate-limit-store.ts';
import { ReadCache } from '../api/read-cache.ts';
import type { ScheduleDeps } from '../api/schedules/deps.ts';
import { SqlUsage } from '../api/sql/usage.ts';
import type { ClickHouse } from '../clickhouse/client.ts';
import { insertEvents } from '../clickhouse/inserts.ts';
import { migrate } from '../clickhouse/migrate.ts';
import { readLegacyControl } from '../clickhouse/queries/legacy-control.ts';
import { startSealer } from '../clickhouse/sealer.ts';
import { SelfLog } from '../clickhouse/self-log.ts';
import { openSqlEngine } from '../clickhouse/sql/index.ts';
import { importLegacy, syncKeyFile } from '../control/import.ts';
import { getKey } from '../control/keys.ts';
import { type ControlStore, controlDir, openControl } from '../control/store.ts';
import { readKeys } from '../core/api-keys.ts';
import type { Config } from '../core/config.ts';
import type { LinkSigner } from '../core/exports/link.ts';
import { loadOrCreateKeyRing } from '../core/exports/signing.ts';
import { ExportStore } from '../core/exports/store.ts';
import type { StatusSource } from '../core/health.ts';
import { createLogger, type Logger } from '../core/logger.ts';
import type { EventSink } from '../core/sink.ts';
import { listenFailure, StartupError, storageFailure } from '../core/startup.ts';
import { WebhookAllowList } from '../core/webhooks/allow-list.ts';
import { Ingester } from '../ingest/consumer.ts';
import { createDirectSink } from '../ingest/direct.ts';
import { createKafka } from '../ingest/kafka.ts';
import { httpLedger, recordBatch } from '../ingest/ledger.ts';
import { connectingKafkaSink } from '../ingest/producer.ts';
import { type ExportWorkers, startExportWorkers } from '../worker/exports/setup.ts';
import { type ScheduleServices, startSchedules } from '../worker/schedules/setup.ts';
import { openStorage, orExit } from './boot.ts';

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

/** What a process's export routes, export workers and scheduler share: built once, by its entry. */
export interface ExportParts {
  store: ExportStore;
  /** Signs download_url (the routes, the run lists, the webhooks). */
  links: LinkSigner;
  /** WEBHOOK_ALLOWED_HOSTS. */
  allow: WebhookAllowList;
}

export function exportParts(config: Config): ExportParts {
  return {
    store: new ExportStore(config.exports.dir),
    links: {
      keys: loadOrCreateKeyRing(config.dataDir),
      publicBaseUrl: config.publicBaseUrl,
      urlTtlSeconds: config.exportUrlTtlSeconds,
    },
    allow: new WebhookAllowList(config.schedules.webhookAllowedHosts),
  };
}

/** The objects a process builds once and hands to its parts. */
export interface Shared {
  ch: ClickHouse;
  control: ControlStore;
  logger: Logger;
  /** The process's system log; closed by the entry after everything that writes to it. */
  selfLog: SelfLog;
  parts: ExportParts;
}

/**
 * The distributed roles (npm run api, npm run worker) run beside others, so both stores must be servers; the
 * embedded ones belong to npm start's single process. Exits with a one-line reason otherwise.
 */
export function requireServers(config: Config, command: string, note: string): void {
  if (config.clickhouse.url && config.control.databaseUrl) return;
  process.stderr.write(
    `tally: ${command} needs ${!config.clickhouse.url ? 'CLICKHOUSE_URL' : 'DATABASE_URL'} (${note})\n`,
  );
  process.exit(2);
}

/**
 * A distributed role's shared objects, built once: the control store and the storage opened (in this order),
 * the earlier version's state imported, one system log for the process.
 */
export async function openShared(config: Config, logger: Logger): Promise<Shared> {
  const control = await orExit(config, () => openControlStore(config, logger));
  const ch = await orExit(config, () => openStorage(config, logger));
  await orExit(config, () => retireLegacyTables(config, ch, control, logger));
  return { ch, control, logger, selfLog: new SelfLog(ch), parts: exportParts(config) };
}

/** Closes what openShared opened, the system log first (its last records go to the storage). */
export async function closeShared(s: Shared): Promise<void> {
  await s.selfLog.close();
  await s.ch.close();
  await s.control.close();
}

export interface ApiExports {
  exports: ExportDeps;
  schedules: ScheduleDeps;
}

/** The export and schedule routes' dependencies; `onQueued` wakes an in-process worker. */
export function apiExports(config: Config, s: Shared, onQueued?: () => void): ApiExports {
  const exports: ExportDeps = {
    control: s.control,
    admission: new JobAdmission(s.control, config.exportJobsPerDay),
    store: s.parts.store,
    ...s.parts.links,
    ...(onQueued ? { onQueued } : {}),
  };
  return { exports, schedules: { exports, allow: s.parts.allow, perUser: config.schedules.perUser } };
}

/** The export workers of a process (EXPORT_WORKERS of them). */
export function runExportWorkers(config: Config, s: Shared): ExportWorkers {
  return startExportWorkers({
    ch: s.ch,
    control: s.control,
    store: s.parts.store,
    selfLog: s.selfLog,
    logger: s.logger,
    workers: config.exports.workers,
    leaseMs: config.exports.leaseSeconds * 1000,
    maxAttempts: config.exports.maxAttempts,
    fileTtlMs: config.exports.fileTtlSeconds * 1000,
  });
}

/** The scheduler and webhook dispatcher of a process, woken by its export workers' finished jobs. */
export function runSchedules(
  config: Config,
  s: Shared,
  workers: ExportWorkers,
  tuning: { webhookPollMs?: number } = {},
): ScheduleServices {
  return startSchedules({
    control: s.control,
    store: s.parts.store,
    links: s.parts.links,
    allow: s.parts.allow,
    selfLog: s.selfLog,
    logger: s.logger,
    intervalMs: config.schedules.intervalSeconds * 1000,
    webhookRetryForMs: config.schedules.webhookRetryForSeconds * 1000,
    webhookTimeoutMs: config.schedules.webhookTimeoutSeconds * 1000,
    workers: workers.workers,
    onQueued: workers.notify,
    webhookPollMs: tuning.webhookPollMs,
  });
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
export function startIngester(config: Config, ch: ClickHouse, logger: Logger, selfLog: SelfLog): Ingester {
  if (!config.kafka.brokers) throw new Error('the ingester needs KAFKA_BROKERS');
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
  /** The process's shared objects; its SelfLog records failed authentications. */
  shared: Pick<Shared, 'ch' | 'control' | 'logger' | 'selfLog'>,
  own: {
    sink: EventSink;
    secret: string;
    /** The export and schedule routes; without them, those routes answer 404. */
    exports?: ApiExports;
    ingester?: StatusSource;
  },
): Promise<Stoppable & { url: string }> {
  const deps = { ...shared, ...own };
  // security: JWT (secret and JWKS), API keys, the per-identity limit, failed logins as system logs.
  const policy = limitPolicy(config.rateLimitPerMinute, config.security.rateLimitOverrides);
  // POST /events: a budget of its own (INGEST_RATE_LIMIT_PER_MINUTE), counted apart from the reads'.
  const ingestPolicy = limitPolicy(config.ingestRateLimitPerMinute, new Map());
  const redisUrl = config.security.rateLimitRedisUrl;
  const redis = redisUrl ? connectRedis(redisUrl) : undefined;
  const limitStore = redis ? new RedisSlidingLogStore(policy, { client: redis }) : undefined;
  const ingestStore = redis
    ? new RedisSlidingLogStore(ingestPolicy, { client: redis, prefix: 'tally:ratelimit:events:' })
    : undefined;
  // Redis (the shared limits) connected before the first request: without its offline queue, a command sent
  // earlier fails, and the first requests would get 503.
  try {
    if (redis) await redisReady(redis);
  } catch (err) {
    redis?.disconnect();
    throw new StartupError(`RATE_LIMIT_REDIS_URL: ${(err as Error).message}`, { cause: err });
  }
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
          version: deps.ch.dataVersion(),
          maxBytes: config.readCacheMaxBytes,
          retentionDays: () => deps.ch.retention.days,
          logger: deps.logger,
        })
      : undefined;
  // /clickhouse: its engine (sessions of its own on the embedded engine), budget and per-minute usage log.
  const sqlEngine = await openSqlEngine(deps.ch, {
    maxExecutionSeconds: config.sql.maxExecutionSeconds,
    maxResultRows: config.sql.maxResultRows,
    maxMemoryBytes: config.sql.maxMemoryBytes,
  });
  const sqlUsage = new SqlUsage(deps.selfLog);
  const sqlRate = new SlidingLogStore(limitPolicy(config.sql.rateLimitPerMinute, new Map()));
  const app = createApp({
    sql: {
      engine: sqlEngine,
      database: deps.ch.database,
      rateLimit: { store: sqlRate, perMinute: config.sql.rateLimitPerMinute },
      concurrentQueries: config.sql.concurrentQueries,
      usage: sqlUsage,
    },
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
    onAuthFailure: recordAuthFailures(deps.selfLog),
    downloadLimit,
    corsOrigins: config.security.corsAllowedOrigins,
    adminKeys: deps.control,
    ...(deps.exports ? { exports: deps.exports.exports } : {}),
    // schedules: mounted wherever exports are (the scheduler itself runs with the export workers).
    ...(deps.exports ? { schedules: deps.exports.schedules } : {}),
  });
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, port: config.port, hostname: config.host }, (info) => {
      const host = info.family === 'IPv6' ? `[${info.address}]` : info.address;
      resolve({
        url: `http://${host}:${info.port}`,
        stop: async () => {
          await new Promise<void>((r) => server.close(() => r()));
          redis?.disconnect();
          downloadLimit.stop();
          await sealer.stop();
          sqlUsage.close();
          sqlEngine.close();
          await readCache?.close();
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

/**
 * Runs `stop` on SIGTERM / SIGINT, then exits; a second signal or the drain timeout ends the process at once.
 * "At once" is SIGKILL, not process.exit: exit runs the embedded engine's native teardown, which crashed or hung
 * (a deadlock in its fatal-signal handler) when queries were still running in it. Everything stored is on disk
 * either way; an insert cut short is retried from Kafka's uncommitted offsets, as after any crash.
 */
export function onShutdown(logger: Logger, stop: () => Promise<void>, drainMs = 20_000): void {
  let stopping = false;
  const kill = (why: string) => {
    logger.error(`${why}: exiting now`);
    process.kill(process.pid, 'SIGKILL');
  };
  const handler = (signal: string) => {
    if (stopping) return kill(`second ${signal}`);
    stopping = true;
    logger.info({ signal }, 'shutting down');
    setTimeout(() => kill(`drain timeout (${drainMs / 1000} s)`), drainMs).unref();
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
