// Publishing events to the source topics: usage events keyed by user_id, logs keyed by service, so that one
// user's events stay in order on one partition. Used by POST /events with Kafka and by `npm run produce`.
import type { EventSink, IncomingEvent } from '../core/sink.ts';
import { type Admin, Partitioners, type Producer } from './kafka.ts';
import type { StoredWatcher, Written } from './stored-wait.ts';

export interface Topics {
  sessions: string;
  logs: string;
}

export interface OutgoingMessage {
  topic: string;
  key: string | null;
  value: string;
}

/** Picks topic and key for a raw event object (or anything else, which goes to the usage topic as is). */
export function route(raw: unknown, topics: Topics): { topic: string; key: string | null } {
  const o = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  if (o.type === 'log') return { topic: topics.logs, key: typeof o.service === 'string' ? o.service : null };
  return { topic: topics.sessions, key: typeof o.user_id === 'string' ? o.user_id : null };
}

/**
 * Chooses each message's partition before it is sent, with Kafka's own default (murmur2 of the key, as the
 * Java client and kafkajs do), so a publish knows how many messages it wrote to each partition: the broker's
 * answer gives only each partition's first offset, and read-your-writes needs the last.
 */
export class PartitionMap {
  private readonly cache = new Map<
    string,
    { at: number; partitions: { partitionId: number; leader: number }[] }
  >();
  private readonly choose = Partitioners.DefaultPartitioner();

  constructor(
    private readonly admin: Admin,
    private readonly ttlMs = 60_000,
  ) {}

  async partitionOf(topic: string, key: string | null): Promise<number> {
    let meta = this.cache.get(topic);
    if (!meta || Date.now() - meta.at > this.ttlMs) {
      const m = await this.admin.fetchTopicMetadata({ topics: [topic] });
      const partitions = (m.topics[0]?.partitions ?? []).map((p) => ({
        partitionId: p.partitionId,
        leader: p.leader,
      }));
      if (partitions.length === 0) throw new Error(`Kafka topic ${topic} has no partitions`);
      partitions.sort((a, b) => a.partitionId - b.partitionId);
      meta = { at: Date.now(), partitions };
      this.cache.set(topic, meta);
    }
    return this.choose({
      topic,
      partitionMetadata: meta.partitions.map((p) => ({ ...p, replicas: [], isr: [], partitionErrorCode: 0 })),
      message: { key, value: null },
    });
  }
}

/**
 * Sends messages grouped by topic and waits for every in-sync replica to acknowledge them. With a partition
 * map, it also says where the messages landed (for `StoredWatcher`); without one, kafkajs picks partitions.
 */
export async function publish(
  producer: Producer,
  messages: readonly OutgoingMessage[],
  partitions?: PartitionMap,
): Promise<Written[]> {
  const byTopic = new Map<string, { key: string | null; value: string; partition?: number }[]>();
  const counts = new Map<string, number>();
  for (const m of messages) {
    let list = byTopic.get(m.topic);
    if (!list) {
      list = [];
      byTopic.set(m.topic, list);
    }
    if (partitions) {
      const partition = await partitions.partitionOf(m.topic, m.key);
      const k = `${m.topic}\0${partition}`;
      counts.set(k, (counts.get(k) ?? 0) + 1);
      list.push({ key: m.key, value: m.value, partition });
    } else list.push({ key: m.key, value: m.value });
  }
  if (byTopic.size === 0) return [];
  const acks = await producer.sendBatch({
    acks: -1,
    topicMessages: [...byTopic].map(([topic, msgs]) => ({ topic, messages: msgs })),
  });
  if (!partitions) return [];
  // One produce request holds one record batch per partition, so a partition's messages are contiguous from
  // the base offset the broker acknowledged.
  return acks.flatMap((a) => {
    const count = counts.get(`${a.topicName}\0${a.partition}`) ?? 0;
    const base = a.baseOffset ?? a.offset;
    if (count === 0 || base === undefined) return [];
    return [{ topic: a.topicName, partition: a.partition, end: BigInt(base) + BigInt(count), count }];
  });
}

export function createKafkaSink(
  producer: Producer,
  topics: Topics,
  partitions: PartitionMap,
  watcher: StoredWatcher,
): EventSink {
  return {
    kind: 'kafka',
    async write(events: readonly IncomingEvent[]) {
      const written = await publish(
        producer,
        events.map((e) => ({ ...route(e.raw, topics), value: JSON.stringify(e.raw) })),
        partitions,
      );
      return { waitStored: (timeoutMs: number) => watcher.wait(written, timeoutMs) };
    },
  };
}
