// Admission of a new export job: the idempotency-key lookup, the day's count and the insert form one atomic
// step per user, so 30 concurrent requests with a quota of 10 create exactly 10 jobs, and a restart (the
// count lives in ClickHouse) changes nothing. One process: an in-process lock. Several API replicas
// (RATE_LIMIT_REDIS_URL set): one atomic Redis step per admission, seeded from ClickHouse's durable count, and
// an Idempotency-Key reserved in Redis before its job is made, so that replicas racing on it make one job.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { ClickHouse } from '../../clickhouse/client.ts';
import {
  countJobsOnDay,
  type ExportFormat,
  type ExportJob,
  findJobByIdempotencyKey,
  getJob,
  nextVersion,
  type ReportType,
  writeJob,
} from '../../clickhouse/queries/exports-jobs.ts';
import { RateLimited, Unavailable } from '../../core/errors.ts';
import { redisReady } from '../middleware/rate-limit-redis.ts';
import type { ClaimStore } from './claims.ts';
import { KeyedMutex } from './lock.ts';

export interface JobRequest {
  userId: string;
  reportType: ReportType;
  format: ExportFormat;
  params: Record<string, string>;
  idempotencyKey: string | undefined;
}

export interface Admission {
  job: ExportJob;
  /** False when an Idempotency-Key named a job created earlier (no quota spent). */
  created: boolean;
}

/** Seconds from `nowMs` to the next UTC midnight (at least 1): when the day's quota renews. */
export function secondsToUtcMidnight(nowMs: number): number {
  const d = new Date(nowMs);
  const next = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1);
  return Math.max(1, Math.ceil((next - nowMs) / 1000));
}

export function utcDay(nowMs: number): string {
  return new Date(nowMs).toISOString().slice(0, 10);
}

/** How long a day's shared counter outlives the day (replicas' clocks may lag a little behind midnight). */
const COUNTER_GRACE_MS = 3600_000;

/**
 * A counter of the jobs each user created on a UTC day, shared by every API replica. `take` is one atomic
 * step: it spends one job of the day's `cap`, or refuses. ClickHouse stays the record: a counter that is
 * absent (first job of the day, or a Redis that restarted empty) is seeded from `durable()`, the jobs
 * ClickHouse holds for that user and day.
 */
