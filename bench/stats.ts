// Latency sampling and percentiles for the benchmarks (nearest-rank), and the RESULTS.md section writer.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

export interface Sample {
  name: string;
  runs: number;
  p50: number;
  p99: number;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
}

/** Runs `fn` `warmup` times unmeasured, then `runs` times; milliseconds. */
export async function measure(
  name: string,
  runs: number,
  fn: () => Promise<unknown>,
  warmup = 3,
): Promise<Sample> {
  for (let i = 0; i < warmup; i++) await fn();
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return { name, runs, p50: percentile(ms, 50), p99: percentile(ms, 99) };
}

/** Replaces (or appends) the section between `<!-- key:start -->` and `<!-- key:end -->` in a Markdown file. */
export function writeSection(path: string, key: string, body: string): void {
  const start = `<!-- ${key}:start -->`;
  const end = `<!-- ${key}:end -->`;
  const block = `${start}\n${body.trim()}\n${end}`;
  const old = existsSync(path)
    ? readFileSync(path, 'utf8')
    : '# Benchmark results\n\nWritten by `npm run bench`.\n';
  const i = old.indexOf(start);
  const j = old.indexOf(end);
  const next =
    i >= 0 && j > i
      ? `${old.slice(0, i)}${block}${old.slice(j + end.length)}`
      : `${old.trimEnd()}\n\n${block}\n`;
  writeFileSync(path, next.endsWith('\n') ? next : `${next}\n`);
}

/** Median, min and max of a figure measured in several runs. */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

export function spread(values: readonly number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  return { median: percentile(sorted, 50), min: sorted[0] ?? Number.NaN, max: sorted.at(-1) ?? Number.NaN };
}

/** "median (min–max)" with `digits` decimals. */
export function fmtSpread(s: Spread, digits = 1): string {
  const f = (n: number) =>
    n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
  return `${f(s.median)} (${f(s.min)}–${f(s.max)})`;
}
