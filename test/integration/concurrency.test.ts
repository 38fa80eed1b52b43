// A property of the whole service under load: any request answers the same when other work runs beside it as
// when it runs alone. Random mixes (fast-check) of every read route (JSON and CSV), exports of both formats and
// report types, failed authentications (which write self-logs), ingestion into other teams, and, underneath,
// schedules catching up missed periods and their webhooks being dispatched. Everything else happens outside
// the reads' ranges and filters, so "the same answer" is exactly what must hold.

import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiExports, exportParts, runExportWorkers, runSchedules, startApi } from '../../bin/runtime.ts';
import { SelfLog } from '../../clickhouse/self-log.ts';
import { createSchedule } from '../../control/schedules.ts';
import { loadConfig } from '../../core/config.ts';
import { parseEvent } from '../../core/events.ts';
import { createLogger } from '../../core/logger.ts';
import { mintToken } from '../../core/tokens.ts';
import { createDirectSink } from '../../ingest/direct.ts';
import { generateDataset } from '../../ingest/loadgen/generate.ts';
import { Truth } from '../../ingest/loadgen/truth.ts';
import type { ExportWorkers } from '../../worker/exports/setup.ts';
import type { ScheduleServices } from '../../worker/schedules/setup.ts';
import { memoryControl } from '../helpers/control.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { uniqueName } from '../helpers/kafka.ts';
import { freePort } from '../helpers/service.ts';
import { waitFor } from '../helpers/wait.ts';

const SECRET = 'concurrency-secret-concurrency-secret-0123';
// The reads' world: 45 days of spring 2025. Other work writes in autumn 2025 (ingestion) or now (self-logs).
const DATA_START = '2025-04-01';
const DAYS = 45;
const { events } = generateDataset({
  events: 20_000,
  seed: 77,
  days: DAYS,
  start: DATA_START,
  duplicateRate: 0.02,
});
const catalog = new Truth().addAll(events).catalog();
const dayOf = (i: number) =>
  new Date(Date.parse(`${DATA_START}T00:00:00Z`) + i * 86_400_000).toISOString().slice(0, 10);

type Op =
  | { kind: 'read'; path: string; csv: boolean }
  | { kind: 'export'; body: Record<string, string> }
  | { kind: 'bad-auth'; path: string }
  | { kind: 'ingest-other'; n: number };

const range = fc
  .tuple(fc.integer({ min: 0, max: DAYS + 5 }), fc.integer({ min: 0, max: 60 }))
  .map(([a, len]) => ({ start_date: dayOf(a - 3), end_date: dayOf(Math.min(a - 3 + len, DAYS + 5)) }));
const usageFilter = fc.oneof(
  fc.constant({}),
  fc.constantFrom(...catalog.teams).map((team_id) => ({ team_id })),
  fc.constantFrom(...catalog.services).map((service) => ({ service })),
);
const qs = (o: Record<string, string | number | undefined>) =>
  new URLSearchParams(Object.entries(o).filter(([, v]) => v !== undefined) as [string, string][]).toString();

const readOp: fc.Arbitrary<Op> = fc.oneof(
  fc.tuple(range, usageFilter, fc.boolean()).map(([r, f, csv]) => ({
    kind: 'read' as const,
    path: `/reports/usage-summary?${qs({ ...r, ...f })}`,
    csv,
  })),
  fc
    .tuple(
      range,
      fc.constantFrom('day', 'week', 'month'),
      fc.constantFrom(undefined, 'team', 'service'),
      fc.boolean(),
    )
    .map(([r, interval, group_by, csv]) => ({
      kind: 'read' as const,
      path: `/reports/usage-timeseries?${qs({ ...r, interval, group_by })}`,
      csv,
    })),
  fc
    .tuple(
      range,
      fc.integer({ min: 1, max: 200 }),
      fc.integer({ min: 1, max: 6 }),
      fc.constantFrom(undefined, 'info', 'warning', 'error'),
      fc.boolean(),
    )
    .map(([r, limit, page, severity, csv]) => ({
      kind: 'read' as const,
      path: `/logs/system-events?${qs({ ...r, limit, page, severity })}`,
      csv,
    })),
);
const exportOp: fc.Arbitrary<Op> = fc
  .tuple(range, fc.constantFrom('usage-summary', 'system-events'), fc.constantFrom('csv', 'parquet'))
  .map(([r, report_type, format]) => ({ kind: 'export' as const, body: { ...r, report_type, format } }));
