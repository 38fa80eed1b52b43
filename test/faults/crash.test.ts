// Crash soak: events stream into Kafka while the service (`bin/start.ts` with Kafka) is killed with SIGKILL at
// seeded random moments and restarted. Afterwards every raw count, every rollup answer and the events per day
// equal the truth: 0 lost, 0 stored twice. FAULTS_EVENTS sets the size (100,000 in npm test, 500,000 in
// test:faults), FAULTS_KILLS the kills (5, or 50 from 500,000 events), FAULTS_SEED the moments (a failing soak
// is re-run with the same kills by passing the seed it printed).
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type ClickHouse, openClickHouse } from '../../clickhouse/client.ts';
import { migrate } from '../../clickhouse/migrate.ts';
import { usageSummary } from '../../clickhouse/queries/usage-summary.ts';
import { createIdempotentProducer, ensureTopics } from '../../ingest/kafka.ts';
import { generateDataset } from '../../ingest/loadgen/generate.ts';
import { Rng } from '../../ingest/loadgen/random.ts';
import { Truth } from '../../ingest/loadgen/truth.ts';
import { publish, route } from '../../ingest/producer.ts';
import { createAudit, eventsPerDay, expectedCounts, storedCounts } from '../helpers/audit.ts';
import {
  detachedParts,
  explainExtraRows,
  explainSummaryMismatch,
  orphanedDedupRecords,
} from '../helpers/exactness.ts';
import { caughtUp, messagesIn, testKafka, uniqueName } from '../helpers/kafka.ts';
import { type Service, startService } from '../helpers/service.ts';
import { waitFor } from '../helpers/wait.ts';

const EVENTS = Number(process.env.FAULTS_EVENTS ?? 100_000);
const KILLS = Number(process.env.FAULTS_KILLS ?? (EVENTS >= 500_000 ? 50 : 5));
const SEED = Number(process.env.FAULTS_SEED ?? 15);
// How long the service runs before each kill, drawn up front so a seed names the whole soak.
const killRng = new Rng(SEED, 'kills');
const runsBeforeKill = Array.from({ length: KILLS }, () => 500 + killRng.next() * 3_000);
const dataDir = mkdtempSync(join(tmpdir(), 'tally-crash-'));
const database = `test_${uniqueName('crash').replace(/[^a-z0-9]/g, '')}`;
const topics = { sessions: uniqueName('crash.sessions'), logs: uniqueName('crash.logs') };
const groupId = uniqueName('crash-group');
const { events } = generateDataset({ events: EVENTS, seed: 77, days: 60, duplicateRate: 0.02 });
const truth = new Truth().addAll(events);
const expected = expectedCounts(events);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Set when the kills are over (or failed): the stream stops waiting for them. */
let streamDone = false;

async function withEngine<T>(fn: (ch: ClickHouse) => Promise<T>): Promise<T> {
  const ch = await openClickHouse({ url: process.env.CLICKHOUSE_URL || undefined, database, dataDir });
  try {
    return await fn(ch);
  } finally {
    await ch.close();
  }
}

