// Completion webhooks against a local receiver: signed (verified here with a plain HMAC), failing twice then
// accepted: delivered once; a name that resolves to a private address, a redirect, and a receiver that never
// accepts (given up, recorded as a system log) are all checked without any request reaching a forbidden host.
import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyedMutex } from '../../api/exports/lock.ts';
import { ExportStore } from '../../api/exports/store.ts';
import { exportSource } from '../../api/exports/stream.ts';
import { ExportWorker } from '../../api/exports/worker.ts';
import { Scheduler } from '../../api/schedules/scheduler.ts';
import { WebhookAllowList } from '../../api/webhooks/allow-list.ts';
import { WebhookDispatcher, type WebhookPayload } from '../../api/webhooks/dispatcher.ts';
import { getJob, nextVersion } from '../../clickhouse/queries/exports-jobs.ts';
import { writeSchedule } from '../../clickhouse/queries/schedules.ts';
import { runOfJob } from '../../clickhouse/queries/schedules-runs.ts';
import { SelfLog } from '../../clickhouse/self-log.ts';
import { createLogger } from '../../core/logger.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = createLogger('silent');
const HOOK_SECRET = 'whsec_test-secret';

interface Hit {
  body: string;
  signature: string;
  delivery: string;
  answered: number;
}

/** A receiver answering each request with the next status of `plan` (the last one repeats). */
async function receiver(plan: number[], headers: Record<string, string> = {}) {
  const hits: Hit[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const answered = plan[Math.min(hits.length, plan.length - 1)] ?? 200;
      hits.push({
        body: Buffer.concat(chunks).toString('utf8'),
        signature: String(req.headers['x-tally-signature'] ?? ''),
        delivery: String(req.headers['x-tally-delivery'] ?? ''),
        answered,
      });
      res.writeHead(answered, headers).end();
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

describe('export webhooks', () => {
  let engine: TestEngine;
  let store: ExportStore;
  let worker: ExportWorker;
  let selfLog: SelfLog;
  let nowMs = Date.parse('2025-03-10T12:00:00Z');
  const clock = () => nowMs;

  const dispatcher = (allow: string[], extra: { retryForMs?: number } = {}) =>
    new WebhookDispatcher({
      ch: engine.ch,
      allow: new WebhookAllowList(allow),
      links: {
        keys: { current: 'k', keys: new Map([['k', Buffer.alloc(32, 3)]]) },
        publicBaseUrl: 'https://t.test',
        urlTtlSeconds: 600,
      },
      selfLog,
      logger,
      baseDelayMs: 20,
      retryForMs: extra.retryForMs ?? 10_000,
      timeoutMs: 2000,
      now: clock,
    });

  /** A daily schedule with a webhook whose one closed day is run to completion; returns the finished job. */
  async function finishedJob(url: string) {
    const id = `sched-${nextVersion()}`;
    await writeSchedule(engine.ch, {
      schedule_id: id,
      user_id: 'jwt::alice',
      report_type: 'system-events',
      format: 'csv',
      cadence: 'daily',
      params: '{}',
      webhook_url: url,
      webhook_secret: HOOK_SECRET,
      created_at: nowMs,
      deleted: 0,
      version: nextVersion(),
    });
    nowMs += 86_400_000;
    await new Scheduler({ ch: engine.ch, store, logger, lock: new KeyedMutex(), now: clock }).tick();
    let finished: string | undefined;
    worker.onFinished((j) => {
      finished = j.job_id;
    });
    while (await worker.runOnce()) {}
    const job = await getJob(engine.ch, finished ?? '');
    if (!job) throw new Error('no job finished');
    expect((await runOfJob(engine.ch, job.job_id))?.schedule_id).toBe(id);
    // Deleted once the test is done, so that later tests' ticks do not run this one again.
    const retire = () =>
      writeSchedule(engine.ch, {
        schedule_id: id,
        user_id: 'jwt::alice',
        report_type: 'system-events',
        format: 'csv',
        cadence: 'daily',
        params: '{}',
        webhook_url: url,
        webhook_secret: HOOK_SECRET,
        created_at: nowMs,
        deleted: 1,
        version: nextVersion(),
      });
    return { job, scheduleId: id, retire };
  }

  beforeAll(async () => {
    engine = await openTestEngine();
    store = new ExportStore(`${engine.dataDir}/exports`);
    selfLog = new SelfLog(engine.ch, { now: clock });
    worker = new ExportWorker({
      ch: engine.ch,
      source: exportSource(engine.ch, engine.dataDir),
      store,
      selfLog,
      logger,
      now: clock,
    });
  });

  afterAll(async () => {
    await worker?.stop();
    await engine?.dispose();
  });

  it('signs, retries a receiver that fails twice, and delivers once', async () => {
    const rx = await receiver([500, 503, 200]);
    try {
      const { job, retire } = await finishedJob(`http://127.0.0.1:${rx.port}/hook`);
      const out = await dispatcher([`127.0.0.1:${rx.port}`]).handle(job);
      expect(out).toEqual({ delivered: true, attempts: 3 });
      expect(rx.hits.map((h) => h.answered)).toEqual([500, 503, 200]);
      expect(rx.hits.filter((h) => h.answered === 200)).toHaveLength(1);
      for (const h of rx.hits) {
        expect(verify(HOOK_SECRET, h.body, h.signature, nowMs / 1000)).toBe(true);
        expect(verify('whsec_other', h.body, h.signature, nowMs / 1000)).toBe(false);
        expect(h.delivery).toBe(`${job.job_id}:completed`);
      }
      const body = JSON.parse(rx.hits[2]?.body ?? '{}') as WebhookPayload;
      expect(body).toMatchObject({
        event: 'export.completed',
        job_id: job.job_id,
        status: 'completed',
        row_count: job.rows_written,
        sha256: job.sha256,
        period_start: '2025-03-10',
        period_end: '2025-03-10',
      });
      expect(body.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(body.download_url).toMatch(
        new RegExp(`^https://t\\.test/downloads/${job.job_id}\\?exp=\\d+&kid=k&sig=`),
      );
      expect(Date.parse(body.expires_at ?? '')).toBeGreaterThan(nowMs);
      await retire();
    } finally {
      await rx.close();
    }
  });

  it('sends nothing to a host off the list, to a listed name resolving to a private address, or past a redirect', async () => {
    const rx = await receiver([302], { location: 'http://169.254.169.254/' });
    try {
      const { job, retire } = await finishedJob(`http://localhost:${rx.port}/hook`);
      // The port is listed under another host: refused before any connection.
      expect(await dispatcher([`127.0.0.1:${rx.port + 1}`]).handle(job)).toMatchObject({
        delivered: false,
        attempts: 1,
      });
      // The name is listed, but it resolves to loopback, which is not: refused at connect time.
      const rebound = await dispatcher([`localhost:${rx.port}`]).handle(job);
      expect(rebound).toMatchObject({ delivered: false, attempts: 1 });
      expect(rebound && !rebound.delivered ? rebound.reason : '').toMatch(/resolves to .* not allowed/);
      expect(rx.hits).toHaveLength(0);
      // Listed by address: the receiver answers with a redirect, which is not followed nor retried.
      const d = dispatcher([`127.0.0.1:${rx.port}`]);
      const redirected = await d.deliver(`http://127.0.0.1:${rx.port}/hook`, HOOK_SECRET, {
        event: 'export.completed',
        job_id: 'x',
        schedule_id: 's',
        period_start: '2025-03-10',
        period_end: '2025-03-10',
        status: 'completed',
        row_count: 0,
        bytes: 0,
        sha256: '',
        download_url: null,
        expires_at: null,
        error: null,
      });
      expect(redirected).toMatchObject({ delivered: false, attempts: 1 });
      expect(rx.hits).toHaveLength(1);
      await retire();
    } finally {
      await rx.close();
    }
  });

  it('gives up after the retry time and records an error system log', async () => {
    const rx = await receiver([500]);
    try {
      const { job, retire } = await finishedJob(`http://127.0.0.1:${rx.port}/hook`);
      const out = await dispatcher([`127.0.0.1:${rx.port}`], { retryForMs: 150 }).handle(job);
      expect(out?.delivered).toBe(false);
      expect(rx.hits.length).toBeGreaterThanOrEqual(2);
      await selfLog.flush();
      const logs = await waitFor(
        'the give-up log',
        async () => {
          const rs = await engine.ch.client.query({
            query:
              "SELECT severity, message FROM log_events FINAL WHERE service = 'tally' AND message LIKE '[webhook-failed]%'",
            format: 'JSONEachRow',
          });
          // Other tests in this file leave give-up logs too: look for this job's.
          const rows = (await rs.json<{ severity: string; message: string }>()).filter((r) =>
            r.message.includes(job.job_id),
          );
          return rows.length > 0 ? rows : undefined;
        },
        { timeoutMs: 10_000 },
      );
      expect(logs).toHaveLength(1);
      expect(logs[0]?.severity).toBe('error');
      expect(logs[0]?.message).toContain('not delivered after');
      await retire();
    } finally {
      await rx.close();
    }
  });
});
