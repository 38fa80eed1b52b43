// Closed-loop load at a fixed concurrency for a fixed time: over HTTP with autocannon (the API as clients see
// it), or as direct calls in this process (the engine baseline). Both report the same percentiles and rate.
import autocannon from 'autocannon';
import { percentile } from './stats.ts';

export interface LoadResult {
  requests: number;
  rps: number;
  p50: number;
  p95: number;
  p99: number;
}

function summarize(ms: number[], seconds: number): LoadResult {
  ms.sort((a, b) => a - b);
  return {
    requests: ms.length,
    rps: ms.length / seconds,
    p50: percentile(ms, 50),
    p95: percentile(ms, 95),
    p99: percentile(ms, 99),
  };
}

/**
 * autocannon against `url` for about `seconds`: a short probe sizes a fixed number of requests, since a timed
 * run drops the requests still in flight at its end, which at concurrency 8 can be all of them. Latencies are
 * each response's own time (autocannon's table has no p95).
 */
export async function httpLoad(
  url: string,
  headers: Record<string, string>,
  connections: number,
  seconds: number,
): Promise<LoadResult> {
  const probe = await cannon(url, headers, connections, connections * 2);
  const amount = Math.max(connections * 4, Math.ceil(probe.rps * seconds));
  return cannon(url, headers, connections, amount);
}

async function cannon(
  url: string,
  headers: Record<string, string>,
  connections: number,
  amount: number,
): Promise<LoadResult> {
  const ms: number[] = [];
  let failed = 0;
  const instance = autocannon({ url, headers, connections, amount });
  instance.on('response', (_client, status, _bytes, time) => {
    if (status === 200) ms.push(time);
    else failed++;
  });
  await instance;
  if (failed > 0) throw new Error(`${url}: ${failed} responses were not 200`);
  // Rate by Little's law (connections / mean latency), not by wall time: autocannon's start-up would weigh
  // on runs of a few dozen requests.
  const mean = ms.reduce((a, b) => a + b, 0) / ms.length / 1000;
  return { ...summarize(ms, 1), rps: connections / mean };
}

/** `connections` loops calling `fn` back to back for `seconds`. */
export async function directLoad(
  fn: () => Promise<unknown>,
  connections: number,
  seconds: number,
): Promise<LoadResult> {
  const ms: number[] = [];
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  const loop = async () => {
    while (performance.now() < until) {
      const t = performance.now();
      await fn();
      ms.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: connections }, loop));
  return summarize(ms, (performance.now() - t0) / 1000);
}
