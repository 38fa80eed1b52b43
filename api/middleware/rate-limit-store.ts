// An exact sliding-log store for hono-rate-limiter, in memory (per replica): each identity's admitted requests
// of the last window are kept as timestamps, so no 60-second window ever holds more than the limit (a fixed
// window would let twice the limit through across a boundary). Refused requests are not logged: a client that
// keeps hammering regains its budget as its admitted requests age out.
import type { ClientRateLimitInfo, Store } from 'hono-rate-limiter';
import type { AppEnv } from '../env.ts';

/** The window and each identity's limit, shared by the middleware and its store. */
export interface LimitPolicy {
  readonly windowMs: number;
  limitFor(key: string): number;
}

export function limitPolicy(
  perWindow: number,
  overrides: ReadonlyMap<string, number>,
  windowMs = 60_000,
): LimitPolicy {
  return { windowMs, limitFor: (key) => overrides.get(key) ?? perWindow };
}

/** hono-rate-limiter counts a request as refused when totalHits exceeds the limit. */
export function decision(admitted: boolean, count: number, limit: number, oldest: number, windowMs: number) {
  return {
    totalHits: admitted ? count : limit + 1,
    resetTime: new Date(oldest + windowMs),
  } satisfies ClientRateLimitInfo;
}

export class SlidingLogStore implements Store<AppEnv> {
  readonly localKeys = true;
  private readonly logs = new Map<string, number[]>();
  private sweeper: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly policy: LimitPolicy,
    private readonly now: () => number = Date.now,
  ) {
    // Identities that went quiet are forgotten, so memory follows the active identities only.
    this.sweeper = setInterval(() => this.sweep(), policy.windowMs);
    this.sweeper.unref();
  }

  increment(key: string): ClientRateLimitInfo {
    const now = this.now();
    const limit = this.policy.limitFor(key);
    const log = this.prune(key, now);
    const admitted = log.length < limit;
    if (admitted) log.push(now);
    return decision(admitted, log.length, limit, log[0] ?? now, this.policy.windowMs);
  }

  get(key: string): ClientRateLimitInfo | undefined {
    const log = this.prune(key, this.now());
    if (log.length === 0) return undefined;
    return { totalHits: log.length, resetTime: new Date((log[0] as number) + this.policy.windowMs) };
  }

  decrement(key: string): void {
    this.logs.get(key)?.pop();
  }

  resetKey(key: string): void {
    this.logs.delete(key);
  }

  resetAll(): void {
    this.logs.clear();
  }

  shutdown(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    this.logs.clear();
  }

  /** The key's log without entries outside the window ending now: a request exactly windowMs old is out. */
  private prune(key: string, now: number): number[] {
    let log = this.logs.get(key);
    if (!log) {
      log = [];
      this.logs.set(key, log);
    }
    const cutoff = now - this.policy.windowMs;
    let drop = 0;
    while (drop < log.length && (log[drop] as number) <= cutoff) drop++;
    if (drop > 0) log.splice(0, drop);
    return log;
  }

  private sweep(): void {
    const now = this.now();
    for (const key of [...this.logs.keys()]) {
      if (this.prune(key, now).length === 0) this.logs.delete(key);
    }
  }
}
