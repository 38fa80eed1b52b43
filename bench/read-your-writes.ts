// Read-your-writes benchmark: what `POST /events?wait=stored` costs through Kafka. The same small requests
// (10 usage events each, one client, sequential) are sent without the parameter (202 once the broker
// acknowledged: the baseline) and with it (200 once the ingester's committed offsets pass them), against the
// real ingester with its default batching, in the same run. Writes the read-your-writes section of
// bench/RESULTS.md.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp } from '../api/app.ts';
import { createAuthenticator } from '../api/middleware/auth.ts';
import { openClickHouse } from '../clickhouse/client.ts';
import { insertEvents } from '../clickhouse/inserts.ts';
import { migrate } from '../clickhouse/migrate.ts';
import { loadConfig } from '../core/config.ts';
import { createLogger } from '../core/logger.ts';
import { mintToken } from '../core/tokens.ts';
import { Ingester } from '../ingest/consumer.ts';
import { connectAdmin, createIdempotentProducer, createKafka, ensureTopics } from '../ingest/kafka.ts';
import { createKafkaSink, PartitionMap } from '../ingest/producer.ts';
import { StoredWatcher } from '../ingest/stored-wait.ts';
import { machine } from './machine.ts';
import { benchOptions } from './options.ts';
import { fmtSpread, percentile, spread, writeSection } from './stats.ts';

const opts = benchOptions();
const REQUESTS = opts.quick ? 30 : 100;
const SECRET = 'bench-ryw-secret-bench-ryw-secret-0123456';
const defaults = loadConfig({}).ingest;
const brokers = ['127.0.0.1:9092'];
const log = (s: string) => process.stderr.write(`bench read-your-writes: ${s}\n`);
const logger = createLogger('silent');
const run = `${Date.now()}`;
const topics = { sessions: `bench-ryw.sessions.${run}`, logs: `bench-ryw.logs.${run}` };
const groupId = `bench-ryw-${run}`;

const dir = mkdtempSync(join(tmpdir(), 'tally-bench-ryw-'));
const ch = await openClickHouse({ url: undefined, database: 'bench', dataDir: dir });
await migrate(ch);
const kafka = createKafka({ brokers, clientId: 'tally-bench', logger });
const admin = await connectAdmin(kafka, brokers);
await ensureTopics(admin, [topics.sessions, topics.logs]);
const producer = createIdempotentProducer(kafka);
await producer.connect();
const ingester = new Ingester({
  kafka,
  write: (rows, token) => insertEvents(ch, rows, token),
  topics: [topics.sessions, topics.logs],
  groupId,
  limits: { rows: defaults.batchRows, bytes: defaults.batchBytes, waitMs: defaults.batchWaitMs },
  logger,
});
await ingester.start();
const app = createApp({
  ch,
  sink: createKafkaSink(producer, topics, new PartitionMap(admin), new StoredWatcher(admin, groupId)),
  logger,
  auth: createAuthenticator({ secret: SECRET, issuer: undefined, audience: undefined }),
});
const token = await mintToken(SECRET, { sub: 'bench', scope: 'write:events' });

let seq = 0;
async function post(query: string): Promise<number> {
  const n = ++seq;
  const body = Array.from({ length: 10 }, (_, k) => ({
    event_id: `ryw-${run}-${n}-${k}`,
    type: 'activity',
    timestamp: '2025-06-01T12:00:00Z',
    user_id: `u${n}-${k}`,
    team_id: 'bench',
    service: 'ryw',
  }));
  const t0 = performance.now();
  const res = await app.request(`/events${query}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const ms = performance.now() - t0;
  const expected = query ? 200 : 202;
  if (res.status !== expected) throw new Error(`POST /events${query}: ${res.status} ${await res.text()}`);
  return ms;
}

async function series(query: string): Promise<{ p50: number; p99: number }> {
  for (let i = 0; i < 5; i++) await post(query);
  const ms: number[] = [];
  for (let i = 0; i < REQUESTS; i++) ms.push(await post(query));
  ms.sort((a, b) => a - b);
  return { p50: percentile(ms, 50), p99: percentile(ms, 99) };
}

const acked: Array<{ p50: number; p99: number }> = [];
const stored: Array<{ p50: number; p99: number }> = [];
for (let i = 0; i < opts.repeats; i++) {
  acked.push(await series(''));
  stored.push(await series('?wait=stored'));
  log(
    `run ${i + 1}: acknowledged p50 ${acked.at(-1)?.p50.toFixed(1)} ms, stored p50 ${stored.at(-1)?.p50.toFixed(1)} ms`,
  );
}
const row = (name: string, xs: Array<{ p50: number; p99: number }>) =>
  `| ${name} | ${fmtSpread(spread(xs.map((x) => x.p50)))} | ${fmtSpread(spread(xs.map((x) => x.p99)))} |`;
const body = `## Read-your-writes (\`bench/read-your-writes.ts\`)

Run ${new Date().toISOString().slice(0, 10)}, ${await machine(ch)}; broker: local single-node Kafka on the same machine.
${REQUESTS} sequential \`POST /events\` of 10 usage events each per series, one client, through Kafka to the real
ingester with its default batching (flush at ${defaults.batchRows.toLocaleString('en-US')} rows or after ${defaults.batchWaitMs} ms). Median (min–max) of ${opts.repeats} runs, milliseconds.

| request | p50 | p99 |
|---|---:|---:|
${row('POST /events (202: acknowledged by Kafka, the baseline)', acked)}
${row('POST /events?wait=stored (200: queryable)', stored)}

The wait is bounded below by the ingester's batch wait (\`INGEST_BATCH_WAIT_MS\`): a lone request's events wait
that long for company before they are inserted and committed. The offsets are polled every 50 ms, one poll for
all waiting requests.
`;
writeSection(join('bench', 'RESULTS.md'), 'read-your-writes', body);
log('wrote bench/RESULTS.md');
await ingester.stop();
await producer.disconnect();
await admin
  .deleteTopics({ topics: [topics.sessions, topics.logs, `${topics.sessions}.dlq`, `${topics.logs}.dlq`] })
  .catch(() => undefined);
await admin.disconnect();
await ch.close();
rmSync(dir, { recursive: true, force: true });
