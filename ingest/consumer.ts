// The Kafka ingester: one consumer group on the usage and log topics, batching per partition.
//
// Flush order, which is the delivery guarantee, per partition and one batch at a time:
//   1. intent: commit the batch's first offset with metadata naming its last offset;
//   2. dead letters written and acknowledged, then the valid rows inserted with a token that is a pure function
//      of (topic, partition, first offset, last offset);
//   3. commit the offset after the batch.
// After a crash, a rebalance or a lost commit, whoever owns the partition next starts at the first offset, reads
// the intent, and re-forms exactly the same batch: the same token makes ClickHouse drop the second insert, in the
// raw table and through the materialized views. Nothing is committed that is not stored; nothing is stored twice.
import type { EventRows } from '../clickhouse/inserts.ts';
import type { Logger } from '../core/logger.ts';
import { type Batch, type BatchLimits, batchToken, PartitionBuffer } from './batcher.ts';
import { decodeMessage } from './decode.ts';
import { sendDeadLetters } from './dlq.ts';
import {
  type Admin,
  type CodecName,
  type Consumer,
  createProducer,
  type EachBatchPayload,
  ensureTopics,
  type Kafka,
  type Producer,
} from './kafka.ts';
import { ingestMetrics as m, reasonCategory } from './metrics.ts';

/** Where batches go: the raw tables in production, something failing on purpose in tests. */
export type BatchWriter = (rows: EventRows, token: string) => Promise<void>;

/** Notable faults, recorded as system logs of the service (rate-limited by the receiver). */
export type FaultReporter = (kind: string, message: string) => void;

export interface IngesterOptions {
  kafka: Kafka;
  write: BatchWriter;
  topics: readonly string[];
  groupId: string;
  limits: BatchLimits;
  logger: Logger;
  reportFault?: FaultReporter;
  /** Partitions processed in parallel by this member (default 4). */
  concurrency?: number;
  /** Consumer session timeout; a member silent this long is dropped from the group (default 30 s). */
  sessionTimeoutMs?: number;
  /** Codec of the dead-letter producer (default none). */
  compression?: CodecName;
  /** Fault injection for tests: wait between a batch's insert and its commit (default 0). */
  testCommitDelayMs?: number;
}

export interface IngesterStats {
  consumed: number;
  inserted: number;
  deadLettered: number;
  batches: number;
  failures: number;
  /** Highest number of message bytes held in memory at once. */
  peakBufferedBytes: number;
  /** Messages kafkajs delivered again within one generation, skipped. */
  redelivered: number;
  /** Intent commits that kafkajs reported done but the group coordinator did not have. */
  unrecordedCommits: number;
}

const BACKOFF_BASE_MS = 200;
const BACKOFF_MAX_MS = 10_000;
const INTENT = 'tally-intent:';

interface PartitionState {
  topic: string;
  partition: number;
  buffer: PartitionBuffer;
  inflight: Promise<void> | undefined;
  inflightBytes: number;
  paused: boolean;
  failing: boolean;
  /** The generation the in-flight write's batch was formed in. */
  inflightGeneration: number;
  /** Set while re-forming an interrupted batch: it ends exactly at this offset. */
  pendingEnd: bigint | undefined;
  /** Generation whose committed intent has been read. */
  checkedGeneration: number;
  /** The last offset taken into the buffer in this generation: anything at or below it is a re-delivery. */
  lastTaken: bigint | undefined;
}

/** Capped exponential backoff with jitter (half to full delay). */
export function backoffMs(attempt: number): number {
  const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(attempt - 1, 16));
  return cap / 2 + (Math.random() * cap) / 2;
}

