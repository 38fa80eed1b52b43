// What the slowest requests of a case spent outside the engine: V8's garbage-collection pauses that overlapped
// them, and the event loop's delay over the case. A p99 over its target is then told apart: the process's own
// pauses (GC, work on the loop) against waiting for the engine or the cores.
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';

export interface TailSummary {
  /** Requests in the slowest 1% (at least 1). */
  slow: number;
  /** Of them, how many overlapped a GC pause. */
  slowWithGc: number;
  /** GC pause ms inside the slowest 1%, summed, against their time summed. */
  slowGcMs: number;
  slowMs: number;
  /** Every GC pause of the case: count, ms summed, longest. */
  gcCount: number;
  gcMs: number;
  gcMaxMs: number;
  /** The event loop's delay over the case (1 ms resolution): p99 and max, ms. */
  loopP99: number;
  loopMax: number;
}

/** Starts watching; `request(start, end)` records each timed request (performance.now() times). */
export function watchTail(): {
  request(start: number, end: number): void;
  stop(): TailSummary;
} {
  const pauses: Array<[number, number]> = [];
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) pauses.push([e.startTime, e.startTime + e.duration]);
  });
  obs.observe({ entryTypes: ['gc'] });
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const requests: Array<[number, number]> = [];
  return {
    request(start, end) {
      requests.push([start, end]);
    },
    stop() {
      obs.disconnect();
      loop.disable();
      const slowest = [...requests]
        .sort((a, b) => b[1] - b[0] - (a[1] - a[0]))
        .slice(0, Math.max(1, Math.ceil(requests.length / 100)));
      let slowWithGc = 0;
      let slowGcMs = 0;
      let slowMs = 0;
      for (const [s, e] of slowest) {
        slowMs += e - s;
        let inside = 0;
        for (const [ps, pe] of pauses) inside += Math.max(0, Math.min(e, pe) - Math.max(s, ps));
        if (inside > 0) slowWithGc++;
        slowGcMs += inside;
      }
      const gcMs = pauses.reduce((t, [s, e]) => t + e - s, 0);
      return {
        slow: slowest.length,
        slowWithGc,
        slowGcMs,
        slowMs,
        gcCount: pauses.length,
        gcMs,
        gcMaxMs: pauses.reduce((m, [s, e]) => Math.max(m, e - s), 0),
        loopP99: loop.percentile(99) / 1e6,
        loopMax: loop.max / 1e6,
      };
    },
  };
}
