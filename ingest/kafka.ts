// The one module that imports kafkajs (its upstream is looking for maintainers): a maintained client could
// replace it here without touching the rest of the ingester.
import kafkajs, {
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
import { type Codec, type CodecName, lz4, snappy, zstd } from './codecs.ts';

// kafkajs's index exports these as `Compression.Codecs` and the like, which Node's detection of CommonJS exports
// cannot see: a named import works under a bundler or vitest, and fails under plain Node.
const { CompressionCodecs, CompressionTypes } = kafkajs;
type CodecSlot = keyof typeof CompressionCodecs;

export type {
  Admin,
  Consumer,
  EachBatchPayload,
  IHeaders,
  ISocketFactory,
  KafkaMessage,
  Producer,
} from 'kafkajs';
export type { CodecName } from './codecs.ts';
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

// kafkajs looks codecs up in one process-wide table; registering at import means no consumer or producer of
// this process can exist without them. kafkajs hands compress() its Encoder, whose `buffer` is the bytes.
function register(type: CodecSlot, codec: Codec): void {
  CompressionCodecs[type] = () => ({
    compress: (encoder: { buffer: Buffer }) => codec.compress(encoder.buffer),
    decompress: (data: Buffer) => codec.decompress(data),
  });
}
register(CompressionTypes.Snappy, snappy);
register(CompressionTypes.LZ4, lz4);
register(CompressionTypes.ZSTD, zstd);

/**
 * Replaces the implementation of one codec in this process (every consumer and producer of it): another library,
 * or, in tests, one that fails on purpose. Returns a function that puts the previous one back.
 */
export function replaceCodec(name: Exclude<CodecName, 'none' | 'gzip'>, codec: Codec): () => void {
  const slot = COMPRESSION[name] as CodecSlot;
  const previous = CompressionCodecs[slot];
  register(slot, codec);
  return () => {
    CompressionCodecs[slot] = previous;
  };
}

const COMPRESSION: Record<CodecName, (typeof CompressionTypes)[keyof typeof CompressionTypes]> = {
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
  none: CompressionTypes.None,
};

/** The codec kafkajs will use for `name` (tests check what is registered, not only the codec module). */
export function registeredCodec(name: Exclude<CodecName, 'none'>): Codec {
  const type = COMPRESSION[name] as CodecSlot;
  const c = CompressionCodecs[type]() as {
    compress(e: { buffer: Buffer }): Promise<Buffer>;
    decompress(b: Buffer): Promise<Buffer>;
  };
  return { compress: (data) => c.compress({ buffer: data }), decompress: (data) => c.decompress(data) };
}

/**
 * Makes every send of `producer` compressed with `codec` unless the call names its own. The codec is a
 * property of the producer here (KAFKA_COMPRESSION), while kafkajs takes it per send.
 */
function compressing(producer: Producer, codec: CodecName | undefined): Producer {
  if (codec === undefined || codec === 'none') return producer;
  const compression = COMPRESSION[codec];
  const send = producer.send.bind(producer);
  const sendBatch = producer.sendBatch.bind(producer);
  producer.send = (record) => send({ compression, ...record });
  producer.sendBatch = (batch) => sendBatch({ compression, ...batch });
  return producer;
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
 * Such duplicates are common right after a topic is created: a partition not ready yet fails its part of a
 * produce request, and kafkajs sends the whole request again, the partitions that took it included (18 of 30
 * sends of 2,500 messages to new topics wrote 2,913 to 4,650 messages here; none with createIdempotentProducer).
 * Anything that counts the messages in a topic (tests, benches) must produce with createIdempotentProducer.
 */
export function createProducer(
  kafka: Kafka,
  opts: { retries?: number; compression?: CodecName } = {},
): Producer {
  const producer = kafka.producer({
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
    ...(opts.retries === undefined
      ? {}
      : { retry: { retries: opts.retries, initialRetryTime: 300, maxRetryTime: 2_000 } }),
  });
  return compressing(producer, opts.compression);
}

/**
 * The producer of the command-line tools: idempotent (the broker drops a batch a retry sends twice) with acks
 * from all in-sync replicas. Retries while the broker is away, so a long load survives a broker restart.
 */
export function createIdempotentProducer(kafka: Kafka, opts: { compression?: CodecName } = {}): Producer {
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
    retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 300, maxRetryTime: 10_000 },
  });
  return compressing(producer, opts.compression);
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
  // Not kafkajs's own waitForLeaders: it retries only LEADER_NOT_AVAILABLE, so a metadata answer of "This
  // server does not host this topic-partition" for a topic created a moment ago fails the whole call (seen in
  // CI), and it waits only for topics it created itself, not ones another process created a moment earlier
  // (seen with two test processes starting together). The loop below waits for every partition's leader.
  await admin.createTopics({
    waitForLeaders: false,
    topics: missing.map((topic) => ({ topic, numPartitions: partitions, replicationFactor: -1 })),
  });
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
