// Scheduled exports on the real engine with a controllable clock: routes and ownership; one job per closed
// month, two months caught up after a downtime; ISO weeks across a year boundary; two schedulers without a
// shared lock producing no duplicate; scheduled jobs outside the daily quota; runs with working download links;
// schedules of a revoked or expired API key skipped for good.
import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../api/app.ts';
import type { ExportDeps } from '../../api/exports/deps.ts';
import { JobAdmission } from '../../api/exports/quota.ts';
import { createAuthenticator } from '../../api/middleware/auth.ts';
import { SelfLog } from '../../clickhouse/self-log.ts';
import { scheduledJobId } from '../../control/job-id.ts';
import { getJob } from '../../control/jobs.ts';
import { insertKey, revokeKey } from '../../control/keys.ts';
import { createSchedule, deleteSchedule, type ExportSchedule, runsOf } from '../../control/schedules.ts';
import { type ControlStore, openControl } from '../../control/store.ts';
import { newKey } from '../../core/api-keys.ts';
import { ExportStore } from '../../core/exports/store.ts';
import { createLogger } from '../../core/logger.ts';
import { mintToken } from '../../core/tokens.ts';
import { WebhookAllowList } from '../../core/webhooks/allow-list.ts';
import { createDirectSink } from '../../ingest/direct.ts';
import { ExportWorker } from '../../worker/exports/worker.ts';
import { apiKeyOwners } from '../../worker/schedules/owners.ts';
import { Scheduler } from '../../worker/schedules/scheduler.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';

const SECRET = 'schedules-test-secret-schedules-test-secret-01';
const BASE = 'https://tally.example.test';
const logger = createLogger('silent');

interface Run {
  job_id: string;
  period_start: string;
  period_end: string;
  status: string;
  download_url?: string;
  sha256?: string;
  row_count?: number;
  webhook?: { state: string; attempts: number; last_status?: number; last_error?: string };
}

