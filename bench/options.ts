// Sizes of a benchmark run: the full run (`npm run bench`, under 15 minutes on 2 cores) or `--quick` (a
// smoke run under 2 minutes with small data). Environment variables override single figures.
export interface BenchOptions {
  quick: boolean;
  /** Events of the query dataset (default 10,000,000; quick 500,000). */
  queryEvents: number;
  /** Events produced for the ingest benchmark (default 1,000,000; quick 50,000). */
  ingestEvents: number;
  /** Rows of each export (default 10,000,000; quick 300,000). */
  exportRows: number;
  /** Runs of each measurement; figures are their median, min and max (default 3; quick 1). */
  repeats: number;
  /** Seconds of each load run (default 3; quick 1). */
  seconds: number;
}

export function benchOptions(argv: readonly string[] = process.argv, env = process.env): BenchOptions {
  const quick = argv.includes('--quick');
  const num = (name: string, full: number, small: number) => Number(env[name] ?? (quick ? small : full));
  return {
    quick,
    queryEvents: num('BENCH_EVENTS', 10_000_000, 500_000),
    ingestEvents: num('BENCH_INGEST_EVENTS', 1_000_000, 50_000),
    exportRows: num('BENCH_EXPORT_ROWS', 10_000_000, 300_000),
    repeats: num('BENCH_REPEATS', 3, 1),
    seconds: num('BENCH_SECONDS', 3, 1),
  };
}