describe(`ingester killed ${KILLS} times with SIGKILL (seed ${SEED}) while ${EVENTS} events stream in`, () => {
  const { kafka, brokers } = testKafka();
  const env = {
    DATA_DIR: dataDir,
    CLICKHOUSE_DATABASE: database,
    KAFKA_BROKERS: brokers.join(','),
    KAFKA_TOPIC_SESSIONS: topics.sessions,
    KAFKA_TOPIC_LOGS: topics.logs,
    KAFKA_GROUP_ID: groupId,
    KAFKA_SESSION_TIMEOUT_MS: '6000',
    INGEST_BATCH_ROWS: '2000',
    INGEST_BATCH_WAIT_MS: '200',
    // Most kills then land between a batch's insert and its commit: the case that needs the batch re-formed.
    TALLY_TEST_COMMIT_DELAY_MS: '150',
    AUTH_JWT_SECRET: 'crash-test-secret-crash-test-secret-0123',
    // The service reads the engine this test reads: a server when the runner names one.
    ...(process.env.CLICKHOUSE_URL ? { CLICKHOUSE_URL: process.env.CLICKHOUSE_URL } : {}),
    // A kept soak keeps each start's log too, at info: the batches re-formed, left and retried.
    ...(process.env.FAULTS_KEEP_DATA === '1' ? { LOG_LEVEL: 'info' } : {}),
  };
  /** Each start's stderr, appended to `service-<n>.log` beside a kept soak's engine directory. */
  const keepLog = (svc: Service, n: number) => {
    if (process.env.FAULTS_KEEP_DATA !== '1') return;
    const file = join(dataDir, `service-${n}.log`);
    appendFileSync(file, svc.stderr());
    svc.child.stderr?.on('data', (d: Buffer) => appendFileSync(file, d));
  };
  // FAULTS_KEEP_DATA=1 keeps the engine's directory of a failed soak for a look afterwards (its path is printed).
  let failed = true;
  afterAll(() => {
    if (failed && process.env.FAULTS_KEEP_DATA === '1') console.error(`crash soak data kept in ${dataDir}`);
    else rmSync(dataDir, { recursive: true, force: true });
  });

  // A kill cycle takes 5 to 15 s here (longer on a loaded machine), then the catch-up.
  it('loses nothing and stores nothing twice', { timeout: 300_000 + KILLS * 30_000 }, async () => {
    await withEngine(async (ch) => {
      await migrate(ch);
      await createAudit(ch);
    });
    const admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, [topics.sessions, topics.logs]);
    const producer = createIdempotentProducer(kafka);
    await producer.connect();

    // The stream, paced by the kills: each kill cycle gets its share of the chunks, the first of them as the
    // service is killed, so every restarted ingester has messages to read and every kill lands mid-stream,
    // however long a cycle takes on a loaded machine; the last share comes with the last kill.
    const chunk = 2_500;
    const chunks = Math.ceil(events.length / chunk);
    let published = 0;
    let kills = 0;
    const streaming = (async () => {
      for (let i = 0, c = 0; i < events.length; i += chunk, c++) {
        while (kills < Math.floor((c * KILLS) / chunks) && !streamDone) await sleep(50);
        const lines = events.slice(i, i + chunk).map((e) => JSON.stringify(e));
        await publish(
          producer,
          lines.map((value) => ({ ...route(JSON.parse(value), topics), value })),
        );
        published += lines.length;
        await sleep(1_000);
      }
    })();
    let service: Service | undefined;
    const restarts: { readyMs: number; firstMessageMs: number | null }[] = [];
    // Deduplication records a kill had left without their part, undone by a start (engine/dedup-recovery.ts).
    let recoveredAtStart = 0;
    // Messages in the topics once the stream ends: more than published means the producer wrote a batch twice.
    let inLog = -1;
    // Each ended start's warnings and errors, shown when a deduplication record is left without its part: an
    // insert that failed in the process after its record was written would leave one too (no kill needed).
    const complaints: string[] = [];
    const keepComplaints = (svc: Service, n: number) => {
      for (const line of svc.stderr().split('\n')) {
        if (/"level":(40|50|60)/.test(line)) complaints.push(`start ${n}: ${line.slice(0, 400)}`);
      }
    };
    const countRecovered = (svc: Service) => {
      if (svc.stderr().includes('undid insert-deduplication records')) recoveredAtStart += 1;
    };
    try {
      for (let k = 0; k < KILLS; k++) {
        const spawned = Date.now();
        service = await startService(env);
        keepLog(service, k + 1);
        const ready = Date.now() - spawned;
        // The API listens at once and the ingester joins in the background: how long until it reads again.
        const svc = service;
        const consuming = await waitFor(
          'a message read by the restarted ingester',
          async () => {
            const body = (await (await fetch(`${svc.base}/readyz`)).json()) as {
              components?: { ingester?: { last_message_at?: string } };
            };
            return body.components?.ingester?.last_message_at ? Date.now() - spawned : undefined;
          },
          { timeoutMs: 30_000, everyMs: 100 },
        ).catch(() => undefined);
        restarts.push({ readyMs: ready, firstMessageMs: consuming ?? null });
        countRecovered(svc);
        await sleep(runsBeforeKill[k] ?? 1_000);
        service.child.kill('SIGKILL');
        const { signal } = await service.exited;
        keepComplaints(service, k + 1);
        expect(signal).toBe('SIGKILL');
        kills += 1;
      }
      streamDone = true;
      await streaming;
      expect(published).toBe(events.length);
      service = await startService(env);
      keepLog(service, KILLS + 1);
      countRecovered(service);
      await waitFor(
        'the ingester to catch up',
        () => caughtUp(admin, groupId, [topics.sessions, topics.logs]),
        {
          timeoutMs: 300_000,
          everyMs: 500,
        },
      );
      inLog = await messagesIn(admin, [topics.sessions, topics.logs]);
      service.child.kill('SIGTERM');
      const last = await service.exited;
      keepComplaints(service, KILLS + 1);
      expect(last.code).toBe(0);
    } finally {
      streamDone = true;
      if (service && service.child.exitCode === null && service.child.signalCode === null)
        service.child.kill('SIGKILL');
      await streaming.catch(() => undefined);
      await producer.disconnect();
      await admin
        .deleteTopics({ topics: Object.values(topics).flatMap((t) => [t, `${t}.dlq`]) })
        .catch(() => undefined);
      await admin.disconnect();
    }

    await withEngine(async (ch) => {
      const stored = await storedCounts(ch);
      // Deduplication records a kill left without their part: each one a block lost in its table on the retry.
      const orphans = await orphanedDedupRecords(ch);
      const figures = {
        events: EVENTS,
        kills,
        in_log: inLog,
        lost: expected.published - Math.min(stored.inserted, expected.published),
        duplicated: Math.max(0, stored.inserted - expected.published),
      };
      const lines = restarts.map(
        (r, i) =>
          `  restart ${i + 1}: /readyz ${r.readyMs} ms, first message read ${r.firstMessageMs ?? 'none within 30 s'}${r.firstMessageMs === null ? '' : ' ms'}`,
      );
      const ready = restarts.map((r) => r.readyMs).sort((a, b) => a - b);
      const first = restarts.flatMap((r) => (r.firstMessageMs === null ? [] : [r.firstMessageMs]));
      first.sort((a, b) => a - b);
      const mid = (xs: number[]) => xs[Math.floor(xs.length / 2)] ?? null;
      console.info(
        [
          `crash soak (seed ${SEED}): ${JSON.stringify(figures)}`,
          `  deduplication records without their part: ${orphans.length} (starts that undid such records: ${recoveredAtStart})`,
          ...orphans.map((o) => `    ${o.table} ${o.part} ${o.blockId} (record ${o.at} of ${o.of})`),
          ...(orphans.length > 0
            ? [
                `  detached parts: ${JSON.stringify(await detachedParts(ch))}`,
                `  warnings and errors of the starts (${complaints.length}):`,
                ...complaints.slice(-40).map((l) => `    ${l}`),
              ]
            : []),
          `  from each start: /readyz median ${mid(ready)} ms, max ${ready.at(-1) ?? null} ms; first message read median ${mid(first)} ms, max ${first.at(-1) ?? null} ms`,
          ...lines,
        ].join('\n'),
      );
      // A wrong answer says why in the log: the path that answered, the keys each usage table holds differently
      // from the truth (and the orphaned deduplication records above).
      const wrong: string[] = [];
      for (const q of truth.sampleQueries(20, 3)) {
        const a = await usageSummary(ch, q);
        const want = truth.usageSummary(q);
        const same = (Object.keys(want) as (keyof typeof want)[]).every((k) => a[k] === want[k]);
        if (same) continue;
        wrong.push(`usage summary ${JSON.stringify(q)}: ${JSON.stringify(a)}, truth ${JSON.stringify(want)}`);
        wrong.push(...(await explainSummaryMismatch(ch, events, q)));
      }
      if (stored.inserted !== expected.published) wrong.push(...(await explainExtraRows(ch, events)));
      if (wrong.length > 0) {
        console.error([`crash soak (seed ${SEED}): wrong answers`, ...wrong].join('\n'));
      }
      expect(kills).toBe(KILLS);
      // The log holds each published message once: extra rows below are then the ingester's.
      expect(inLog).toBe(expected.published);
      // Each published message became exactly one inserted row: none lost, none written twice by a replay.
      expect(stored.inserted).toBe(expected.published);
      expect({ usage: stored.usage, logs: stored.logs }).toEqual({
        usage: expected.usage,
        logs: expected.logs,
      });
      expect(await eventsPerDay(ch)).toEqual(expected.perDay);
      expect(wrong).toEqual([]);
      expect(orphans).toEqual([]);
      failed = false;
    });
  });
});
