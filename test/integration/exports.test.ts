// Export jobs end to end on the real engine: every export read back with an independent reader (csv-parse,
// parquetjs-lite; pyarrow for system-events, whose TIMESTAMP column parquetjs-lite cannot decode) and compared with the generator's truth; formula escaping; the daily quota under 30
// concurrent requests and after a restart; Idempotency-Key; signed links (tampered, foreign, expired: 403);
// byte ranges; creator-only visibility; a worker that died mid-export, recovered through its expired lease.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../api/app.ts';
import type { ExportDeps } from '../../api/exports/deps.ts';
import { JobAdmission, secondsToUtcMidnight } from '../../api/exports/quota.ts';
import { createAuthenticator } from '../../api/middleware/auth.ts';
import { insertEvents } from '../../clickhouse/inserts.ts';
import { SelfLog } from '../../clickhouse/self-log.ts';
import { type ExportJob, getJob } from '../../control/jobs.ts';
import { type ControlStore, openControl } from '../../control/store.ts';
import type { KeyRing } from '../../core/exports/signing.ts';
import { ExportStore } from '../../core/exports/store.ts';
import { createLogger } from '../../core/logger.ts';
import { mintToken } from '../../core/tokens.ts';
import { createDirectSink } from '../../ingest/direct.ts';
import { generateDataset } from '../../ingest/loadgen/generate.ts';
import { Truth } from '../../ingest/loadgen/truth.ts';
import { ExportWorker } from '../../worker/exports/worker.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { readParquetRows } from '../helpers/python.ts';
import { rowsOf } from '../helpers/rows.ts';
import { waitFor } from '../helpers/wait.ts';

interface ParquetCursor {
  next(): Promise<Record<string, unknown> | null>;
}
interface ParquetReader {
  getCursor(): ParquetCursor;
  close(): Promise<void>;
}
interface Envelope {
  readFooter(): Promise<{ version: number }>;
}
const parquet = createRequire(import.meta.url)('parquetjs-lite') as {
  ParquetReader: new (meta: { version: number }, env: Envelope) => ParquetReader;
  ParquetEnvelopeReader: { openBuffer(b: Buffer): Promise<Envelope> };
};

const SECRET = 'exports-test-secret-exports-test-secret-0123';
const BASE = 'https://tally.example.test';
const { events } = generateDataset({ events: 30_000, seed: 21, days: 45, duplicateRate: 0.03 });
const truth = new Truth().addAll(events);
const FORMULA = /^[=+\-@\t\r]/;
const [TEAM, OTHER_TEAM] = truth.catalog().teams as [string, string];

async function readParquet(buf: Buffer): Promise<Array<Record<string, unknown>>> {
  const envelope = await parquet.ParquetEnvelopeReader.openBuffer(buf);
  const meta = await envelope.readFooter();
  // ClickHouse stamps format version 2 in the footer; parquetjs-lite refuses anything but 1 before reading a
  // page, though it decodes these files' v1 data pages. Check the stamp, then let it read.
  expect(meta.version).toBe(2);
  meta.version = 1;
  const reader = new parquet.ParquetReader(meta, envelope);
  const cursor = reader.getCursor();
  const out: Array<Record<string, unknown>> = [];
  for (let r = await cursor.next(); r; r = await cursor.next()) out.push(r);
  await reader.close();
  return out;
}

/**
 * A parquet cell as plain JSON: dates as YYYY-MM-DD, timestamps (the `timestamp` column) as the API writes them,
 * 64-bit integers as numbers, byte strings as text.
 */
function plain(v: unknown, column?: string): unknown {
  if (v instanceof Date) return column === 'timestamp' ? v.toISOString() : v.toISOString().slice(0, 10);
  if (typeof v === 'bigint') return Number(v);
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  return v;
}

