// Kafka for tests: the broker provisioned by the global setup, unique topic and group names per test file,
// and a way to tell when a consumer group has caught up with everything published.
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { inject } from 'vitest';
import { type Admin, createKafka, type Kafka } from '../../ingest/kafka.ts';

export function testKafka(clientId = 'tally-test'): { kafka: Kafka; brokers: string[] } {
  const brokers = inject('kafkaBrokers').split(',');
  return { kafka: createKafka({ brokers, clientId }), brokers };
}

/** The test file that called, from the stack: the name registry's owner of a name. */
function callingTestFile(): string {
  const frame = new Error().stack?.split('\n').find((l) => /\.test\.ts:\d+/.test(l));
  const path = frame?.match(/(?:file:\/\/)?(\/[^:()]+\.test\.ts)/)?.[1];
  return path ? relative(process.cwd(), path) : `process ${process.pid}`;
}

/**
 * A name of this test file's own (topic, consumer group, team): a random suffix, recorded for the run's check
 * that no two test files share one (test/helpers/global-setup.ts).
 */
export function uniqueName(prefix: string): string {
  const name = `${prefix}-${randomBytes(5).toString('hex')}`;
  let dir: string | undefined;
  try {
    dir = inject('kafkaNamesDir');
  } catch {
    dir = undefined; // the unit project has no global setup and no broker
  }
  if (dir) {
    const testFile = callingTestFile();
    const file = join(
      dir,
      `${createHash('sha1').update(testFile).digest('hex').slice(0, 12)}-${process.pid}.names`,
    );
    if (!existsSync(file)) writeFileSync(file, `${testFile}\n`);
    appendFileSync(file, `${name}\n`);
  }
  return name;
}

/** True when the group's committed offsets reach the end of every partition of the topics. */
/**
 * Messages the topics hold (end minus start offset, summed over partitions): what a test published, unless a
 * producer's retry wrote a batch twice.
 */
export async function messagesIn(admin: Admin, topics: readonly string[]): Promise<number> {
  let n = 0n;
  for (const topic of topics) {
    for (const p of await admin.fetchTopicOffsets(topic)) n += BigInt(p.high) - BigInt(p.low);
  }
  return Number(n);
}

export async function caughtUp(admin: Admin, groupId: string, topics: readonly string[]): Promise<boolean> {
  const committed = await admin.fetchOffsets({ groupId, topics: [...topics] });
  for (const t of committed) {
    const ends = await admin.fetchTopicOffsets(t.topic);
    for (const p of ends) {
      const c = t.partitions.find((x) => x.partition === p.partition);
      const at = c && c.offset !== '-1' ? BigInt(c.offset) : 0n;
      if (at < BigInt(p.high)) return false;
    }
  }
  return true;
}
