// The reads the "reads during …" benchmarks time: each read of a fixed set in turn, 100 ms apart, through the
// app in this process, until `until` resolves (or for that many seconds), with the event loop's delay.
import { monitorEventLoopDelay } from 'node:perf_hooks';

interface App {
  request(path: string, init: { headers: Record<string, string> }): Response | Promise<Response>;
}

export interface ReadWindow<Name extends string> {
  /** Milliseconds of each read, sorted. */
  ms: Record<Name, number[]>;
  loopP99: number;
  loopMax: number;
}

export const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

export async function probeReads<Name extends string>(
  app: App,
  reads: Readonly<Record<Name, string>>,
  headers: Record<string, string>,
  until: Promise<unknown> | number,
): Promise<ReadWindow<Name>> {
  const names = Object.keys(reads) as Name[];
  const ms = Object.fromEntries(names.map((n) => [n, [] as number[]])) as Record<Name, number[]>;
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  let running = true;
  const stop = typeof until === 'number' ? sleep(until * 1000) : until;
  void stop.finally(() => {
    running = false;
  });
  while (running) {
    for (const name of names) {
      const t0 = performance.now();
      const res = await app.request(reads[name], { headers });
      if (res.status !== 200) throw new Error(`${reads[name]}: ${res.status}`);
      await res.arrayBuffer();
      ms[name].push(performance.now() - t0);
      await sleep(100);
    }
  }
  await stop;
  loop.disable();
  for (const n of names) ms[n].sort((a, b) => a - b);
  return { ms, loopP99: loop.percentile(99) / 1e6, loopMax: loop.max / 1e6 };
}
