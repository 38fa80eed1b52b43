// The Kafka ingester: one consumer group on the usage and log topics, batching per partition.
//
// Flush order, which is the delivery guarantee: (1) dead letters are written and acknowledged, (2) the batch's
// valid rows are inserted with a token derived from (topic, partition, first offset, last offset), (3) only
// then is the offset after the batch committed. A crash anywhere before (3) re-reads the batch; the token and
// the duplicate-proof tables make the second insert change no answer. Nothing is committed that is not stored.

import type { ClickHouse } from '../clickhouse/client.ts';
import { insertEvents } from '../clickhouse/inserts.ts';
import type { Logger } from '../core/logger.ts';
import { type Batch, type BatchLimits, batchToken, PartitionBuffer } from './batcher.ts';
import { decodeMessage } from './decode.ts';
import { sendDeadLetters } from './dlq.ts';
import {
  type Consumer,
  createProducer,
  type EachBatchPayload,
  ensureTopics,
  type Kafka,
  type Producer,
} from './kafka.ts';

export interface IngesterOptions {
  kafka: Kafka;
  ch: ClickHouse;
  topics: readonly string[];
  groupId: string;
  limits: BatchLimits;
  logger: Logger;
  /** Partitions processed in parallel by this member (default 4). */
  concurrency?: number;
}

export interface IngesterStats {
  consumed: number;
  inserted: number;
  deadLettered: number;
  batches: number;
  failures: number;
}

const BACKOFF_BASE_MS = 200;
const BACKOFF_MAX_MS = 15_000;
const HEARTBEAT_EVERY_MS = 2_000;

