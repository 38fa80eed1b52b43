// A Python virtual environment under .cache/ with pinned PyPI packages, made once and reused: independent
// readers (pyarrow, duckdb) and foreign producers (librdkafka through confluent-kafka). CI starts from a clean
// clone with only `npm ci` done, so the tests make it themselves. Needs python3 with venv and pip.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..', '..');

/** The venv's python for `packages` (exact `name==version` pins), created or refreshed when the pins change. */
export function pythonWith(name: string, packages: readonly string[]): string {
  const dir = join(ROOT, '.cache', `${name}-venv`);
  const python = join(dir, 'bin', 'python');
  const stamp = join(dir, 'tally-pins.txt');
  const pins = `${[...packages].sort().join('\n')}\n`;
  if (existsSync(python) && existsSync(stamp) && readFileSync(stamp, 'utf8') === pins) return python;
  rmSync(dir, { recursive: true, force: true });
  execFileSync('python3', ['-m', 'venv', dir], { stdio: 'inherit' });
  execFileSync(python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', ...packages], {
    stdio: 'inherit',
    timeout: 300_000,
  });
  writeFileSync(stamp, pins);
  return python;
}

/** librdkafka 2.x bundled in the wheel: every codec, idempotence and transactions. */
export const CONFLUENT_KAFKA = 'confluent-kafka==2.16.1';

/** The readers the Parquet tests use, pinned. pytz: duckdb needs it to hand back timestamps with a zone. */
export const PARQUET_READERS = ['pyarrow==22.0.0', 'duckdb==1.4.4', 'pytz==2025.2'];

// Rows of a Parquet file as JSON through pyarrow: timestamps as the API writes them (ms, Z), dates as YYYY-MM-DD.
const ROWS = `
import datetime, json, sys
import pyarrow.parquet as pq
def plain(v):
    if isinstance(v, datetime.datetime):
        v = v.astimezone(datetime.timezone.utc)
        return v.strftime('%Y-%m-%dT%H:%M:%S.') + f'{v.microsecond // 1000:03d}Z'
    if isinstance(v, datetime.date):
        return v.isoformat()
    return v
rows = pq.read_table(sys.argv[1]).to_pylist()
print(json.dumps([{k: plain(v) for k, v in r.items()} for r in rows]))
`;

/** A Parquet file's rows read by pyarrow (an independent reader that knows every logical type). */
export function readParquetRows(bytes: Uint8Array): Array<Record<string, unknown>> {
  const python = pythonWith('parquet-readers', PARQUET_READERS);
  const dir = mkdtempSync(join(tmpdir(), 'tally-pq-'));
  try {
    const file = join(dir, 'f.parquet');
    writeFileSync(file, bytes);
    const out = execFileSync(python, ['-c', ROWS, file], { encoding: 'utf8', maxBuffer: 512 * 1024 * 1024 });
    return JSON.parse(out) as Array<Record<string, unknown>>;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
