// The one place that reads the environment: every variable of the contract, parsed and checked at start.
// Every problem is reported at once, each naming its variable, and the result is frozen.
import { resolve } from 'node:path';
import { z } from 'zod';

/** Kafka's codecs (KAFKA_COMPRESSION); kept here so that the one config loader imports no Kafka client. */
export const KAFKA_CODECS = ['gzip', 'snappy', 'lz4', 'zstd', 'none'] as const;
export type KafkaCodec = (typeof KAFKA_CODECS)[number];

const HOST_PORT = /^[A-Za-z0-9.-]+:\d{1,5}$/;
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** CLICKHOUSE_READ_TIMEOUT_SECONDS' default, also the server client's when it is given none. */
export const DEFAULT_READ_TIMEOUT_SECONDS = 30;

const posInt = (name: string, def: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return def;
      if (!/^\d+$/.test(v) || Number(v) < 1 || !Number.isSafeInteger(Number(v))) {
        ctx.addIssue({
          code: 'custom',
          message: `${name}: expected a positive integer, got ${JSON.stringify(v)}`,
        });
        return z.NEVER;
      }
      return Number(v);
    });

const nonNegInt = (name: string, def: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return def;
      if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) {
        ctx.addIssue({
          code: 'custom',
          message: `${name}: expected a non-negative integer, got ${JSON.stringify(v)}`,
        });
        return z.NEVER;
      }
      return Number(v);
    });

const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v === '' ? undefined : v));

/** A wrong URL, told without what could be a secret in it: a scheme and length at most. */
function describeValue(v: string): string {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(v)?.[1];
  const secretish = /@|:[^/]*:/.test(v);
  if (!secretish) return JSON.stringify(v.length > 80 ? `${v.slice(0, 80)}...` : v);
  return `a ${v.length}-character value${scheme ? ` with scheme ${JSON.stringify(scheme)}` : ''} (not shown: it may hold a password)`;
}

const url = (name: string) =>
  optionalString.superRefine((v, ctx) => {
    if (v === undefined) return;
    try {
      const u = new URL(v);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('protocol');
    } catch {
      // A URL may carry a password (CLICKHOUSE_URL): the message shows only its shape.
      ctx.addIssue({ code: 'custom', message: `${name}: expected an http(s) URL, got ${describeValue(v)}` });
    }
  });

/** True for a loopback host name or address (localhost, 127.0.0.0/8, ::1). */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h.endsWith('.localhost') || /^127(\.\d{1,3}){3}$/.test(h) || h === '::1';
}

// The IdP's keys decide who is who: fetched over plain HTTP, anyone on the path could swap them. Loopback is
// the exception (a local IdP in development and tests).
const jwksUrl = optionalString.superRefine((v, ctx) => {
  if (v === undefined) return;
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    ctx.addIssue({
      code: 'custom',
      message: `AUTH_JWKS_URL: expected an https URL, got ${describeValue(v)}`,
    });
    return;
  }
  if (u.protocol === 'https:' || (u.protocol === 'http:' && isLoopbackHost(u.hostname))) return;
  ctx.addIssue({
    code: 'custom',
    message: `AUTH_JWKS_URL: must be https:// (plain http only for a loopback host), got ${describeValue(v)}`,
  });
});

const flag = (name: string) =>
  optionalString.transform((v, ctx) => {
    if (v === undefined || /^(0|false|no|off)$/i.test(v)) return false;
    if (/^(1|true|yes|on)$/i.test(v)) return true;
    ctx.addIssue({ code: 'custom', message: `${name}: expected true or false, got ${JSON.stringify(v)}` });
    return z.NEVER;
  });

