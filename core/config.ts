// The one place that reads the environment: every variable of the contract, parsed and checked at start.
// Every problem is reported at once, each naming its variable, and the result is frozen. SPEC is the one
// source: it says where each variable goes in the nested Config, how it is read (core/env-values.ts), its
// default and what it is for; Config's type is derived from it.
import { resolve } from 'node:path';
import { z } from 'zod';
import {
  choice,
  flag,
  hostPorts,
  hosts,
  httpUrl,
  identifier,
  jwksUrl,
  limitOverrides,
  nonNegInt,
  optionalIdentifier,
  optionalPath,
  optionalString,
  origins,
  posInt,
  postgresUrl,
  redisUrl,
  secret,
  stringOr,
  topic,
} from './env-values.ts';

/** Kafka's codecs (KAFKA_COMPRESSION); kept here so that the one config loader imports no Kafka client. */
export const KAFKA_CODECS = ['gzip', 'snappy', 'lz4', 'zstd', 'none'] as const;
export type KafkaCodec = (typeof KAFKA_CODECS)[number];

/** CLICKHOUSE_READ_TIMEOUT_SECONDS' default, also the server client's when it is given none. */
export const DEFAULT_READ_TIMEOUT_SECONDS = 30;

/** A variable of the environment and how it is read; SPEC below places each one in the nested Config. */
interface EnvVar<S extends z.ZodType = z.ZodType> {
  readonly env: string;
  readonly schema: S;
}

interface Spec {
  readonly [key: string]: EnvVar | Spec;
}

/** What a spec reads into: each variable's parsed value in its place. */
type Parsed<S> = { -readonly [K in keyof S]: S[K] extends EnvVar<infer Z> ? z.output<Z> : Parsed<S[K]> };

/** A parsed value as Config hands it out: frozen, lists and maps read-only. */
type Frozen<T> =
  T extends ReadonlyMap<infer K, infer V>
    ? ReadonlyMap<K, V>
    : T extends readonly (infer E)[]
      ? readonly E[]
      : T;

/** The same shape, read-only all the way down (homomorphic, so each SPEC entry's doc comment carries over). */
type Settings<S> = {
  readonly [K in keyof S]: S[K] extends EnvVar<infer Z> ? Frozen<z.output<Z>> : Settings<S[K]>;
};

const from = <S extends z.ZodType>(env: string, schema: S): EnvVar<S> => ({ env, schema });

const isEnvVar = (node: EnvVar | Spec): node is EnvVar => typeof node.env === 'string';

/** Reads every variable of `spec` into the same nested shape, collecting every problem (each names its variable). */
function read<S extends Spec>(spec: S, env: NodeJS.ProcessEnv, problems: string[]): Parsed<S> {
  const out: Record<string, unknown> = {};
  for (const [key, node] of Object.entries(spec)) {
    if (!isEnvVar(node)) {
      out[key] = read(node, env, problems);
      continue;
    }
    const r = node.schema.safeParse(env[node.env]);
    if (r.success) out[key] = r.data;
    else
      problems.push(
        ...r.error.issues.map((i) => (i.code === 'custom' ? i.message : `${node.env}: ${i.message}`)),
      );
  }
  return out as Parsed<S>;
}

