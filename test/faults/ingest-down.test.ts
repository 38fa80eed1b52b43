// Consumption broken for a while (a broker of its own, stopped, then started again): the service starts and
// listens with the broker down (POST /events 503 with Retry-After), the ingest role's /readyz turns 503 naming
// the reason, `npm start`'s /readyz stays 200 and shows it, /metrics has tally_ingest_up 0, an error system log
// says what and since when; the ingester resumes alone when the broker is back, and the totals are exact.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProbeApp } from '../../api/probes.ts';
import { insertEvents } from '../../clickhouse/inserts.ts';
import { SelfLog } from '../../clickhouse/self-log.ts';
import type { IngestStatus } from '../../core/health.ts';
import { createLogger } from '../../core/logger.ts';
import { mintToken } from '../../core/tokens.ts';
import type { Ingester } from '../../ingest/consumer.ts';
import { type Admin, createIdempotentProducer, createKafka, ensureTopics } from '../../ingest/kafka.ts';
import { createAudit, overlaps, scalar, storedCounts } from '../helpers/audit.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { testIngester } from '../helpers/ingest.ts';
import { caughtUp, uniqueName } from '../helpers/kafka.ts';
import { type Service, startService } from '../helpers/service.ts';
import { waitFor } from '../helpers/wait.ts';

// A port no other test file uses: this broker is stopped on purpose.
const PORT = 19292;
const runDir = mkdtempSync(join(tmpdir(), 'tally-broker-'));
const brokerEnv = {
  ...process.env,
  KAFKA_PORT: String(PORT),
  KAFKA_CONTROLLER_PORT: String(PORT + 1),
  KAFKA_RUN_DIR: runDir,
};
const broker = (cmd: 'up' | 'down') =>
  execFileSync('bash', ['scripts/kafka.sh', cmd], { env: brokerEnv, stdio: 'pipe' });
const BROKERS = `127.0.0.1:${PORT}`;
const SECRET = 'ingest-down-secret-ingest-down-secret-0123';

const topics = { sessions: uniqueName('down.sessions'), logs: uniqueName('down.logs') };
const serviceTopics = { sessions: uniqueName('svc.sessions'), logs: uniqueName('svc.logs') };

const usage = (id: string, i: number) => ({
  event_id: id,
  type: 'activity',
  timestamp: `2025-06-${String(1 + (i % 28)).padStart(2, '0')}T10:00:00Z`,
  user_id: `u${i % 50}`,
  team_id: 't1',
  service: 'billing',
});

