// The service (`bin/start.ts`: API + worker in one process) is killed with SIGKILL while it writes a large
// export, then started again: the job's lease runs out, the new process claims it again and completes it, and
// nothing partial is ever served (no download link until the file is whole; the link serves the whole file,
// whose hash is the one the job records).
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type ClickHouse, openClickHouse } from '../../clickhouse/client.ts';
import { migrate } from '../../clickhouse/migrate.ts';
import { mintToken } from '../../core/tokens.ts';
import { type Service, startService } from '../helpers/service.ts';
import { waitFor } from '../helpers/wait.ts';

const ROWS = 3_000_000;
const SECRET = 'export-crash-secret-export-crash-secret-01';
const dataDir = mkdtempSync(join(tmpdir(), 'tally-export-crash-'));
const env = { DATA_DIR: dataDir, AUTH_JWT_SECRET: SECRET, EXPORT_LEASE_SECONDS: '2' };

async function withEngine<T>(fn: (ch: ClickHouse) => Promise<T>): Promise<T> {
  const ch = await openClickHouse({ url: undefined, database: 'analytics', dataDir });
  try {
    return await fn(ch);
  } finally {
    await ch.close();
  }
}

interface Status {
  status: string;
  rows_written?: number;
  row_count?: number;
  sha256?: string;
  download_url?: string;
  error?: string;
}

describe('an export whose process is killed mid-write', () => {
  let service: Service | undefined;
  afterEach(async () => {
    if (!service) return;
    service.child.kill('SIGKILL');
    await service.exited;
    service = undefined;
  });
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  beforeAll(async () => {
    // Logs written by the engine itself, before the service owns the data directory.
    await withEngine(async (ch) => {
      await migrate(ch);
      await ch.client.command({
        query: `INSERT INTO log_events (event_id, timestamp, severity, service, message)
          SELECT concat('k-', toString(number)), toDateTime64('2025-02-01 00:00:00', 3, 'UTC') + number / 50,
            ['info', 'warning', 'error'][number % 3 + 1], 'crashy', concat('line ', toString(number))
          FROM numbers({rows:UInt64})`,
        query_params: { rows: ROWS },
      });
    });
  });

  it.each(['csv', 'parquet'] as const)(
    '%s: completes after a restart, never serving a partial file',
    async (format) => {
      const token = await mintToken(SECRET, { sub: 'exporter' });
      const auth = { authorization: `Bearer ${token}` };
      service = await startService(env);
      const res = await fetch(`${service.base}/reports/export`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ report_type: 'system-events', format, service: 'crashy' }),
      });
      expect(res.status).toBe(202);
      const { job_id } = (await res.json()) as { job_id: string };
      const statusOf = async (s: Service): Promise<Status> =>
        (await (await fetch(`${s.base}/reports/export/${job_id}`, { headers: auth })).json()) as Status;

      // Killed once rows are being written, well before the end.
      let seen: Status | undefined;
      await waitFor(
        'the export to be writing rows',
        async () => {
          seen = await statusOf(service as Service);
          return seen.status === 'processing' && (seen.rows_written ?? 0) > 0;
        },
        { timeoutMs: 180_000, everyMs: 20 },
      );
      expect(seen?.download_url).toBeUndefined();
      service.child.kill('SIGKILL');
      expect((await service.exited).signal).toBe('SIGKILL');
      service = undefined;
      const exportsDir = join(dataDir, 'exports');
      const left = (existsSync(exportsDir) ? readdirSync(exportsDir) : []).filter((f) =>
        f.startsWith(job_id),
      );
      // What the killed process left is a temporary part, never a file under the job's final name.
      expect(left.every((f) => f.endsWith('.part'))).toBe(true);

      service = await startService(env);
      let done: Status | undefined;
      await waitFor(
        'the job to end',
        async () => {
          done = await statusOf(service as Service);
          if (done.status === 'processing' || done.status === 'queued') {
            expect(done.download_url).toBeUndefined();
            return false;
          }
          return true;
        },
        // Every poll is a request of the same identity: at most ~86 a minute, under the default limit of 100
        // (a restarted export that takes longer than 10 s under load got 429 at 100 ms).
        { timeoutMs: 240_000, everyMs: 700 },
      );
      expect(done).toMatchObject({ status: 'completed', row_count: ROWS });
      const file = await fetch(String(done?.download_url));
      expect(file.status).toBe(200);
      const body = Buffer.from(await file.arrayBuffer());
      expect(createHash('sha256').update(body).digest('hex')).toBe(done?.sha256);
      if (format === 'csv') {
        const lines = body.toString('utf8').trimEnd().split('\r\n');
        expect(lines).toHaveLength(ROWS + 1);
        expect(lines[0]).toBe('"timestamp","severity","service","message","event_id"');
        expect(lines[1]).toContain(`"k-${ROWS - 1}"`);
        expect(lines.at(-1)).toContain('"k-0"');
      } else {
        expect([body.subarray(0, 4).toString(), body.subarray(-4).toString()]).toEqual(['PAR1', 'PAR1']);
      }
      // What the engine was writing when the process died went when the new process opened its export source.
      expect(readdirSync(join(dataDir, 'export-out'))).toEqual([]);
      // The killed attempt's part was swept or replaced: only the finished file remains.
      await waitFor(
        'the old part to go',
        async () => readdirSync(exportsDir).every((f) => !f.endsWith('.part')),
        {
          timeoutMs: 60_000,
        },
      );
    },
  );
});
