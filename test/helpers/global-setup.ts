// Provisions Kafka for the integration tests: KAFKA_BROKERS if set, else a broker already on 127.0.0.1:9092,
// else the project's own single-node broker (`npm run kafka:up`). testcontainers needs a Docker engine, which
// this project's CI machines do not have, so the local broker is the fallback everywhere.
//
// It also keeps test files apart on the shared broker: every topic and consumer group a test file uses comes
// from `uniqueName` (test/helpers/kafka.ts), which records it under a directory of this run. At the end the run
// fails if two test files recorded the same name, or if anything was published to the default `analytics.*`
// topics or committed by the default `tally-ingest` group during the run: that is how parallel test files once
// consumed each other's events.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { createKafka } from '../../ingest/kafka.ts';

function answers(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port, timeout: 1000 });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
  });
}

/** The contract's default names: a test that uses them shares them with every other test and with `npm start`. */
export const DEFAULT_KAFKA_NAMES = {
  topics: ['analytics.sessions', 'analytics.logs', 'analytics.sessions.dlq', 'analytics.logs.dlq'],
  group: 'tally-ingest',
};

/**
 * `call()` once the broker can answer it: a broker just started answers ListGroups with "the coordinator is
 * loading" (retriable) for a few seconds.
 */
async function whenReady<T>(call: () => Promise<T>, deadlineMs = 60_000): Promise<T> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    try {
      return await call();
    } catch (err) {
      if (!(err as { retriable?: boolean }).retriable || Date.now() > until) throw err;
      await new Promise((ok) => setTimeout(ok, 500));
    }
  }
}

/** What the default topics hold and what the default group has committed: a test touching them changes it. */
async function defaultsState(brokers: string[]): Promise<string> {
  const admin = createKafka({ brokers, clientId: 'tally-test-names' }).admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const topics = DEFAULT_KAFKA_NAMES.topics.filter((t) => existing.has(t));
    const parts: string[] = [];
    for (const t of topics) {
      const ends = await admin.fetchTopicOffsets(t);
      parts.push(`topic ${t} ends at ${ends.map((p) => `${p.partition}:${p.high}`).join(',')}`);
    }
    const { groups } = await whenReady(() => admin.listGroups());
    if (groups.some((g) => g.groupId === DEFAULT_KAFKA_NAMES.group)) {
      const committed = await admin.fetchOffsets({ groupId: DEFAULT_KAFKA_NAMES.group, topics });
      parts.push(
        `group ${DEFAULT_KAFKA_NAMES.group} at ${committed
          .flatMap((t) => t.partitions.map((p) => `${t.topic}/${p.partition}:${p.offset}`))
          .join(',')}`,
      );
    }
    return parts.join('\n');
  } finally {
    await admin.disconnect();
  }
}

/** Every name recorded by more than one test file. */
export function sharedNames(records: Map<string, string[]>): string[] {
  const owner = new Map<string, string>();
  const problems: string[] = [];
  for (const [file, names] of records) {
    for (const name of names) {
      const other = owner.get(name);
      if (other !== undefined && other !== file)
        problems.push(`${name} is used by both ${other} and ${file}`);
      owner.set(name, file);
    }
  }
  return problems;
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let brokers = process.env.KAFKA_BROKERS;
  // A broker this run started is stopped when it ends: left running, it took CPU from whatever ran next (a
  // benchmark on this 2-core machine). One that was already running is left as it was.
  let started = false;
  if (!brokers) {
    if (!(await answers('127.0.0.1', 9092))) {
      execFileSync('bash', ['scripts/kafka.sh', 'up'], { stdio: 'inherit' });
      started = true;
    }
    brokers = '127.0.0.1:9092';
  }
  const list = brokers.split(',');
  const namesDir = mkdtempSync(join(tmpdir(), 'tally-kafka-names-'));
  const before = await defaultsState(list);
  project.provide('kafkaBrokers', brokers);
  project.provide('kafkaNamesDir', namesDir);
  return async () => {
    try {
      await checkNames(namesDir, list, before);
    } finally {
      if (started) execFileSync('bash', ['scripts/kafka.sh', 'down'], { stdio: 'inherit' });
    }
  };
}

/** Fails the run when two test files shared a Kafka name, or a test used the default topics or group. */
async function checkNames(namesDir: string, list: string[], before: string): Promise<void> {
  const records = new Map<string, string[]>();
  for (const f of readdirSync(namesDir)) {
    const lines = readFileSync(join(namesDir, f), 'utf8').split('\n').filter(Boolean);
    const file = lines[0] ?? f;
    records.set(file, [...(records.get(file) ?? []), ...lines.slice(1)]);
  }
  rmSync(namesDir, { recursive: true, force: true });
  const problems = sharedNames(records);
  const after = await defaultsState(list);
  if (after !== before) {
    problems.push(
      `a test used the default topics or group (${[...DEFAULT_KAFKA_NAMES.topics, DEFAULT_KAFKA_NAMES.group].join(', ')}):\n    before: ${before || 'absent'}\n    after:  ${after}`,
    );
  }
  if (problems.length > 0) {
    // vitest reports an error thrown here but still exits 0: set the exit code as well.
    process.exitCode = 1;
    throw new Error(`Kafka names not kept apart by test files:\n  ${problems.join('\n  ')}`);
  }
}

declare module 'vitest' {
  export interface ProvidedContext {
    kafkaBrokers: string;
    kafkaNamesDir: string;
  }
}
