// One answer shared by every caller of a probe for a moment. /readyz asks the storage each time; probes are
// unauthenticated and not rate limited (a load balancer must always get an answer), so 64 connections polling
// it were 64 storage round trips at once and slowed everyone's reports. Concurrent requests now wait for the
// one check in flight, and its answer serves the next `ttlMs` too: a probe sees the state of at most a second
// ago, and the storage sees at most one readiness check per second, however many ask.
import { createMiddleware } from 'hono/factory';
import type { AppEnv } from '../env.ts';

interface Kept {
  status: number;
  headers: [string, string][];
  body: ArrayBuffer;
  at: number;
}

export function sharedAnswer(ttlMs = 1000, now: () => number = Date.now) {
  let kept: Kept | undefined;
  let inFlight: Promise<Kept> | undefined;
  return createMiddleware<AppEnv>(async (c, next) => {
    const fresh = kept && now() - kept.at < ttlMs ? kept : undefined;
    let answer = fresh;
    if (!answer) {
      if (!inFlight) {
        inFlight = (async () => {
          await next();
          const res = c.res;
          const body = await res.clone().arrayBuffer();
          return { status: res.status, headers: [...res.headers], body, at: now() };
        })().finally(() => {
          inFlight = undefined;
        });
        kept = await inFlight;
        return;
      }
      answer = await inFlight;
    }
    // A copy of the shared answer; the request's own headers (X-Request-Id) are set again on the way out.
    c.res = new Response(answer.body.slice(0), { status: answer.status, headers: answer.headers });
  });
}
