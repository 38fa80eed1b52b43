// Completion webhooks from the durable outbox (webhook_deliveries), against local receivers on the real engine:
// signed (verified here with a plain HMAC), failing twice then accepted: delivered once; a delivery left
// pending by a stopped dispatcher is delivered exactly once by the next one; a job whose finished-hook never ran
// is delivered by a fresh dispatcher (its outbox row was written with the job's finish); two dispatchers deliver
// each job once; a dispatcher that dies mid-attempt leaves the delivery to another after its lease, with the same
// X-Tally-Delivery; refused and redirected targets get no request (or no second one); two jobs given up are two
// system logs naming each.
import { createHmac, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SelfLog } from '../../clickhouse/self-log.ts';
import { scheduledJobId } from '../../control/job-id.ts';
import { type ExportJob, getJob } from '../../control/jobs.ts';
import { createSchedule, deleteSchedule, type ExportSchedule, runsOf } from '../../control/schedules.ts';
import { type ControlStore, openControl } from '../../control/store.ts';
import { getDelivery, type WebhookDelivery } from '../../control/webhooks.ts';
import { ExportStore } from '../../core/exports/store.ts';
import { createLogger } from '../../core/logger.ts';
import { WebhookAllowList } from '../../core/webhooks/allow-list.ts';
import { ExportWorker } from '../../worker/exports/worker.ts';
import { Scheduler } from '../../worker/schedules/scheduler.ts';
import {
  WebhookDispatcher,
  type WebhookOptions,
  type WebhookPayload,
} from '../../worker/webhooks/dispatcher.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = createLogger('silent');
const HOOK_SECRET = 'whsec_test-secret';
const DAY = 86_400_000;

interface Hit {
  body: string;
  signature: string;
  delivery: string;
  answered: number;
}