describe('export jobs', () => {
  let engine: TestEngine;
  let control: ControlStore;
  let deps: ExportDeps;
  let worker: ExportWorker;
  let app: ReturnType<typeof createApp>;
  let nowMs = Date.now();
  const keys: KeyRing = {
    current: 'k2',
    keys: new Map([
      ['k1', Buffer.alloc(32, 1)],
      ['k2', Buffer.alloc(32, 2)],
    ]),
  };
  const tokens: Record<string, string> = {};

  const build = (admission: JobAdmission) =>
    createApp({
      ch: engine.ch,
      sink: createDirectSink(engine.ch),
      logger: createLogger('silent'),
      auth: createAuthenticator({ secret: SECRET, issuer: undefined, audience: undefined }),
      exports: { ...deps, admission },
    });

  const post = (token: string, body: object, headers: Record<string, string> = {}, a = app) =>
    a.request('/reports/export', {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
  const status = async (jobId: string, token: string) => {
    const res = await app.request(`/reports/export/${jobId}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const download = (url: string, headers: Record<string, string> = {}) =>
    app.request(url.slice(BASE.length), { headers });

  /** Queues a job, lets the worker run it, and returns its status and file. */
  async function runExport(body: object, token = tokens.admin as string) {
    const res = await post(token, body);
    expect(res.status).toBe(202);
    const { job_id, status: s } = (await res.json()) as { job_id: string; status: string };
    expect(s).toBe('queued');
    while (await worker.runOnce()) {}
    const st = await status(job_id, token);
    expect(st.body.status).toBe('completed');
    const file = await download(String(st.body.download_url));
    expect(file.status).toBe(200);
    const bytes = Buffer.from(await file.arrayBuffer());
    return { job_id, st: st.body, file, bytes };
  }

  beforeAll(async () => {
    engine = await openTestEngine();
    for (let i = 0; i < events.length; i += 5_000) {
      await insertEvents(engine.ch, rowsOf(events.slice(i, i + 5_000)), `exports/0/${i}`);
    }
    control = await openControl({ url: undefined, dataDir: engine.dataDir });
    const store = new ExportStore(`${engine.dataDir}/exports`);
    deps = {
      control,
      admission: new JobAdmission(control, 10, () => nowMs),
      store,
      keys,
      publicBaseUrl: BASE,
      urlTtlSeconds: 600,
      now: () => nowMs,
    };
    app = build(deps.admission);
    worker = new ExportWorker({
      ch: engine.ch,
      control,
      source: engine.ch.exportSource(),
      store,
      selfLog: new SelfLog(engine.ch),
      logger: createLogger('silent'),
      leaseMs: 5_000,
      maxAttempts: 2,
    });
    for (const sub of ['admin', 'other', 'quota', 'idem', 'limited', 'conflict', 'many', 'bulk']) {
      tokens[sub] = await mintToken(SECRET, { sub });
    }
    tokens.team = await mintToken(SECRET, { sub: 'teamer', team_id: TEAM, scope: 'report_admin' });
    tokens.reader = await mintToken(SECRET, { sub: 'reader', scope: 'read:analytics' });
  });
  afterAll(async () => {
    await worker?.stop();
    await control?.close();
    await engine?.dispose();
  });

  it('exports usage-summary as CSV exactly as the truth (read back with csv-parse)', async () => {
    const [start_date, end_date] = ['2025-01-05', '2025-02-03'];
    const want = truth.usageExportRows(start_date, end_date);
    expect(want.length).toBeGreaterThan(100);
    const { st, file, bytes } = await runExport({
      report_type: 'usage-summary',
      format: 'csv',
      start_date,
      end_date,
    });
    expect(file.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(file.headers.get('content-disposition')).toMatch(
      /^attachment; filename="tally-usage-summary-[0-9a-f-]+\.csv"$/,
    );
    expect(file.headers.get('cache-control')).toBe('no-store');
    expect(Number(file.headers.get('content-length'))).toBe(bytes.length);
    // RFC 4180 line ends, as the API's CSV answers have: one CRLF per row and the header, no bare LF.
    const text = bytes.toString('utf8');
    expect(text.split('\r\n')).toHaveLength(want.length + 2);
    expect(text.replaceAll('\r\n', '')).not.toContain('\n');
    const rows = parse(bytes, { columns: true }) as Array<Record<string, string>>;
    expect(Object.keys(rows[0] ?? {})).toEqual([
      'date',
      'team_id',
      'active_users',
      'total_sessions',
      'total_users',
    ]);
    const got = rows.map((r) => ({
      date: r.date,
      team_id: r.team_id,
      active_users: Number(r.active_users),
      total_sessions: Number(r.total_sessions),
      total_users: Number(r.total_users),
    }));
    expect(got).toEqual(want);
    expect(st).toMatchObject({ row_count: want.length, bytes: bytes.length });
    expect(st.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(Date.parse(String(st.expires_at))).toBeGreaterThan(Date.now());
  });

  it('exports usage-summary as Parquet with filters exactly as the truth (read back with parquetjs-lite)', async () => {
    const { teams, services } = truth.catalog();
    const q = { start_date: '2025-01-01', end_date: '2025-02-14', service: services[1] as string };
    const want = truth.usageExportRows(q.start_date, q.end_date, { service: q.service });
    expect(want.length).toBeGreaterThan(50);
    expect(teams.length).toBeGreaterThan(1);
    const { file, bytes } = await runExport({ report_type: 'usage-summary', format: 'parquet', ...q });
    expect(file.headers.get('content-type')).toBe('application/vnd.apache.parquet');
    const rows = (await readParquet(bytes)).map((r) =>
      Object.fromEntries(Object.entries(r).map(([k, v]) => [k, plain(v, k)])),
    );
    expect(rows).toEqual(want);
  });

  it('exports system-events as CSV newest first, formula cells escaped, deduplicated', async () => {
    const want = truth.logExportRows({});
    const risky = want.filter((e) => FORMULA.test(e.message));
    expect(risky.length).toBeGreaterThan(0);
    const { bytes } = await runExport({ report_type: 'system-events', format: 'csv' });
    const rows = parse(bytes, { columns: true }) as Array<Record<string, string>>;
    const esc = (s: string) => (FORMULA.test(s) ? `'${s}` : s);
    expect(rows).toEqual(
      want.map((e) => ({
        timestamp: e.timestamp,
        severity: e.severity,
        service: esc(e.service),
        message: esc(e.message),
        event_id: esc(e.event_id),
      })),
    );
    // Each of = + - @ tab CR that the data holds comes out with its leading quote.
    for (const e of risky.slice(0, 50)) expect(rows.some((r) => r.message === `'${e.message}`)).toBe(true);
  });

  it('writes cells as stored with csv_escape none, in exports and in CSV reads; the default stays escaped', async () => {
    const want = truth.logExportRows({});
    const raw = await runExport(
      { report_type: 'system-events', format: 'csv', csv_escape: 'none' },
      await mintToken(SECRET, { sub: 'raw-csv' }),
    );
    const rows = parse(raw.bytes, { columns: true }) as Array<Record<string, string>>;
    expect(rows.map((r) => r.message)).toEqual(want.map((e) => e.message));
    expect(rows.some((r) => FORMULA.test(r.message ?? ''))).toBe(true);
    const bad = await post(tokens.admin as string, {
      report_type: 'system-events',
      format: 'csv',
      csv_escape: 'off',
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toMatch(/^csv_escape/);

    const read = async (qs: string) => {
      const r = await app.request(`/logs/system-events?limit=1000&format=csv${qs}`, {
        headers: { authorization: `Bearer ${tokens.reader}` },
      });
      return parse(await r.text(), { columns: true }) as Array<Record<string, string>>;
    };
    const page = want.slice(0, 1000).map((e) => e.message);
    expect((await read('&csv_escape=none')).map((r) => r.message)).toEqual(page);
    const escaped = (await read('')).map((r) => r.message);
    expect(escaped).toEqual(page.map((m) => (FORMULA.test(m) ? `'${m}` : m)));
    expect(page.some((m) => FORMULA.test(m))).toBe(true);
  });

  it('exports a re-sent log that changed as the API shows it: the newest copy, filters applied after', async () => {
    // A day outside the generated data, so the other tests' figures are untouched.
    const day = '2024-03-01';
    const log = (event_id: string, severity: string, message: string, time: string) => ({
      event_id,
      type: 'log',
      timestamp: `${day}T${time}Z`,
      severity,
      service: 'conflict',
      message,
    });
    await insertEvents(
      engine.ch,
      rowsOf([
        log('c-1', 'error', 'first', '10:00:00'),
        log('c-2', 'info', 'only', '10:00:00'),
        log('c-3', 'warning', 'same', '09:00:00'),
      ]),
      'exports/conflict/1',
    );
    await new Promise((r) => setTimeout(r, 5));
    await insertEvents(
      engine.ch,
      rowsOf([log('c-1', 'info', 'second', '10:00:00'), log('c-3', 'warning', 'same', '09:00:00')]),
      'exports/conflict/2',
    );
    const cases: Array<[Record<string, string>, string[]]> = [
      [{}, ['c-2 only', 'c-1 second', 'c-3 same']],
      [{ severity: 'error' }, []],
      [{ severity: 'info' }, ['c-2 only', 'c-1 second']],
    ];
    for (const [filter, want] of cases) {
      const q = { start_date: day, end_date: day, ...filter };
      const api = await app.request(`/logs/system-events?${new URLSearchParams(q)}`, {
        headers: { authorization: `Bearer ${tokens.conflict}` },
      });
      const shown = ((await api.json()) as { events: Array<Record<string, string>> }).events;
      expect(shown.map((e) => `${e.event_id} ${e.message}`)).toEqual(want);
      const { bytes } = await runExport(
        { report_type: 'system-events', format: 'csv', ...q },
        tokens.conflict as string,
      );
      expect(parse(bytes, { columns: true })).toEqual(shown);
    }
  });

  it('exports 40,000 logs (many engine chunks) as one CSV header and one Parquet file', async () => {
    const n = 40_000;
    await engine.ch.client.command({
      query: `INSERT INTO log_events (event_id, timestamp, severity, service, message)
        SELECT concat('bulk-', leftPad(toString(number), 5, '0')),
          toDateTime64('2024-05-01 00:00:00', 3, 'UTC') + number, 'info', 'bulk', concat('m', toString(number))
        FROM numbers({n:UInt64})`,
      query_params: { n },
    });
    const q = { service: 'bulk', start_date: '2024-05-01', end_date: '2024-05-01' };
    const csv = await runExport({ report_type: 'system-events', format: 'csv', ...q }, tokens.bulk as string);
    const rows = parse(csv.bytes, { columns: true }) as Array<Record<string, string>>;
    expect(csv.st.row_count).toBe(n);
    expect(rows).toHaveLength(n);
    expect(rows.every((r, i) => r.event_id === `bulk-${String(n - 1 - i).padStart(5, '0')}`)).toBe(true);
    const pq = await runExport(
      { report_type: 'system-events', format: 'parquet', ...q },
      tokens.bulk as string,
    );
    const back = readParquetRows(pq.bytes);
    expect(pq.st.row_count).toBe(n);
    expect(back).toHaveLength(n);
    expect(back.map((r) => plain(r.event_id))).toEqual(rows.map((r) => r.event_id));
    expect(plain(back[0]?.message)).toBe(`m${n - 1}`);
    // The embedded stream reads its values as data (paramsAsData): a hostile filter stays a value and matches nothing.
    const evil = await runExport(
      { report_type: 'system-events', format: 'csv', ...q, service: "bulk' OR 1=1 OR '\\" },
      tokens.bulk as string,
    );
    expect(evil.st.row_count).toBe(0);
    expect(parse(evil.bytes, { columns: true })).toEqual([]);
  });

  it('exports filtered system-events as Parquet unescaped', async () => {
    const q = { severity: 'error' as const, start_date: '2025-01-10', end_date: '2025-01-30' };
    const want = truth.logExportRows(q);
    expect(want.length).toBeGreaterThan(10);
    const { bytes, st } = await runExport({ report_type: 'system-events', format: 'parquet', ...q });
    expect(st.row_count).toBe(want.length);
    expect(readParquetRows(bytes)).toEqual(want);
  });

  it('binds a team token to its team, refuses it system-events, and needs report_admin', async () => {
    const want = truth.usageExportRows('2025-01-10', '2025-01-20', { team_id: TEAM });
    expect(want.length).toBeGreaterThan(0);
    const { bytes } = await runExport(
      { report_type: 'usage-summary', format: 'csv', start_date: '2025-01-10', end_date: '2025-01-20' },
      tokens.team,
    );
    const rows = parse(bytes, { columns: true }) as Array<Record<string, string>>;
    expect(rows.map((r) => r.team_id)).toEqual(want.map((r) => r.team_id));
    const other = await post(tokens.team as string, {
      report_type: 'usage-summary',
      format: 'csv',
      start_date: '2025-01-10',
      end_date: '2025-01-20',
      team_id: OTHER_TEAM,
    });
    expect(other.status).toBe(403);
    expect((await post(tokens.team as string, { report_type: 'system-events', format: 'csv' })).status).toBe(
      403,
    );
    const reader = await post(tokens.reader as string, { report_type: 'system-events', format: 'csv' });
    expect(reader.status).toBe(403);
    expect(await reader.json()).toMatchObject({ error: 'Forbidden' });
    const bad = await post(tokens.admin as string, {
      report_type: 'usage-summary',
      format: 'csv',
      start_date: '2025-01-02',
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toMatch(/^end_date/);
  });

  it('shows a job to its creator only: anyone else gets 404', async () => {
    const res = await post(tokens.admin as string, { report_type: 'system-events', format: 'csv' });
    const { job_id } = (await res.json()) as { job_id: string };
    expect((await status(job_id, tokens.admin as string)).status).toBe(200);
    const foreign = await status(job_id, tokens.other as string);
    expect(foreign).toEqual({
      status: 404,
      body: { error: 'Not Found', message: `no export job ${job_id}` },
    });
    expect((await status('00000000-0000-4000-8000-000000000000', tokens.admin as string)).status).toBe(404);
    while (await worker.runOnce()) {}
  });

  it('admits exactly 10 of 30 concurrent requests, and still none after a restart', async () => {
    const body = { report_type: 'system-events', format: 'csv', severity: 'warning' };
    const answers = await Promise.all(Array.from({ length: 30 }, () => post(tokens.quota as string, body)));
    const codes = answers.map((r) => r.status);
    expect(codes.filter((c) => c === 202)).toHaveLength(10);
    expect(codes.filter((c) => c === 429)).toHaveLength(20);
    const refused = answers.find((r) => r.status === 429) as Response;
    expect(Number(refused.headers.get('retry-after'))).toBe(secondsToUtcMidnight(nowMs));
    expect(await refused.json()).toMatchObject({ error: 'Too Many Requests' });
    // A new app on the same store: the count lives in the control store, not in the old process.
    const restarted = build(new JobAdmission(control, 10, () => nowMs));
    expect((await post(tokens.quota as string, body, {}, restarted)).status).toBe(429);
    // Another user is not affected.
    expect((await post(tokens.limited as string, body, {}, restarted)).status).toBe(202);
    while (await worker.runOnce()) {}
  });

  it('returns the same job for the same Idempotency-Key without spending quota twice', async () => {
    const body = { report_type: 'system-events', format: 'parquet', severity: 'info' };
    const first = await post(tokens.idem as string, body, { 'idempotency-key': 'abc-1' });
    const again = await post(tokens.idem as string, body, { 'idempotency-key': 'abc-1' });
    const a = (await first.json()) as { job_id: string };
    const b = (await again.json()) as { job_id: string };
    expect([first.status, again.status]).toEqual([202, 202]);
    expect(b.job_id).toBe(a.job_id);
    // 9 more fit (the key spent one), the 11th does not.
    for (let i = 0; i < 9; i++) expect((await post(tokens.idem as string, body)).status).toBe(202);
    expect((await post(tokens.idem as string, body)).status).toBe(429);
    // Another user's same key is their own job.
    const other = await post(tokens.other as string, body, { 'idempotency-key': 'abc-1' });
    expect(((await other.json()) as { job_id: string }).job_id).not.toBe(a.job_id);
    while (await worker.runOnce()) {}
  });

  it('refuses tampered, foreign-key, unknown-job and expired links with 403', async () => {
    const { job_id, st } = await runExport({
      report_type: 'system-events',
      format: 'csv',
      severity: 'error',
    });
    const url = new URL(String(st.download_url));
    expect(url.origin).toBe(BASE);
    expect(url.searchParams.get('kid')).toBe('k2');
    const variant = (k: string, v: string) => {
      const u = new URL(url);
      u.searchParams.set(k, v);
      return u.toString();
    };
    const sig = url.searchParams.get('sig') as string;
    const flipped = `${sig.slice(0, -2)}${sig.endsWith('AA') ? 'BB' : 'AA'}`;
    const exp = Number(url.searchParams.get('exp'));
    const bad = [
      variant('sig', flipped),
      variant('exp', String(exp + 3600)),
      variant('kid', 'k1'),
      variant('kid', 'nope'),
      url.toString().replace(job_id, '00000000-0000-4000-8000-000000000000'),
    ];
    for (const u of bad) {
      const res = await download(u);
      expect({ u, status: res.status }).toEqual({ u, status: 403 });
      expect(await res.json()).toMatchObject({ error: 'Forbidden' });
    }
    expect((await download(url.toString())).status).toBe(200);
    // An old key still verifies links it signed (rotation), until it is dropped from the ring.
    const saved = nowMs;
    nowMs = (exp + 1) * 1000;
    try {
      const expired = await download(url.toString());
      expect(expired.status).toBe(403);
    } finally {
      nowMs = saved;
    }
  });

  it('serves byte ranges (206) and refuses unsatisfiable ones (416)', async () => {
    const { st, bytes } = await runExport({ report_type: 'system-events', format: 'parquet' });
    const url = String(st.download_url);
    const part = await download(url, { range: 'bytes=4-103' });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 4-103/${bytes.length}`);
    expect(part.headers.get('content-length')).toBe('100');
    expect(Buffer.from(await part.arrayBuffer())).toEqual(bytes.subarray(4, 104));
    const tail = await download(url, { range: 'bytes=-4' });
    expect(Buffer.from(await tail.arrayBuffer()).toString()).toBe('PAR1');
    const open = await download(url, { range: `bytes=${bytes.length - 10}-` });
    expect(Buffer.from(await open.arrayBuffer())).toEqual(bytes.subarray(bytes.length - 10));
    const past = await download(url, { range: `bytes=${bytes.length}-` });
    expect(past.status).toBe(416);
    expect(past.headers.get('content-range')).toBe(`bytes */${bytes.length}`);
  });

  it('recovers a job whose worker died mid-export, and fails one that keeps dying, with a system log', async () => {
    const start = async () => {
      const res = await post(tokens.other as string, {
        report_type: 'system-events',
        format: 'csv',
        service: 'tally',
      });
      return ((await res.json()) as { job_id: string }).job_id;
    };
    // A worker claimed the job and vanished: its lease ran out long ago.
    const abandon = async (jobId: string, attempts: number) => {
      await control.query(
        `UPDATE export_jobs SET status = 'processing', attempts = $2, lease_owner = 'worker-dead',
           lease_expires_at = $3, rows_written = 123 WHERE job_id = $1`,
        [jobId, attempts, Date.now() - 60_000],
      );
    };
    const revived = await start();
    await abandon(revived, 1);
    expect((await status(revived, tokens.other as string)).body).toMatchObject({
      status: 'processing',
      rows_written: 123,
    });
    while (await worker.runOnce()) {}
    const done = (await getJob(control, revived)) as ExportJob;
    expect({ status: done.status, attempts: done.attempts }).toEqual({ status: 'completed', attempts: 2 });

    const doomed = await start();
    await abandon(doomed, 2);
    while (await worker.runOnce()) {}
    const st = await status(doomed, tokens.other as string);
    expect(st.body).toMatchObject({ status: 'failed' });
    expect(String(st.body.error)).toMatch(/stopped before finishing 2 times/);
    // The system log is written by the worker's SelfLog in the background: wait for it, then count it.
    const logs = await waitFor('the export-failed system log', async () => {
      const rs = await engine.ch.client.query({
        query:
          "SELECT message FROM log_events WHERE service = 'tally' AND severity = 'error' AND position(message, {id:String}) > 0",
        query_params: { id: doomed },
        format: 'JSONEachRow',
      });
      const found = await rs.json<{ message: string }>();
      return found.length > 0 ? found : undefined;
    });
    expect(logs).toHaveLength(1);
    expect(logs[0]?.message).toMatch(/^\[export-failed\] export .* failed/);
  });

  it('runs each of 20 queued jobs exactly once with two workers polling side by side', async () => {
    const many = build(new JobAdmission(control, 100, () => nowMs));
    const queued: string[] = [];
    for (let i = 0; i < 20; i++) {
      const day = `2025-01-${String(10 + (i % 10)).padStart(2, '0')}`;
      const body = {
        report_type: i % 2 ? 'system-events' : 'usage-summary',
        format: i % 4 < 2 ? 'csv' : 'parquet',
      };
      const res = await post(tokens.many as string, { ...body, start_date: day, end_date: day }, {}, many);
      expect(res.status).toBe(202);
      queued.push(((await res.json()) as { job_id: string }).job_id);
    }
    const runs: Array<{ worker: string; job: string }> = [];
    const workers = ['w-a', 'w-b'].map((workerId) => {
      const w = new ExportWorker({
        ch: engine.ch,
        control,
        source: engine.ch.exportSource(),
        store: deps.store,
        selfLog: new SelfLog(engine.ch),
        logger: createLogger('silent'),
        pollMs: 20,
        workerId,
      });
      w.onFinished((job) => runs.push({ worker: workerId, job: job.job_id }));
      return w;
    });
    for (const w of workers) w.start();
    try {
      await waitFor('20 jobs to finish', async () => runs.length >= 20, { timeoutMs: 60_000, everyMs: 50 });
    } finally {
      // stop() ends each worker's loop and awaits its run in flight: after it, `runs` is final. A job run twice
      // shows as a 21st finish, or (a second run stopped and handed back) as a job not completed below.

      for (const w of workers) await w.stop();
    }
    expect(runs.map((r) => r.job).sort()).toEqual([...queued].sort());
    expect(new Set(runs.map((r) => r.worker))).toEqual(new Set(['w-a', 'w-b']));
    for (const id of queued) {
      const job = (await getJob(control, id)) as ExportJob;
      expect({ id, status: job.status, attempts: job.attempts }).toEqual({
        id,
        status: 'completed',
        attempts: 1,
      });
    }
  });

  it('sweeps expired files and partial files no live job owns', async () => {
    const { job_id, st } = await runExport({ report_type: 'system-events', format: 'csv', severity: 'info' });
    const store = deps.store;
    const name = store.fileName(job_id, 'csv');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(store.path(name).replace('.csv', '.csv.9.part'), 'stale');
    expect(store.size(name)).toBe(st.bytes);
    const later = new ExportWorker({
      ch: engine.ch,
      control,
      source: engine.ch.exportSource(),
      store,
      selfLog: new SelfLog(engine.ch),
      logger: createLogger('silent'),
      now: () => Date.now() + 2 * 86_400_000,
    });
    const removed = await later.sweep();
    expect(removed).toContain(name);
    expect(removed).toContain(`${name}.9.part`);
    expect(store.size(name)).toBeUndefined();
  });
});
