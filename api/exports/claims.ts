// Claims that must be exact across processes (RATE_LIMIT_REDIS_URL set): an export job's attempt, a webhook
// delivery's attempt, and an Idempotency-Key of POST /reports/export. Each is one atomic Redis step (SET NX, or
// a small Lua script), taken before the claim row or the job is written to ClickHouse, which has no transaction
// and whose reads may lag its writes. Without Redis none of this is used: one process's lock is the step.
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { Unavailable } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { redisReady } from '../middleware/rate-limit-redis.ts';

/** What an attempt claim is for: an export job (ExportWorker) or a webhook delivery (WebhookDispatcher). */
export type ClaimKind = 'export' | 'webhook';

/**
 * The shared atomic steps. Every method throws `Unavailable` when the store does not answer: callers never
 * fall back to the unsafe path (a worker claims nothing, an admission answers 503).
 */
export interface ClaimStore {
  /**
   * Takes attempt `attempt` of `id` for `owner` for `ttlMs`, unless anyone (this owner included) took that
   * attempt within the last `ttlMs`: true when this call won. Attempt numbers only grow, so a claim is never
   * needed again once its row is readable everywhere; the ttl covers the time reads may lag.
   */
  claim(kind: ClaimKind, id: string, attempt: number, owner: string, ttlMs: number): Promise<boolean>;
  /** Gives back an attempt `owner` still holds (a job handed back on shutdown is claimed again with it). */
  release(kind: ClaimKind, id: string, attempt: number, owner: string): Promise<void>;
  /**
   * Reserves the Idempotency-Key `key` of `userId` for the job `jobId` for `ttlMs`, unless it is held: returns
   * the holder's job id (`jobId` itself when this call won).
   */
  reserve(userId: string, key: string, jobId: string, ttlMs: number): Promise<string>;
  /** The job id holding a reservation, or undefined when there is none. */
  reservation(userId: string, key: string): Promise<string | undefined>;
  /** Sets the lifetime of a reservation that `jobId` still holds (ttlMs > 0), or removes it (ttlMs = 0). */
  settle(userId: string, key: string, jobId: string, ttlMs: number): Promise<void>;
  ready(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

// KEYS[1]; ARGV: the expected holder. Deletes the key only while that holder has it.
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
`;

// KEYS[1]; ARGV: job id, ttl (ms). Returns the holder: the existing one, or ARGV[1] after setting it.
const RESERVE = `
local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
return ARGV[1]
`;

// KEYS[1]; ARGV: job id, ttl (ms, 0 = remove). Touches the key only while that job holds it.
const SETTLE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2])) else redis.call('DEL', KEYS[1]) end
return 1
`;

export interface RedisClaimsOptions {
  url: string;
  /** Prepended to every key (default "tally:claim:"). */
  prefix?: string;
  /**
   * How long a call waits for a connection that is not (yet) up before failing with Unavailable (default
   * 2000 ms): a worker's first poll right after start does not fail on a connection still being made.
   */
  connectWaitMs?: number;
}

/** The claims in Redis: SET NX PX for attempts, small Lua scripts for the compare-and-set steps. */
export class RedisClaims implements ClaimStore {
  readonly client: Redis;
  private readonly prefix: string;
  private readonly connectWaitMs: number;

  constructor(opts: RedisClaimsOptions) {
    this.prefix = opts.prefix ?? 'tally:claim:';
    this.connectWaitMs = opts.connectWaitMs ?? 2000;
    // As the quota: no offline queue and one retry, so an outage is a prompt error rather than a pile-up.
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

  async close(): Promise<void> {
    this.client.disconnect();
  }

  async claim(kind: ClaimKind, id: string, attempt: number, owner: string, ttlMs: number): Promise<boolean> {
    const key = this.attemptKey(kind, id, attempt);
    const reply = await this.call(() => this.client.set(key, owner, 'PX', ttl(ttlMs), 'NX'));
    return reply === 'OK';
  }

  async release(kind: ClaimKind, id: string, attempt: number, owner: string): Promise<void> {
    const key = this.attemptKey(kind, id, attempt);
    await this.call(() => this.client.eval(RELEASE, 1, key, owner));
  }

  async reserve(userId: string, key: string, jobId: string, ttlMs: number): Promise<string> {
    const k = this.reservationKey(userId, key);
    return String(await this.call(() => this.client.eval(RESERVE, 1, k, jobId, ttl(ttlMs))));
  }

  async reservation(userId: string, key: string): Promise<string | undefined> {
    const k = this.reservationKey(userId, key);
    return (await this.call(() => this.client.get(k))) ?? undefined;
  }

  async settle(userId: string, key: string, jobId: string, ttlMs: number): Promise<void> {
    const k = this.reservationKey(userId, key);
    await this.call(() => this.client.eval(SETTLE, 1, k, jobId, ttlMs > 0 ? ttl(ttlMs) : 0));
  }

  /** Job and delivery ids are server-made (UUIDs); the kind keeps the two spaces apart. */
  private attemptKey(kind: ClaimKind, id: string, attempt: number): string {
    return `${this.prefix}${kind}:${id}:${attempt}`;
  }

  /** Hashed: the key is the client's text, up to 256 characters, and the pair must not be ambiguous. */
  private reservationKey(userId: string, key: string): string {
    const digest = createHash('sha256')
      .update(JSON.stringify([userId, key]))
      .digest('hex');
    return `${this.prefix}idempotency:${digest}`;
  }

  private async call<T>(step: () => Promise<T>): Promise<T> {
    try {
      if (this.client.status === 'end') throw new Error('the Redis connection is closed');
      if (this.client.status !== 'ready') await redisReady(this.client, this.connectWaitMs);
      return await step();
    } catch (err) {
      throw new Unavailable('the claim store (Redis) is not answering', { cause: err });
    }
  }
}

/** Redis takes whole milliseconds, at least one. */
function ttl(ms: number): number {
  return Math.max(1, Math.ceil(ms));
}

/**
 * Takes attempts of one kind for one worker or dispatcher (`owner`), through the shared store when there is
 * one (always granted without). A store that does not answer grants nothing, with one warning per outage:
 * claiming without it could run a job or send a webhook twice.
 */
export class AttemptGuard {
  private down = false;

  constructor(
    private readonly kind: ClaimKind,
    private readonly store: ClaimStore | undefined,
    private readonly owner: string,
    private readonly logger: Logger,
    /** How the logs name the caller and what it claims, e.g. ['export worker', 'job']. */
    private readonly names: readonly [who: string, what: string],
  ) {}

  async take(id: string, attempt: number, ttlMs: number): Promise<boolean> {
    if (!this.store) return true;
    const [who, what] = this.names;
    try {
      const won = await this.store.claim(this.kind, id, attempt, this.owner, ttlMs);
      if (this.down) this.logger.info(`${who}: the claim store (Redis) answers again`);
      this.down = false;
      return won;
    } catch (err) {
      if (!this.down) {
        this.logger.warn(
          { err },
          `${who}: the claim store (Redis) does not answer; claiming no ${what} until it does`,
        );
      }
      this.down = true;
      return false;
    }
  }
}
