// The control plane exact across processes, without Redis: three `npm start` processes, each on its own embedded
// ClickHouse holding the same seeded events, share one PostgreSQL server (DATABASE_URL, a schema of this test's)
// and one export directory, so any of them can run any job and serve its file. 30 concurrent export requests of
// one user spread over them admit exactly 10; 20 more queued jobs (and every other) run exactly once (logs and
// attempts), their files identical whichever process wrote them; one Idempotency-Key sent to all three makes one
// job; each period of a schedule one job; 6 webhooks delivered once each; and a process SIGKILLed while its
// dispatcher is mid-delivery leaves the delivery to another, sent again with the same X-Tally-Delivery.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyFilePath } from '../../core/exports/signing.ts';
import { mintToken } from '../../core/tokens.ts';
import { generateDataset } from '../../ingest/loadgen/generate.ts';
import { openServerControl, serverUrl, type TestControl } from '../helpers/control.ts';
import { freePort, serviceEnv } from '../helpers/service.ts';
import { waitFor } from '../helpers/wait.ts';

const SECRET = 'race-test-secret-race-test-secret-race-0123';
const DAY = 86_400_000;
const { events } = generateDataset({ events: 3000, seed: 16, start: '2025-03-01', days: 10 });

interface Proc {
  child: ChildProcess;
  base: string;
  out: string[];
  exited: Promise<unknown>;
}

if (!serverUrl && process.env.CI === 'true') {
  throw new Error('CI: TEST_DATABASE_URL is not set; .ci/run starts a PostgreSQL server for this test');
}
if (!serverUrl)
  process.stderr.write('race-processes: no TEST_DATABASE_URL, skipped (a PostgreSQL server is needed)\n');

