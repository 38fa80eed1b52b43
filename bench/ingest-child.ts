// One Kafka run of the ingest benchmark in a process of its own, shaped like `npm run ingest`: a fresh embedded
// engine, the ingester with its default batches and the ingestion ledger, nothing else. Its peak RSS is then the
// ingesting process's own, not the benchmark's (which holds the whole generated dataset for the baseline).
// Reads its task from BENCH_CHILD (JSON) and prints one JSON line: events/s and peak RSS.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openClickHouse } from '../clickhouse/client.ts';
import { insertEvents } from '../clickhouse/inserts.ts';
import { migrate } from '../clickhouse/migrate.ts';
import { loadConfig } from '../core/config.ts';
import { createLogger } from '../core/logger.ts';
import { Ingester } from '../ingest/consumer.ts';
import { createKafka } from '../ingest/kafka.ts';
import { recordBatch } from '../ingest/ledger.ts';
import { type MemorySample, sampleEngineMemory } from './engine-memory.ts';

export interface ChildTask {
  brokers: string[];
  topics: string[];
  group: string;
  events: number;
}

export interface ChildResult {
  rate: number;
  peakRss: number;
  /** RSS once the engine is open and migrated, before the first message. */
  idleRss: number;
  batches: number;
  /** Peak of V8's heap (JS objects: decoded rows, insert bodies); the rest of the RSS is mostly the engine. */
  peakHeap: number;
  /** Share of the run during which an insert (events or ledger) was in the engine: near 1, the engine is the limit. */
  engineBusy: number;
  /** CPU seconds the whole process used (every thread: JS and engine) from the first message to the last insert. */
  cpuSeconds: number;
  /** Share of that time the main thread (decoding, batching, Kafka client) was busy: near 1, it is the limit. */
  mainBusy: number;
  /**
   * CPU seconds of the main thread alone over the same time (Linux: /proc; NaN elsewhere). Unlike the busy
   * share, what other processes on the machine take does not inflate it.
   */
  mainCpuSeconds: number;
  /** process.memoryUsage() when the RSS peaked: how much of it was the JS heap, buffers, and the rest (engine). */
  atPeak: NodeJS.MemoryUsage;
  /** The engine's own figures (bench/engine-memory.ts) at the highest RSS its sampler saw, and their maxima. */
  engine: { peak: MemorySample | undefined; max: Record<string, number> };
}

const task = JSON.parse(process.env.BENCH_CHILD ?? '{}') as ChildTask;
const defaults = loadConfig({}).ingest;
const logger = createLogger('silent');
const kafka = createKafka({ brokers: task.brokers, clientId: 'tally-bench', logger });
const dir = mkdtempSync(join(tmpdir(), 'tally-bench-ingest-child-'));
const ch = await openClickHouse({ url: undefined, database: 'bench', dataDir: dir });
await migrate(ch);
global.gc?.();
const idleRss = process.memoryUsage().rss;
let peakRss = idleRss;
let peakHeap = 0;
let atPeak = process.memoryUsage();
// Time during which at least one insert is in the engine (the embedded engine runs them one at a time).
let inEngine = 0;
let busySince = 0;
let busy = 0;
async function timed(insert: () => Promise<void>): Promise<void> {
  if (inEngine++ === 0) busySince = performance.now();
  try {
    await insert();
  } finally {
    if (--inEngine === 0) busy += performance.now() - busySince;
  }
}
const ingester = new Ingester({
  kafka,
  write: (rows, token) => timed(() => insertEvents(ch, rows, token)),
  // As in production (bin/runtime.ts): each batch's arrivals go to the ingestion ledger before its insert.
  ledger: (batch) => timed(() => recordBatch(ch, batch)),
  topics: task.topics,
  groupId: task.group,
  limits: { rows: defaults.batchRows, bytes: defaults.batchBytes, waitMs: defaults.batchWaitMs },
  logger,
});
// The main thread's own CPU time: its task's utime + stime, in clock ticks (100 per second on Linux).
function mainThreadCpu(): number {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}
let first = 0;
let cpuAtFirst = process.cpuUsage();
let mainCpuAtFirst = mainThreadCpu();
let eluAtFirst = performance.eventLoopUtilization();
// Polled, so "first consumed" is late by at most one tick (25 ms).
const sampler = setInterval(() => {
  const mem = process.memoryUsage();
  if (mem.rss > peakRss) atPeak = mem;
  peakRss = Math.max(peakRss, mem.rss);
  peakHeap = Math.max(peakHeap, mem.heapTotal + mem.external);
  if (first === 0 && ingester.stats.consumed > 0) {
    first = performance.now();
    cpuAtFirst = process.cpuUsage();
    mainCpuAtFirst = mainThreadCpu();
    eluAtFirst = performance.eventLoopUtilization();
  }
}, 25);
const engineSampler = sampleEngineMemory(dir);
await ingester.start();
const started = performance.now();
while (ingester.stats.inserted + ingester.stats.deadLettered < task.events) {
  if (performance.now() - started > 600_000) throw new Error('ingest did not finish in 10 minutes');
  await new Promise((ok) => setTimeout(ok, 20));
}
const end = performance.now();
const cpu = process.cpuUsage(cpuAtFirst);
const mainCpuSeconds = mainThreadCpu() - mainCpuAtFirst;
const elu = performance.eventLoopUtilization(eluAtFirst);
clearInterval(sampler);
const engine = await engineSampler.stop();
await ingester.stop();
const result: ChildResult = {
  rate: task.events / ((end - first) / 1000),
  peakRss,
  idleRss,
  batches: ingester.stats.batches,
  peakHeap,
  engineBusy: busy / (end - first),
  cpuSeconds: (cpu.user + cpu.system) / 1e6,
  mainBusy: elu.utilization,
  mainCpuSeconds,
  atPeak,
  engine,
};
process.stdout.write(`${JSON.stringify(result)}\n`);
await ch.close();
rmSync(dir, { recursive: true, force: true });
