// The per-identity request limit (hono-rate-limiter with an exact sliding-log store): at most the identity's
// limit in any window, keyed on the authenticated identity (JWT iss+sub, or API key id), never on an address or
// a header the client sets. Runs after authentication, so refused credentials spend no one's budget.
// RateLimit-Limit / -Remaining / -Reset go on every authenticated response; a refusal is the contract's 429
// with Retry-After (seconds until the oldest request in the window ages out).
import type { Context, MiddlewareHandler, Next } from 'hono';
import { type RateLimitInfo, rateLimiter, type Store } from 'hono-rate-limiter';
import { RateLimited } from '../../core/errors.ts';
import type { AppEnv } from '../env.ts';
import { type LimitPolicy, SlidingLogStore } from './rate-limit-store.ts';

export interface RateLimitOptions {
  policy: LimitPolicy;
  /** Default: a SlidingLogStore in this process's memory (per replica). */
  store?: Store<AppEnv>;
  /** The clock for the headers' seconds (tests); the memory store should share it. */
  now?: () => number;
}

type LimitedEnv = AppEnv & { Variables: { rateLimit: RateLimitInfo } };

export function createRateLimit(opts: RateLimitOptions): MiddlewareHandler<AppEnv> {
  const now = opts.now ?? Date.now;
  const store = opts.store ?? new SlidingLogStore(opts.policy, now);
  const headers = (c: Context<LimitedEnv>) => {
    const info = c.get('rateLimit');
    const resetMs = (info.resetTime?.getTime() ?? now() + opts.policy.windowMs) - now();
    const reset = String(Math.max(1, Math.ceil(resetMs / 1000)));
    return { limit: String(info.limit), remaining: String(info.remaining), reset };
  };
  const limiter = rateLimiter<LimitedEnv>({
    windowMs: opts.policy.windowMs,
    limit: (c) => opts.policy.limitFor(c.get('identity').id),
    keyGenerator: (c) => c.get('identity').id,
    // The library computes header seconds from its own clock; ours are set below from the injected one.
    standardHeaders: false,
    store: store as unknown as Store<LimitedEnv>,
    handler: (c) => {
      const h = headers(c);
      c.header('RateLimit-Limit', h.limit);
      c.header('RateLimit-Remaining', '0');
      c.header('RateLimit-Reset', h.reset);
      throw new RateLimited(
        Number(h.reset),
        `more than ${h.limit} requests in ${opts.policy.windowMs / 1000} seconds; retry after ${h.reset} s`,
      );
    },
  });
  return (async (c: Context<LimitedEnv>, next: Next) => {
    await limiter(c, async () => {
      await next();
      // After next: the route's answer (or its error, already mapped) is final; add the headers to it.
      const h = headers(c);
      c.res.headers.set('RateLimit-Limit', h.limit);
      c.res.headers.set('RateLimit-Remaining', h.remaining);
      c.res.headers.set('RateLimit-Reset', h.reset);
    });
  }) as unknown as MiddlewareHandler<AppEnv>;
}
