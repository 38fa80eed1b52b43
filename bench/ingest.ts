// Ingest benchmark: N seeded generator events produced to the local broker, then consumed by the real
// ingester into a fresh embedded engine: events/s from the first consumed message until every message is
// inserted (materialized views fill the rollups within each insert, so the rollups are then complete), and
// the process's peak RSS. Baseline: the same rows inserted straight into the engine in one go. Also events/s
// of POST /events in embedded mode. Writes the ingest section of bench/RESULTS.md.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp } from '../api/app.ts';
import { createAuthenticator } from '../api/middleware/auth.ts';
import { type ClickHouse, openClickHouse } from '../clickhouse/client.ts';
import { type EventRows, insertEvents } from '../clickhouse/inserts.ts';
import { migrate } from '../clickhouse/migrate.ts';
import { loadConfig } from '../core/config.ts';
import { createLogger } from '../core/logger.ts';
import { mintToken } from '../core/tokens.ts';
import { Ingester } from '../ingest/consumer.ts';
import { decodeMessage } from '../ingest/decode.ts';
import { createDirectSink } from '../ingest/direct.ts';
import { connectAdmin, createKafka, createProducer, ensureTopics } from '../ingest/kafka.ts';
import { generateEvents } from '../ingest/loadgen/generate.ts';
import { publish, route } from '../ingest/producer.ts';
import { machine } from './machine.ts';
import { benchOptions } from './options.ts';
import { fmtSpread, spread, writeSection } from './stats.ts';

const opts = benchOptions();
// The ingester's default batch limits, as a user gets them.
const defaults = loadConfig({}).ingest;
const N = opts.ingestEvents;
const brokers = ['127.0.0.1:9092'];
const log = (s: string) => process.stderr.write(`bench ingest: ${s}\n`);
const logger = createLogger('silent');
const kafka = createKafka({ brokers, clientId: 'tally-bench', logger });
const run = `${Date.now()}`;
const topics = { sessions: `bench.sessions.${run}`, logs: `bench.logs.${run}` };

// Produce once: every run below consumes the same messages with its own consumer group.
const lines = Array.from(generateEvents({ events: N, seed: 8 }), (e) => JSON.stringify(e));
const admin = await connectAdmin(kafka, brokers);
await ensureTopics(admin, [topics.sessions, topics.logs]);
const producer = createProducer(kafka);
await producer.connect();
const t0 = performance.now();
for (let i = 0; i < lines.length; i += 5_000) {
  await publish(
    producer,
    lines.slice(i, i + 5_000).map((value) => ({ ...route(JSON.parse(value), topics), value })),
  );
}
const produceRate = N / ((performance.now() - t0) / 1000);
await producer.disconnect();
log(`produced ${N} events at ${Math.round(produceRate)}/s`);

async function freshEngine(): Promise<{ ch: ClickHouse; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'tally-bench-ingest-'));
  const ch = await openClickHouse({ url: undefined, database: 'bench', dataDir: dir });
  await migrate(ch);
  return { ch, dir };
}
// One engine per process: each run empties the tables instead of opening another data directory.
const { ch, dir } = await freshEngine();
const tables = ['usage_events', 'log_events', 'usage_daily', 'usage_first_seen'];
const empty = async () => {
  for (const t of [...tables, 'log_counts_hourly']) await ch.client.command({ query: `TRUNCATE TABLE ${t}` });
};

async function kafkaRun(group: string): Promise<{ rate: number; peakRss: number }> {
  await empty();
  global.gc?.();
  let peakRss = process.memoryUsage().rss;
  const ingester = new Ingester({
    kafka,
    write: (rows, token) => insertEvents(ch, rows, token),
    topics: [topics.sessions, topics.logs],
    groupId: group,
    limits: { rows: defaults.batchRows, bytes: defaults.batchBytes, waitMs: defaults.batchWaitMs },
    logger,
  });
  let first = 0;
  // Polled, so "first consumed" is late by at most one tick (25 ms).
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    if (first === 0 && ingester.stats.consumed > 0) first = performance.now();
  }, 25);
  await ingester.start();
  const started = performance.now();
  while (ingester.stats.inserted + ingester.stats.deadLettered < N) {
    if (performance.now() - started > 600_000) throw new Error('ingest did not finish in 10 minutes');
    await new Promise((ok) => setTimeout(ok, 20));
  }
  const end = performance.now();
  clearInterval(sampler);
  await ingester.stop();
  return { rate: N / ((end - first) / 1000), peakRss };
}

