// Publishing events to the source topics: usage events keyed by user_id, logs keyed by service, so that one
// user's events stay in order on one partition. Used by POST /events with Kafka and by `npm run produce`.
import { Unavailable } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { EventSink, IncomingEvent } from '../core/sink.ts';
import {
  type Admin,
  type CodecName,
  connectAdmin,
  createProducer,
  ensureTopics,
  type Kafka,
  Partitioners,
  type Producer,
} from './kafka.ts';
import { StoredWatcher, type Written } from './stored-wait.ts';

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

/** How long a write waits for the sink's very first connection before answering 503. */
const FIRST_CONNECT_WAIT_MS = 5_000;

/**
 * The Kafka sink of POST /events for a service that must start, and keep serving, while the broker is away:
 * it connects in the background and again after any failed send. While it is not connected, writes fail at once
 * with Unavailable (503 with Retry-After) instead of holding the request through the client's retries; only
 * before its first connection does a write wait for it a little (the demo's load, or a request right at start,
 * must not fail because the connection was a moment slower than the first write). Its admin client stays
 * connected: partition metadata for publishes, and the group's committed offsets for `wait=stored`.
 */
export function connectingKafkaSink(
  kafka: Kafka,
  opts: {
    brokers: readonly string[];
    topics: Topics;
    groupId: string;
    compression: CodecName;
    logger: Logger;
  },
): EventSink & { readonly connected: boolean; stop(): Promise<void> } {
  // Two quick retries: a send to a broker that went away fails within seconds, and the client retries.
  const producer = createProducer(kafka, { retries: 2, compression: opts.compression });
  let admin: Admin | undefined;
  let partitions: PartitionMap | undefined;
  let watcher: StoredWatcher | undefined;
  let connected = false;
  let stopped = false;
  let connecting: Promise<void> | undefined;
  let lastError = 'not connected yet';
  let everConnected = false;

  const connect = (): Promise<void> => {
    connecting ??= (async () => {
      for (let attempt = 1; !stopped; attempt++) {
        try {
          if (!admin) {
            const a = await connectAdmin(kafka, opts.brokers);
            admin = a;
            partitions = new PartitionMap(a);
            watcher = new StoredWatcher(a, opts.groupId);
          }
          await ensureTopics(admin, [opts.topics.sessions, opts.topics.logs]);
          await producer.connect();
          connected = true;
          everConnected = true;
          if (attempt > 1) opts.logger.info('events: connected to Kafka again');
          return;
        } catch (err) {
          lastError = (err as Error).message;
          if (attempt === 1)
            opts.logger.warn({ err }, 'events: Kafka is not reachable; POST /events answers 503');
          await new Promise((r) => setTimeout(r, Math.min(10_000, 500 * 2 ** Math.min(attempt, 5))));
        }
      }
    })().finally(() => {
      connecting = undefined;
    });
    return connecting;
  };
  void connect();

  return {
    kind: 'kafka',
    get connected() {
      return connected;
    },
    async write(events: readonly IncomingEvent[]) {
      if (!connected && !everConnected && connecting) {
        await Promise.race([connecting, new Promise((r) => setTimeout(r, FIRST_CONNECT_WAIT_MS).unref())]);
      }
      if (!connected || !partitions || !watcher) {
        throw new Unavailable(`the Kafka broker is not reachable (${lastError}); retry later`);
      }
      const w = watcher;
      let written: Written[];
      try {
        written = await publish(
          producer,
          events.map((e) => ({ ...route(e.raw, opts.topics), value: JSON.stringify(e.raw) })),
          partitions,
        );
      } catch (err) {
        connected = false;
        lastError = (err as Error).message;
        void connect();
        throw new Unavailable(`the Kafka broker did not acknowledge the events (${lastError}); retry later`, {
          cause: err,
        });
      }
      return { waitStored: (timeoutMs: number) => w.wait(written, timeoutMs) };
    },
    async stop() {
      stopped = true;
      watcher?.close();
      await producer.disconnect().catch(() => undefined);
      await admin?.disconnect().catch(() => undefined);
    },
  };
}
