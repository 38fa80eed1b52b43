// The sliding-log limit shared by several API replicas through Redis (RATE_LIMIT_REDIS_URL): one sorted set of
// admitted-request times per identity, pruned, checked and appended in one Lua script (atomic), on the Redis
// server's clock so that replicas with skewed clocks still share one exact window.
//
// Why not an existing store package: hono-rate-limiter's own RedisStore and @hono-rate-limiter/redis (like
// rate-limit-redis for express-rate-limit) count with INCR + PEXPIRE on the first hit, a fixed window: 100 requests
// at the end of one window and 100 at the start of the next pass, 200 in a few seconds, which the limit ("at
// most N in any 60-second window") forbids. This store keeps hono-rate-limiter's Store interface, so the
// middleware is the library's; only the counting is a sliding log.
import { randomBytes } from 'node:crypto';
import type { ClientRateLimitInfo, Store } from 'hono-rate-limiter';
import { Redis } from 'ioredis';
import { Unavailable } from '../../core/errors.ts';
import type { AppEnv } from '../env.ts';
import { decision, type LimitPolicy } from './rate-limit-store.ts';

// KEYS[1]: the identity's log; ARGV: limit, window (ms), a unique member. Returns admitted, count, oldest, now.
const HIT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
local admitted = 0
if n < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  n = n + 1
  admitted = 1
end
redis.call('PEXPIRE', KEYS[1], window)
local first = now
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if oldest[2] then first = tonumber(oldest[2]) end
return {admitted, n, first, now}
`;

/**
 * Resolves when `client` is connected, rejects when it gives up or after `timeoutMs` (default 10 s). The
 * error names no address: a Redis URL may carry a password.
 */
export function redisReady(client: Redis, timeoutMs = 10_000): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const done = (err?: Error) => {
      clearTimeout(timer);
      client.off('ready', onReady);
      client.off('end', onEnd);
      if (err) reject(err);
      else resolve();
    };
    const onReady = () => done();
    const onEnd = () => done(new Error('the Redis connection was closed before it was ready'));
    const timer = setTimeout(
      () => done(new Error(`Redis did not answer within ${Math.round(timeoutMs / 1000)} s`)),
      timeoutMs,
    );
    client.once('ready', onReady);
    client.once('end', onEnd);
  });
}

/**
 * The Redis client of a process (RATE_LIMIT_REDIS_URL), built here only and shared by its stores. No offline
 * queue and one retry: while Redis is away requests fail fast (503) instead of piling up. Await `redisReady`
 * before serving: without the offline queue every command sent before the connection is up fails.
 */
export function connectRedis(url: string): Redis {
  const client = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 2000 });
  // Connection errors surface on each request; without a listener they would also be printed by ioredis.
  client.on('error', () => undefined);
  return client;
}

export interface RedisStoreOptions {
  /** From connectRedis; its owner closes it. */
  client: Redis;
  /** Prepended to every key (default "tally:ratelimit:"). */
  prefix?: string;
}

export class RedisSlidingLogStore implements Store<AppEnv> {
  readonly localKeys = false;
  readonly prefix: string;
  readonly client: Redis;
  private sha: string | undefined;

  constructor(
    private readonly policy: LimitPolicy,
    opts: RedisStoreOptions,
  ) {
    this.prefix = opts.prefix ?? 'tally:ratelimit:';
    this.client = opts.client;
  }

  async increment(key: string): Promise<ClientRateLimitInfo> {
    const limit = this.policy.limitFor(key);
    const member = `${Date.now()}-${randomBytes(6).toString('hex')}`;
    const args = [1, this.prefix + key, limit, this.policy.windowMs, member] as const;
    let reply: unknown;
    try {
      if (!this.sha) this.sha = (await this.client.script('LOAD', HIT)) as string;
      try {
        reply = await this.client.evalsha(this.sha, ...args);
      } catch (err) {
        if (!/NOSCRIPT/.test((err as Error).message)) throw err;
        reply = await this.client.eval(HIT, ...args);
      }
    } catch (err) {
      throw new Unavailable('the rate-limit store (Redis) is not answering', { cause: err });
    }
    const [admitted, count, oldest, redisNow] = (reply as number[]).map(Number) as [
      number,
      number,
      number,
      number,
    ];
    // Reset times are relative to Redis's clock; re-based on ours so the headers' seconds are right.
    const rebased = Date.now() - redisNow + oldest;
    return decision(admitted === 1, count, limit, rebased, this.policy.windowMs);
  }

  async decrement(key: string): Promise<void> {
    await this.client.zpopmax(this.prefix + key);
  }

  async resetKey(key: string): Promise<void> {
    await this.client.del(this.prefix + key);
  }
}
