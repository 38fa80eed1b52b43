// Claims exact across processes through Redis (RATE_LIMIT_REDIS_URL), on a real redis-server and the real
// engine. Each simulated process has its own lock (KeyedMutex) and reads its own replica of the job tables: its
// own writes at once, the other process's 1.5 s later (test/helpers/replicas.ts), as on a replicated cluster.
// - export jobs: two workers run each of 6 queued jobs exactly once with the Redis claim; without it (control)
//   both take the first job and run it twice;
// - webhook deliveries: two dispatchers deliver each of 5 webhooks once (a local receiver counts); without it,
//   some twice even with the 500 ms settle wait a server uses;
// - Idempotency-Key: 10 concurrent POST /reports/export with one key over two app instances give one job id and
//   one job (and spend one job of quota); without the reservation, two jobs. A reservation whose job never
//   appears is a 503, a key given up after a 429 is free again;
// - Redis down: a worker claims nothing and warns, then claims again once Redis is back;
// - the runtime's wiring: startExportWorkers, startSchedules and exportDeps take their steps in RATE_LIMIT_REDIS_URL.
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createApp } from '../../api/app.ts';
import { RedisClaims } from '../../api/exports/claims.ts';
import type { ExportDeps } from '../../api/exports/deps.ts';
import { KeyedMutex } from '../../api/exports/lock.ts';
import { JobAdmission, RedisQuota, utcDay } from '../../api/exports/quota.ts';
import { exportDeps, startExportWorkers } from '../../api/exports/setup.ts';
import { ExportStore } from '../../api/exports/store.ts';
import { ExportWorker } from '../../api/exports/worker.ts';
import { createAuthenticator } from '../../api/middleware/auth.ts';
import { startSchedules } from '../../api/schedules/setup.ts';
import { WebhookAllowList } from '../../api/webhooks/allow-list.ts';
import { WebhookDispatcher } from '../../api/webhooks/dispatcher.ts';
import type { ClickHouse } from '../../clickhouse/client.ts';
import { exportSource } from '../../clickhouse/export-stream.ts';
import {
  countJobsOnDay,
  type ExportJob,
  getJob,
  nextVersion,
  writeJob,
} from '../../clickhouse/queries/exports-jobs.ts';
import { writeSchedule } from '../../clickhouse/queries/schedules.ts';
import { writeRun } from '../../clickhouse/queries/schedules-runs.ts';
import { getDelivery } from '../../clickhouse/queries/webhook-deliveries.ts';
import { SelfLog } from '../../clickhouse/self-log.ts';
import { loadConfig } from '../../core/config.ts';
import { createLogger } from '../../core/logger.ts';
import { mintToken } from '../../core/tokens.ts';
import { createDirectSink } from '../../ingest/direct.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { type Replicas, replicas } from '../helpers/replicas.ts';
import { waitFor } from '../helpers/wait.ts';
import { skipWithoutRedis, startRedis, type TestRedis } from './redis-server.ts';

const skip = skipWithoutRedis('claims across processes');
/** How late one process's writes show in the other's reads. */
const LAG_MS = 1500;
const SECRET = 'claims-redis-test-secret-claims-redis-test-1';
const logger = createLogger('silent');
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How many times each key occurs. */
function tally(keys: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const k of keys) counts.set(k, (counts.get(k) ?? 0) + 1);
  return counts;
}

/** A queued system-events job, `i` ms after `now` (claimed oldest first). */
const queuedJob = (i: number, now: number): ExportJob => {
  const jobId = randomUUID();
  return {
    job_id: jobId,
    user_id: 'jwt::alice',
    day: utcDay(now),
    idempotency_key: '',
    report_type: 'system-events',
    format: 'csv',
    params: '{}',
    status: 'queued',
    attempts: 0,
    lease_owner: '',
    lease_expires_at: 0,
    rows_written: 0,
    bytes: 0,
    sha256: '',
    file_name: `${jobId}.csv`,
    expires_at: 0,
    error: '',
    created_at: now + i,
    updated_at: now + i,
    version: nextVersion(now),
  };
};