describe('scheduled exports', () => {
  let engine: TestEngine;
  let control: ControlStore;
  let deps: ExportDeps;
  let app: ReturnType<typeof createApp>;
  let worker: ExportWorker;
  let nowMs = Date.parse('2025-01-15T12:00:00Z');
  const clock = () => nowMs;
  let alice = '';
  let bob = '';

  const call = (token: string, path: string, init: { method?: string; body?: object } = {}) =>
    app.request(path, {
      method: init.method ?? 'GET',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      ...(init.body ? { body: JSON.stringify(init.body) } : {}),
    });
  const create = async (body: object, token = alice) => {
    const res = await call(token, '/reports/export-schedules', { method: 'POST', body });
    expect(res.status).toBe(201);
    return (await res.json()) as { schedule_id: string; webhook_secret?: string; next_run_at: string };
  };
  const runs = async (id: string, token = alice) => {
    const res = await call(token, `/reports/export-schedules/${id}/runs`);
    expect(res.status).toBe(200);
    return ((await res.json()) as { runs: Run[] }).runs;
  };
  const scheduler = () => new Scheduler({ control, store: deps.store, logger, now: clock });
  /** Deletes a schedule so that later tests' ticks see only their own. */
  const remove = async (id: string) => {
    expect((await call(alice, `/reports/export-schedules/${id}`, { method: 'DELETE' })).status).toBe(204);
  };
  const rawJobRows = async (ids: string[]) => {
    const [r] = await control.query('SELECT count(*) AS n FROM export_jobs WHERE job_id = ANY($1)', [ids]);
    return Number(r?.n);
  };

  beforeAll(async () => {
    engine = await openTestEngine();
    control = await openControl({ url: undefined, dataDir: '', memory: true });
    deps = {
      control,
      admission: new JobAdmission(control, 10, clock),
      store: new ExportStore(`${engine.dataDir}/exports`),
      keys: { current: 'k1', keys: new Map([['k1', Buffer.alloc(32, 7)]]) },
      publicBaseUrl: BASE,
      urlTtlSeconds: 600,
      now: clock,
    };
    app = createApp({
      ch: engine.ch,
      sink: createDirectSink(engine.ch),
      logger,
      auth: createAuthenticator({ secret: SECRET, issuer: undefined, audience: undefined }),
      exports: deps,
      schedules: {
        exports: deps,
        allow: new WebhookAllowList(['hooks.example.com']),
        perUser: 5,
        now: clock,
      },
    });
    worker = new ExportWorker({
      ch: engine.ch,
      control,
      source: engine.ch.exportSource(),
      store: deps.store,
      selfLog: new SelfLog(engine.ch),
      logger,
      now: clock,
    });
    alice = await mintToken(SECRET, { sub: 'alice', scope: 'report_admin' });
    bob = await mintToken(SECRET, { sub: 'bob', scope: 'report_admin' });
  });

  afterAll(async () => {
    await worker?.stop();
    await control?.close();
    await engine?.dispose();
  });

  it('creates, lists, hides from others, validates and deletes schedules', async () => {
    const s = await create({
      report_type: 'system-events',
      format: 'csv',
      cadence: 'daily',
      filters: { severity: 'error' },
    });
    expect(s.next_run_at).toBe('2025-01-16T00:00:00.000Z');
    expect(s.webhook_secret).toBeUndefined();
    const list = (await (await call(alice, '/reports/export-schedules')).json()) as {
      schedules: Array<{ schedule_id: string; filters: object }>;
    };
    expect(list.schedules.map((x) => x.schedule_id)).toContain(s.schedule_id);
    expect(list.schedules.find((x) => x.schedule_id === s.schedule_id)?.filters).toEqual({
      severity: 'error',
    });
    expect(
      ((await (await call(bob, '/reports/export-schedules')).json()) as { schedules: unknown[] }).schedules,
    ).toEqual([]);
    expect((await call(bob, `/reports/export-schedules/${s.schedule_id}`)).status).toBe(404);
    expect((await call(bob, `/reports/export-schedules/${s.schedule_id}/runs`)).status).toBe(404);
    expect((await call(bob, `/reports/export-schedules/${s.schedule_id}`, { method: 'DELETE' })).status).toBe(
      404,
    );

    const bad = await call(alice, '/reports/export-schedules', {
      method: 'POST',
      body: { report_type: 'usage-summary', format: 'csv', cadence: 'hourly' },
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toMatch(/^cadence:/);
    const ssrf = await call(alice, '/reports/export-schedules', {
      method: 'POST',
      body: {
        report_type: 'usage-summary',
        format: 'csv',
        cadence: 'daily',
        webhook_url: 'http://169.254.169.254/latest',
      },
    });
    expect(ssrf.status).toBe(400);
    expect(((await ssrf.json()) as { message: string }).message).toMatch(
      /^webhook_url: .*WEBHOOK_ALLOWED_HOSTS/,
    );
    const hooked = await create({
      report_type: 'usage-summary',
      format: 'csv',
      cadence: 'weekly',
      webhook_url: 'https://hooks.example.com/t',
    });
    expect(hooked.webhook_secret).toMatch(/^whsec_/);
    // The secret is shown once: never again on a read.
    const again = (await (
      await call(alice, `/reports/export-schedules/${hooked.schedule_id}`)
    ).json()) as object;
    expect(again).not.toHaveProperty('webhook_secret');

    for (const id of [s.schedule_id, hooked.schedule_id]) {
      expect((await call(alice, `/reports/export-schedules/${id}`, { method: 'DELETE' })).status).toBe(204);
      expect((await call(alice, `/reports/export-schedules/${id}`)).status).toBe(404);
    }
    // Deleted before any period closed: nothing is ever scheduled for them.
    nowMs = Date.parse('2025-01-20T00:00:00Z');
    expect(await scheduler().tick()).toBe(0);
    nowMs = Date.parse('2025-01-15T12:00:00Z');
  });

  it('makes one job per closed month, catches two months up after a downtime, outside the daily quota', async () => {
    nowMs = Date.parse('2025-01-15T12:00:00Z');
    const { schedule_id } = await create({ report_type: 'system-events', format: 'csv', cadence: 'monthly' });
    const sched = scheduler();
    nowMs = Date.parse('2025-01-31T23:59:59.999Z');
    expect(await sched.tick()).toBe(0);
    nowMs = Date.parse('2025-02-01T00:00:30Z');
    expect(await sched.tick()).toBe(1);
    expect(await sched.tick()).toBe(0);
    let r = await runs(schedule_id);
    expect(r.map((x) => `${x.period_start}..${x.period_end}`)).toEqual(['2025-01-01..2025-01-31']);
    const job = await getJob(control, r[0]?.job_id ?? '');
    expect(JSON.parse(job?.params ?? '{}')).toEqual({ start_date: '2025-01-01', end_date: '2025-01-31' });

    // Down from February 1 to April 2: February and March are both made, once each.
    nowMs = Date.parse('2025-04-02T08:00:00Z');
    expect(await sched.tick()).toBe(2);
    expect(await scheduler().tick()).toBe(0);
    r = await runs(schedule_id);
    expect(r.map((x) => x.period_start)).toEqual(['2025-03-01', '2025-02-01', '2025-01-01']);
    expect(r.find((x) => x.period_start === '2025-02-01')?.period_end).toBe('2025-02-28');
    expect(await rawJobRows(r.map((x) => x.job_id))).toBe(3);
    // None of them spent the owner's daily quota.
    const [quota] = await control.query('SELECT count(*) AS n FROM export_quota WHERE user_id = $1', [
      'jwt::alice',
    ]);
    expect(Number(quota?.n)).toBe(0);

    // The worker runs them; each run then shows its file's link, which downloads that file.
    let ran = 0;
    while (await worker.runOnce()) ran += 1;
    expect(ran).toBe(3);
    r = await runs(schedule_id);
    for (const run of r) {
      expect(run.status).toBe('completed');
      const file = await app.request(String(run.download_url).slice(BASE.length));
      expect(file.status).toBe(200);
      const bytes = Buffer.from(await file.arrayBuffer());
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(run.sha256);
    }
    // A scheduler that comes late to a finished period changes nothing.
    expect(await scheduler().tick()).toBe(0);
    expect((await getJob(control, job?.job_id ?? ''))?.status).toBe('completed');

    // Deleted: later periods get no job, and its runs are no longer served.
    await remove(schedule_id);
    nowMs = Date.parse('2025-06-02T00:00:00Z');
    expect(await scheduler().tick()).toBe(0);
    expect((await call(alice, `/reports/export-schedules/${schedule_id}/runs`)).status).toBe(404);
  });

  it('follows ISO weeks across a year boundary', async () => {
    nowMs = Date.parse('2025-12-24T09:00:00Z'); // a Wednesday of ISO week 2025-W52
    const { schedule_id, next_run_at } = await create({
      report_type: 'usage-summary',
      format: 'parquet',
      cadence: 'weekly',
    });
    expect(next_run_at).toBe('2025-12-29T00:00:00.000Z');
    nowMs = Date.parse('2026-01-04T23:59:59Z');
    const sched = scheduler();
    expect(await sched.tick()).toBe(1);
    nowMs = Date.parse('2026-01-05T00:00:01Z');
    expect(await sched.tick()).toBe(1);
    const r = await runs(schedule_id);
    expect(r.map((x) => `${x.period_start}..${x.period_end}`)).toEqual([
      '2025-12-29..2026-01-04', // ISO 2026-W01
      '2025-12-22..2025-12-28', // ISO 2025-W52
    ]);
    let ran = 0;
    while (await worker.runOnce()) ran += 1;
    expect(ran).toBe(2);
    await remove(schedule_id);
  });

  it('two schedulers (like two processes) make one job per period, run once each', async () => {
    nowMs = Date.parse('2025-06-01T10:00:00Z');
    const { schedule_id } = await create({ report_type: 'system-events', format: 'csv', cadence: 'daily' });
    nowMs = Date.parse('2025-06-11T00:00:01Z'); // ten days closed
    const a = scheduler();
    const b = scheduler();
    await Promise.all([a.tick(), b.tick(), a.tick(), b.tick()]);
    const r = await runs(schedule_id);
    expect(r).toHaveLength(10);
    expect(new Set(r.map((x) => x.period_start)).size).toBe(10);
    // One row per job: the (schedule, period) key let one scheduler make each.
    expect(await rawJobRows(r.map((x) => x.job_id))).toBe(10);
    let ran = 0;
    while (await worker.runOnce()) ran += 1;
    expect(ran).toBe(10);
    const done = await runs(schedule_id);
    expect(done.every((x) => x.status === 'completed')).toBe(true);
    // No webhook on this schedule: no run says anything of one. A recorded delivery shows on its run.
    expect(done.every((x) => x.webhook === undefined)).toBe(true);
    const first = done[0] as Run;
    await control.query(
      `INSERT INTO webhook_deliveries (job_id, delivery_id, schedule_id, user_id, event, url, state, attempts,
         finished_at, next_attempt_at, last_status, last_error, created_at, updated_at)
       VALUES ($1, $2, $3, 'jwt::alice', 'export.completed', 'https://hooks.test/x', 'gave_up', 4, $4, $4, 503,
         'HTTP 503', $4, $4)`,
      [first.job_id, `${first.job_id}:completed`, schedule_id, nowMs],
    );
    const shown = await runs(schedule_id);
    expect(shown.find((x) => x.job_id === first.job_id)?.webhook).toEqual({
      state: 'gave_up',
      attempts: 4,
      last_status: 503,
      last_error: 'HTTP 503',
    });
    expect(shown.filter((x) => x.webhook !== undefined)).toHaveLength(1);
    await remove(schedule_id);
  });
  it('skips, for good, the periods of a schedule whose API key is revoked or expired; waits on an unknown key', async () => {
    nowMs = Date.parse('2025-08-10T12:00:00Z');
    const revoked = newKey({ name: 'etl', scopes: ['report_admin'] }, new Date(nowMs)).record;
    const expiring = newKey(
      { name: 'bi', scopes: ['report_admin'], expiresAt: new Date('2025-09-15T00:00:00Z') },
      new Date(nowMs),
    ).record;
    for (const k of [revoked, expiring]) await insertKey(control, k);
    const schedule = (owner: string): ExportSchedule => ({
      schedule_id: `sched-${randomUUID()}`,
      user_id: owner,
      report_type: 'system-events',
      format: 'csv',
      cadence: 'monthly',
      params: '{}',
      webhook_url: '',
      webhook_secret: '',
      created_at: nowMs,
    });
    const byRevoked = schedule(`key:${revoked.id}`);
    const byExpiring = schedule(`key:${expiring.id}`);
    const byUnknown = schedule('key:00000000000000aa');
    const byJwt = schedule('jwt::carol');
    for (const s of [byRevoked, byExpiring, byUnknown, byJwt]) await createSchedule(control, s, 100);
    const log = new SelfLog(engine.ch, { now: clock });
    const sched = new Scheduler({
      control,
      store: deps.store,
      logger,
      owners: apiKeyOwners(control),
      selfLog: log,
      now: clock,
    });
    const periods = async (s: ExportSchedule) =>
      (await runsOf(control, s.schedule_id, 100)).map((r) => r.period_start).sort();
    const skipped = async (s: ExportSchedule) =>
      (
        await control.query(
          'SELECT period_start::text AS p FROM export_schedule_runs WHERE schedule_id = $1 AND job_id IS NULL',
          [s.schedule_id],
        )
      )
        .map((r) => String(r.p))
        .sort();

    // August closes with every key usable: one job each, except the key this host does not know.
    nowMs = Date.parse('2025-09-01T00:10:00Z');
    expect(await sched.tick()).toBe(3);
    expect(await periods(byRevoked)).toEqual(['2025-08-01']);
    expect(await periods(byExpiring)).toEqual(['2025-08-01']);
    expect(await periods(byJwt)).toEqual(['2025-08-01']);
    expect(await periods(byUnknown)).toEqual([]);
    expect(await skipped(byUnknown)).toEqual([]);

    // One key is revoked in September, the other expires in it; the scheduler is down until November 2.
    await revokeKey(control, revoked.id, '2025-09-20T00:00:00.000Z');
    nowMs = Date.parse('2025-11-02T08:00:00Z');
    expect(await sched.tick()).toBe(2); // September and October of the JWT owner
    expect(await periods(byJwt)).toEqual(['2025-08-01', '2025-09-01', '2025-10-01']);
    for (const s of [byRevoked, byExpiring]) {
      expect(await periods(s)).toEqual(['2025-08-01']);
      expect(await skipped(s)).toEqual(['2025-09-01', '2025-10-01']);
      for (const p of ['2025-09-01', '2025-10-01']) {
        expect(await getJob(control, scheduledJobId(s.schedule_id, p))).toBeUndefined();
      }
    }
    expect(await sched.tick()).toBe(0);

    // Made usable again by hand (revocation removed, expiry pushed back): the skipped months stay skipped,
    // and only periods closing from now on are made. The unknown key, once in the file, is caught up.
    await control.query('UPDATE api_keys SET revoked_at = NULL WHERE id = $1', [revoked.id]);
    await control.query('UPDATE api_keys SET expires_at = $2 WHERE id = $1', [
      expiring.id,
      '2026-12-31T00:00:00.000Z',
    ]);
    await insertKey(control, { ...revoked, id: '00000000000000aa', name: 'late' });
    expect(await sched.tick()).toBe(3); // the unknown key's August, September and October
    expect(await periods(byUnknown)).toEqual(['2025-08-01', '2025-09-01', '2025-10-01']);
    nowMs = Date.parse('2025-12-01T00:10:00Z');
    expect(await sched.tick()).toBe(4); // November, for each of the four
    for (const s of [byRevoked, byExpiring]) {
      expect(await periods(s)).toEqual(['2025-08-01', '2025-11-01']);
      expect(await skipped(s)).toEqual(['2025-09-01', '2025-10-01']);
    }

    // Each skip was reported once per schedule, as a warning system log naming it.
    await log.close();
    const rs = await engine.ch.client.query({
      query:
        "SELECT severity, message FROM log_events FINAL WHERE service = 'tally' AND message LIKE '[schedule-skipped]%'",
      format: 'JSONEachRow',
    });
    const logs = await rs.json<{ severity: string; message: string }>();
    expect(logs.map((l) => l.severity)).toEqual(['warning', 'warning']);
    expect(logs.find((l) => l.message.includes(byRevoked.schedule_id))?.message).toMatch(
      /made no export for 2 period\(s\) \(2025-09-01\.\.2025-10-31\): its API key is revoked/,
    );
    expect(logs.find((l) => l.message.includes(byExpiring.schedule_id))?.message).toMatch(/is expired/);

    let ran = 0;
    while (await worker.runOnce()) ran += 1;
    expect(ran).toBe(12);
    for (const s of [byRevoked, byExpiring, byUnknown, byJwt]) {
      await deleteSchedule(control, s.schedule_id);
    }
  });
});