const SPEC = {
  /** API listen port (PORT, default 8080). */
  port: from(
    'PORT',
    posInt('PORT', 8080).refine((p) => p <= 65535, { message: 'PORT: expected 1..65535' }),
  ),
  /** API listen host (HOST, default 127.0.0.1). */
  host: from('HOST', stringOr('127.0.0.1')),
  /** Embedded engine data, generated secret, export files (DATA_DIR, default ./data). */
  dataDir: from(
    'DATA_DIR',
    optionalString.transform((v) => resolve(v ?? './data')),
  ),
  clickhouse: {
    /** A ClickHouse server (CLICKHOUSE_URL); undefined means the embedded engine under dataDir. */
    url: from('CLICKHOUSE_URL', httpUrl('CLICKHOUSE_URL')),
    /** CLICKHOUSE_DATABASE, default analytics. */
    database: from('CLICKHOUSE_DATABASE', identifier('CLICKHOUSE_DATABASE', 'analytics')),
    /**
     * CLICKHOUSE_CLUSTER, default unset (one node): a cluster of the server's remote_servers; the schema is
     * then generated from the migrations for a cluster (replicated shard-local tables behind Distributed ones;
     * docs/operators.md "Scaling out").
     */
    cluster: from('CLICKHOUSE_CLUSTER', optionalIdentifier('CLICKHOUSE_CLUSTER')),
    /**
     * CLICKHOUSE_READ_TIMEOUT_SECONDS, default 30: with a server, how long an API query may take before it is a
     * 503 (ingestion and export jobs are not bounded by it; clickhouse/client.ts readClient).
     */
    readTimeoutMs: from(
      'CLICKHOUSE_READ_TIMEOUT_SECONDS',
      posInt('CLICKHOUSE_READ_TIMEOUT_SECONDS', DEFAULT_READ_TIMEOUT_SECONDS)
        .refine((v) => v >= 2, {
          message: 'CLICKHOUSE_READ_TIMEOUT_SECONDS: expected at least 2',
        })
        .transform((s) => s * 1000),
    ),
  },
  control: {
    /**
     * DATABASE_URL: the PostgreSQL server of the control plane (jobs, schedules, deliveries, keys, quotas),
     * shared by every process; undefined: embedded PGlite under DATA_DIR/control (one process).
     */
    databaseUrl: from('DATABASE_URL', postgresUrl('DATABASE_URL')),
  },
  kafka: {
    /** KAFKA_BROKERS; undefined: no Kafka, events arrive over POST /events only. */
    brokers: from('KAFKA_BROKERS', hostPorts('KAFKA_BROKERS')),
    topicSessions: from('KAFKA_TOPIC_SESSIONS', topic('KAFKA_TOPIC_SESSIONS', 'analytics.sessions')),
    topicLogs: from('KAFKA_TOPIC_LOGS', topic('KAFKA_TOPIC_LOGS', 'analytics.logs')),
    groupId: from('KAFKA_GROUP_ID', stringOr('tally-ingest')),
    /** Codec of the project's own producers (KAFKA_COMPRESSION, default zstd); every codec is consumed. */
    // zstd by default: on a batch of 1,250 typical events (204 KB) it compressed as well as gzip (6.3x) about
    // four times faster (0.55 ms against 2.4 ms); snappy and lz4 were faster still but compressed 3.9x.
    compression: from('KAFKA_COMPRESSION', choice('KAFKA_COMPRESSION', KAFKA_CODECS, 'zstd')),
  },
  auth: {
    jwtSecret: from('AUTH_JWT_SECRET', secret('AUTH_JWT_SECRET', 32)),
    jwksUrl: from('AUTH_JWKS_URL', jwksUrl('AUTH_JWKS_URL')),
    issuer: from('AUTH_ISSUER', optionalString),
    audience: from('AUTH_AUDIENCE', optionalString),
  },
  rateLimitPerMinute: from('RATE_LIMIT_PER_MINUTE', posInt('RATE_LIMIT_PER_MINUTE', 100)),
  /** POST /events requests one identity may make in any 60 s (INGEST_RATE_LIMIT_PER_MINUTE, default 6000). */
  // POST /events has a budget of its own: a producer posting one request per event must not eat the reads'.
  ingestRateLimitPerMinute: from(
    'INGEST_RATE_LIMIT_PER_MINUTE',
    posInt('INGEST_RATE_LIMIT_PER_MINUTE', 6000),
  ),
  /** /clickhouse (docs/sql.md): per-query limits no client can raise, and the budget of each identity. */
  // 30 s and 1 GiB keep one query from holding the two cores or the service's memory; a million rows is more
  // than any dashboard panel draws and still a few hundred MB at most in a buffered format.
  sql: {
    /** SQL_MAX_EXECUTION_SECONDS, default 30: past it a query ends with TIMEOUT_EXCEEDED (159). */
    maxExecutionSeconds: from('SQL_MAX_EXECUTION_SECONDS', posInt('SQL_MAX_EXECUTION_SECONDS', 30)),
    /** SQL_MAX_RESULT_ROWS, default 1,000,000: more is TOO_MANY_ROWS_OR_BYTES (396). */
    maxResultRows: from('SQL_MAX_RESULT_ROWS', posInt('SQL_MAX_RESULT_ROWS', 1_000_000)),
    /** SQL_MAX_MEMORY_BYTES, default 1 GiB: more is MEMORY_LIMIT_EXCEEDED (241). */
    maxMemoryBytes: from('SQL_MAX_MEMORY_BYTES', posInt('SQL_MAX_MEMORY_BYTES', 1024 ** 3)),
    /** SQL_CONCURRENT_QUERIES, default 4: queries one identity may run at once. */
    concurrentQueries: from('SQL_CONCURRENT_QUERIES', posInt('SQL_CONCURRENT_QUERIES', 4)),
    /** SQL_RATE_LIMIT_PER_MINUTE, default 600: /clickhouse requests one identity may make in any 60 s. */
    rateLimitPerMinute: from('SQL_RATE_LIMIT_PER_MINUTE', posInt('SQL_RATE_LIMIT_PER_MINUTE', 600)),
  },
  exportJobsPerDay: from('EXPORT_JOBS_PER_DAY', posInt('EXPORT_JOBS_PER_DAY', 10)),
  /** RETENTION_DAYS, default 0: raw events kept this many days; 0 keeps them forever. */
  retentionDays: from('RETENTION_DAYS', nonNegInt('RETENTION_DAYS', 0)),
  /** PUBLIC_BASE_URL, default http://HOST:PORT: the start of the download links the API hands out. */
  publicBaseUrl: from('PUBLIC_BASE_URL', httpUrl('PUBLIC_BASE_URL')),
  exportUrlTtlSeconds: from('EXPORT_URL_TTL_SECONDS', posInt('EXPORT_URL_TTL_SECONDS', 3600)),
  /** READ_CACHE_MAX_BYTES, default 64 MiB: answers the read routes keep by data version; 0 keeps none. */
  // api/read-cache.ts. 64 MiB holds thousands of dashboard answers (a summary is ~80 bytes, a 365-day weekly
  // series ~5 KB, a logs page of 100 ~20 KB) and is small beside the engine's own memory.
  readCacheMaxBytes: from('READ_CACHE_MAX_BYTES', nonNegInt('READ_CACHE_MAX_BYTES', 64 * 1024 * 1024)),
  /** Tuning knobs beyond the contract (documented in docs/operators.md). */
  ingest: {
    /** A batch is flushed at this many rows (INGEST_BATCH_ROWS, default 40000)... */
    // Batches of a few tens of thousands of rows: each insert makes new parts in the raw tables and in every
    // rollup, and merging them back costs the same two cores. Measured on a 300,000-event backlog: 10,000 rows
    // 41,500 events/s, 20,000 rows 50,000, 40,000 rows (16 MiB) 57,000. Live traffic below the limits is
    // flushed by the wait instead.
    batchRows: from('INGEST_BATCH_ROWS', posInt('INGEST_BATCH_ROWS', 40_000)),
    /** ...or this many bytes of raw messages (INGEST_BATCH_BYTES, default 16 MiB)... */
    batchBytes: from('INGEST_BATCH_BYTES', posInt('INGEST_BATCH_BYTES', 16 * 1024 * 1024)),
    /** ...or when its first message has waited this long (INGEST_BATCH_WAIT_MS, default 1000). */
    batchWaitMs: from('INGEST_BATCH_WAIT_MS', posInt('INGEST_BATCH_WAIT_MS', 1000)),
    /** A member silent this long leaves the group (KAFKA_SESSION_TIMEOUT_MS, default 10000). */
    // 10 s: a member killed without leaving holds its partitions this long (30 s made every restart of
    // `npm start` wait ~28 s). kafkajs heartbeats from its fetch loop, which never waits on a storage write
    // (batches are written in the background), and the broker's own floor (group.min.session.timeout.ms) is 6 s.
    sessionTimeoutMs: from(
      'KAFKA_SESSION_TIMEOUT_MS',
      posInt('KAFKA_SESSION_TIMEOUT_MS', 10_000).refine((v) => v >= 3000, {
        message: 'KAFKA_SESSION_TIMEOUT_MS: expected at least 3000',
      }),
    ),
    /** Tests only (TALLY_TEST_COMMIT_DELAY_MS, default 0). */
    // Fault injection: a wait between a batch's insert and its offset commit, widening the window that a
    // crash test aims its kills at.
    testCommitDelayMs: from('TALLY_TEST_COMMIT_DELAY_MS', nonNegInt('TALLY_TEST_COMMIT_DELAY_MS', 0)),
  },
  /** Where export files go, how long they live, and the workers' leases (docs/data-engineers.md "Exports"). */
  exports: {
    /** EXPORT_DIR, default DATA_DIR/exports: the export files. */
    dir: from('EXPORT_DIR', optionalPath),
    /** EXPORT_FILE_TTL_SECONDS, default 86400: a completed file (and its links) lives this long. */
    fileTtlSeconds: from('EXPORT_FILE_TTL_SECONDS', posInt('EXPORT_FILE_TTL_SECONDS', 86_400)),
    /** EXPORT_WORKERS, default 1: export workers in this process (npm start, npm run worker). */
    workers: from('EXPORT_WORKERS', posInt('EXPORT_WORKERS', 1)),
    /** EXPORT_LEASE_SECONDS, default 30: a claim without a heartbeat this long is taken as a dead worker. */
    leaseSeconds: from('EXPORT_LEASE_SECONDS', posInt('EXPORT_LEASE_SECONDS', 30)),
    /** EXPORT_MAX_ATTEMPTS, default 3: claims of one job before it is failed. */
    maxAttempts: from('EXPORT_MAX_ATTEMPTS', posInt('EXPORT_MAX_ATTEMPTS', 3)),
  },
  logLevel: from(
    'LOG_LEVEL',
    z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional().default('info'),
  ),
  /**
   * The scheduler's tick, schedules per user, and where and how long webhooks are delivered
   * (docs/data-engineers.md "Scheduled exports").
   */
  schedules: {
    /** SCHEDULER_INTERVAL_SECONDS, default 60: how often closed periods are looked for. */
    intervalSeconds: from('SCHEDULER_INTERVAL_SECONDS', posInt('SCHEDULER_INTERVAL_SECONDS', 60)),
    /** SCHEDULES_PER_USER, default 20: live schedules one user may own. */
    perUser: from('SCHEDULES_PER_USER', posInt('SCHEDULES_PER_USER', 20)),
    /** WEBHOOK_ALLOWED_HOSTS, default none: `host` or `host:port` entries webhooks may go to. */
    webhookAllowedHosts: from('WEBHOOK_ALLOWED_HOSTS', hosts('WEBHOOK_ALLOWED_HOSTS')),
    /** WEBHOOK_RETRY_FOR_SECONDS, default 3600: a delivery is retried this long, then given up. */
    webhookRetryForSeconds: from('WEBHOOK_RETRY_FOR_SECONDS', posInt('WEBHOOK_RETRY_FOR_SECONDS', 3600)),
    /** WEBHOOK_TIMEOUT_SECONDS, default 10: one attempt's limit. */
    webhookTimeoutSeconds: from('WEBHOOK_TIMEOUT_SECONDS', posInt('WEBHOOK_TIMEOUT_SECONDS', 10)),
  },
  /** Per-identity rate-limit overrides, the shared limit store, proxies and browsers (docs/security.md). */
  security: {
    /**
     * API_KEYS_FILE, default DATA_DIR/api-keys.json: hashed API keys (the format of earlier versions) added
     * to the control store at each start.
     */
    apiKeysPath: from('API_KEYS_FILE', optionalPath),
    /** RATE_LIMIT_OVERRIDES: identity (jwt:<iss>:<sub> or key:<id>) to its own limit per minute. */
    rateLimitOverrides: from('RATE_LIMIT_OVERRIDES', limitOverrides('RATE_LIMIT_OVERRIDES')),
    /**
     * RATE_LIMIT_REDIS_URL: a Redis the API replicas share for their rate limits (nothing else); unset: each
     * replica counts alone.
     */
    rateLimitRedisUrl: from('RATE_LIMIT_REDIS_URL', redisUrl('RATE_LIMIT_REDIS_URL')),
    /** DOWNLOAD_RATE_LIMIT_PER_MINUTE, default 60: signed downloads per client address in any minute. */
    // Unauthenticated signed downloads, per client address (X-Forwarded-For's last hop with TRUST_PROXY).
    downloadRateLimitPerMinute: from(
      'DOWNLOAD_RATE_LIMIT_PER_MINUTE',
      posInt('DOWNLOAD_RATE_LIMIT_PER_MINUTE', 60),
    ),
    /**
     * TRUST_PROXY, default false: the client address of unauthenticated routes is X-Forwarded-For's last entry
     * (the one the proxy in front added); otherwise the socket's peer, whatever the headers say.
     */
    trustProxy: from('TRUST_PROXY', flag('TRUST_PROXY')),
    /** CORS_ALLOWED_ORIGINS, default none: browser origins allowed to call the API (never `*`). */
    corsAllowedOrigins: from('CORS_ALLOWED_ORIGINS', origins('CORS_ALLOWED_ORIGINS')),
  },
} satisfies Spec;