/** A receiver answering 200 after 100 ms, counting the requests per X-Tally-Delivery. */
async function receiver() {
  const hits: string[] = [];
  const server: Server = createServer((req, res) => {
    hits.push(String(req.headers['x-tally-delivery'] ?? ''));
    req.resume();
    req.on('end', () => setTimeout(() => res.writeHead(200).end(), 100));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return { hits, port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** A schedule with a webhook to `port` (made now: its scheduler queues nothing) and `n` completed jobs of it. */
async function finishedJobs(view: ClickHouse, port: number, n: number): Promise<string[]> {
  const now = Date.now();
  const scheduleId = `sched-${randomUUID()}`;
  await writeSchedule(view, {
    schedule_id: scheduleId,
    user_id: 'jwt::alice',
    report_type: 'system-events',
    format: 'csv',
    cadence: 'daily',
    params: '{}',
    webhook_url: `http://127.0.0.1:${port}/hook`,
    webhook_secret: 'whsec_claims',
    created_at: now,
    deleted: 0,
    version: nextVersion(now),
  });
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const jobId = randomUUID();
    const day = new Date(now - (n - i) * 86_400_000).toISOString().slice(0, 10);
    await writeRun(view, {
      schedule_id: scheduleId,
      period_start: day,
      period_end: day,
      job_id: jobId,
      user_id: 'jwt::alice',
      created_at: now,
    });
    await writeJob(view, {
      job_id: jobId,
      user_id: 'jwt::alice',
      day: utcDay(now),
      idempotency_key: '',
      report_type: 'system-events',
      format: 'csv',
      params: JSON.stringify({ start_date: day, end_date: day }),
      status: 'completed',
      attempts: 1,
      lease_owner: '',
      lease_expires_at: 0,
      rows_written: 0,
      bytes: 0,
      sha256: '',
      file_name: `${jobId}.csv`,
      expires_at: now + 3600_000,
      error: '',
      created_at: now - 1000 + i,
      updated_at: now - 1000 + i,
      version: nextVersion(now),
    });
    ids.push(jobId);
  }
  return ids;
}

describe.skipIf(skip)('claims shared by processes through Redis', () => {
  let engine: TestEngine;
  let redis: TestRedis;
  let redisError: unknown;
  let selfLog: SelfLog;
  const opened: Array<{ close(): Promise<void> }> = [];
  const replicaSets: Replicas[] = [];
  const run = `${Date.now()}`;

  /** Records the attempts it found taken (so a test can show that the processes did race for them). */
  class RecordingClaims extends RedisClaims {
    readonly lost: string[] = [];
    override async claim(...args: Parameters<RedisClaims['claim']>): Promise<boolean> {
      const won = await super.claim(...args);
      if (!won) this.lost.push(`${args[1]}:${args[2]}`);
      return won;
    }
  }

  /** A claim store of one "process", on its own connection, with keys of this run only. */
  const claimStore = () => {
    const c = new RecordingClaims({ url: redis.url, prefix: `test:claims:${run}:` });
    opened.push(c);
    return c;
  };

  const twoReplicas = async (tables: string[]) => {
    const r = await replicas(engine, { lagMs: LAG_MS, tables });
    replicaSets.push(r);
    return r;
  };

  beforeAll(async () => {
    engine = await openTestEngine();
    selfLog = new SelfLog(engine.ch);
    try {
      redis = await startRedis();
    } catch (err) {
      redisError = err;
    }
  });
  // Without redis-server under CI each test fails (a failed hook alone would only mark them skipped).
  beforeEach(() => {
    if (redisError) throw redisError;
  });
  afterAll(async () => {
    for (const c of opened) await c.close();
    await selfLog?.close();
    for (const r of replicaSets) {
      await r.settled();
      await r.dispose();
    }
    await redis?.stop();
    await engine?.dispose();
  });

  describe('export jobs', () => {
    /** The store every worker writes through; `runs` lists the file of each execution started. */
    class CountingStore extends ExportStore {
      readonly runs: string[] = [];
      override write(...args: Parameters<ExportStore['write']>): ReturnType<ExportStore['write']> {
        this.runs.push(args[0]);
        return super.write(...args);
      }
    }

    /** Two worker "processes" on two replicas: `n` jobs queued, both started at once; runs per job counted. */
    async function race(n: number, guarded: boolean) {
      const set = await twoReplicas(['export_jobs']);
      const now = Date.now();
      const jobs = Array.from({ length: n }, (_, i) => queuedJob(i, now));
      for (const j of jobs) await writeJob(set.views[0] as ClickHouse, j);
      await set.settled();
      const store = new CountingStore(`${engine.dataDir}/exports-${randomUUID()}`);
      const stores = set.views.map(() => (guarded ? claimStore() : undefined));
      const workers = set.views.map(
        (ch, i) =>
          new ExportWorker({
            ch,
            source: exportSource(engine.ch, engine.dataDir),
            store,
            selfLog,
            logger,
            leaseMs: 10_000,
            pollMs: 50,
            claimLock: new KeyedMutex(),
            workerId: `worker-${i}`,
            ...(stores[i] ? { claims: stores[i] } : {}),
          }),
      );
      for (const w of workers) w.start();
      try {
        // Every job reaches a final state in both replicas (in the control, two runs of one job may collide).
        await waitFor(
          'every job to finish in both replicas',
          async () => {
            for (const view of set.views) {
              for (const j of jobs) {
                const seen = await getJob(view, j.job_id);
                if (seen?.status !== 'completed' && seen?.status !== 'failed') return false;
              }
            }
            return true;
          },
          { timeoutMs: 60_000, everyMs: 100 },
        );
        // Longer than the lag: a run the slower replica would still start is seen.
        await pause(LAG_MS + 500);
      } finally {
        await Promise.all(workers.map((w) => w.stop()));
        await set.settled();
      }
      const final = await Promise.all(jobs.map((j) => getJob(set.views[0] as ClickHouse, j.job_id)));
      const lost = stores.flatMap((c) => c?.lost ?? []);
      return { jobs, runs: tally(store.runs), final, lost };
    }

    it('control: without the Redis claim, two workers run the first job twice', async () => {
      const { jobs, runs } = await race(3, false);
      expect(runs.get((jobs[0] as ExportJob).file_name)).toBeGreaterThanOrEqual(2);
    });

    it('with the Redis claim, two workers run each of 6 jobs exactly once', async () => {
      const { jobs, runs, final, lost } = await race(6, true);
      // They did race: each worker found attempts the other had taken.
      expect(lost.length).toBeGreaterThan(0);
      expect(jobs.map((j) => runs.get(j.file_name))).toEqual(jobs.map(() => 1));
      expect(final.map((j) => [j?.status, j?.attempts])).toEqual(jobs.map(() => ['completed', 1]));
    });

    it('while Redis is down a worker claims nothing (one warning), and claims again once it is back', async () => {
      const set = await twoReplicas(['export_jobs']);
      const view = set.views[0] as ClickHouse;
      const job = queuedJob(0, Date.now());
      await writeJob(view, job);
      const lines: string[] = [];
      const claims = new RedisClaims({
        url: redis.url,
        prefix: `test:claims:${run}:down:`,
        connectWaitMs: 200,
      });
      opened.push(claims);
      await claims.ready();
      const worker = new ExportWorker({
        ch: view,
        source: exportSource(engine.ch, engine.dataDir),
        store: new ExportStore(`${engine.dataDir}/exports-${randomUUID()}`),
        selfLog,
        logger: pino({ level: 'info' }, { write: (line: string) => lines.push(line) }),
        claimLock: new KeyedMutex(),
        claims,
      });
      try {
        await redis.stop();
        expect(await worker.claim()).toBeUndefined();
        expect(await worker.claim()).toBeUndefined();
        expect((await getJob(view, job.job_id))?.status).toBe('queued');
        const warnings = lines.filter((l) => l.includes('claiming no job'));
        expect(warnings).toHaveLength(1);
        expect(JSON.parse(warnings[0] as string)).toMatchObject({ level: 40 });
        await redis.restart();
        await claims.ready();
        expect((await worker.claim())?.job_id).toBe(job.job_id);
        expect(lines.some((l) => l.includes('answers again'))).toBe(true);
      } finally {
        await worker.stop();
      }
    });
  });

  describe('webhook deliveries', () => {
    async function race(n: number, guarded: boolean) {
      const set = await twoReplicas([
        'export_jobs',
        'export_schedules',
        'export_schedule_runs',
        'webhook_deliveries',
      ]);
      const rx = await receiver();
      const ids = await finishedJobs(set.views[0] as ClickHouse, rx.port, n);
      await set.settled();
      const stores = set.views.map(() => (guarded ? claimStore() : undefined));
      const dispatchers = set.views.map(
        (ch, i) =>
          new WebhookDispatcher({
            ch,
            allow: new WebhookAllowList([`127.0.0.1:${rx.port}`]),
            links: {
              keys: { current: 'k', keys: new Map([['k', Buffer.alloc(32, 5)]]) },
              publicBaseUrl: 'https://t.test',
              urlTtlSeconds: 600,
            },
            selfLog,
            logger,
            timeoutMs: 2000,
            pollMs: 50,
            // What a server uses: shorter than this replication lag.
            claimSettleMs: 500,
            claimLock: new KeyedMutex(),
            dispatcherId: `dispatcher-${i}`,
            ...(stores[i] ? { claims: stores[i] } : {}),
          }),
      );
      for (const d of dispatchers) d.start();
      try {
        await waitFor(
          'every delivery to be recorded as delivered in both replicas',
          async () => {
            for (const view of set.views) {
              for (const id of ids) if ((await getDelivery(view, id))?.state !== 'delivered') return false;
            }
            return true;
          },
          { timeoutMs: 60_000, everyMs: 100 },
        );
        await pause(LAG_MS + 500);
      } finally {
        await Promise.all(dispatchers.map((d) => d.stop()));
        await set.settled();
        await rx.close();
      }
      return { ids, hits: tally(rx.hits), lost: stores.flatMap((c) => c?.lost ?? []) };
    }

    it('control: without the Redis claim, two dispatchers send a webhook twice', async () => {
      const { ids, hits } = await race(3, false);
      expect(Math.max(...ids.map((id) => hits.get(`${id}:completed`) ?? 0))).toBeGreaterThanOrEqual(2);
    });

    it('with the Redis claim, two dispatchers deliver each of 5 webhooks exactly once', async () => {
      const { ids, hits, lost } = await race(5, true);
      expect(lost.length).toBeGreaterThan(0);
      expect(ids.map((id) => hits.get(`${id}:completed`))).toEqual(ids.map(() => 1));
      expect(hits.size).toBe(ids.length);
    });
  });

  describe('Idempotency-Key across API replicas', () => {
    const BODY = JSON.stringify({ report_type: 'system-events', format: 'csv' });
    const nowMs = Date.now();
    const day = utcDay(nowMs);
    const quotaPrefix = `test:quota:${run}:`;

    /** Two app instances ("replicas"), each with its own admission (own lock, own Redis connections). */
    async function apps(set: Replicas, reserve: boolean, waitMs?: number) {
      return Promise.all(
        set.views.map(async (view) => {
          const quota = new RedisQuota({ url: redis.url, prefix: quotaPrefix });
          const claims = reserve ? claimStore() : undefined;
          const admission = new JobAdmission(view, 10, () => nowMs, quota, {
            ...(claims ? { claims } : {}),
            ...(waitMs ? { idempotencyWaitMs: waitMs } : {}),
          });
          opened.push(admission);
          await admission.ready();
          const exports: ExportDeps = {
            ch: view,
            admission,
            store: new ExportStore(`${engine.dataDir}/exports`),
            keys: { current: 'k1', keys: new Map([['k1', Buffer.alloc(32, 3)]]) },
            publicBaseUrl: 'https://tally.example.test',
            urlTtlSeconds: 600,
            now: () => nowMs,
          };
          return createApp({
            ch: engine.ch,
            sink: createDirectSink(engine.ch),
            logger,
            auth: createAuthenticator({ secret: SECRET, issuer: undefined, audience: undefined }),
            exports,
          });
        }),
      );
    }
    type App = Awaited<ReturnType<typeof apps>>[number];

    const post = (app: App, token: string, key: string) =>
      app.request('/reports/export', {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'idempotency-key': key,
        },
        body: BODY,
      });

    /** `n` concurrent requests with one key, spread over the instances in turn. */
    async function burst(instances: App[], sub: string, key: string, n: number) {
      const token = await mintToken(SECRET, { sub, scope: 'report_admin' });
      const answers = await Promise.all(
        Array.from({ length: n }, (_, i) => post(instances[i % instances.length] as App, token, key)),
      );
      const bodies = (await Promise.all(answers.map((a) => a.json()))) as Array<{ job_id?: string }>;
      return { statuses: answers.map((a) => a.status), ids: new Set(bodies.map((b) => b.job_id)) };
    }

    it('control: without the reservation, two replicas make two jobs for one key', async () => {
      const set = await twoReplicas(['export_jobs']);
      const { statuses, ids } = await burst(await apps(set, false), 'zoe', 'key-1', 10);
      expect(statuses).toEqual(Array(10).fill(202));
      expect(ids.size).toBeGreaterThan(1);
      await set.settled();
      expect(await countJobsOnDay(set.views[0] as ClickHouse, 'jwt::zoe', day)).toBe(ids.size);
    });

    it('10 concurrent requests with one key over two replicas: one job id, one job, one job of quota', async () => {
      const set = await twoReplicas(['export_jobs']);
      const { statuses, ids } = await burst(await apps(set, true), 'alice', 'key-1', 10);
      expect(statuses).toEqual(Array(10).fill(202));
      expect(ids.size).toBe(1);
      await set.settled();
      for (const view of set.views) expect(await countJobsOnDay(view, 'jwt::alice', day)).toBe(1);
      const probe = new Redis(redis.url);
      try {
        expect(await probe.get(`${quotaPrefix}${day}:${JSON.stringify('jwt::alice')}`)).toBe('1');
        // The reservation outlives the lag by far: a day.
        const [reservation] = await probe.keys(`test:claims:${run}:idempotency:*`);
        expect(await probe.pttl(reservation as string)).toBeGreaterThan(23 * 3600_000);
      } finally {
        probe.disconnect();
      }
      // Later, the same key again on either replica: the same job, no new one.
      const again = await burst(await apps(set, true), 'alice', 'key-1', 4);
      expect(again.ids).toEqual(ids);
      expect(await countJobsOnDay(set.views[1] as ClickHouse, 'jwt::alice', day)).toBe(1);
    });

    it('a reservation whose job never appears is a 503; a key given up after a 429 is free again', async () => {
      const set = await twoReplicas(['export_jobs']);
      const [app] = await apps(set, true, 600);
      const token = await mintToken(SECRET, { sub: 'bob', scope: 'report_admin' });
      // Another replica reserved the key and died before storing its job.
      await claimStore().reserve('jwt::bob', 'lost', randomUUID(), 60_000);
      const started = Date.now();
      const lost = await post(app as App, token, 'lost');
      expect(lost.status).toBe(503);
      expect(await lost.json()).toMatchObject({ error: 'Service Unavailable' });
      expect(Date.now() - started).toBeLessThan(5000);
      expect(await countJobsOnDay(set.views[0] as ClickHouse, 'jwt::bob', day)).toBe(0);

      // Quota spent (10 of 10): a 429 frees its key, so the same key later is not stuck on a 503.
      const probe = new Redis(redis.url);
      try {
        await probe.set(`${quotaPrefix}${day}:${JSON.stringify('jwt::bob')}`, '10', 'PX', 60_000);
        expect((await post(app as App, token, 'fresh')).status).toBe(429);
        await probe.set(`${quotaPrefix}${day}:${JSON.stringify('jwt::bob')}`, '9', 'PX', 60_000);
      } finally {
        probe.disconnect();
      }
      expect((await post(app as App, token, 'fresh')).status).toBe(202);
    });
  });

  describe('wiring (RATE_LIMIT_REDIS_URL): startExportWorkers, startSchedules, exportDeps', () => {
    it('workers, dispatcher and admission each take their step in the one Redis, and close it on stop', async () => {
      const rx = await receiver();
      const config = loadConfig({
        DATA_DIR: engine.dataDir,
        RATE_LIMIT_REDIS_URL: redis.url,
        WEBHOOK_ALLOWED_HOSTS: `127.0.0.1:${rx.port}`,
        PUBLIC_BASE_URL: 'https://tally.example.test',
        LOG_LEVEL: 'silent',
      });
      const probe = new Redis(redis.url);
      const workers = startExportWorkers(config, engine.ch, logger);
      const services = startSchedules(config, engine.ch, logger, workers.workers, undefined, {
        webhookPollMs: 100,
      });
      const exports = exportDeps(config, engine.ch);
      try {
        const job = queuedJob(0, Date.now());
        await writeJob(engine.ch, job);
        workers.notify();
        await waitFor(
          'the job to complete',
          async () => (await getJob(engine.ch, job.job_id))?.status === 'completed',
          { timeoutMs: 30_000, everyMs: 50 },
        );
        const worker = workers.workers[0] as ExportWorker;
        expect(await probe.get(`tally:claim:export:${job.job_id}:1`)).toBe(worker.id);

        const [delivered] = await finishedJobs(engine.ch, rx.port, 1);
        await waitFor(
          'the webhook to be delivered',
          async () => (await getDelivery(engine.ch, delivered as string))?.state === 'delivered',
          { timeoutMs: 30_000, everyMs: 50 },
        );
        expect(await probe.get(`tally:claim:webhook:${delivered}:1`)).toBe(services.webhooks.id);
        expect(rx.hits).toEqual([`${delivered}:completed`]);

        await exports.admission.ready();
        const { job: made } = await exports.admission.admit(
          {
            userId: 'jwt::wiring',
            reportType: 'system-events',
            format: 'csv',
            params: {},
            idempotencyKey: 'wired',
          },
          (id) => `${id}.csv`,
        );
        const reserved = await probe.keys('tally:claim:idempotency:*');
        const holders = await Promise.all(reserved.map((k) => probe.get(k)));
        expect(holders).toContain(made.job_id);
      } finally {
        await services.stop();
        await workers.stop();
        await exports.admission.close();
        probe.disconnect();
        await rx.close();
      }
    });
  });
});