describe('consumption broken for a while', () => {
  const kafka = createKafka({ brokers: [BROKERS], clientId: 'ingest-down', logger: createLogger('silent') });
  let engine: TestEngine;
  let service: Service | undefined;
  let dataDir: string;
  let ingester: Ingester | undefined;
  let admin: Admin | undefined;
  const faults: { kind: string; message: string }[] = [];
  // Every insert and its token, to name the batches behind a count that is off.
  const writes: { member: string; token: string; at: number }[] = [];

  beforeAll(async () => {
    broker('down');
    engine = await openTestEngine();
    await createAudit(engine.ch);
    dataDir = mkdtempSync(join(tmpdir(), 'tally-down-'));
  });
  afterAll(async () => {
    service?.child.kill('SIGKILL');
    await Promise.race([ingester?.stop().catch(() => undefined), new Promise((r) => setTimeout(r, 10_000))]);
    await admin?.disconnect().catch(() => undefined);
    broker('down');
    rmSync(runDir, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
    await engine?.dispose();
  });

  it('starts with the broker down, reports an outage within 30 s, resumes alone, exact', async () => {
    // 1. The service starts and listens with no broker; POST /events says 503 with Retry-After.
    const started = Date.now();
    service = await startService({
      KAFKA_BROKERS: BROKERS,
      KAFKA_TOPIC_SESSIONS: serviceTopics.sessions,
      KAFKA_TOPIC_LOGS: serviceTopics.logs,
      KAFKA_GROUP_ID: uniqueName('svc-group'),
      DATA_DIR: dataDir,
      AUTH_JWT_SECRET: SECRET,
      LOG_LEVEL: 'silent',
    });
    const readyAfterMs = Date.now() - started;
    const token = await mintToken(SECRET, { sub: 'down-test' });
    const auth = { authorization: `Bearer ${token}` };
    const svc = service;
    const post = (events: object[]) =>
      fetch(`${svc.base}/events`, { method: 'POST', headers: auth, body: JSON.stringify(events) });
    const down = await post([usage('svc-0', 0)]);
    expect(down.status).toBe(503);
    expect(Number(down.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await down.json()).toMatchObject({
      error: 'Service Unavailable',
      message: expect.stringMatching(/Kafka/),
    });
    const early = (await (await fetch(`${svc.base}/readyz`)).json()) as {
      components: { ingester: IngestStatus };
    };
    expect(early.components.ingester.state).not.toBe('consuming');
    expect(early.components.ingester.reason).toBeTruthy();

    // 2. The broker comes up: the service's producer and ingester connect by themselves.
    broker('up');
    const back = Date.now();
    await waitFor(
      'POST /events to be accepted',
      async () => (await post([usage('svc-1', 1)])).status === 202,
      {
        timeoutMs: 60_000,
        everyMs: 500,
      },
    );
    await waitFor(
      'the service to store the event',
      async () => {
        const res = await fetch(
          `${svc.base}/reports/usage-summary?start_date=2025-06-01&end_date=2025-06-30`,
          {
            headers: auth,
          },
        );
        return res.status === 200 && ((await res.json()) as { active_users: number }).active_users === 1;
      },
      { timeoutMs: 60_000, everyMs: 500 },
    );
    const consumingAfterMs = Date.now() - back;

    // 3. An in-process ingester behind the ingest role's probes.
    admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, [topics.sessions, topics.logs]);
    const selfLog = new SelfLog(engine.ch);
    ingester = testIngester({
      kafka,
      engine,
      topics,
      groupId: uniqueName('down-group'),
      write: (rows, token) => {
        writes.push({ member: 'down', token, at: Date.now() });
        return insertEvents(engine.ch, rows, token);
      },
      reportFault: (kind, message) => {
        faults.push({ kind, message });
        selfLog.record('error', kind, message);
      },
    });
    await ingester.start();
    const probes = createProbeApp({ ch: engine.ch, logger: createLogger('silent'), ingester });
    const producer = createIdempotentProducer(kafka);
    await producer.connect();
    const first = Array.from({ length: 1_000 }, (_, i) => usage(`a-${i}`, i));
    await producer.send({
      topic: topics.sessions,
      acks: -1,
      messages: first.map((e) => ({ key: e.user_id, value: JSON.stringify(e) })),
    });
    await producer.disconnect();
    const groupId = (ingester as unknown as { opts: { groupId: string } }).opts.groupId;
    await waitFor('the first events', () => caughtUp(admin as Admin, groupId, [topics.sessions]));
    const ok = await probes.request('/readyz');
    expect(ok.status).toBe(200);
    const okBody = (await ok.json()) as { components: { ingester: IngestStatus } };
    expect(okBody.components.ingester).toMatchObject({ state: 'consuming', failing: false });

    // 4. The broker goes away.
    broker('down');
    const stopped = Date.now();
    await waitFor(
      'tally_ingest_up 0 on the service',
      async () => /^tally_ingest_up 0$/m.test(await (await fetch(`${svc.base}/metrics`)).text()),
      { timeoutMs: 30_000, everyMs: 500 },
    );
    const metricsAfterMs = Date.now() - stopped;
    // The service's producer notices on its first send and answers 503 at once after that.
    const whileDown = await post([usage('svc-2', 2)]);
    expect(whileDown.status).toBe(503);
    expect(whileDown.headers.get('retry-after')).toBeTruthy();
    const t = Date.now();
    expect((await post([usage('svc-3', 3)])).status).toBe(503);
    expect(Date.now() - t).toBeLessThan(1_000);
    const refused = await waitFor(
      'the ingest role to answer 503',
      async () => {
        const res = await probes.request('/readyz');
        return res.status === 503 ? res : undefined;
      },
      { timeoutMs: 45_000, everyMs: 500 },
    );
    const readyzAfterMs = Date.now() - stopped;
    expect(refused.headers.get('retry-after')).toBeTruthy();
    const refusedBody = (await refused.json()) as { message: string; components: { ingester: IngestStatus } };
    expect(refusedBody.message).toMatch(/^ingester cannot consume since \d{4}-/);
    expect(refusedBody.components.ingester.failing).toBe(true);
    // npm start keeps serving (200) and shows the same in its body.
    const svcReady = await fetch(`${svc.base}/readyz`);
    expect(svcReady.status).toBe(200);
    await waitFor('the service body to show the failing ingester', async () => {
      const b = (await (await fetch(`${svc.base}/readyz`)).json()) as {
        components: { ingester: IngestStatus };
      };
      return b.components.ingester.failing && b.components.ingester.reason;
    });
    await waitFor('an error system log', async () => faults.some((f) => f.kind === 'ingest.down'), {
      timeoutMs: 15_000,
    });
    expect(faults.find((f) => f.kind === 'ingest.down')?.message).toMatch(/cannot consume since \d{4}-.*: /);
    await selfLog.flush();
    const logged = await engine.ch.client.query({
      query:
        "SELECT message FROM log_events WHERE service = 'tally' AND severity = 'error' AND message LIKE '[ingest.down]%'",
      format: 'JSONEachRow',
    });
    expect((await logged.json()).length).toBeGreaterThanOrEqual(1);
    const svcLogs = await waitFor('the service to log it too', async () => {
      const res = await fetch(`${svc.base}/logs/system-events?service=tally&severity=error`, {
        headers: auth,
      });
      const body = (await res.json()) as { events: { message: string }[] };
      // Newest first: a later summary of rate-limited records of the same kind may come before it.
      return body.events.find((e) => e.message.startsWith('[ingest.down] ingestion cannot consume'));
    });
    expect(svcLogs.message).toMatch(/cannot consume since/);

    // 5. The broker is back: the ingester resumes alone, and nothing is lost or stored twice.
    broker('up');
    const restarted = Date.now();
    // The broker's JVM starts, then the consumer's backoff (up to 30 s) and a group join: well under a minute on
    // a quiet machine; 90 s was once not enough while the crash soak shared the 2 cores.
    await waitFor(
      'the ingest role to be ready again',
      async () => (await probes.request('/readyz')).status === 200,
      {
        timeoutMs: 180_000,
        everyMs: 500,
      },
    );
    const resumedAfterMs = Date.now() - restarted;
    await waitFor(
      'POST /events to be accepted again',
      async () => (await post([usage('svc-4', 4)])).status === 202,
      {
        timeoutMs: 60_000,
        everyMs: 500,
      },
    );
    const again = createIdempotentProducer(kafka);
    await again.connect();
    const second = Array.from({ length: 1_000 }, (_, i) => usage(`b-${i}`, i));
    await again.send({
      topic: topics.sessions,
      acks: -1,
      messages: second.map((e) => ({ key: e.user_id, value: JSON.stringify(e) })),
    });
    await again.disconnect();
    await waitFor('every event', () => caughtUp(admin as Admin, groupId, [topics.sessions]), {
      timeoutMs: 90_000,
    });
    const stored = await storedCounts(engine.ch);
    // The service's own records (the crash, the outage) are log rows too; the audit counts events only.
    stored.inserted -= await scalar(
      engine.ch,
      "SELECT count() FROM test_ingest_audit WHERE startsWith(event_id, 'tally-')",
    );
    // A producer's retry across the restart may write a message twice: each message in the log is stored once.
    const inLog = (await (admin as Admin).fetchTopicOffsets(topics.sessions)).reduce(
      (n, p) => n + Number(p.high) - Number(p.low),
      0,
    );
    console.log(
      `ingest-down: ${inLog} messages in the topic, ${stored.inserted} rows inserted, ${stored.usage} events`,
    );
    if (stored.inserted !== inLog)
      console.log(
        `ingest-down: overlapping batches ${overlaps(writes).join('; ')}; writes ${writes.map((w) => w.token).join(' ')}`,
      );
    expect(stored.usage).toBe(2_000);
    expect(stored.inserted).toBe(inLog);
    await waitFor('the lag to read 0', async () => {
      const b = (await (await probes.request('/readyz')).json()) as {
        components: { ingester: IngestStatus };
      };
      return b.components.ingester.lag[topics.sessions]?.messages === 0;
    });
    console.log(
      `ingest-down: service ready with the broker down after ${readyAfterMs} ms; consuming ${consumingAfterMs} ms after the broker came up; ` +
        `tally_ingest_up 0 after ${metricsAfterMs} ms, ingest role 503 after ${readyzAfterMs} ms; resumed ${resumedAfterMs} ms after the broker came back`,
    );
    expect(readyAfterMs).toBeLessThan(20_000);
    expect(metricsAfterMs).toBeLessThan(30_000);
  });
});