const disturbance: fc.Arbitrary<Op> = fc.oneof(
  fc
    .constantFrom('/reports/usage-summary?start_date=2025-04-01&end_date=2025-04-02', '/logs/system-events')
    .map((path) => ({ kind: 'bad-auth' as const, path })),
  fc.integer({ min: 1, max: 500 }).map((n) => ({ kind: 'ingest-other' as const, n })),
);
const mix = fc.tuple(
  fc.array(readOp, { minLength: 4, maxLength: 14 }),
  fc.array(exportOp, { maxLength: 2 }),
  fc.array(disturbance, { minLength: 1, maxLength: 8 }),
);

describe('answers under concurrency equal answers alone', () => {
  const logger = createLogger('warn');
  let engine: TestEngine;
  let api: Awaited<ReturnType<typeof startApi>>;
  let workers: ExportWorkers;
  let schedules: ScheduleServices;
  let selfLog: SelfLog | undefined;
  let hooks: Server;
  const deliveries = new Map<string, number>();
  let token: string;
  let exporter: number = 0;
  let otherSeq = 0;

  beforeAll(async () => {
    engine = await openTestEngine();
    const hookPort = await new Promise<number>((resolve) => {
      hooks = createServer((req, res) => {
        const id = String(req.headers['x-tally-delivery']);
        deliveries.set(id, (deliveries.get(id) ?? 0) + 1);
        req.resume();
        req.on('end', () => res.writeHead(204).end());
      }).listen(0, '127.0.0.1', () => resolve((hooks.address() as AddressInfo).port));
    });
    const port = await freePort();
    const config = loadConfig({
      DATA_DIR: engine.dataDir,
      PORT: String(port),
      AUTH_JWT_SECRET: SECRET,
      RATE_LIMIT_PER_MINUTE: '1000000',
      EXPORT_JOBS_PER_DAY: '100000',
      SCHEDULER_INTERVAL_SECONDS: '1',
      WEBHOOK_ALLOWED_HOSTS: `127.0.0.1:${hookPort}`,
    });
    const sink = createDirectSink(engine.ch);
    const now = Date.now();
    for (let i = 0; i < events.length; i += 5_000) {
      await sink.write(
        events.slice(i, i + 5_000).flatMap((raw) => {
          const r = parseEvent(raw, now);
          return r.ok ? [{ raw, event: r.event }] : [];
        }),
      );
    }
    const control = await memoryControl();
    selfLog = new SelfLog(engine.ch);
    const shared = { ch: engine.ch, control, logger, selfLog, parts: exportParts(config) };
    workers = runExportWorkers(config, shared);
    const exports = apiExports(config, shared, workers.notify);
    schedules = runSchedules(config, shared, workers, { webhookPollMs: 200 });
    api = await startApi(config, shared, { sink, secret: SECRET, exports });
    token = await mintToken(SECRET, { sub: 'mixer' });
    // Schedules created days ago: the scheduler catches their missed periods up while the mixes run.
    for (const [i, report_type] of (['usage-summary', 'system-events'] as const).entries()) {
      await createSchedule(
        await memoryControl(),
        {
          schedule_id: uniqueName('sched'),
          user_id: 'scheduler-owner',
          report_type,
          format: i === 0 ? 'csv' : 'parquet',
          cadence: 'daily',
          params: '{}',
          webhook_url: `http://127.0.0.1:${hookPort}/hook`,
          webhook_secret: 'whsec-concurrency',
          created_at: Date.now() - 4 * 86_400_000,
        },
        10,
      );
    }
  });

  afterAll(async () => {
    await api?.stop();
    await schedules?.stop();
    await workers?.stop();
    await selfLog?.close();
    hooks?.close();
    await engine?.dispose();
  });

  const auth = { authorization: () => `Bearer ${token}` };

  /** One op's answer, as comparable data (status plus body, or a digest of an export's file). */
  async function run(op: Op): Promise<unknown> {
    const base = api.url;
    switch (op.kind) {
      case 'read': {
        const res = await fetch(`${base}${op.path}${op.csv ? '&format=csv' : ''}`, {
          headers: { authorization: auth.authorization() },
        });
        return { status: res.status, body: await res.text() };
      }
      case 'bad-auth': {
        const res = await fetch(`${base}${op.path}`, { headers: { authorization: 'Bearer not-a-token' } });
        return { status: res.status };
      }
      case 'ingest-other': {
        const seq = ++otherSeq;
        const batch = Array.from({ length: op.n }, (_, k) => ({
          event_id: `other-${seq}-${k}`,
          type: 'activity',
          timestamp: `2025-09-${String(1 + (k % 28)).padStart(2, '0')}T08:00:00Z`,
          user_id: `other-user-${k}`,
          team_id: `other-team-${seq % 7}`,
          service: 'other',
        }));
        const res = await fetch(`${base}/events`, {
          method: 'POST',
          headers: { authorization: auth.authorization(), 'content-type': 'application/json' },
          body: JSON.stringify(batch),
        });
        return { status: res.status, body: await res.json() };
      }
      case 'export': {
        // A user per export: the daily quota is not what this test is about.
        const user = await mintToken(SECRET, { sub: `exporter-${++exporter}` });
        const res = await fetch(`${base}/reports/export`, {
          method: 'POST',
          headers: { authorization: `Bearer ${user}`, 'content-type': 'application/json' },
          body: JSON.stringify(op.body),
        });
        if (res.status !== 202) return { status: res.status, body: await res.text() };
        const { job_id } = (await res.json()) as { job_id: string };
        const done = await waitFor(
          `export ${job_id}`,
          async () => {
            const j = (await (
              await fetch(`${base}/reports/export/${job_id}`, {
                headers: { authorization: `Bearer ${user}` },
              })
            ).json()) as { status: string; download_url?: string; error?: string };
            return j.status === 'completed' || j.status === 'failed' ? j : undefined;
          },
          { timeoutMs: 60_000, everyMs: 100 },
        );
        if (!done.download_url) return { status: done.status, error: done.error };
        const file = Buffer.from(await (await fetch(done.download_url)).arrayBuffer());
        return { status: done.status, sha256: createHash('sha256').update(file).digest('hex') };
      }
    }
  }

  it("for random mixes of reads, exports, failed logins and other teams' ingestion", async () => {
    await fc.assert(
      fc.asyncProperty(mix, async ([reads, exports, noise]) => {
        const checked = [...reads, ...exports];
        const alone: unknown[] = [];
        for (const op of checked) alone.push(await run(op));
        // All at once, in a shuffled order, with the disturbances among them.
        const all = [...checked.map((op, i) => ({ op, i })), ...noise.map((op) => ({ op, i: -1 }))];
        all.sort(() => Math.random() - 0.5);
        const together = await Promise.all(all.map(async ({ op, i }) => ({ i, op, answer: await run(op) })));
        for (const t of together) {
          if (t.i < 0) {
            expect(t.answer, JSON.stringify(t.op)).toMatchObject({
              status: t.op.kind === 'bad-auth' ? 401 : 202,
            });
          } else {
            expect({ op: t.op, answer: t.answer }).toEqual({ op: t.op, answer: alone[t.i] });
          }
        }
        // Answers worth comparing: every read served, every export completed.
        checked.forEach((op, i) => {
          expect({ op, answer: alone[i] }).toMatchObject({
            answer: { status: op.kind === 'export' ? 'completed' : 200 },
          });
        });
      }),
      { numRuns: 10 },
    );
  });

  it('caught up every missed period of the schedules and delivered each webhook', async () => {
    // Two daily schedules created four days ago: four closed days each (today is still open).
    await waitFor('each caught-up job to be delivered', async () => deliveries.size >= 8, {
      timeoutMs: 90_000,
      everyMs: 250,
    });
    expect(deliveries.size).toBe(8);
  });
});
