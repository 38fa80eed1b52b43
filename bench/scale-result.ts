// What one shape's measurement leaves in result.json, for bench/scale.ts to report.
import type { DatasetInfo, Shape } from './scale-dataset.ts';
import type { ScaleOptions } from './scale-options.ts';
import type { TailSummary } from './tail-watch.ts';

export interface FloorResult {
  name: string;
  /** The least data the case must read and merge, in words. */
  what: string;
  p50: number;
  p99: number;
  runs: number;
}

export interface CaseResult {
  name: string;
  /** p99 ms at most, or requests/s at least. */
  target: number;
  unit: 'p99' | 'rps';
  runs: number;
  /** Requests prepared; fewer ran when the case's time budget ran out. */
  planned: number;
  p50: number;
  p99: number;
  max: number;
  rps: number;
  met: boolean;
  /** The machine's 1-minute load average as the case ended (the cores are shared). */
  load?: number;
  kinds: Array<{ kind: string; runs: number; p50: number; p99: number }>;
  /** The slowest 1% against GC pauses and the event loop's delay (cases at concurrency 1; absent before). */
  tail?: TailSummary;
}

export interface CheckResult {
  name: string;
  checked: number;
  /** p50 ms of the raw-table truth, and of the API on the same requests. */
  rawP50: number;
  apiP50: number;
  speedup: number;
  /**
   * p50 ms of the read path in process on the same requests (the version check and the route's read function,
   * without HTTP, auth and JSON), and the raw truth's p50 over it: the rollups against the raw tables alone.
   */
  readP50: number;
  readSpeedup: number;
  /** Each request: its kind and its three timings, ms. */
  requests: Array<{ kind: string; raw: number; api: number; read: number }>;
}

export interface SlowQuery {
  case: string;
  request: string;
  firstMs: number;
  replayMs: number;
  /** The engine queries the request sent, slowest first. */
  queries: Array<{ ms: number; sql: string }>;
  /** EXPLAIN ESTIMATE of the slowest: rows, parts and marks it reads per table. */
  estimate: string[];
}

export interface ShapeResult {
  shape: Shape;
  events: number;
  started: string;
  machine: string;
  dataset: DatasetInfo;
  migrateSeconds: number;
  /** Seconds the sealer's work took before measuring (absent in results written before sealing existed). */
  sealSeconds?: number;
  floors: FloorResult[];
  cases: CaseResult[];
  checks: CheckResult[];
  mismatches: string[];
  slow: SlowQuery[];
  rssBytes: number;
  tables: Array<{ table: string; rows: number; bytes: number; parts: number }>;
  options: ScaleOptions;
  /** The open-day cases' traffic: rows inserted per slice, and the sealer's first round of the day. */
  open?: {
    day: string;
    firstSlice: number;
    secondSlice: number;
    trickled: number;
    coverMs: number;
    coveredPoints: number;
  };
}