export interface SharedQuota {
  take(
    userId: string,
    day: string,
    cap: number,
    ttlMs: number,
    durable: () => Promise<number>,
  ): Promise<{ admitted: boolean; used: number }>;
  /** Returns one job to the counter: the job that `take` admitted was surely not stored. */
  giveBack(userId: string, day: string): Promise<void>;
  ready(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

// KEYS[1]: the user's counter for the day. ARGV: cap, ttl (ms), the durable count ('' when not read yet).
// Returns {1, used} when admitted, {0, used} when full, {-1, 0} when the counter is absent and unseeded: the
// caller reads ClickHouse's count and calls again with it (the SET happens only if still absent, so a seed
// read while another replica seeded and spent is never applied over it).
const TAKE = `
local n = redis.call('GET', KEYS[1])
if not n then
  if ARGV[3] == '' then return {-1, 0} end
  n = tonumber(ARGV[3])
  redis.call('SET', KEYS[1], n, 'PX', tonumber(ARGV[2]))
else
  n = tonumber(n)
end
if n >= tonumber(ARGV[1]) then return {0, n} end
redis.call('INCR', KEYS[1])
return {1, n + 1}
`;

// KEYS[1]: the counter. Never below zero, never creating a key (an absent one re-seeds from ClickHouse).
const GIVE_BACK = `
local n = tonumber(redis.call('GET', KEYS[1]))
if n and n > 0 then redis.call('DECR', KEYS[1]) end
return 0
`;

export interface RedisQuotaOptions {
  url: string;
  /** Prepended to every key (default "tally:export-quota:"). */
  prefix?: string;
}

/** The shared counter in Redis: one Lua script per admission, atomic on the Redis server. */
export class RedisQuota implements SharedQuota {
  readonly client: Redis;
  private readonly prefix: string;
  private readonly shas = new Map<string, string>();

  constructor(opts: RedisQuotaOptions) {
    this.prefix = opts.prefix ?? 'tally:export-quota:';
    // As the rate-limit store: no offline queue, one retry, so a Redis outage is a prompt 503.
    this.client = new Redis(opts.url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 2000,
    });
    this.client.on('error', () => undefined);
  }

  ready(timeoutMs?: number): Promise<void> {
    return redisReady(this.client, timeoutMs);
  }

  async take(
    userId: string,
    day: string,
    cap: number,
    ttlMs: number,
    durable: () => Promise<number>,
  ): Promise<{ admitted: boolean; used: number }> {
    const key = this.key(userId, day);
    let [code, used] = await this.run(TAKE, key, cap, Math.ceil(ttlMs), '');
    if (code === -1) [code, used] = await this.run(TAKE, key, cap, Math.ceil(ttlMs), await durable());
    return { admitted: code === 1, used };
  }

  async giveBack(userId: string, day: string): Promise<void> {
    await this.run(GIVE_BACK, this.key(userId, day));
  }

  async close(): Promise<void> {
    this.client.disconnect();
  }

  /** The user id is JSON-quoted so that no id can end where another id's day begins. */
  private key(userId: string, day: string): string {
    return `${this.prefix}${day}:${JSON.stringify(userId)}`;
  }

  private async run(script: string, key: string, ...args: (string | number)[]): Promise<[number, number]> {
    let reply: unknown;
    try {
      let sha = this.shas.get(script);
      if (!sha) {
        sha = (await this.client.script('LOAD', script)) as string;
        this.shas.set(script, sha);
      }
      try {
        reply = await this.client.evalsha(sha, 1, key, ...args);
      } catch (err) {
        if (!/NOSCRIPT/.test((err as Error).message)) throw err;
        reply = await this.client.eval(script, 1, key, ...args);
      }
    } catch (err) {
      throw new Unavailable('the export quota store (Redis) is not answering', { cause: err });
    }
    const [a, b] = Array.isArray(reply) ? reply.map(Number) : [0, 0];
    return [a ?? 0, b ?? 0];
  }
}

/**
 * How long an Idempotency-Key reservation holds while its job is being made: longer than the storage client
 * waits for an insert (5 min), so a slow insert is never overtaken; a replica that died meanwhile blocks the
 * key (503) no longer than this.
 */
const RESERVATION_PENDING_MS = 5 * 60_000;
/** How long a reservation holds once its job is stored: reads lagging behind that insert find it meanwhile. */
const RESERVATION_KEPT_MS = 24 * 3600_000;

export interface AdmissionOptions {
  /**
   * Shared by every API replica (RATE_LIMIT_REDIS_URL): an Idempotency-Key is reserved there before its job is
   * made, so replicas given the same key at the same instant make one job (default: none, the lock alone).
   */
  claims?: ClaimStore;
  /** How long a request that lost the reservation waits for the winner's job before a 503 (default 5 s). */
  idempotencyWaitMs?: number;
  /** Between looks for the winner's job (default 50 ms). */
  idempotencyPollMs?: number;
}

/**
 * The atomic step. In one process the per-user lock makes "count, then insert" one step. Across replicas
 * (`shared` given) the lock still orders one replica's own requests (and its Idempotency-Key lookups), and
 * the shared counter's atomic `take` decides: exactly `perDay` jobs per user and UTC day in all, however
 * many replicas answer. ClickHouse stays the durable record that a lost counter is re-seeded from. With
 * `options.claims`, an Idempotency-Key is reserved in the shared store before the quota is spent (see admit).
 */
export class JobAdmission {
  private readonly lock = new KeyedMutex();
  private readonly claims: ClaimStore | undefined;
  private readonly waitMs: number;
  private readonly pollMs: number;

  constructor(
    private readonly ch: ClickHouse,
    private readonly perDay: number,
    private readonly now: () => number = Date.now,
    private readonly shared?: SharedQuota,
    options: AdmissionOptions = {},
  ) {
    this.claims = options.claims;
    this.waitMs = options.idempotencyWaitMs ?? 5000;
    this.pollMs = options.idempotencyPollMs ?? 50;
  }

  /** Waits for the shared stores' connections (nothing to wait for in one process). */
  async ready(timeoutMs?: number): Promise<void> {
    await Promise.all([this.shared?.ready(timeoutMs), this.claims?.ready(timeoutMs)]);
  }

  async close(): Promise<void> {
    await Promise.all([this.shared?.close(), this.claims?.close()]);
  }

  admit(req: JobRequest, fileName: (jobId: string) => string): Promise<Admission> {
    const key = req.idempotencyKey;
    if (key !== undefined && this.claims) return this.admitReserved(req, key, this.claims, fileName);
    return this.lock.run(req.userId, async () => {
      if (key !== undefined) {
        const prior = await findJobByIdempotencyKey(this.ch, req.userId, key);
        if (prior) return { job: prior, created: false };
      }
      return this.create(req, fileName, randomUUID());
    });
  }

