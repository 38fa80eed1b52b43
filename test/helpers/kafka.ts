// Kafka for tests: the broker provisioned by the global setup, unique topic and group names per test file,
// and a way to tell when a consumer group has caught up with everything published.
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { type Admin, createKafka, type Kafka } from '../../ingest/kafka.ts';

export function testKafka(clientId = 'tally-test'): { kafka: Kafka; brokers: string[] } {
  const brokers = inject('kafkaBrokers').split(',');
  return { kafka: createKafka({ brokers, clientId }), brokers };
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(5).toString('hex')}`;
}

/** True when the group's committed offsets reach the end of every partition of the topics. */
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
