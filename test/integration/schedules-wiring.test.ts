// The real wiring of bin/start.ts and bin/worker.ts: runSchedules() from a loaded configuration hooks its
// webhook dispatcher onto the export worker's finished-job listeners beside any other listener (one that throws
// included), and a scheduled job that fails reaches the receiver as a signed export.failed webhook, woken by the
// hook (the dispatcher's own polling is set to a minute here, so only the hook can explain a prompt delivery).
import { createHmac, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportParts, runSchedules } from '../../bin/runtime.ts';
import { SelfLog } from '../../clickhouse/self-log.ts';
import { scheduledJobId } from '../../control/job-id.ts';
import { type ExportJob, getJob } from '../../control/jobs.ts';
import { createSchedule } from '../../control/schedules.ts';
import { type ControlStore, openControl } from '../../control/store.ts';
import { getDelivery } from '../../control/webhooks.ts';
import { loadConfig } from '../../core/config.ts';
import { ExportStore } from '../../core/exports/store.ts';
import { createLogger } from '../../core/logger.ts';
import { ExportWorker } from '../../worker/exports/worker.ts';
import type { ScheduleServices } from '../../worker/schedules/setup.ts';
import type { WebhookPayload } from '../../worker/webhooks/dispatcher.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = createLogger('silent');
const SECRET = 'whsec_wiring-secret';
const DAY = 86_400_000;

interface Hit {
  body: string;
  headers: Record<string, string | string[] | undefined>;
  at: number;
}

describe('schedules wiring (startSchedules)', () => {
  let engine: TestEngine;
  let control: ControlStore;
  let server: Server;
  let port = 0;
  const hits: Hit[] = [];
  let worker: ExportWorker;
  let services: ScheduleServices | undefined;
  let selfLog: SelfLog;

  beforeAll(async () => {
    engine = await openTestEngine();
    control = await openControl({ url: undefined, dataDir: '', memory: true });
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        hits.push({ body: Buffer.concat(chunks).toString('utf8'), headers: req.headers, at: Date.now() });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await services?.stop();
    await worker?.stop();
    await selfLog?.close();
    await new Promise<void>((r) => server.close(() => r()));
    await control?.close();
    await engine?.dispose();
  });

  it('delivers a failed scheduled job as export.failed through the worker hook, beside other listeners', async () => {
    const config = loadConfig({
      DATA_DIR: engine.dataDir,
      WEBHOOK_ALLOWED_HOSTS: `127.0.0.1:${port}`,
      PUBLIC_BASE_URL: 'https://tally.example.test',
      LOG_LEVEL: 'silent',
    });
    // A daily schedule created yesterday: its one closed day is queued by the scheduler's first tick.
    const created = Date.now() - DAY;
    const scheduleId = `sched-wiring-${randomUUID()}`;
    const made = await createSchedule(
      control,
      {
        schedule_id: scheduleId,
        user_id: 'jwt::alice',
        report_type: 'system-events',
        format: 'csv',
        cadence: 'daily',
        params: '{}',
        webhook_url: `http://127.0.0.1:${port}/hook`,
        webhook_secret: SECRET,
        created_at: created,
      },
      10,
    );
    expect(made).toBe(true);
    selfLog = new SelfLog(engine.ch);
    worker = new ExportWorker({
      ch: engine.ch,
      control,
      source: engine.ch.exportSource(),
      store: new ExportStore(config.exports.dir),
      selfLog,
      logger,
      maxAttempts: 2,
    });
    // Listeners added before the dispatcher's: one that throws, one that records. Neither may stop the others.
    worker.onFinished(() => {
      throw new Error('a careless listener');
    });
    const seen: string[] = [];
    worker.onFinished((j) => seen.push(`${j.job_id}:${j.status}`));
    // The worker's finished-job listeners as startSchedules adds and removes them (what stop() must take off).
    const attached = new Set<(job: ExportJob) => void>();
    const addListener = worker.onFinished.bind(worker);
    worker.onFinished = (listener) => {
      attached.add(listener);
      const off = addListener(listener);
      return () => {
        attached.delete(listener);
        off();
      };
    };
    const shared = { ch: engine.ch, control, logger, selfLog, parts: exportParts(config) };
    const workers = { workers: [worker], notify: () => undefined, stop: async () => undefined };
    services = runSchedules(config, shared, workers, { webhookPollMs: 60_000 });
    const { webhooks } = services;
    expect([...attached]).toEqual([webhooks.notify]);

    const jobId = scheduledJobId(scheduleId, new Date(created).toISOString().slice(0, 10));
    const queued = await waitFor('the scheduled job', () => getJob(control, jobId), { timeoutMs: 20_000 });
    expect(queued.status).toBe('queued');
    // Its worker "died" twice: processing under an expired lease with every attempt spent, so the next claim
    // fails it (the worker's real failure path).
    await control.query(
      `UPDATE export_jobs SET status = 'processing', attempts = 2, lease_owner = 'worker-gone',
         lease_expires_at = $2 WHERE job_id = $1`,
      [jobId, Date.now() - 1000],
    );
    expect(await worker.runOnce()).toBe(false);
    const failedAt = Date.now();
    expect((await getJob(control, jobId))?.status).toBe('failed');
    expect(seen).toEqual([`${jobId}:failed`]);

    const hit = await waitFor('the webhook', async () => hits[0], { timeoutMs: 20_000, everyMs: 20 });
    // Woken by the hook, not by a poll (a minute here).
    expect(hit.at - failedAt).toBeLessThan(20_000);
    const body = JSON.parse(hit.body) as WebhookPayload;
    expect(body).toEqual({
      event: 'export.failed',
      job_id: jobId,
      schedule_id: scheduleId,
      period_start: new Date(created).toISOString().slice(0, 10),
      period_end: new Date(created).toISOString().slice(0, 10),
      status: 'failed',
      row_count: null,
      bytes: null,
      sha256: null,
      download_url: null,
      expires_at: null,
      error: expect.stringMatching(/stopped before finishing 2 times/),
    });
    expect(hit.headers['x-tally-event']).toBe('export.failed');
    expect(hit.headers['x-tally-delivery']).toBe(`${jobId}:failed`);
    const sig = String(hit.headers['x-tally-signature']);
    const t = /t=(\d+)/.exec(sig)?.[1];
    expect(sig).toBe(`t=${t},v1=${createHmac('sha256', SECRET).update(`${t}.${hit.body}`).digest('hex')}`);
    const row = await waitFor('the delivery row', async () => {
      const d = await getDelivery(control, jobId);
      return d?.state === 'delivered' ? d : undefined;
    });
    expect(row).toMatchObject({ event: 'export.failed', attempts: 1, last_status: 204 });

    // Delivered once; stopping takes the dispatcher's listener off the worker.
    expect(hits).toHaveLength(1);
    await services.stop();
    services = undefined;
    expect(attached.has(webhooks.notify)).toBe(false);
    expect(attached.size).toBe(0);
  });
});