export class Ingester {
  readonly stats: IngesterStats = { consumed: 0, inserted: 0, deadLettered: 0, batches: 0, failures: 0 };
  private readonly consumer: Consumer;
  private readonly producer: Producer;
  private readonly buffers = new Map<string, PartitionBuffer>();
  // Flushes of one partition run one after another, so offsets are committed in order.
  private readonly chains = new Map<string, Promise<void>>();
  private generation = 0;
  private running = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: IngesterOptions) {
    this.consumer = opts.kafka.consumer({
      groupId: opts.groupId,
      sessionTimeout: 30_000,
      heartbeatInterval: 3_000,
      maxBytesPerPartition: 4 * 1024 * 1024,
      maxWaitTimeInMs: Math.min(500, opts.limits.waitMs),
    });
    this.producer = createProducer(opts.kafka);
  }

  async start(): Promise<void> {
    const { kafka, topics, logger } = this.opts;
    const admin = kafka.admin();
    await admin.connect();
    try {
      await ensureTopics(admin, topics);
    } finally {
      await admin.disconnect();
    }
    await this.producer.connect();
    await this.consumer.connect();
    this.consumer.on(this.consumer.events.GROUP_JOIN, (e) => {
      // After a rebalance the consumer fetches again from the committed offsets: what was buffered and not
      // yet committed will be read again, by this member or by the partition's new owner.
      this.generation += 1;
      for (const b of this.buffers.values()) b.clear();
      logger.info({ assignment: e.payload.memberAssignment }, 'ingest: joined group');
    });
    this.consumer.on(this.consumer.events.CRASH, (e) => {
      logger.error({ err: e.payload.error, restart: e.payload.restart }, 'ingest: consumer crashed');
    });
    // A new group starts at the earliest offset: nothing published before the first start is missed.
    await this.consumer.subscribe({ topics: [...topics], fromBeginning: true });
    this.running = true;
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.opts.concurrency ?? 4,
      eachBatch: (payload) => this.onBatch(payload),
    });
    const tick = Math.max(50, Math.min(250, Math.floor(this.opts.limits.waitMs / 2)));
    this.timer = setInterval(() => this.flushDue(), tick);
    this.timer.unref();
  }

  private bufferFor(topic: string, partition: number): PartitionBuffer {
    const key = `${topic}\u0000${partition}`;
    let b = this.buffers.get(key);
    if (!b) {
      b = new PartitionBuffer(topic, partition, this.opts.limits);
      this.buffers.set(key, b);
    }
    return b;
  }

  private async onBatch({
    batch,
    resolveOffset,
    heartbeat,
    isRunning,
    isStale,
  }: EachBatchPayload): Promise<void> {
    const buf = this.bufferFor(batch.topic, batch.partition);
    for (const m of batch.messages) {
      if (!isRunning() || isStale()) return;
      const now = Date.now();
      buf.add(
        {
          offset: m.offset,
          bytes: (m.value?.length ?? 0) + (m.key?.length ?? 0),
          result: decodeMessage(m.value, now),
          key: m.key,
          value: m.value,
        },
        now,
      );
      this.stats.consumed += 1;
      // Resolving only moves the fetch position; the commit waits for the flush.
      resolveOffset(m.offset);
      if (buf.isFull()) await this.withHeartbeat(this.flush(buf), heartbeat);
    }
    if (buf.isDue(Date.now())) await this.withHeartbeat(this.flush(buf), heartbeat);
    await heartbeat();
  }

  private flushDue(): void {
    const now = Date.now();
    for (const b of this.buffers.values()) {
      if (b.isDue(now)) {
        this.flush(b).catch((err) => this.opts.logger.error({ err }, 'ingest: flush failed'));
      }
    }
  }

  /** Queues a flush of what the buffer holds now behind the partition's earlier flushes. */
  private flush(buf: PartitionBuffer): Promise<void> {
    const key = `${buf.topic}\u0000${buf.partition}`;
    const batch = buf.take();
    const prev = this.chains.get(key) ?? Promise.resolve();
    if (!batch) return prev;
    const next = prev.then(() => this.write(batch));
    this.chains.set(
      key,
      next.catch(() => undefined),
    );
    return next;
  }

  private async write(batch: Batch): Promise<void> {
    const { ch, logger } = this.opts;
    const generation = this.generation;
    let deadSent = false;
    for (let attempt = 1; ; attempt++) {
      try {
        if (!deadSent) {
          await sendDeadLetters(this.producer, batch, batch.dead);
          deadSent = true;
        }
        await insertEvents(ch, batch, batchToken(batch));
        break;
      } catch (err) {
        this.stats.failures += 1;
        // Infrastructure errors are never dead-lettered: the batch waits, uncommitted, until storage is back.
        if (!this.running || generation !== this.generation) {
          logger.warn({ err, batch: batchToken(batch) }, 'ingest: batch abandoned (stopping or rebalanced)');
          return;
        }
        const delay =
          Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
        logger.error({ err, batch: batchToken(batch), attempt, delay }, 'ingest: batch failed, retrying');
        await sleep(delay);
      }
    }
    this.stats.batches += 1;
    this.stats.inserted += batch.usage.length + batch.logs.length;
    this.stats.deadLettered += batch.dead.length;
    try {
      await this.consumer.commitOffsets([
        {
          topic: batch.topic,
          partition: batch.partition,
          offset: (BigInt(batch.lastOffset) + 1n).toString(),
        },
      ]);
    } catch (err) {
      // Lost the partition in a rebalance: the new owner re-reads this batch, which changes no answer.
      logger.warn({ err, batch: batchToken(batch) }, 'ingest: offset commit failed after insert');
    }
  }

  private async withHeartbeat(work: Promise<void>, heartbeat: () => Promise<void>): Promise<void> {
    const beat = setInterval(() => {
      heartbeat().catch(() => undefined);
    }, HEARTBEAT_EVERY_MS);
    try {
      await work;
    } finally {
      clearInterval(beat);
    }
  }

  /** Stops taking messages, flushes and commits what is buffered, and leaves the group. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.consumer.pause(this.opts.topics.map((topic) => ({ topic })));
    const pending = [...this.buffers.values()].map((b) =>
      this.flush(b).catch((err) => this.opts.logger.error({ err }, 'ingest: final flush failed')),
    );
    await Promise.all([...pending, ...this.chains.values()]);
    this.running = false;
    await this.consumer.disconnect();
    await this.producer.disconnect();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
