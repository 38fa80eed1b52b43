// The identity provider's signing keys (AUTH_JWKS_URL): fetched on first use, cached, refreshed when stale or
// when a token names an unknown kid (at most once per cooldown, so random kids cannot make us hammer the IdP),
// and kept in use while the IdP does not answer: a short IdP outage must not log everyone out.
import {
  createLocalJWKSet,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWSHeaderParameters,
  errors as joseErrors,
} from 'jose';
import { Unavailable } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';

export interface JwksOptions {
  url: string;
  /** Keys older than this are refreshed on the next use (default 10 minutes). */
  maxAgeMs?: number;
  /** At most one fetch per this interval, whatever the reason (default 30 s). */
  cooldownMs?: number;
  /** A fetch that takes longer is abandoned (default 5 s). */
  timeoutMs?: number;
  logger?: Logger;
  now?: () => number;
}

/** Larger answers are refused: a JWKS is a few kilobytes. */
const MAX_JWKS_BYTES = 1 << 20;

type LocalSet = ReturnType<typeof createLocalJWKSet>;

export class JwksCache {
  private local: LocalSet | undefined;
  private fetchedAt = Number.NEGATIVE_INFINITY;
  private attemptedAt = Number.NEGATIVE_INFINITY;
  private inflight: Promise<void> | undefined;
  private readonly maxAgeMs: number;
  private readonly cooldownMs: number;
  private readonly timeoutMs: number;
  private readonly now: () => number;

  constructor(private readonly opts: JwksOptions) {
    this.maxAgeMs = opts.maxAgeMs ?? 10 * 60_000;
    this.cooldownMs = opts.cooldownMs ?? 30_000;
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.now = opts.now ?? Date.now;
  }

  /** The key-resolver for jose's jwtVerify: the key named by the token's kid (and fitting its alg). */
  readonly getKey = async (header: JWSHeaderParameters, token: FlattenedJWSInput) => {
    if (this.now() - this.fetchedAt >= this.maxAgeMs) await this.refresh();
    if (!this.local) throw new Unavailable("the identity provider's signing keys cannot be fetched");
    try {
      return await this.local(header, token);
    } catch (err) {
      // An unknown kid may be a freshly rotated key: look again, once per cooldown.
      if (!(err instanceof joseErrors.JWKSNoMatchingKey) || !(await this.refresh())) throw err;
      return this.local(header, token);
    }
  };

  /** Fetches the keys unless a fetch ran within the cooldown; true when new keys were loaded. */
  private async refresh(): Promise<boolean> {
    if (this.inflight) {
      await this.inflight;
      return true;
    }
    if (this.now() - this.attemptedAt < this.cooldownMs) return false;
    this.attemptedAt = this.now();
    let loaded = false;
    this.inflight = this.fetchKeys()
      .then((set) => {
        this.local = createLocalJWKSet(set);
        this.fetchedAt = this.now();
        loaded = true;
      })
      .catch((err: unknown) => {
        // Keep the cached keys: they stay valid until the IdP answers again.
        this.opts.logger?.warn(
          { err: (err as Error).message },
          'jwks: fetch failed; keeping the cached keys',
        );
      })
      .finally(() => {
        this.inflight = undefined;
      });
    await this.inflight;
    return loaded;
  }

  private async fetchKeys(): Promise<JSONWebKeySet> {
    const res = await fetch(this.opts.url, {
      signal: AbortSignal.timeout(this.timeoutMs),
      redirect: 'error',
      headers: { accept: 'application/json' },
    });
    if (!res.ok) throw new Error(`JWKS answered HTTP ${res.status}`);
    const text = await res.text();
    if (text.length > MAX_JWKS_BYTES) throw new Error('JWKS answer too large');
    const body = JSON.parse(text) as { keys?: unknown };
    if (!Array.isArray(body?.keys)) throw new Error('JWKS answer has no keys array');
    return body as JSONWebKeySet;
  }
}