// Baseline: the same decoded rows in one insert per table, no Kafka, no batching.
async function directRun(i: number): Promise<number> {
  await empty();
  const rows: EventRows = { usage: [], logs: [] };
  for (const line of lines) {
    const r = decodeMessage(Buffer.from(line));
    if (!r.ok) continue;
    if (r.event.kind === 'usage') rows.usage.push(r.event.row);
    else rows.logs.push(r.event.row);
  }
  const t = performance.now();
  await insertEvents(ch, rows, `bench-direct-${run}-${i}`);
  return N / ((performance.now() - t) / 1000);
}

// POST /events in embedded mode: requests of 1,000 events, one after another.
async function httpRun(): Promise<number> {
  await empty();
  const SECRET = 'bench-ingest-secret-bench-ingest-secret-01';
  const app = createApp({
    ch,
    sink: createDirectSink(ch),
    logger,
    auth: createAuthenticator({ secret: SECRET, issuer: undefined, audience: undefined }),
  });
  const headers = {
    authorization: `Bearer ${await mintToken(SECRET, { sub: 'bench' })}`,
    'content-type': 'application/x-ndjson',
  };
  const n = Math.min(N, 200_000);
  const t = performance.now();
  for (let i = 0; i < n; i += 1_000) {
    const res = await app.request('/events', {
      method: 'POST',
      headers,
      body: lines.slice(i, i + 1_000).join('\n'),
    });
    if (res.status !== 202) throw new Error(`POST /events: ${res.status} ${await res.text()}`);
  }
  return n / ((performance.now() - t) / 1000);
}

const kafkaRuns: Array<{ rate: number; peakRss: number }> = [];
const direct: number[] = [];
const http: number[] = [];
for (let i = 0; i < opts.repeats; i++) {
  kafkaRuns.push(await kafkaRun(`bench-ingest-${run}-${i}`));
  direct.push(await directRun(i));
  http.push(await httpRun());
  log(
    `run ${i + 1}: kafka ${Math.round(kafkaRuns.at(-1)?.rate ?? 0)}/s, direct ${Math.round(direct.at(-1) ?? 0)}/s, POST ${Math.round(http.at(-1) ?? 0)}/s`,
  );
}
const k = spread(kafkaRuns.map((r) => r.rate));
const d = spread(direct);
const ratios = spread(kafkaRuns.map((r, i) => r.rate / (direct[i] ?? Number.NaN)));
const body = `## Ingest (\`bench/ingest.ts\`)

Run ${new Date().toISOString().slice(0, 10)}, ${await machine(ch)}; broker: local single-node Kafka on the same machine.
${N.toLocaleString('en-US')} events from the seeded generator (seed 8, 2% re-sent), produced once to 4-partition topics
(${Math.round(produceRate).toLocaleString('en-US')} events/s), then consumed by the ingester (its default batches: ${defaults.batchRows.toLocaleString('en-US')} rows or ${defaults.batchBytes / 1048576} MiB) into the
embedded engine. Median (min–max) of ${opts.repeats} runs.

| figure | value |
|---|---:|
| Kafka → rollups, events/s (first consumed message to last insert) | ${fmtSpread(k, 0)} |
| baseline: same rows inserted straight in one go, events/s | ${fmtSpread(d, 0)} |
| ratio end-to-end / baseline | ${fmtSpread(ratios, 2)} |
| peak RSS of the ingesting process (engine included), MB | ${fmtSpread(spread(kafkaRuns.map((r) => r.peakRss / 1e6)), 0)} |
| POST /events embedded (NDJSON, 1,000 per request, sequential), events/s | ${fmtSpread(spread(http), 0)} |
`;
writeSection(join('bench', 'RESULTS.md'), 'ingest', body);
log('wrote bench/RESULTS.md');
await admin
  .deleteTopics({ topics: [topics.sessions, topics.logs, `${topics.sessions}.dlq`, `${topics.logs}.dlq`] })
  .catch(() => undefined);
await admin.disconnect();
await ch.close();
rmSync(dir, { recursive: true, force: true });
