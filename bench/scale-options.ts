// Sizes of the scale benchmark (`npm run bench -- --scale`): 100 million events per shape, at least 1,000
// timed requests per case; `--quick` is a smoke run of a minute on small data. Environment variables
// override single figures (BENCH_SCALE_EVENTS=20000000 while developing).
import { DEFAULT_SHAPES, SHAPES, type Shape } from './scale-dataset.ts';

export interface ScaleOptions {
  quick: boolean;
  /** Events of each shape's dataset, re-sent copies included (default 100,000,000; quick 200,000). */
  events: number;
  /** Shapes to run (BENCH_SCALE_SHAPES, comma-separated; default product and long-tail; wide by name). */
  shapes: Shape[];
  /** Timed requests per case (default 1,000; quick 30). */
  requests: number;
  /** Most seconds one case may take; a case cut short says so (default 900; quick 5). */
  caseSeconds: number;
  /** Answers per case spot-checked against the raw tables (default 20; quick 3). */
  checks: number;
  /** Most seconds the checks of one case may take, past the first 3 (or `checks` if fewer; default 300; quick 10). */
  checkSeconds: number;
  /** Most seconds the measurement waits for background merges to finish before it starts (default 600). */
  settleSeconds: number;
  /**
   * Where the HTTP client runs (BENCH_SCALE_CLIENT): `inline`, in the serving process (default); `process`, a
   * child process of its own, as real clients are, so that the serving process's loop, heap and RSS hold the
   * service alone. On 2 cores the child is one more process competing for them: at 100M events it lengthened
   * the tails it timed (GET /healthz p99 2.2-3.4 against 1.4-2.0 ms inline, the cached request no better).
   */
  client: 'process' | 'inline';
  /**
   * Whether the read cache computes an uncached answer beside the version read (BENCH_SCALE_EARLY, default 1;
   * 0: after it, as before, for a comparison on the same machine and datasets).
   */
  early: boolean;
  /** Where the datasets live, one directory per shape and size (default .cache/scale). */
  root: string;
}

export function scaleOptions(argv: readonly string[] = process.argv, env = process.env): ScaleOptions {
  const quick = argv.includes('--quick');
  const num = (name: string, full: number, small: number) => Number(env[name] ?? (quick ? small : full));
  const shapes = (env.BENCH_SCALE_SHAPES ?? DEFAULT_SHAPES.join(',')).split(',').map((s) => s.trim());
  for (const s of shapes) {
    if (!SHAPES.includes(s as Shape))
      throw new Error(`BENCH_SCALE_SHAPES: unknown shape ${JSON.stringify(s)}`);
  }
  return {
    quick,
    events: num('BENCH_SCALE_EVENTS', 100_000_000, 200_000),
    shapes: shapes as Shape[],
    requests: num('BENCH_SCALE_REQUESTS', 1000, 30),
    caseSeconds: num('BENCH_SCALE_CASE_SECONDS', 900, 5),
    checks: num('BENCH_SCALE_CHECKS', 20, 3),
    checkSeconds: num('BENCH_SCALE_CHECK_SECONDS', 300, 10),
    settleSeconds: num('BENCH_SCALE_SETTLE_SECONDS', 600, 60),
    client: clientOf(env.BENCH_SCALE_CLIENT),
    early: earlyOf(env.BENCH_SCALE_EARLY),
    root: env.BENCH_SCALE_DIR ?? '.cache/scale',
  };
}

function clientOf(v: string | undefined): 'process' | 'inline' {
  if (v === undefined || v === 'inline') return 'inline';
  if (v === 'process') return 'process';
  throw new Error(`BENCH_SCALE_CLIENT: expected process or inline, got ${JSON.stringify(v)}`);
}

function earlyOf(v: string | undefined): boolean {
  if (v === undefined || v === '1') return true;
  if (v === '0') return false;
  throw new Error(`BENCH_SCALE_EARLY: expected 0 or 1, got ${JSON.stringify(v)}`);
}

/** Where the HTTP client ran, in words for the report. */
export const CLIENT_WHERE = { process: 'a process of its own', inline: 'the serving process' } as const;
