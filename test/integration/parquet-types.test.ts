// Parquet exports read by two independent readers, pyarrow and duckdb (pinned, from PyPI, in a venv cached under
// .cache/): timestamps are TIMESTAMP(MILLIS, UTC), dates DATE, counts signed INT64, text UTF-8 strings; and the
// values are the events' own. The file is the one the export worker writes (the same source and query).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ExportSource } from '../../clickhouse/export-stream.ts';
import { insertEvents } from '../../clickhouse/inserts.ts';
import { buildLogExportQuery, buildUsageExportQuery } from '../../clickhouse/queries/exports.ts';
import type { BuiltQuery } from '../../clickhouse/queries/query.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { PARQUET_READERS, pythonWith } from '../helpers/python.ts';
import { rowsOf } from '../helpers/rows.ts';

// Prints, per file, each column's type as pyarrow and as duckdb see it, and the rows as duckdb reads them.
const READ = `
import json, sys
import duckdb, pyarrow.parquet as pq
out = {}
for path in sys.argv[1:]:
    schema = pq.read_schema(path)
    con = duckdb.connect()
    described = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [path]).fetchall()
    con.execute("SET TimeZone = 'UTC'")
    rows = con.execute("SELECT * FROM read_parquet(?)", [path]).fetchall()
    out[path] = {
        "pyarrow": {f.name: str(f.type) for f in schema},
        "duckdb": {d[0]: d[1] for d in described},
        "rows": [[v.isoformat() if hasattr(v, "isoformat") else v for v in r] for r in rows],
    }
print(json.dumps(out))
`;

interface Seen {
  pyarrow: Record<string, string>;
  duckdb: Record<string, string>;
  rows: unknown[][];
}

describe('Parquet exports have real types (pyarrow, duckdb)', () => {
  let engine: TestEngine;
  let source: ExportSource;
  let dir: string;
  let python: string;

  beforeAll(async () => {
    python = pythonWith('parquet-readers', PARQUET_READERS);
    engine = await openTestEngine();
    dir = mkdtempSync(join(tmpdir(), 'tally-parquet-'));
    source = engine.ch.exportSource();
    const usage = (id: string, type: string, ts: string, user: string) => ({
      event_id: id,
      type,
      timestamp: ts,
      user_id: user,
      team_id: 't1',
      service: 'billing',
      session_id: `s-${id}`,
    });
    await insertEvents(
      engine.ch,
      rowsOf([
        usage('u1', 'session_start', '2025-03-01T08:00:00Z', 'alice'),
        usage('u2', 'session_start', '2025-03-02T09:00:00Z', 'bob'),
        usage('u3', 'session_start', '2025-03-02T10:00:00Z', 'alice'),
        {
          event_id: 'l1',
          type: 'log',
          timestamp: '2025-03-02T10:15:30.123Z',
          severity: 'error',
          service: 'exporter',
          message: '=SUM(A1) stays as written in Parquet',
        },
        {
          event_id: 'l2',
          type: 'log',
          timestamp: '2025-03-01T23:59:59.999+00:00',
          severity: 'info',
          service: 'exporter',
          message: 'older',
        },
      ]),
      'parquet-types/0',
    );
  });
  afterAll(async () => {
    source?.close();
    await engine?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function write(name: string, q: BuiltQuery): Promise<string> {
    const parts: Uint8Array[] = [];
    for await (const chunk of source.stream(q, 'Parquet', new AbortController().signal))
      parts.push(chunk.bytes);
    const path = join(dir, name);
    writeFileSync(path, Buffer.concat(parts));
    return path;
  }

  it('writes system-events timestamps as TIMESTAMP(MILLIS, UTC) and usage dates as DATE, counts as INT64', async () => {
    const logs = await write('logs.parquet', buildLogExportQuery({}, 'parquet'));
    const usage = await write(
      'usage.parquet',
      buildUsageExportQuery({ start_date: '2025-03-01', end_date: '2025-03-02' }, 'parquet'),
    );
    const seen = JSON.parse(execFileSync(python, ['-c', READ, logs, usage], { encoding: 'utf8' })) as Record<
      string,
      Seen
    >;
    const l = seen[logs] as Seen;
    const u = seen[usage] as Seen;

    expect(l.pyarrow).toEqual({
      timestamp: 'timestamp[ms, tz=UTC]',
      severity: 'string',
      service: 'string',
      message: 'string',
      event_id: 'string',
    });
    expect(l.duckdb).toMatchObject({ timestamp: 'TIMESTAMP WITH TIME ZONE', message: 'VARCHAR' });
    expect(l.rows).toEqual([
      ['2025-03-02T10:15:30.123000+00:00', 'error', 'exporter', '=SUM(A1) stays as written in Parquet', 'l1'],
      ['2025-03-01T23:59:59.999000+00:00', 'info', 'exporter', 'older', 'l2'],
    ]);

    expect(u.pyarrow).toEqual({
      date: 'date32[day]',
      team_id: 'string',
      active_users: 'int64',
      total_sessions: 'int64',
      total_users: 'int64',
    });
    expect(u.duckdb).toEqual({
      date: 'DATE',
      team_id: 'VARCHAR',
      active_users: 'BIGINT',
      total_sessions: 'BIGINT',
      total_users: 'BIGINT',
    });
    expect(u.rows).toEqual([
      ['2025-03-01', 't1', 1, 1, 1],
      ['2025-03-02', 't1', 2, 2, 2],
    ]);
  });
});