describe.skipIf(!serverUrl)('three processes on one PostgreSQL control plane (no Redis)', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'tally-race-'));
  const exportDir = join(tmp, 'exports');
  const procs: Proc[] = [];
  let ctl: TestControl;
  let hookServer: Server;
  let hookPort = 0;
  const hits: Array<{ path: string; delivery: string; answered: number }> = [];
  /** Answers a request to /hang: set by the SIGKILL test. */
  let onHang: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const token = (sub: string) => mintToken(SECRET, { sub, scope: 'report_admin read:analytics' });
  const post = async (p: Proc, sub: string, body: object, headers: Record<string, string> = {}) =>
    fetch(`${p.base}/reports/export`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${await token(sub)}`,
        'content-type': 'application/json',
        ...headers,
      },
      body: JSON.stringify(body),
    });
  const status = async (p: Proc, sub: string, id: string) =>
    (await (
      await fetch(`${p.base}/reports/export/${id}`, {
        headers: { authorization: `Bearer ${await token(sub)}` },
      })
    ).json()) as { status: string; download_url?: string; sha256?: string; row_count?: number };
  /** How many times the processes' logs say a job was completed. */
  const completions = (jobId: string) =>
    procs.flatMap((p) => p.out).filter((l) => l.includes('"export completed"') && l.includes(jobId)).length;
  /** Ticks a process's scheduler has finished (its debug line). */
  const ticks = (p: Proc) => p.out.filter((l) => l.includes('"scheduler: tick"')).length;
  const live = () => procs.filter((p) => p.child.exitCode === null && p.child.signalCode === null);

  beforeAll(async () => {
    ctl = await openServerControl(serverUrl as string);
    const dbUrl = `${serverUrl}${serverUrl?.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${ctl.schema}`)}`;
    hookServer = createServer((req, res) => {
      if (req.url === '/hang' && onHang) return onHang(req, res);
      req.resume();
      hits.push({ path: String(req.url), delivery: String(req.headers['x-tally-delivery']), answered: 200 });
      res.writeHead(200).end();
    });
    await new Promise<void>((r) => hookServer.listen(0, '127.0.0.1', r));
    hookPort = (hookServer.address() as AddressInfo).port;
    // One signing key ring for all (as a shared volume gives them): a link made by one verifies on another.
    const ring = JSON.stringify({ current: 'k1', keys: { k1: Buffer.alloc(32, 16).toString('base64url') } });
    mkdirSync(exportDir);
    await Promise.all(
      [0, 1, 2].map(async (i) => {
        const dataDir = join(tmp, `p${i}`);
        mkdirSync(dataDir);
        writeFileSync(keyFilePath(dataDir), ring);
        const port = await freePort();
        const child = spawn(process.execPath, ['--import', 'tsx', 'bin/start.ts'], {
          env: serviceEnv({
            DATA_DIR: dataDir,
            EXPORT_DIR: exportDir,
            DATABASE_URL: dbUrl,
            AUTH_JWT_SECRET: SECRET,
            PORT: String(port),
            // debug: the scheduler's ticks are counted below.
            LOG_LEVEL: 'debug',
            EXPORT_WORKERS: '2',
            SCHEDULER_INTERVAL_SECONDS: '1',
            WEBHOOK_ALLOWED_HOSTS: `127.0.0.1:${hookPort}`,
            WEBHOOK_TIMEOUT_SECONDS: '5',
          }),
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        const p: Proc = {
          child,
          base: `http://127.0.0.1:${port}`,
          out: [],
          exited: new Promise((r) => child.once('exit', r)),
        };
        let buf = '';
        child.stdout?.on('data', (d: Buffer) => {
          buf += d.toString('utf8');
          const lines = buf.split('\n');
          buf = lines.pop() ?? '';
          p.out.push(...lines);
        });
        child.stderr?.on('data', (d: Buffer) => p.out.push(d.toString('utf8')));
        procs[i] = p;
        await waitFor(
          `process ${i} to answer /readyz`,
          async () => (await fetch(`${p.base}/readyz`)).status === 200,
          {
            timeoutMs: 180_000,
            everyMs: 250,
          },
        );
        // The same events in each process's own engine.
        const res = await fetch(`${p.base}/events?wait=stored`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${await mintToken(SECRET, { sub: 'seed' })}`,
            'content-type': 'application/json',
          },
          body: JSON.stringify(events),
        });
        expect(res.status).toBe(200);
      }),
    );
  }, 400_000);

  afterAll(async () => {
    for (const p of live()) p.child.kill('SIGTERM');
    await Promise.all(procs.map((p) => p?.exited));
    await new Promise<void>((r) => hookServer?.close(() => r()));
    await ctl?.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('admits exactly 10 of 30 concurrent requests of one user spread over the three', async () => {
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        post(procs[i % 3] as Proc, 'racer', {
          report_type: 'system-events',
          format: 'csv',
          severity: 'error',
        }),
      ),
    );
    const codes = answers.map((r) => r.status);
    expect(codes.filter((c) => c === 202)).toHaveLength(10);
    expect(codes.filter((c) => c === 429)).toHaveLength(20);
    const [q] = await ctl.db.query("SELECT used FROM export_quota WHERE user_id = 'jwt::racer'");
    expect(Number(q?.used)).toBe(10);
  });

  it('runs each of 20 queued jobs exactly once; any process serves any file, the same bytes', async () => {
    const bodies = [
      { report_type: 'usage-summary', format: 'csv', start_date: '2025-03-01', end_date: '2025-03-10' },
      { report_type: 'system-events', format: 'csv' },
    ];
    const jobs: Array<{ id: string; sub: string; kind: number }> = [];
    await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const sub = `many-${i}`;
        const res = await post(procs[i % 3] as Proc, sub, bodies[i % 2] as object);
        expect(res.status).toBe(202);
        jobs.push({ id: ((await res.json()) as { job_id: string }).job_id, sub, kind: i % 2 });
      }),
    );
    await waitFor(
      '20 jobs to complete',
      async () => {
        const rows = await ctl.db.query(
          "SELECT count(*) AS n FROM export_jobs WHERE status = 'completed' AND user_id LIKE 'jwt::many-%'",
        );
        return Number(rows[0]?.n) === 20;
      },
      { timeoutMs: 180_000, everyMs: 250 },
    );
    const shas = new Map<number, Set<string>>();
    for (const [i, j] of jobs.entries()) {
      expect(completions(j.id), j.id).toBe(1);
      const [row] = await ctl.db.query('SELECT attempts FROM export_jobs WHERE job_id = $1', [j.id]);
      expect(Number(row?.attempts)).toBe(1);
      // Downloaded from a process other than the one that queued it.
      const p = procs[(i + 1) % 3] as Proc;
      const st = await status(p, j.sub, j.id);
      const file = await fetch(String(st.download_url).replace(/^https?:\/\/[^/]+/, p.base));
      expect(file.status).toBe(200);
      const bytes = Buffer.from(await file.arrayBuffer());
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(st.sha256);
      const rows = parse(bytes, { relax_column_count: false }) as string[][];
      expect(rows[0]).toEqual(
        j.kind === 0
          ? ['date', 'team_id', 'active_users', 'total_sessions', 'total_users']
          : ['timestamp', 'severity', 'service', 'message', 'event_id'],
      );
      expect(rows.length - 1).toBe(st.row_count);
      expect(st.row_count).toBeGreaterThan(0);
      shas.set(j.kind, (shas.get(j.kind) ?? new Set()).add(String(st.sha256)));
    }
    // Same request, same events: the same file, whichever process's engine wrote it.
    expect([...shas.values()].map((s) => s.size)).toEqual([1, 1]);
    // The quota racer's 10 jobs ran once each too.
    for (const r of await ctl.db.query(
      "SELECT job_id, attempts FROM export_jobs WHERE user_id = 'jwt::racer'",
    )) {
      await waitFor(`job ${r.job_id}`, async () => completions(String(r.job_id)) === 1, {
        timeoutMs: 120_000,
      });
    }
  });

  it('makes one job of one Idempotency-Key sent to all three at once', async () => {
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        post(
          procs[i % 3] as Proc,
          'idem',
          { report_type: 'system-events', format: 'csv' },
          { 'idempotency-key': 'nightly-1' },
        ),
      ),
    );
    expect(answers.map((r) => r.status)).toEqual(Array(12).fill(202));
    const ids = new Set(
      await Promise.all(answers.map(async (r) => ((await r.json()) as { job_id: string }).job_id)),
    );
    expect(ids.size).toBe(1);
    const rows = await ctl.db.query("SELECT job_id FROM export_jobs WHERE user_id = 'jwt::idem'");
    expect(rows.map((r) => r.job_id)).toEqual([...ids]);
  });

  /** A daily schedule created `days` days ago, straight into the store (the API dates schedules now). */
  const schedule = async (sub: string, days: number, webhook = '') => {
    const id = randomUUID();
    await ctl.db.query(
      `INSERT INTO export_schedules (schedule_id, user_id, report_type, format, cadence, params, webhook_url,
         webhook_secret, created_at) VALUES ($1, $2, 'system-events', 'csv', 'daily', '{}', $3, 'whsec_race', $4)`,
      [id, `jwt::${sub}`, webhook, Date.now() - days * DAY],
    );
    return id;
  };
  const runJobs = async (scheduleId: string, n: number) =>
    waitFor(
      `${n} runs of ${scheduleId} completed`,
      async () => {
        const rows = await ctl.db.query(
          `SELECT r.job_id, j.status FROM export_schedule_runs r JOIN export_jobs j ON j.job_id = r.job_id
           WHERE r.schedule_id = $1`,
          [scheduleId],
        );
        return rows.length === n && rows.every((r) => r.status === 'completed')
          ? rows.map((r) => String(r.job_id))
          : undefined;
      },
      { timeoutMs: 180_000, everyMs: 250 },
    );

  it('makes one job per period of a schedule, three schedulers ticking every second', async () => {
    const id = await schedule('sched', 3);
    const jobIds = await runJobs(id, 3);
    // Two more ticks of each scheduler after the runs were all there (one may have begun before): a scheduler
    // that made a second job for a period would have made it by then.
    const seen = procs.map(ticks);
    await waitFor(
      'two more ticks of every scheduler',
      async () => procs.every((p, i) => ticks(p) >= (seen[i] as number) + 2),
      { timeoutMs: 60_000, everyMs: 250 },
    );
    const [n] = await ctl.db.query('SELECT count(*) AS n FROM export_schedule_runs WHERE schedule_id = $1', [
      id,
    ]);
    expect(Number(n?.n)).toBe(3);
    for (const j of jobIds) expect(completions(j)).toBe(1);
  });

  it('delivers each of 6 webhooks once', async () => {
    const id = await schedule('hooks', 6, `http://127.0.0.1:${hookPort}/hook`);
    const jobIds = await runJobs(id, 6);
    await waitFor(
      '6 deliveries',
      async () => {
        const rows = await ctl.db.query(
          "SELECT count(*) AS n FROM webhook_deliveries WHERE schedule_id = $1 AND state = 'delivered'",
          [id],
        );
        return Number(rows[0]?.n) === 6;
      },
      { timeoutMs: 120_000, everyMs: 250 },
    );
    // Counted once all six are recorded delivered, with no wait: the hook records a hit before it answers, so
    // every attempt that led to a record is in; a delivered row is never claimed again. A second dispatcher's
    // attempt would show as a second hit of the same X-Tally-Delivery.
    const mine = hits
      .filter((h) => h.path === '/hook')
      .map((h) => h.delivery)
      .sort();
    expect(mine).toEqual(jobIds.map((j) => `${j}:completed`).sort());
  });

  it('a process SIGKILLed mid-delivery: another delivers, with the same X-Tally-Delivery', async () => {
    const seen: string[] = [];
    let killed: number | undefined;
    onHang = (req, res) => {
      const delivery = String(req.headers['x-tally-delivery']);
      seen.push(delivery);
      req.resume();
      if (killed !== undefined) {
        hits.push({ path: '/hang', delivery, answered: 200 });
        res.writeHead(200).end();
        return;
      }
      // The first attempt: its sender is found by the lease it holds, and killed before it hears back.
      void (async () => {
        const [d] = await ctl.db.query('SELECT lease_owner FROM webhook_deliveries WHERE delivery_id = $1', [
          delivery,
        ]);
        const pid = Number(/^webhooks-(\d+)-/.exec(String(d?.lease_owner))?.[1]);
        killed = pid;
        process.kill(pid, 'SIGKILL');
      })();
    };
    const id = await schedule('kill', 1, `http://127.0.0.1:${hookPort}/hang`);
    const [jobId] = await runJobs(id, 1);
    const delivered = await waitFor(
      'the delivery by another process',
      async () => {
        const [d] = await ctl.db.query('SELECT state, attempts FROM webhook_deliveries WHERE job_id = $1', [
          jobId,
        ]);
        return d?.state === 'delivered' ? d : undefined;
      },
      { timeoutMs: 120_000, everyMs: 250 },
    );
    const victim = procs.find((p) => p.child.pid === killed);
    expect(victim).toBeDefined();
    await victim?.exited;
    expect(victim?.child.signalCode).toBe('SIGKILL');
    expect(seen.length).toBeGreaterThanOrEqual(2);
    expect(new Set(seen)).toEqual(new Set([`${jobId}:completed`]));
    expect(Number(delivered.attempts)).toBe(1); // the killed attempt never recorded
    expect(live()).toHaveLength(2);
  });
});