export class Ingester {
  readonly stats: IngesterStats = {
    consumed: 0,
    inserted: 0,
    deadLettered: 0,
    batches: 0,
    failures: 0,
    peakBufferedBytes: 0,
    redelivered: 0,
    unrecordedCommits: 0,
  };
  private readonly consumer: Consumer;
  private readonly producer: Producer;
  private readonly admin: Admin;
  private readonly parts = new Map<string, PartitionState>();
  private readonly owned = new Set<string>();
  private generation = 0;
  private running = false;
  private stopping = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: IngesterOptions) {
    const sessionTimeout = opts.sessionTimeoutMs ?? 30_000;
    this.consumer = opts.kafka.consumer({
      groupId: opts.groupId,
      sessionTimeout,
      rebalanceTimeout: Math.max(sessionTimeout, 10_000),
      heartbeatInterval: Math.max(500, Math.floor(sessionTimeout / 10)),
      maxBytesPerPartition: 2 * 1024 * 1024,
      maxWaitTimeInMs: Math.min(500, opts.limits.waitMs),
    });
    // Few client-side retries: the batch loop retries with its own backoff, pausing the partition and
    // reporting the fault, instead of waiting inside kafkajs.
    this.producer = createProducer(opts.kafka, {
      retries: 2,
      ...(opts.compression ? { compression: opts.compression } : {}),
    });
    this.admin = opts.kafka.admin();
  }

  async start(): Promise<void> {
    const { topics, logger } = this.opts;
    await this.admin.connect();
    await ensureTopics(this.admin, topics);
    await this.producer.connect();
    await this.consumer.connect();
    this.consumer.on(this.consumer.events.GROUP_JOIN, (e) => {
      this.newGeneration(e.payload.memberAssignment);
      logger.info(
        { generation: this.generation, assignment: e.payload.memberAssignment },
        'ingest: joined group',
      );
    });
    this.consumer.on(this.consumer.events.CRASH, (e) => {
      // A crashed consumer has left its generation: until the restarted one joins, this member owns nothing,
      // and a batch formed before the crash writes nothing more (the next owner re-forms it from the intent).
      this.newGeneration({});
      logger.error({ err: e.payload.error, restart: e.payload.restart }, 'ingest: consumer crashed');
      this.opts.reportFault?.('ingest.consumer', `Kafka consumer crashed: ${e.payload.error.message}`);
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

  /**
   * A new generation: the consumer fetches again from the committed offsets. Batches of the old generation
   * commit nothing more, and what was buffered is dropped: it will be read again, by us or the new owner.
   */
  private newGeneration(assignment: Record<string, number[]>): void {
    this.generation += 1;
    this.owned.clear();
    for (const [topic, partitions] of Object.entries(assignment)) {
      for (const p of partitions) this.owned.add(key(topic, p));
    }
    for (const st of this.parts.values()) {
      st.buffer.clear();
      st.pendingEnd = undefined;
      st.lastTaken = undefined;
      // A partition paused for its write resumes when that write ends (it is abandoned if revoked).
      if (st.paused && !st.inflight) this.resume(st);
    }
    this.updateGauges();
  }

  private state(topic: string, partition: number): PartitionState {
    const k = key(topic, partition);
    let st = this.parts.get(k);
    if (!st) {
      st = {
        topic,
        partition,
        buffer: new PartitionBuffer(topic, partition, this.opts.limits),
        inflight: undefined,
        inflightBytes: 0,
        inflightGeneration: -1,
        paused: false,
        failing: false,
        pendingEnd: undefined,
        checkedGeneration: -1,
        lastTaken: undefined,
      };
      this.parts.set(k, st);
    }
    return st;
  }

  /** Reads the committed intent of the partition once per generation, to re-form an interrupted batch. */
  private async checkIntent(st: PartitionState): Promise<void> {
    if (st.checkedGeneration === this.generation) return;
    const generation = this.generation;
    const offsets = await this.admin.fetchOffsets({ groupId: this.opts.groupId, topics: [st.topic] });
    const p = offsets.find((t) => t.topic === st.topic)?.partitions.find((x) => x.partition === st.partition);
    // Offsets below the committed one are stored: a delivery of one is a re-delivery.
    st.lastTaken = p && /^\d+$/.test(p.offset) ? BigInt(p.offset) - 1n : undefined;
    st.pendingEnd =
      p?.metadata?.startsWith(INTENT) && /^\d+$/.test(p.metadata.slice(INTENT.length))
        ? BigInt(p.metadata.slice(INTENT.length))
        : undefined;
    if (st.pendingEnd !== undefined) {
      this.opts.logger.info(
        { topic: st.topic, partition: st.partition, from: p?.offset, to: String(st.pendingEnd) },
        'ingest: re-forming an interrupted batch',
      );
    }
    st.checkedGeneration = generation;
  }

  private async onBatch({
    batch,
    resolveOffset,
    heartbeat,
    isRunning,
    isStale,
  }: EachBatchPayload): Promise<void> {
    const st = this.state(batch.topic, batch.partition);
    if (st.paused) return;
    // A batch fetched before a rebalance can still be running when the group has moved on (kafkajs's isStale()
    // only covers seeks): none of it may enter the new generation's buffer.
    const generation = this.generation;
    // A write of an earlier generation may still have a commit on its way: the intent is read once it has
    // settled (its end resumes the partition), so that what is read is the last word on that batch.
    if (st.inflight && st.inflightGeneration !== generation) return this.pauseFor(st);
    await this.checkIntent(st);
    for (const msg of batch.messages) {
      if (!isRunning() || isStale() || st.paused || generation !== this.generation) return;
      const offset = BigInt(msg.offset);
      // kafkajs can hand the same messages to eachBatch twice (#1764, e.g. around a pause): taking one twice
      // would put it in two batches with two tokens.
      if (st.lastTaken !== undefined && offset <= st.lastTaken) {
        this.stats.redelivered += 1;
        continue;
      }
      // The interrupted batch's messages are gone from the log (retention): nothing to re-form.
      if (st.pendingEnd !== undefined && offset > st.pendingEnd && st.buffer.size === 0)
        st.pendingEnd = undefined;
      // Re-forming: the batch ends at the recorded offset, even if that exact offset is gone from the log.
      if (st.pendingEnd !== undefined && offset > st.pendingEnd && st.buffer.size > 0) {
        if (!this.startFlush(st)) return this.pauseFor(st);
      }
      if (st.pendingEnd === undefined && st.buffer.isFull() && !this.startFlush(st)) {
        // The previous batch is still being written: stop taking messages until it is done. The rest of this
        // fetch stays unresolved and is fetched again after the resume.
        return this.pauseFor(st);
      }
      const now = Date.now();
      st.buffer.add(
        {
          offset: msg.offset,
          bytes: (msg.value?.length ?? 0) + (msg.key?.length ?? 0),
          result: decodeMessage(msg.value, now),
          key: msg.key,
          value: msg.value,
        },
        now,
      );
      this.stats.consumed += 1;
      st.lastTaken = offset;
      // Resolving moves only the fetch position; the commit waits for the write.
      resolveOffset(msg.offset);
      if (st.pendingEnd !== undefined && offset >= st.pendingEnd && !this.startFlush(st))
        return this.pauseFor(st);
    }
    m.lag.set({ topic: batch.topic, partition: String(batch.partition) }, Number(batch.offsetLag()));
    if (st.pendingEnd === undefined && st.buffer.isDue(Date.now())) this.startFlush(st);
    this.updateGauges();
    await heartbeat();
  }

  private flushDue(): void {
    const now = Date.now();
    for (const st of this.parts.values()) {
      if (st.pendingEnd === undefined && st.buffer.isDue(now)) this.startFlush(st);
    }
  }

  /** Starts writing what the buffer holds, unless a write of this partition is in flight (then false). */
  private startFlush(st: PartitionState): boolean {
    if (st.inflight) return false;
    const batch = st.buffer.take();
    if (!batch) return true;
    st.pendingEnd = undefined;
    st.inflightBytes = batch.bytes;
    st.inflightGeneration = this.generation;
    st.inflight = this.write(st, batch)
      .catch((err) =>
        this.opts.logger.error({ err, batch: batchToken(batch) }, 'ingest: batch write aborted'),
      )
      .finally(() => {
        st.inflight = undefined;
        st.inflightBytes = 0;
        st.failing = false;
        if (st.paused) this.resume(st);
        this.updateGauges();
      });
    this.updateGauges();
    return true;
  }

  private pauseFor(st: PartitionState): void {
    if (st.paused) return;
    st.paused = true;
    this.pauseOrResume('pause', st);
  }

  private resume(st: PartitionState): void {
    st.paused = false;
    this.pauseOrResume('resume', st);
  }

  // While kafkajs restarts a crashed consumer it has no group to pause or resume in; the restarted consumer
  // fetches from the committed offsets anyway.
  private pauseOrResume(what: 'pause' | 'resume', st: PartitionState): void {
    try {
      this.consumer[what]([{ topic: st.topic, partitions: [st.partition] }]);
    } catch (err) {
      this.opts.logger.warn({ err, topic: st.topic, partition: st.partition }, `ingest: could not ${what}`);
    }
    this.updateGauges();
  }

  /** True while this member owns the partition in the generation the batch was formed in. */
  private stillOwner(st: PartitionState, generation: number): boolean {
    return generation === this.generation && this.owned.has(key(st.topic, st.partition));
  }

  private async commit(st: PartitionState, offset: string, metadata: string | null): Promise<void> {
    await this.consumer.commitOffsets([{ topic: st.topic, partition: st.partition, offset, metadata }]);
  }

  private async expectCommitted(st: PartitionState, offset: string, metadata: string): Promise<void> {
    const offsets = await this.admin.fetchOffsets({ groupId: this.opts.groupId, topics: [st.topic] });
    const p = offsets.find((t) => t.topic === st.topic)?.partitions.find((x) => x.partition === st.partition);
    if (p?.offset !== offset || p.metadata !== metadata) {
      this.stats.unrecordedCommits += 1;
      throw new Error(
        `the commit of offset ${offset} for ${st.topic}/${st.partition} was not recorded (found ${p?.offset ?? 'none'})`,
      );
    }
  }

  private async write(st: PartitionState, batch: Batch): Promise<void> {
    const { logger } = this.opts;
    const generation = this.generation;
    const token = batchToken(batch);
    const started = Date.now();
    let intentDone = false;
    let deadSent = false;
    for (let attempt = 1; ; attempt++) {
      // Never write or commit for a partition this member no longer owns (kafkajs #1046): the new owner
      // re-forms this batch from the committed intent.
      if (!this.stillOwner(st, generation)) {
        logger.warn({ batch: token }, 'ingest: partition revoked; batch left to its new owner');
        return;
      }
      try {
        if (!intentDone) {
          const intent = `${INTENT}${batch.lastOffset}`;
          await this.commit(st, batch.firstOffset, intent);
          // kafkajs resolves a commit without sending it once its consumer has stopped (a crash, before the
          // restart), and the batch would then be stored while the next owner forms batches of its own: the
          // intent counts only when the group coordinator gives it back.
          await this.expectCommitted(st, batch.firstOffset, intent);
          intentDone = true;
        }
        // A commit that kafkajs retried across a rebalance lands under the new generation, possibly after the
        // new owner read the offsets and formed a batch of its own: when the group moved on meanwhile, the
        // batch is left to the new owner, which re-forms it if it saw the intent and reads past it if not.
        if (!this.stillOwner(st, generation)) {
          logger.warn(
            { batch: token },
            'ingest: partition revoked before the insert; batch left to its new owner',
          );
          return;
        }
        if (!deadSent) {
          await sendDeadLetters(this.producer, batch, batch.dead);
          deadSent = true;
        }
        if (!this.stillOwner(st, generation)) {
          logger.warn(
            { batch: token },
            'ingest: partition revoked before the insert; batch left to its new owner',
          );
          return;
        }
        await this.opts.write({ usage: batch.usage, logs: batch.logs }, token);
        break;
      } catch (err) {
        this.stats.failures += 1;
        m.retries.inc();
        if (this.stopping) throw err;
        // Infrastructure errors are never dead-lettered: the partition pauses, the batch waits uncommitted.
        st.failing = true;
        this.pauseFor(st);
        const what = !intentDone ? 'offset commit' : !deadSent ? 'dead-letter write' : 'insert';
        const delay = backoffMs(attempt);
        logger.error(
          { err, batch: token, attempt, delay: Math.round(delay) },
          `ingest: ${what} failed, retrying`,
        );
        this.opts.reportFault?.(
          `ingest.${what.replace(/ /g, '-')}`,
          `${what} failed for ${st.topic}/${st.partition}, retrying: ${(err as Error).message}`,
        );
        await sleep(delay);
      }
    }
    this.stats.batches += 1;
    this.stats.inserted += batch.usage.length + batch.logs.length;
    this.stats.deadLettered += batch.dead.length;
    m.batchRows.observe(batch.count);
    m.batchBytes.observe(batch.bytes);
    m.batchSeconds.observe((Date.now() - started) / 1000);
    m.messages.inc({ topic: batch.topic, outcome: 'stored' }, batch.count - batch.dead.length);
    if (batch.dead.length > 0)
      m.messages.inc({ topic: batch.topic, outcome: 'dead_letter' }, batch.dead.length);
    for (const d of batch.dead) m.deadLetters.inc({ topic: batch.topic, reason: reasonCategory(d.reason) });
    if (this.opts.testCommitDelayMs) await sleep(this.opts.testCommitDelayMs);
    if (!this.stillOwner(st, generation)) return;
    try {
      await this.commit(st, (BigInt(batch.lastOffset) + 1n).toString(), null);
    } catch (err) {
      // The intent stays committed: the next owner re-forms this batch, and its insert is dropped as a duplicate.
      logger.warn({ err, batch: token }, 'ingest: offset commit failed after insert');
    }
  }

  private updateGauges(): void {
    let bytes = 0;
    let paused = 0;
    for (const st of this.parts.values()) {
      bytes += st.buffer.byteSize + st.inflightBytes;
      if (st.paused) paused += 1;
    }
    if (bytes > this.stats.peakBufferedBytes) this.stats.peakBufferedBytes = bytes;
    m.bufferedBytes.set(bytes);
    m.pausedPartitions.set(paused);
  }

  /** The consumer's instrumentation events (GROUP_JOIN, COMMIT_OFFSETS, ...), for metrics and tests. */
  get events(): Consumer['events'] {
    return this.consumer.events;
  }

  on(...args: Parameters<Consumer['on']>): ReturnType<Consumer['on']> {
    return this.consumer.on(...args);
  }

  /** Stops taking messages, writes and commits what is buffered, and leaves the group. */
  async stop(): Promise<void> {
    if (!this.running) return;
    if (this.timer) clearInterval(this.timer);
    this.consumer.pause(this.opts.topics.map((topic) => ({ topic })));
    // From here a failing write gives up at once: its intent is committed, so the next owner re-forms it.
    this.stopping = true;
    for (const st of this.parts.values()) await st.inflight;
    for (const st of this.parts.values()) {
      if (st.pendingEnd === undefined) this.startFlush(st);
      await st.inflight;
    }
    this.running = false;
    await this.consumer.disconnect();
    await this.producer.disconnect();
    await this.admin.disconnect();
  }
}

function key(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