/**
 * The validated configuration of one process: SPEC's shape, each variable's value in its place, with the
 * defaults that depend on other variables filled in.
 */
export type Config = Settings<typeof SPEC> & {
  readonly publicBaseUrl: string;
  readonly exports: { readonly dir: string };
  readonly security: { readonly apiKeysPath: string };
};

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** Parses the environment once; throws a ConfigError listing every problem. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const c = read(SPEC, env, problems);
  problems.push(...combinationProblems(env));
  if (problems.length > 0) throw new ConfigError(problems);
  // The defaults that depend on other variables.
  const config: Config = {
    ...c,
    publicBaseUrl: (
      c.publicBaseUrl ?? `http://${c.host.includes(':') ? `[${c.host}]` : c.host}:${c.port}`
    ).replace(/\/+$/, ''),
    exports: { ...c.exports, dir: c.exports.dir ?? resolve(c.dataDir, 'exports') },
    security: { ...c.security, apiKeysPath: c.security.apiKeysPath ?? resolve(c.dataDir, 'api-keys.json') },
  };
  return deepFreeze(config);
}

// Rules between variables, checked on the raw values so that they are reported alongside every other problem.
function combinationProblems(env: NodeJS.ProcessEnv): string[] {
  const set = (name: string) => (env[name] ?? '') !== '';
  const problems: string[] = [];
  if (set('CLICKHOUSE_CLUSTER') && !set('CLICKHOUSE_URL')) {
    problems.push(
      'CLICKHOUSE_CLUSTER: needs CLICKHOUSE_URL (a server of the cluster); the embedded engine is a single node',
    );
  }
  return problems;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
