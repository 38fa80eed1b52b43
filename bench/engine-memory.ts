// Where an embedded-engine process's memory is, sampled while it works (bench/ingest-child.ts): the process's
// own split (/proc/self/status: anonymous vs file-backed, V8 heap, buffers) beside the engine's view of itself
// (clickhouse/engine/embedded.ts embeddedMemory: MemoryTracking, the merges and inserts running with their
// memory, jemalloc's allocated and resident bytes), read on a session of its own.
import { readFileSync } from 'node:fs';
import { embeddedMemory } from '../clickhouse/engine/embedded.ts';

export interface MemorySample {
  /** Milliseconds since the sampler started. */
  at: number;
  rss: number;
  /** Anonymous (heap, stacks, mmaps) and file-backed (mapped libraries, chdb's ~236 MB among them) RSS. */
  rssAnon: number;
  rssFile: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  /** system.metrics MemoryTracking: what the engine counts as allocated by it. */
  tracked: number;
  /** system.merges: memory of each running merge, `table:MB`. */
  merges: string[];
  /** system.processes: memory of the running queries (the inserts), bytes. */
  queries: number;
  /** jemalloc (the engine's allocator): allocated and resident bytes. */
  jeAllocated: number;
  jeResident: number;
}

function procStatus(): { rssAnon: number; rssFile: number } {
  const s = readFileSync('/proc/self/status', 'utf8');
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? 0) * 1024;
  return { rssAnon: kb('RssAnon'), rssFile: kb('RssFile') };
}

/** Samples every `everyMs` until stopped; keeps the sample at the highest RSS and each figure's maximum. */
export function sampleEngineMemory(dataDir: string, everyMs = 250) {
  const engine = embeddedMemory(dataDir);
  const t0 = performance.now();
  let peak: MemorySample | undefined;
  const max = { tracked: 0, queries: 0, jeResident: 0, jeAllocated: 0, rssAnon: 0 };
  let busy = false;
  let stopped = false;
  const tick = async () => {
    if (busy || stopped) return;
    busy = true;
    try {
      const e = await engine.read();
      const mem = process.memoryUsage();
      const s: MemorySample = {
        at: Math.round(performance.now() - t0),
        rss: mem.rss,
        ...procStatus(),
        heapTotal: mem.heapTotal,
        heapUsed: mem.heapUsed,
        external: mem.external,
        tracked: e.tracked,
        merges: e.merges,
        queries: e.queries,
        jeAllocated: e.allocated,
        jeResident: e.resident,
      };
      for (const k of Object.keys(max) as (keyof typeof max)[]) max[k] = Math.max(max[k], s[k]);
      if (!peak || s.rss > peak.rss) peak = s;
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void tick().catch(() => undefined), everyMs);
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      // chdb must not close a session with a query running in it.
      while (busy) await new Promise((ok) => setTimeout(ok, 10));
      engine.close();
      return { peak, max };
    },
  };
}
