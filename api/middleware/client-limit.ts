// The one limit not keyed on an identity: unauthenticated signed downloads, bounded per client address, so a
// flood of forged or replayed links cannot crowd out the API (a link is checked by HMAC before any storage
// lookup, but every request still costs a connection and a handler). Health probes are not routed here.
// The address is the socket's peer; with TRUST_PROXY, the last X-Forwarded-For entry, the one the proxy in
// front of the service appended (earlier entries are whatever the client wrote). IPv6 peers are counted per
// /64, the block one host normally holds.
import { isIP } from 'node:net';
import type { Context, MiddlewareHandler } from 'hono';
import { createMiddleware } from 'hono/factory';
import { RateLimited } from '../../core/errors.ts';
import { normalizeHost } from '../../core/webhooks/allow-list.ts';
import type { AppEnv } from '../env.ts';
import { remoteAddress } from './auth.ts';
import { limitPolicy, SlidingLogStore } from './rate-limit-store.ts';

export interface ClientLimitOptions {
  /** Requests per client address in any 60-second window (DOWNLOAD_RATE_LIMIT_PER_MINUTE). */
  perMinute: number;
  /** TRUST_PROXY: take the address from X-Forwarded-For's last entry. */
  trustProxy: boolean;
  now?: () => number;
}

/** Who is asking, for a per-address limit: see the file header. */
export function clientAddress(c: Context, trustProxy: boolean): string {
  let address = remoteAddress(c);
  if (trustProxy) {
    const last = c.req.header('x-forwarded-for')?.split(',').at(-1)?.trim();
    if (last && isIP(normalizeHost(last)) !== 0) address = last;
  }
  const a = normalizeHost(address);
  if (isIP(a) !== 6 || a.startsWith('::ffff:')) return a;
  // The first four groups of the full form: the /64.
  const [head = '', tail = ''] = a.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const full = [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return `${full.slice(0, 4).join(':')}::/64`;
}

export function limitPerClient(opts: ClientLimitOptions): MiddlewareHandler<AppEnv> & { stop(): void } {
  const now = opts.now ?? Date.now;
  const policy = limitPolicy(opts.perMinute, new Map());
  const store = new SlidingLogStore(policy, now);
  const handler = createMiddleware<AppEnv>(async (c, next) => {
    const info = store.increment(clientAddress(c, opts.trustProxy));
    if (info.totalHits > opts.perMinute) {
      const retryAfter = Math.max(1, Math.ceil(((info.resetTime?.getTime() ?? now()) - now()) / 1000));
      throw new RateLimited(
        retryAfter,
        `more than ${opts.perMinute} downloads from this address in 60 seconds; retry after ${retryAfter} s`,
      );
    }
    await next();
  });
  return Object.assign(handler, { stop: () => store.shutdown() });
}