/** A receiver answering each request with `answer(n)` (n: how many came before). */
async function receiver(
  answer: (n: number) => number,
  headers: Record<string, string> = {},
  { delayMs = 0 } = {},
) {
  const hits: Hit[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const answered = answer(hits.length);
      hits.push({
        body: Buffer.concat(chunks).toString('utf8'),
        signature: String(req.headers['x-tally-signature'] ?? ''),
        delivery: String(req.headers['x-tally-delivery'] ?? ''),
        answered,
      });
      setTimeout(() => res.writeHead(answered, headers).end(), delayMs);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return { hits, port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** What a receiver does: recompute HMAC-SHA256(secret, "<t>.<body>") and compare with v1. */
function verify(secret: string, body: string, header: string, nowS: number): boolean {
  const parts = Object.fromEntries(header.split(',').map((p) => p.split('=') as [string, string]));
  const want = createHmac('sha256', secret).update(`${parts.t}.${body}`).digest('hex');
  return want === parts.v1 && Math.abs(nowS - Number(parts.t)) < 300;
}

describe('export webhooks (durable outbox)', () => {
  let engine: TestEngine;
  let control: ControlStore;
  let store: ExportStore;
  let worker: ExportWorker;
  let selfLog: SelfLog;
  // The test's clock runs with real time (retries wait real milliseconds) but may jump ahead by days.
  let offset = Date.parse('2025-03-10T12:00:00Z') - Date.now();
  const clock = () => Date.now() + offset;

  const dispatcher = (allow: string[], extra: Partial<WebhookOptions> = {}) =>
    new WebhookDispatcher({
      control,
      allow: new WebhookAllowList(allow),
      links: {
        keys: { current: 'k', keys: new Map([['k', Buffer.alloc(32, 3)]]) },
        publicBaseUrl: 'https://t.test',
        urlTtlSeconds: 600,
      },
      selfLog,
      logger,
      baseDelayMs: 20,
      maxDelayMs: 200,
      retryForMs: 60_000,
      timeoutMs: 2000,
      pollMs: 25,
      now: clock,
      ...extra,
    });

  const settled = (jobId: string, state: WebhookDelivery['state'] = 'delivered') =>
    waitFor(
      `the delivery of ${jobId} to be ${state}`,
      async () => {
        const d = await getDelivery(control, jobId);
        return d?.state === state ? d : undefined;
      },
      { timeoutMs: 20_000, everyMs: 25 },
    );

  /**
   * A daily schedule with a webhook, `days` closed days of it run to completion by the export worker (which has
   * no finished-job listener here: every delivery below is found in the outbox, as after a crash right after
   * the job's final write). The schedule is deleted again by `retire`.
   */
  async function finishedJobs(url: string, days = 1) {
    const schedule: ExportSchedule = {
      schedule_id: `sched-${randomUUID()}`,
      user_id: 'jwt::alice',
      report_type: 'system-events',
      format: 'csv',
      cadence: 'daily',
      params: '{}',
      webhook_url: url,
      webhook_secret: HOOK_SECRET,
      created_at: clock(),
    };
    await createSchedule(control, schedule, 1000);
    const firstDay = Date.parse(new Date(schedule.created_at).toISOString().slice(0, 10));
    offset += days * DAY;
    await new Scheduler({ control, store, logger, now: clock }).tick();
    while (await worker.runOnce()) {}
    const jobs: ExportJob[] = [];
    for (let i = 0; i < days; i++) {
      const day = new Date(firstDay + i * DAY).toISOString().slice(0, 10);
      const job = await getJob(control, scheduledJobId(schedule.schedule_id, day));
      if (job?.status !== 'completed') throw new Error(`the job of ${day} did not complete`);
      jobs.push(job);
    }
    const retire = () => deleteSchedule(control, schedule.schedule_id);
    return { jobs, job: jobs[0] as ExportJob, scheduleId: schedule.schedule_id, retire };
  }

  beforeAll(async () => {
    engine = await openTestEngine();
    control = await openControl({ url: undefined, dataDir: '', memory: true });
    store = new ExportStore(`${engine.dataDir}/exports`);
    selfLog = new SelfLog(engine.ch, { now: clock });
    worker = new ExportWorker({
      ch: engine.ch,
      control,
      source: engine.ch.exportSource(),
      store,
      selfLog,
      logger,
      now: clock,
    });
  });

  afterAll(async () => {
    await worker?.stop();
    await selfLog?.close();
    await control?.close();
    await engine?.dispose();
  });

  it('signs, retries a receiver that fails twice, and delivers once', async () => {
    const rx = await receiver((n) => [500, 503][n] ?? 200);
    const d = dispatcher([`127.0.0.1:${rx.port}`]);
    try {
      const { job, scheduleId, retire } = await finishedJobs(`http://127.0.0.1:${rx.port}/hook`);
      d.start();
      const row = await settled(job.job_id);
      expect(row).toMatchObject({
        delivery_id: `${job.job_id}:completed`,
        schedule_id: scheduleId,
        user_id: 'jwt::alice',
        event: 'export.completed',
        attempts: 3,
        last_status: 200,
        last_error: '',
        lease_owner: '',
      });
      // Stopped, with every attempt it made finished (stop waits for them): the hits are all there is.
      await d.stop();
      expect(rx.hits.map((h) => h.answered)).toEqual([500, 503, 200]);
      for (const h of rx.hits) {
        expect(verify(HOOK_SECRET, h.body, h.signature, clock() / 1000)).toBe(true);
        expect(verify('whsec_other', h.body, h.signature, clock() / 1000)).toBe(false);
        expect(h.delivery).toBe(`${job.job_id}:completed`);
      }
      const body = JSON.parse(rx.hits[2]?.body ?? '{}') as WebhookPayload;
      expect(body).toMatchObject({
        event: 'export.completed',
        job_id: job.job_id,
        schedule_id: scheduleId,
        status: 'completed',
        row_count: job.rows_written,
        bytes: job.bytes,
        sha256: job.sha256,
        period_start: '2025-03-10',
        period_end: '2025-03-10',
        error: null,
      });
      expect(body.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(body.download_url).toMatch(
        new RegExp(`^https://t\\.test/downloads/${job.job_id}\\?exp=\\d+&kid=k&sig=`),
      );
      expect(Date.parse(body.expires_at ?? '')).toBeGreaterThan(clock());
      // The schedule's runs show the delivery.
      const [run] = await runsOf(control, scheduleId, 10);
      expect(run).toMatchObject({
        job_id: job.job_id,
        webhook_state: 'delivered',
        webhook_attempts: 3,
        webhook_last_status: 200,
      });
      await retire();
    } finally {
      await d.stop();
      await rx.close();
    }
  });

  it('delivers a job whose finished-hook never ran (a crash right after its final write), from the outbox alone', async () => {
    const rx = await receiver(() => 200);
    try {
      const { job, retire } = await finishedJobs(`http://127.0.0.1:${rx.port}/hook`);
      // Nothing was told of the finished job, but its outbox row was written in the transaction that finished it.
      expect(await getDelivery(control, job.job_id)).toMatchObject({ state: 'pending', attempts: 0 });
      const fresh = dispatcher([`127.0.0.1:${rx.port}`]);
      fresh.start();
      try {
        await settled(job.job_id);
      } finally {
        // Waits for any attempt in flight, so the hits below are every attempt it made.
        await fresh.stop();
      }
      expect(rx.hits.map((h) => [h.delivery, h.answered])).toEqual([[`${job.job_id}:completed`, 200]]);
      await retire();
    } finally {
      await rx.close();
    }
  });

  it('a delivery pending when its dispatcher stops is delivered exactly once by the next one', async () => {
    let failing = true;
    const rx = await receiver(() => (failing ? 503 : 200));
    try {
      const { job, retire } = await finishedJobs(`http://127.0.0.1:${rx.port}/hook`);
      const first = dispatcher([`127.0.0.1:${rx.port}`], { baseDelayMs: 40, maxDelayMs: 80 });
      first.start();
      await waitFor('two failed attempts', async () => rx.hits.length >= 2, { everyMs: 10 });
      // The "restart": the first dispatcher stops (its attempt in flight finishes and is recorded) ...
      await first.stop();
      const left = await getDelivery(control, job.job_id);
      expect(left).toMatchObject({ state: 'pending', lease_owner: '', attempts: rx.hits.length });
      expect(left?.last_error).toBe('answered 503');
      expect(left?.last_status).toBe(503);
      // ... the receiver recovers, and a new dispatcher on the same engine delivers it, once.
      failing = false;
      const before = rx.hits.length;
      const second = dispatcher([`127.0.0.1:${rx.port}`], { baseDelayMs: 40, maxDelayMs: 80 });
      second.start();
      try {
        const done = await settled(job.job_id);
        expect(done.attempts).toBe(before + 1);
      } finally {
        // Waits for any attempt in flight, so the hits below are every attempt it made.
        await second.stop();
      }
      expect(rx.hits.filter((h) => h.answered === 200)).toHaveLength(1);
      expect(rx.hits).toHaveLength(before + 1);
      expect(new Set(rx.hits.map((h) => h.delivery))).toEqual(new Set([`${job.job_id}:completed`]));
      await retire();
    } finally {
      await rx.close();
    }
  });

  it('two dispatchers (like two processes) deliver each of 6 jobs once', async () => {
    // The receiver takes 300 ms to answer, so each dispatcher has attempts in flight while the other claims.
    const rx = await receiver(() => 200, {}, { delayMs: 300 });
    const a = dispatcher([`127.0.0.1:${rx.port}`], { concurrency: 2 });
    const b = dispatcher([`127.0.0.1:${rx.port}`], { concurrency: 2 });
    try {
      const { jobs, retire } = await finishedJobs(`http://127.0.0.1:${rx.port}/hook`, 6);
      a.start();
      b.start();
      for (const j of jobs) await settled(j.job_id);
      // Both stopped, every attempt they made finished (stop waits for them): the hits are all there are.
      await Promise.all([a.stop(), b.stop()]);
      const ids = rx.hits.map((h) => h.delivery).sort();
      expect(ids).toEqual(jobs.map((j) => `${j.job_id}:completed`).sort());
      await retire();
    } finally {
      await Promise.all([a.stop(), b.stop()]);
      await rx.close();
    }
  });

  it('a dispatcher that dies mid-attempt leaves the delivery to another, with the same X-Tally-Delivery', async () => {
    const rx = await receiver(() => 200);
    try {
      const { job, retire } = await finishedJobs(`http://127.0.0.1:${rx.port}/hook`);
      // The first dispatcher claims and never records (killed mid-attempt): its short lease runs out.
      const dead = dispatcher([`127.0.0.1:${rx.port}`], { leaseMs: 300 });
      // (Deliveries other tests left pending are claimed and abandoned too; they are not this test's.)
      let claimed = await dead.claim();
      while (claimed && claimed.delivery.job_id !== job.job_id) claimed = await dead.claim();
      expect(claimed?.delivery.job_id).toBe(job.job_id);
      const next = dispatcher([`127.0.0.1:${rx.port}`]);
      next.start();
      try {
        const done = await settled(job.job_id);
        expect(done.attempts).toBe(1);
      } finally {
        await next.stop();
      }
      expect(rx.hits.map((h) => h.delivery)).toEqual([`${job.job_id}:completed`]);
      await retire();
    } finally {
      await rx.close();
    }
  });

  it('sends nothing to a host off the list, to a listed name resolving to a private address, or past a redirect', async () => {
    const rx = await receiver(() => 302, { location: 'http://169.254.169.254/' });
    const run = async (url: string, allow: string[]) => {
      const { job, retire } = await finishedJobs(url);
      const d = dispatcher(allow);
      d.start();
      try {
        return { row: await settled(job.job_id, 'gave_up'), job };
      } finally {
        await d.stop();
        await retire();
      }
    };
    try {
      // The port is listed under another host: refused before any connection.
      const off = await run(`http://localhost:${rx.port}/hook`, [`127.0.0.1:${rx.port + 1}`]);
      expect(off.row).toMatchObject({ attempts: 1, last_status: 0 });
      expect(off.row.last_error).toMatch(/not on WEBHOOK_ALLOWED_HOSTS/);
      // The name is listed, but it resolves to loopback, which is not: refused at connect time.
      const rebound = await run(`http://localhost:${rx.port}/hook`, [`localhost:${rx.port}`]);
      expect(rebound.row).toMatchObject({ attempts: 1 });
      expect(rebound.row.last_error).toMatch(/resolves to .* not allowed/);
      expect(rx.hits).toHaveLength(0);
      // Listed by address: the receiver answers with a redirect, which is neither followed nor retried.
      const redirected = await run(`http://127.0.0.1:${rx.port}/hook`, [`127.0.0.1:${rx.port}`]);
      expect(redirected.row).toMatchObject({ attempts: 1, last_status: 302 });
      expect(redirected.row.last_error).toMatch(/redirects are not followed/);
      expect(rx.hits).toHaveLength(1);
    } finally {
      await rx.close();
    }
  });

  it('gives up after the retry time, with one error system log per job (two jobs are two records)', async () => {
    const rx = await receiver(() => 500);
    // The default one-minute window of the service: two give-ups inside it must not collapse into one record.
    const log = new SelfLog(engine.ch, { now: clock });
    const d = dispatcher([`127.0.0.1:${rx.port}`], { retryForMs: 1500, selfLog: log });
    try {
      // Running while the jobs finish (a dispatcher started later than the retry time after a job finished
      // would rightly never pick that job up).
      d.start();
      const { jobs, retire } = await finishedJobs(`http://127.0.0.1:${rx.port}/hook`, 2);
      for (const j of jobs) {
        const row = await settled(j.job_id, 'gave_up');
        expect(row.attempts).toBeGreaterThanOrEqual(2);
        expect(row.last_error).toBe('answered 500');
      }
      await log.flush();
      const logs = await waitFor(
        'both give-up logs',
        async () => {
          const rs = await engine.ch.client.query({
            query:
              "SELECT severity, message FROM log_events FINAL WHERE service = 'tally' AND message LIKE '[webhook-failed]%'",
            format: 'JSONEachRow',
          });
          const rows = (await rs.json<{ severity: string; message: string }>()).filter((r) =>
            jobs.some((j) => r.message.includes(j.job_id)),
          );
          return rows.length >= 2 ? rows : undefined;
        },
        { timeoutMs: 10_000 },
      );
      expect(logs).toHaveLength(2);
      for (const j of jobs) {
        const mine = logs.filter((l) => l.message.includes(j.job_id));
        expect(mine).toHaveLength(1);
        expect(mine[0]?.severity).toBe('error');
        expect(mine[0]?.message).toMatch(/not delivered after \d+ attempt\(s\): answered 500$/);
      }
      await retire();
    } finally {
      await d.stop();
      await log.close();
      await rx.close();
    }
  });
});
