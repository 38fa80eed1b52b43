// The one module that imports kafkajs (its upstream is looking for maintainers): a maintained client could
// replace it here without touching the rest of the ingester.
import { type Admin, Kafka, type KafkaConfig, logLevel, Partitioners, type Producer } from 'kafkajs';

export type { Admin, Consumer, EachBatchPayload, IHeaders, Kafka, KafkaMessage, Producer } from 'kafkajs';

export interface KafkaOptions {
  brokers: readonly string[];
  clientId?: string;
}

export function createKafka(opts: KafkaOptions): Kafka {
  const config: KafkaConfig = {
    clientId: opts.clientId ?? 'tally',
    brokers: [...opts.brokers],
    logLevel: logLevel.WARN,
    // Reconnect by itself when the broker goes away and comes back.
    retry: { initialRetryTime: 300, retries: 10, maxRetryTime: 10_000 },
    connectionTimeout: 5_000,
  };
  return new Kafka(config);
}

/**
 * A producer for source and dead-letter topics. Sends wait for all in-sync replicas (acks -1 at each send).
 * Not kafkajs's idempotent mode: it wants unbounded retries, which would hang a POST /events while the broker
 * is down; a message duplicated by a retry is harmless, since a re-sent event never changes an answer.
 */
export function createProducer(kafka: Kafka): Producer {
  return kafka.producer({
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
}

/** Creates the topics (and their dead-letter topics) if they are missing. */
export async function ensureTopics(admin: Admin, topics: readonly string[], partitions = 4): Promise<void> {
  const existing = new Set(await admin.listTopics());
  const missing = topics.flatMap((t) => [t, `${t}.dlq`]).filter((t) => !existing.has(t));
  if (missing.length === 0) return;
  await admin.createTopics({
    waitForLeaders: true,
    topics: missing.map((topic) => ({ topic, numPartitions: partitions, replicationFactor: -1 })),
  });
}
