// The one module that imports kafkajs (its upstream is looking for maintainers): a maintained client could
// replace it here without touching the rest of the ingester.
import {
  type Admin,
  type ISocketFactory,
  Kafka,
  type KafkaConfig,
  type logCreator as logCreatorType,
  logLevel,
  Partitioners,
  type Producer,
} from 'kafkajs';
import type { Logger } from '../core/logger.ts';

export type {
  Admin,
  Consumer,
  EachBatchPayload,
  IHeaders,
  ISocketFactory,
  KafkaMessage,
  Producer,
} from 'kafkajs';
export type { Kafka };
export { Partitioners };

export interface KafkaOptions {
  brokers: readonly string[];
  clientId?: string;
  /** kafkajs's own logs go here as structured lines (default: kafkajs's console logger). */
  logger?: Logger;
  /** Tests use it to cut a member off the network without a clean leave. */
  socketFactory?: ISocketFactory;
}

// kafkajs levels: 1 error, 2 warn, 4 info, 5 debug.
function logCreator(logger: Logger): logCreatorType {
  const child = logger.child({ component: 'kafkajs' });
  return () =>
    ({ level, log }) => {
      const { message, ...rest } = log;
      if (level === logLevel.ERROR) child.error(rest, message);
      else if (level === logLevel.WARN) child.warn(rest, message);
      else if (level === logLevel.INFO) child.info(rest, message);
      else child.debug(rest, message);
    };
}

export function createKafka(opts: KafkaOptions): Kafka {
  const config: KafkaConfig = {
    clientId: opts.clientId ?? 'tally',
    brokers: [...opts.brokers],
    logLevel: logLevel.WARN,
    ...(opts.logger ? { logCreator: logCreator(opts.logger) } : {}),
    ...(opts.socketFactory ? { socketFactory: opts.socketFactory } : {}),
    // Reconnect by itself when the broker goes away and comes back.
    retry: { initialRetryTime: 300, retries: 5, maxRetryTime: 5_000 },
    connectionTimeout: 5_000,
  };
  return new Kafka(config);
}

/**
 * A producer for source and dead-letter topics. Sends wait for all in-sync replicas (acks -1 at each send).
 * Not kafkajs's idempotent mode: it wants unbounded retries, which would hang a POST /events while the broker
 * is down; a message duplicated by a retry is harmless, since a re-sent event never changes an answer.
 */
export function createProducer(kafka: Kafka, opts: { retries?: number } = {}): Producer {
  return kafka.producer({
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
    ...(opts.retries === undefined
      ? {}
      : { retry: { retries: opts.retries, initialRetryTime: 300, maxRetryTime: 2_000 } }),
  });
}

/**
 * The producer of the command-line tools: idempotent (the broker drops a batch a retry sends twice) with acks
 * from all in-sync replicas. Retries while the broker is away, so a long load survives a broker restart.
 */
export function createIdempotentProducer(kafka: Kafka): Producer {
  return kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
    retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 300, maxRetryTime: 10_000 },
  });
}

/** Connects an admin client, turning "no broker" into a message that says what to do next. */
export async function connectAdmin(kafka: Kafka, brokers: readonly string[]): Promise<Admin> {
  // A few quick tries: a missing broker is reported in seconds, not after a minute of backoff.
  const admin = kafka.admin({ retry: { retries: 2, initialRetryTime: 300, maxRetryTime: 2_000 } });
  try {
    await admin.connect();
  } catch (err) {
    throw new Error(
      `Kafka is not reachable at ${brokers.join(',')} (${(err as Error).message}): start a local broker with ` +
        '`npm run kafka:up`, or unset KAFKA_BROKERS to run without Kafka',
      { cause: err },
    );
  }
  return admin;
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
  // createTopics waits for leaders only of topics it created: when another process created them a moment
  // earlier it returns at once, and a produce then fails with "This server does not host this
  // topic-partition" (seen with two test processes starting together). Wait for every partition's leader.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const led = await admin
      .fetchTopicMetadata({ topics: missing })
      .then((m) => m.topics.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0)))
      .catch(() => false);
    if (led) return;
    if (Date.now() > deadline)
      throw new Error(`Kafka topics without leaders after 30 s: ${missing.join(', ')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