  /**
   * An Idempotency-Key across replicas. Under the replica's lock: a job already readable for the key is the
   * answer; otherwise the key is reserved in the shared store for a new job id (one atomic step for all
   * replicas) and only the winner spends quota and makes the job. A loser waits, outside the lock, for the
   * winner's job to become readable and answers with it, as for a key seen before; if the winner gave the key
   * up (its request failed: 429, storage error) the loser tries again itself; if the job does not appear within
   * `idempotencyWaitMs`, 503 (retrying is safe). A Redis that does not answer is a 503 too.
   */
  private async admitReserved(
    req: JobRequest,
    key: string,
    claims: ClaimStore,
    fileName: (jobId: string) => string,
  ): Promise<Admission> {
    // Real time, not `now` (a test's clock may stand still).
    const deadline = Date.now() + this.waitMs;
    for (;;) {
      const step = await this.lock.run(req.userId, async (): Promise<Admission | string> => {
        const prior = await findJobByIdempotencyKey(this.ch, req.userId, key);
        if (prior) return { job: prior, created: false };
        const jobId = randomUUID();
        const holder = await claims.reserve(req.userId, key, jobId, RESERVATION_PENDING_MS);
        if (holder !== jobId) return holder;
        let admission: Admission;
        try {
          admission = await this.create(req, fileName, jobId);
        } catch (err) {
          await this.unreserve(req.userId, key, jobId, err);
          throw err;
        }
        await claims.settle(req.userId, key, jobId, RESERVATION_KEPT_MS).catch(() => undefined);
        return admission;
      });
      if (typeof step !== 'string') return step;
      const job = await this.awaitJob(req.userId, key, step, claims, deadline);
      if (job) return { job, created: false };
    }
  }

  /**
   * The winner's job once readable; undefined when the reservation moved on (given up, or expired) so that
   * the caller tries again. Past `deadline`: Unavailable.
   */
  private async awaitJob(
    userId: string,
    key: string,
    jobId: string,
    claims: ClaimStore,
    deadline: number,
  ): Promise<ExportJob | undefined> {
    for (;;) {
      const job = await getJob(this.ch, jobId);
      if (job?.user_id === userId) return job;
      if ((await claims.reservation(userId, key)) !== jobId) return undefined;
      if (Date.now() >= deadline) {
        throw new Unavailable(
          'another request with this Idempotency-Key is creating its job, which is not readable yet; retry',
        );
      }
      await new Promise((r) => setTimeout(r, this.pollMs));
    }
  }

  /**
   * After a failed admission, frees the key for the next request only when the job is surely not stored: a 429
   * made none; after any other failure (an insert can fail on the way back and still land) ClickHouse must
   * confirm it is absent. When that cannot be told the reservation stays until it expires (requests meanwhile
   * get 503, never a second job).
   */
  private async unreserve(userId: string, key: string, jobId: string, err: unknown): Promise<void> {
    try {
      const absent = err instanceof RateLimited || !(await getJob(this.ch, jobId));
      if (absent) await this.claims?.settle(userId, key, jobId, 0);
    } catch {
      // Storage or Redis away: the reservation expires by itself.
    }
  }

  /** Spends quota and stores a new job under `jobId` (the caller holds the user's lock). */
  private async create(
    req: JobRequest,
    fileName: (jobId: string) => string,
    jobId: string,
  ): Promise<Admission> {
    const now = this.now();
    const day = utcDay(now);
    const full = () =>
      new RateLimited(
        secondsToUtcMidnight(now),
        `export quota reached: ${this.perDay} jobs per UTC day; it renews at 00:00 UTC`,
      );
    if (this.shared) {
      const ttlMs = secondsToUtcMidnight(now) * 1000 + COUNTER_GRACE_MS;
      const { admitted } = await this.shared.take(req.userId, day, this.perDay, ttlMs, () =>
        countJobsOnDay(this.ch, req.userId, day),
      );
      if (!admitted) throw full();
    } else if ((await countJobsOnDay(this.ch, req.userId, day)) >= this.perDay) {
      throw full();
    }
    const job: ExportJob = {
      job_id: jobId,
      user_id: req.userId,
      day,
      idempotency_key: req.idempotencyKey ?? '',
      report_type: req.reportType,
      format: req.format,
      params: JSON.stringify(req.params),
      status: 'queued',
      attempts: 0,
      lease_owner: '',
      lease_expires_at: 0,
      rows_written: 0,
      bytes: 0,
      sha256: '',
      file_name: fileName(jobId),
      expires_at: 0,
      error: '',
      created_at: now,
      updated_at: now,
      version: nextVersion(now),
    };
    try {
      await writeJob(this.ch, job);
    } catch (err) {
      if (this.shared) await this.refund(req.userId, day, jobId);
      throw err;
    }
    return { job, created: true };
  }

  /**
   * After a failed insert, gives the job back to the shared counter only when ClickHouse confirms that it is
   * not stored (an insert can fail on the way back and still land). When that cannot be told, the job stays
   * spent: the quota never lets more than its number through.
   */
  private async refund(userId: string, day: string, jobId: string): Promise<void> {
    try {
      if (!(await getJob(this.ch, jobId))) await this.shared?.giveBack(userId, day);
    } catch {
      // Storage or Redis away: keep the job counted.
    }
  }
}