// Browser origins allowed to call the API: exact origins only. `*` is refused, since the API's answers are
// tenant data behind credentials a page could be tricked into sending.
const origins = optionalString.transform((v, ctx) => {
  const list = (v ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const out: string[] = [];
  for (const o of list) {
    let origin: string | undefined;
    try {
      const u = new URL(o);
      if ((u.protocol === 'http:' || u.protocol === 'https:') && u.origin === o.replace(/\/$/, '')) {
        origin = u.origin;
      }
    } catch {
      // reported below
    }
    if (o === '*' || origin === undefined) {
      ctx.addIssue({
        code: 'custom',
        message:
          o === '*'
            ? 'CORS_ALLOWED_ORIGINS: "*" is not accepted; list each origin, e.g. https://dash.example.com'
            : `CORS_ALLOWED_ORIGINS: expected comma-separated origins like https://dash.example.com, got ${JSON.stringify(o)}`,
      });
      return z.NEVER;
    }
    out.push(origin);
  }
  return out;
});

const topic = (name: string, def: string) =>
  optionalString.transform((v, ctx) => {
    const t = v ?? def;
    if (!/^[A-Za-z0-9._-]{1,200}$/.test(t)) {
      ctx.addIssue({
        code: 'custom',
        message: `${name}: not a valid Kafka topic name: ${JSON.stringify(t)}`,
      });
      return z.NEVER;
    }
    return t;
  });

// security: RATE_LIMIT_OVERRIDES="jwt:<iss>:<sub>=1000,key:<id>=500", identities exactly as the limiter keys them
// (the iss may be empty, "jwt::alice"); the last "=" separates the limit, so identities may contain ":" and "=".
function parseOverrides(v: string | undefined, ctx: z.RefinementCtx): ReadonlyMap<string, number> {
  const out = new Map<string, number>();
  for (const item of (v ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const eq = item.lastIndexOf('=');
    const id = item.slice(0, Math.max(eq, 0));
    const n = item.slice(eq + 1);
    const problem =
      eq < 1
        ? 'expected IDENTITY=LIMIT'
        : !/^jwt:[^:]*:.+$/.test(id) && !/^key:[0-9a-f]{16}$/.test(id)
          ? 'the identity must be jwt:<iss>:<sub> or key:<16 hex digits>'
          : !/^\d+$/.test(n) || Number(n) < 1 || !Number.isSafeInteger(Number(n))
            ? 'the limit must be a positive integer'
            : out.has(id)
              ? 'the identity is listed twice'
              : undefined;
    if (problem) {
      ctx.addIssue({
        code: 'custom',
        message: `RATE_LIMIT_OVERRIDES: ${problem}, got ${JSON.stringify(item)}`,
      });
    } else {
      out.set(id, Number(n));
    }
  }
  return out;
}

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
  port: from(
    'PORT',
    posInt('PORT', 8080).refine((p) => p <= 65535, { message: 'PORT: expected 1..65535' }),
  ),
  host: from(
    'HOST',
    optionalString.transform((v) => v ?? '127.0.0.1'),
  ),
  dataDir: from(
    'DATA_DIR',
    optionalString.transform((v) => resolve(v ?? './data')),
  ),
  clickhouse: {
    url: from('CLICKHOUSE_URL', url('CLICKHOUSE_URL')),
    database: from(
      'CLICKHOUSE_DATABASE',
      optionalString.transform((v, ctx) => {
        const db = v ?? 'analytics';
        if (!IDENT.test(db)) {
          ctx.addIssue({
            code: 'custom',
            message: `CLICKHOUSE_DATABASE: expected letters, digits and _, got ${JSON.stringify(db)}`,
          });
          return z.NEVER;
        }
        return db;
      }),
    ),
    cluster: from(
      'CLICKHOUSE_CLUSTER',
      optionalString.superRefine((v, ctx) => {
        if (v !== undefined && !IDENT.test(v)) {
          ctx.addIssue({
            code: 'custom',
            message: `CLICKHOUSE_CLUSTER: expected letters, digits and _, got ${JSON.stringify(v)}`,
          });
        }
      }),
    ),
    // A cluster of the server's remote_servers (docs/operators.md "Scaling out"): selects the cluster migrations.
    // The longest one of the API's own queries may wait for a ClickHouse server (clickhouse/client.ts readClient).
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
    databaseUrl: from(
      'DATABASE_URL',
      optionalString.superRefine((v, ctx) => {
        if (v === undefined) return;
        let ok = false;
        try {
          ok = ['postgres:', 'postgresql:'].includes(new URL(v).protocol);
        } catch {
          ok = false;
        }
        // It may carry a password: the message shows only its shape.
        if (!ok)
          ctx.addIssue({
            code: 'custom',
            message: `DATABASE_URL: expected postgres://..., got ${describeValue(v)}`,
          });
      }),
    ),
  },
  kafka: {
    brokers: from(
      'KAFKA_BROKERS',
      optionalString.transform((v, ctx) => {
        if (v === undefined) return undefined;
        const list = v
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        const bad = list.filter((b) => !HOST_PORT.test(b));
        if (list.length === 0 || bad.length > 0) {
          ctx.addIssue({
            code: 'custom',
            message: `KAFKA_BROKERS: expected comma-separated host:port, got ${JSON.stringify(bad[0] ?? v)}`,
          });
          return z.NEVER;
        }
        return list;
      }),
    ),
    topicSessions: from('KAFKA_TOPIC_SESSIONS', topic('KAFKA_TOPIC_SESSIONS', 'analytics.sessions')),
    topicLogs: from('KAFKA_TOPIC_LOGS', topic('KAFKA_TOPIC_LOGS', 'analytics.logs')),
    groupId: from(
      'KAFKA_GROUP_ID',
      optionalString.transform((v) => v ?? 'tally-ingest'),
    ),
    // zstd by default: on a batch of 1,250 typical events (204 KB) it compressed as well as gzip (6.3x) about
    // four times faster (0.55 ms against 2.4 ms); snappy and lz4 were faster still but compressed 3.9x.
    compression: from(
      'KAFKA_COMPRESSION',
      optionalString.transform((v, ctx) => {
        const codec = (v ?? 'zstd').toLowerCase();
        if (!(KAFKA_CODECS as readonly string[]).includes(codec)) {
          ctx.addIssue({
            code: 'custom',
            message: `KAFKA_COMPRESSION: expected one of ${KAFKA_CODECS.join(', ')}, got ${JSON.stringify(v)}`,
          });
          return z.NEVER;
        }
        return codec as KafkaCodec;
      }),
    ),
  },
  auth: {
    jwtSecret: from(
      'AUTH_JWT_SECRET',
      optionalString.superRefine((v, ctx) => {
        if (v !== undefined && Buffer.byteLength(v, 'utf8') < 32) {
          ctx.addIssue({ code: 'custom', message: 'AUTH_JWT_SECRET: must be at least 32 bytes' });
        }
      }),
    ),
    jwksUrl: from('AUTH_JWKS_URL', jwksUrl),
    issuer: from('AUTH_ISSUER', optionalString),
    audience: from('AUTH_AUDIENCE', optionalString),
  },
  rateLimitPerMinute: from('RATE_LIMIT_PER_MINUTE', posInt('RATE_LIMIT_PER_MINUTE', 100)),
  // POST /events has a budget of its own: a producer posting one request per event must not eat the reads'.
  ingestRateLimitPerMinute: from(
    'INGEST_RATE_LIMIT_PER_MINUTE',
    posInt('INGEST_RATE_LIMIT_PER_MINUTE', 6000),
  ),
  // /clickhouse (docs/sql.md): limits no client can raise, and a budget per identity of its own. 30 s and
  // 1 GiB keep one query from holding the two cores or the service's memory; a million rows is more than any
  // dashboard panel draws and still a few hundred MB at most in a buffered format.
  sql: {
    maxExecutionSeconds: from('SQL_MAX_EXECUTION_SECONDS', posInt('SQL_MAX_EXECUTION_SECONDS', 30)),
    maxResultRows: from('SQL_MAX_RESULT_ROWS', posInt('SQL_MAX_RESULT_ROWS', 1_000_000)),
    maxMemoryBytes: from('SQL_MAX_MEMORY_BYTES', posInt('SQL_MAX_MEMORY_BYTES', 1024 ** 3)),
    concurrentQueries: from('SQL_CONCURRENT_QUERIES', posInt('SQL_CONCURRENT_QUERIES', 4)),
    rateLimitPerMinute: from('SQL_RATE_LIMIT_PER_MINUTE', posInt('SQL_RATE_LIMIT_PER_MINUTE', 600)),
  },
  exportJobsPerDay: from('EXPORT_JOBS_PER_DAY', posInt('EXPORT_JOBS_PER_DAY', 10)),
  retentionDays: from('RETENTION_DAYS', nonNegInt('RETENTION_DAYS', 0)),
  publicBaseUrl: from('PUBLIC_BASE_URL', url('PUBLIC_BASE_URL')),
  exportUrlTtlSeconds: from('EXPORT_URL_TTL_SECONDS', posInt('EXPORT_URL_TTL_SECONDS', 3600)),
  // The read routes' result cache (api/read-cache.ts): bytes of answers kept, 0 turns it off. 64 MiB holds
  // thousands of dashboard answers (a summary is ~80 bytes, a 365-day weekly series ~5 KB, a logs page of 100
  // ~20 KB) and is small beside the engine's own memory.
  readCacheMaxBytes: from('READ_CACHE_MAX_BYTES', nonNegInt('READ_CACHE_MAX_BYTES', 64 * 1024 * 1024)),
  ingest: {
    // Tuning knobs beyond the contract (documented in docs/operators.md).
    // Batches of a few tens of thousands of rows: each insert makes new parts in the raw tables and in every
    // rollup, and merging them back costs the same two cores. Measured on a 300,000-event backlog: 10,000 rows
    // 41,500 events/s, 20,000 rows 50,000, 40,000 rows (16 MiB) 57,000. Live traffic below the limits is
    // flushed by the wait instead.
    batchRows: from('INGEST_BATCH_ROWS', posInt('INGEST_BATCH_ROWS', 40_000)),
    batchBytes: from('INGEST_BATCH_BYTES', posInt('INGEST_BATCH_BYTES', 16 * 1024 * 1024)),
    batchWaitMs: from('INGEST_BATCH_WAIT_MS', posInt('INGEST_BATCH_WAIT_MS', 1000)),
    // 10 s: a member killed without leaving holds its partitions this long (30 s made every restart of
    // `npm start` wait ~28 s). kafkajs heartbeats from its fetch loop, which never waits on a storage write
    // (batches are written in the background), and the broker's own floor (group.min.session.timeout.ms) is 6 s.
    sessionTimeoutMs: from(
      'KAFKA_SESSION_TIMEOUT_MS',
      posInt('KAFKA_SESSION_TIMEOUT_MS', 10_000).refine((v) => v >= 3000, {
        message: 'KAFKA_SESSION_TIMEOUT_MS: expected at least 3000',
      }),
    ),
    // Fault injection for tests only: a wait between a batch's insert and its offset commit, widening the
    // window that a crash test aims its kills at.
    testCommitDelayMs: from('TALLY_TEST_COMMIT_DELAY_MS', nonNegInt('TALLY_TEST_COMMIT_DELAY_MS', 0)),
  },
  exports: {
    // exports: where files go, how long they live, and the workers' leases (docs/data-engineers.md "Exports").
    dir: from(
      'EXPORT_DIR',
      optionalString.transform((v) => (v === undefined ? undefined : resolve(v))),
    ),
    fileTtlSeconds: from('EXPORT_FILE_TTL_SECONDS', posInt('EXPORT_FILE_TTL_SECONDS', 86_400)),
    workers: from('EXPORT_WORKERS', posInt('EXPORT_WORKERS', 1)),
    leaseSeconds: from('EXPORT_LEASE_SECONDS', posInt('EXPORT_LEASE_SECONDS', 30)),
    maxAttempts: from('EXPORT_MAX_ATTEMPTS', posInt('EXPORT_MAX_ATTEMPTS', 3)),
  },
  logLevel: from(
    'LOG_LEVEL',
    z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional().default('info'),
  ),
  schedules: {
    // schedules: the scheduler's tick, schedules per user, and where and how long webhooks are delivered
    // (docs/data-engineers.md "Scheduled exports").
    intervalSeconds: from('SCHEDULER_INTERVAL_SECONDS', posInt('SCHEDULER_INTERVAL_SECONDS', 60)),
    perUser: from('SCHEDULES_PER_USER', posInt('SCHEDULES_PER_USER', 20)),
    webhookAllowedHosts: from(
      'WEBHOOK_ALLOWED_HOSTS',
      optionalString.transform((v, ctx) => {
        const list = (v ?? '')
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        const bad = list.find((h) => !/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/.test(h));
        if (bad !== undefined) {
          ctx.addIssue({
            code: 'custom',
            message: `WEBHOOK_ALLOWED_HOSTS: expected comma-separated host or host:port, got ${JSON.stringify(bad)}`,
          });
          return z.NEVER;
        }
        return list;
      }),
    ),
    webhookRetryForSeconds: from('WEBHOOK_RETRY_FOR_SECONDS', posInt('WEBHOOK_RETRY_FOR_SECONDS', 3600)),
    webhookTimeoutSeconds: from('WEBHOOK_TIMEOUT_SECONDS', posInt('WEBHOOK_TIMEOUT_SECONDS', 10)),
  },
  security: {
    apiKeysPath: from(
      'API_KEYS_FILE',
      optionalString.transform((v) => (v === undefined ? undefined : resolve(v))),
    ),
    // security: per-identity rate-limit overrides and the shared limit store (docs/security.md).
    rateLimitOverrides: from(
      'RATE_LIMIT_OVERRIDES',
      optionalString.transform((v, ctx) => parseOverrides(v, ctx)),
    ),
    rateLimitRedisUrl: from(
      'RATE_LIMIT_REDIS_URL',
      optionalString.superRefine((v, ctx) => {
        if (v !== undefined && !/^rediss?:\/\/[^\s]+$/.test(v)) {
          ctx.addIssue({
            code: 'custom',
            message: 'RATE_LIMIT_REDIS_URL: expected redis://host:port or rediss://...',
          });
        }
      }),
    ),
    // Unauthenticated signed downloads, per client address (X-Forwarded-For's last hop with TRUST_PROXY).
    downloadRateLimitPerMinute: from(
      'DOWNLOAD_RATE_LIMIT_PER_MINUTE',
      posInt('DOWNLOAD_RATE_LIMIT_PER_MINUTE', 60),
    ),
    trustProxy: from('TRUST_PROXY', flag('TRUST_PROXY')),
    corsAllowedOrigins: from('CORS_ALLOWED_ORIGINS', origins),
  },
} satisfies Spec;

/** The validated configuration of one process. */
export interface Config {
  /** API listen port (PORT, default 8080). */
  readonly port: number;
  /** API listen host (HOST, default 127.0.0.1). */
  readonly host: string;
  /** Embedded engine data, generated secret, export files (DATA_DIR, default ./data). */
  readonly dataDir: string;
  readonly clickhouse: {
    /** A ClickHouse server; undefined means the embedded engine under dataDir. */
    readonly url: string | undefined;
    /** CLICKHOUSE_DATABASE, default analytics. */
    readonly database: string;
    /**
     * CLICKHOUSE_CLUSTER, default unset (one node): a cluster of the server's remote_servers; the schema is
     * then generated from the migrations for a cluster (replicated shard-local tables behind Distributed ones).
     */
    readonly cluster: string | undefined;
    /**
     * CLICKHOUSE_READ_TIMEOUT_SECONDS, default 30: with a server, how long an API query may take before it is a
     * 503 (ingestion and export jobs are not bounded by it).
     */
    readonly readTimeoutMs: number;
  };
  readonly control: {
    /**
     * DATABASE_URL: the PostgreSQL server of the control plane (jobs, schedules, deliveries, keys, quotas),
     * shared by every process; undefined: embedded PGlite under DATA_DIR/control (one process).
     */
    readonly databaseUrl: string | undefined;
  };
  readonly kafka: {
    /** undefined: no Kafka; events arrive over POST /events only. */
    readonly brokers: readonly string[] | undefined;
    readonly topicSessions: string;
    readonly topicLogs: string;
    readonly groupId: string;
    /** Codec of the project's own producers (KAFKA_COMPRESSION, default zstd); every codec is consumed. */
    readonly compression: KafkaCodec;
  };
  readonly auth: {
    readonly jwtSecret: string | undefined;
    readonly jwksUrl: string | undefined;
    readonly issuer: string | undefined;
    readonly audience: string | undefined;
  };
  readonly rateLimitPerMinute: number;
  /** POST /events requests one identity may make in any 60 s (INGEST_RATE_LIMIT_PER_MINUTE, default 6000). */
  readonly ingestRateLimitPerMinute: number;
  /** /clickhouse (docs/sql.md): per-query limits no client can raise, and the budget of each identity. */
  readonly sql: {
    /** SQL_MAX_EXECUTION_SECONDS, default 30: past it a query ends with TIMEOUT_EXCEEDED (159). */
    readonly maxExecutionSeconds: number;
    /** SQL_MAX_RESULT_ROWS, default 1,000,000: more is TOO_MANY_ROWS_OR_BYTES (396). */
    readonly maxResultRows: number;
    /** SQL_MAX_MEMORY_BYTES, default 1 GiB: more is MEMORY_LIMIT_EXCEEDED (241). */
    readonly maxMemoryBytes: number;
    /** SQL_CONCURRENT_QUERIES, default 4: queries one identity may run at once. */
    readonly concurrentQueries: number;
    /** SQL_RATE_LIMIT_PER_MINUTE, default 600: /clickhouse requests one identity may make in any 60 s. */
    readonly rateLimitPerMinute: number;
  };
  readonly exportJobsPerDay: number;
  /** 0 keeps raw events forever. */
  readonly retentionDays: number;
  readonly publicBaseUrl: string;
  readonly exportUrlTtlSeconds: number;
  /** READ_CACHE_MAX_BYTES, default 64 MiB: answers the read routes keep by data version; 0 keeps none. */
  readonly readCacheMaxBytes: number;
  readonly ingest: {
    /** A batch is flushed at this many rows (INGEST_BATCH_ROWS, default 40000)... */
    readonly batchRows: number;
    /** ...or this many bytes of raw messages (INGEST_BATCH_BYTES, default 16 MiB)... */
    readonly batchBytes: number;
    /** ...or when its first message has waited this long (INGEST_BATCH_WAIT_MS, default 1000). */
    readonly batchWaitMs: number;
    /** A member silent this long leaves the group (KAFKA_SESSION_TIMEOUT_MS, default 10000). */
    readonly sessionTimeoutMs: number;
    /** Tests only (TALLY_TEST_COMMIT_DELAY_MS, default 0). */
    readonly testCommitDelayMs: number;
  };
  // exports
  readonly exports: {
    /** EXPORT_DIR, default DATA_DIR/exports: the export files. */
    readonly dir: string;
    /** EXPORT_FILE_TTL_SECONDS, default 86400: a completed file (and its links) lives this long. */
    readonly fileTtlSeconds: number;
    /** EXPORT_WORKERS, default 1: export workers in this process (npm start, npm run worker). */
    readonly workers: number;
    /** EXPORT_LEASE_SECONDS, default 30: a claim without a heartbeat this long is taken as a dead worker. */
    readonly leaseSeconds: number;
    /** EXPORT_MAX_ATTEMPTS, default 3: claims of one job before it is failed. */
    readonly maxAttempts: number;
  };
  readonly logLevel: string;
  // schedules
  readonly schedules: {
    /** SCHEDULER_INTERVAL_SECONDS, default 60: how often closed periods are looked for. */
    readonly intervalSeconds: number;
    /** SCHEDULES_PER_USER, default 20: live schedules one user may own. */
    readonly perUser: number;
    /** WEBHOOK_ALLOWED_HOSTS, default none: `host` or `host:port` entries webhooks may go to. */
    readonly webhookAllowedHosts: readonly string[];
    /** WEBHOOK_RETRY_FOR_SECONDS, default 3600: a delivery is retried this long, then given up. */
    readonly webhookRetryForSeconds: number;
    /** WEBHOOK_TIMEOUT_SECONDS, default 10: one attempt's limit. */
    readonly webhookTimeoutSeconds: number;
  };
  // security
  readonly security: {
    /** API_KEYS_FILE, default DATA_DIR/api-keys.json: hashed API keys (the format of earlier versions) added to the control store at each start. */
    readonly apiKeysPath: string;
    /** RATE_LIMIT_OVERRIDES: identity (jwt:<iss>:<sub> or key:<id>) to its own limit per minute. */
    readonly rateLimitOverrides: ReadonlyMap<string, number>;
    /** RATE_LIMIT_REDIS_URL: a Redis the API replicas share for their rate limits (nothing else); unset: each replica counts alone. */
    readonly rateLimitRedisUrl: string | undefined;
    /** DOWNLOAD_RATE_LIMIT_PER_MINUTE, default 60: signed downloads per client address in any minute. */
    readonly downloadRateLimitPerMinute: number;
    /**
     * TRUST_PROXY, default false: the client address of unauthenticated routes is X-Forwarded-For's last entry
     * (the one the proxy in front added); otherwise the socket's peer, whatever the headers say.
     */
    readonly trustProxy: boolean;
    /** CORS_ALLOWED_ORIGINS, default none: browser origins allowed to call the API (never `*`). */
    readonly corsAllowedOrigins: readonly string[];
  };
}

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
