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
import type { EncodedRows } from '../clickhouse/inserts.ts';
import type { IngestStatus, TopicLag } from '../core/health.ts';
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
  type KafkaMessage,
  type Producer,
} from './kafka.ts';
import { batchDelivery } from './ledger.ts';
import { ingestMetrics as m, reasonCategory, registerHealthMetrics } from './metrics.ts';

/**
 * Where batches go: clickhouse/inserts.ts insertEvents in production (the raw tables, and the ledger's record of
 * each valid event's arrival), something failing on purpose in tests.
 */
export type BatchWriter = (rows: EncodedRows, token: string) => Promise<void>;

/** Notable faults, recorded as system logs of the service (rate-limited by the receiver). */
export type FaultReporter = (kind: string, message: string) => void;

export interface IngesterOptions {
  kafka: Kafka;
  write: BatchWriter;
  /**
   * Records each batch's dead letters in the ingestion ledger before its insert (ingest/ledger.ts recordBatch;
   * default none). Its valid events are recorded by the insert itself.
   */
  ledger?: (batch: Batch) => Promise<void>;
  topics: readonly string[];
  groupId: string;
  limits: BatchLimits;
  logger: Logger;
  reportFault?: FaultReporter;
  /** Partitions processed in parallel by this member (default 4). */
  concurrency?: number;
  /** Consumer session timeout; a member silent this long is dropped from the group (default 30 s). */
  sessionTimeoutMs?: number;
  /**
   * How long the ingester may be unable to consume (with lag, or disconnected) before it counts as failing:
   * /readyz of the ingest role turns 503 and an error system log is written (default 30 s).
   */
  failingAfterMs?: number;
  /**
   * Raw message bytes this member holds at once, buffered and being written, over all its partitions (default
   * twice the batch byte limit). Past it, partitions stop taking messages until writes end: the memory of
   * decoded rows grows with this figure, not with the number of partitions owned.
   */
  memoryBytes?: number;
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
/** Restarts of a stopped consumer: 0.5 s doubling to 30 s, reset once a restarted consumer has joined. */
const RESTART_BASE_MS = 500;
const RESTART_MAX_MS = 30_000;
/** A consuming member that has had no answer to a fetch this long is taken as disconnected. */
const FETCH_SILENCE_MS = 15_000;
/** How often the lag is read from the group's committed offsets. */
const LAG_EVERY_MS = 5_000;
/** A partition blocked by a write waits this long for it to end before it is paused (see onBatch). */
const WRITE_WAIT_MS = 1_000;
/** A backlogged partition's batch waits this many batch waits to fill (see isDue). */
const BACKLOG_WAITS = 5;

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
  /**
   * The last offset of records kafkajs fetched and filtered out (transaction markers, aborted messages) after
   * the last message taken: committed past when the partition is idle, or the group would never catch up.
   */
  filteredEnd: bigint | undefined;
  /** The last fetch ended before the partition's end: a backlog, whose batches wait longer to fill. */
  behind: boolean;
  /** Broker time of the last message taken (the newest the ingester has read from this partition). */
  lastMessageTime: number | undefined;
  /** Since when this partition's writes have been failing (set with `failing`), and which step fails. */
  failingSince: number | undefined;
  failingStep: string | undefined;
}

/** Capped exponential backoff with jitter (half to full delay). */
export function backoffMs(attempt: number, base = BACKOFF_BASE_MS, max = BACKOFF_MAX_MS): number {
  const cap = Math.min(max, base * 2 ** Math.min(attempt - 1, 16));
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
  private consumer: Consumer;
  private readonly producer: Producer;
  private readonly admin: Admin;
  private readonly parts = new Map<string, PartitionState>();
  /** Partitions paused for the memory budget (not for a write of their own): resumed as writes end. */
  private readonly budgetPaused = new Set<PartitionState>();
  private readonly owned = new Set<string>();
  /** Listeners of the consumer's events, attached again to each consumer a restart makes. */
  private readonly listeners: Parameters<Consumer['on']>[] = [];
  private generation = 0;
  private running = false;
  private stopping = false;
  private timer: NodeJS.Timeout | undefined;
  private lagTimer: NodeJS.Timeout | undefined;
  private loop: Promise<void> | undefined;
  private firstRun: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  // Health, for /readyz and /metrics.
  private phase: IngestStatus['state'] = 'starting';
  private reason: string | undefined = 'connecting to Kafka';
  private stateSince = Date.now();
  private lastFetchAt = 0;
  private lastMessageAt: number | undefined;
  private readonly startedAt = Date.now();
  private lag = new Map<string, { messages: number; partitions: Map<number, number> }>();
  private reportedProblemSince: number | undefined;
  /** Since when the group's lag has been above 0 (undefined while it is 0). */
  private waitingSince: number | undefined;
  /** Since when the ingester has not been a consuming member (kept across restart attempts). */
  private unableSince: number | undefined = Date.now();

  constructor(private readonly opts: IngesterOptions) {
    registerHealthMetrics();
    this.consumer = this.makeConsumer();
    // Few client-side retries: the batch loop retries with its own backoff, pausing the partition and
    // reporting the fault, instead of waiting inside kafkajs.
    this.producer = createProducer(opts.kafka, {
      retries: 2,
      ...(opts.compression ? { compression: opts.compression } : {}),
    });
    this.admin = opts.kafka.admin();
  }

  private makeConsumer(): Consumer {
    const sessionTimeout = this.opts.sessionTimeoutMs ?? 30_000;
    const consumer = this.opts.kafka.consumer({
      groupId: this.opts.groupId,
      sessionTimeout,
      rebalanceTimeout: Math.max(sessionTimeout, 10_000),
      heartbeatInterval: Math.max(500, Math.floor(sessionTimeout / 10)),
      // Fetches are held whole while their messages are taken (kafkajs decodes each fetch into objects, values
      // being views of the decompressed response): smaller fetches keep the JS heap down. 512 KiB of
      // compressed records is ~10,000 typical events per partition; 4 MiB per fetch over all partitions.
      maxBytesPerPartition: 512 * 1024,
      maxBytes: 4 * 1024 * 1024,
      maxWaitTimeInMs: Math.min(500, this.opts.limits.waitMs),
      // kafkajs restarts a crashed consumer only for errors it deems retriable, and a consumer it gives up on
      // stops for good without anyone noticing (a codec it lacks, an error it deems fatal). Every crash ends
      // the consumer here, and the supervisor (supervise) makes a new one, whatever the cause.
      retry: { initialRetryTime: 300, retries: 5, maxRetryTime: 5_000, restartOnFailure: async () => false },
    });
    for (const args of this.listeners) consumer.on(...args);
    return consumer;
  }

  /** Starts consuming and resolves once the consumer runs (it may still be joining the group). */
  async start(): Promise<void> {
    this.startInBackground();
    await this.firstRun;
  }

  /**
   * Starts the supervisor and returns at once: the API of `npm start` must not wait for Kafka (which may be
   * down, or hold the group until a killed member's session expires). The status says what it is doing.
   */
  startInBackground(): void {
    if (this.loop) return;
    this.running = true;
    let ran!: () => void;
    this.firstRun = new Promise<void>((r) => {
      ran = r;
    });
    const tick = Math.max(50, Math.min(250, Math.floor(this.opts.limits.waitMs / 2)));
    this.timer = setInterval(() => this.onTick(), tick);
    this.timer.unref();
    this.lagTimer = setInterval(() => void this.refreshLag(), LAG_EVERY_MS);
    this.lagTimer.unref();
    this.loop = this.supervise(ran);
  }

  /**
   * One consumer at a time: connect, join, run until it stops for any reason, then make a new one after a
   * capped backoff. Nothing is lost by a restart: what was not committed is fetched again (and re-formed from
   * the intent where a batch was cut).
   */
  private async supervise(ran: () => void): Promise<void> {
    const { topics, logger } = this.opts;
    for (let attempt = 1; !this.stopping; attempt++) {
      const consumer = this.consumer;
      let joined = false;
      let end!: (reason: string) => void;
      const ended = new Promise<string>((r) => {
        end = r;
      });
      consumer.on(consumer.events.GROUP_JOIN, (e) => {
        joined = true;
        this.newGeneration(e.payload.memberAssignment);
        this.setState('consuming');
        logger.info(
          { generation: this.generation, assignment: e.payload.memberAssignment },
          'ingest: joined group',
        );
      });
      consumer.on(consumer.events.FETCH, () => {
        this.lastFetchAt = Date.now();
      });
      consumer.on(consumer.events.CRASH, (e) => {
        // A crashed consumer has left its generation: until the next one joins, this member owns nothing, and
        // a batch formed before the crash writes nothing more (the next owner re-forms it from the intent).
        this.newGeneration({});
        logger.error({ err: e.payload.error, restart: e.payload.restart }, 'ingest: consumer crashed');
        this.opts.reportFault?.('ingest.consumer', `Kafka consumer crashed: ${e.payload.error.message}`);
        end(`the Kafka consumer crashed: ${e.payload.error.message}`);
      });
      // kafkajs stops the consumer before it emits CRASH: give the crash a moment to name the cause.
      consumer.on(consumer.events.STOP, () => {
        if (!this.stopping) setTimeout(() => end('the Kafka consumer stopped'), 2_000).unref();
      });
      consumer.on(consumer.events.END_BATCH_PROCESS, (e) => this.onFilteredBatch(e.payload));
      try {
        this.setState('starting', 'connecting to Kafka');
        await this.admin.connect();
        await ensureTopics(this.admin, topics);
        await this.producer.connect();
        await consumer.connect();
        // A new group starts at the earliest offset: nothing published before the first start is missed.
        await consumer.subscribe({ topics: [...topics], fromBeginning: true });
        if (this.stopping) break;
        this.setState('joining', 'joining the consumer group');
        await consumer.run({
          autoCommit: false,
          eachBatchAutoResolve: false,
          partitionsConsumedConcurrently: this.opts.concurrency ?? 4,
          eachBatch: (payload) => this.onBatch(payload),
        });
        ran();
        const reason = await Promise.race([ended, this.stopRequested()]);
        if (this.stopping) break;
        this.setState('restarting', reason);
      } catch (err) {
        if (this.stopping) break;
        const reason = `cannot reach Kafka: ${(err as Error).message}`;
        logger.error({ err, attempt }, 'ingest: could not start the consumer');
        this.setState('restarting', reason);
      }
      this.newGeneration({});
      await consumer.disconnect().catch(() => undefined);
      if (joined) attempt = 1;
      const delay = backoffMs(attempt, RESTART_BASE_MS, RESTART_MAX_MS);
      logger.warn(
        { attempt, delay: Math.round(delay), reason: this.reason },
        'ingest: restarting the consumer',
      );
      await Promise.race([sleep(delay), this.stopRequested()]);
      if (this.stopping) break;
      this.consumer = this.makeConsumer();
    }
    ran();
  }

  /** Resolves when stop() is called (wakes the supervisor from a wait). */
  private stopRequested(): Promise<string> {
    return new Promise((r) => {
      if (this.stopping) r('stopping');
      else this.wake = () => r('stopping');
    });
  }

  private setState(state: IngestStatus['state'], reason?: string): void {
    if (state === this.phase && reason === this.reason) return;
    const now = Date.now();
    if (state === 'consuming') this.unableSince = undefined;
    else if (this.unableSince === undefined) {
      // Leaving the group after a silence (a broker gone: fetches fail for a while before the crash): the
      // outage began at the last answer, not at the crash.
      const quiet = this.lastFetchAt > 0 && now - this.lastFetchAt > 5_000;
      this.unableSince = quiet ? this.lastFetchAt : now;
    }
    this.phase = state;
    this.reason = reason;
    this.stateSince = now;
  }

  /**
   * A new generation: the consumer fetches again from the committed offsets. Batches of the old generation
   * commit nothing more, and what was buffered is dropped: it will be read again, by us or the new owner.
   */
  private newGeneration(assignment: Record<string, number[]>): void {
    this.generation += 1;
    this.owned.clear();
    // Buffers are dropped below: nothing is held for the budget any more.
    this.budgetPaused.clear();
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
        filteredEnd: undefined,
        lastMessageTime: undefined,
        behind: false,
        failingSince: undefined,
        failingStep: undefined,
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
    const end = batch.highWatermark;
    st.behind = /^\d+$/.test(end ?? '') && BigInt(end) > BigInt(batch.lastOffset()) + 1n;
    // Checked once here and again after each wait below, not per message (each check was ~0.5 µs of the main
    // thread's time per event, --cpu-prof): between waits nothing awaits, so neither the consumer's state, the
    // generation nor a seek (which this ingester never makes) can change.
    const current = () => isRunning() && !isStale() && generation === this.generation && !this.stopping;
    if (!current()) return;
    let now = Date.now();
    // The fetch position moves once, to the last message taken, as the loop ends (however it ends): resolving
    // each message cost ~0.7 µs per event (--cpu-prof), and resolving moves only the fetch position anyway, the
    // commit waits for the write.
    let taken: KafkaMessage | undefined;
    const messages = batch.messages;
    try {
      for (let i = 0; i < messages.length; i++) {
        if (st.paused) return;
        const msg = messages[i] as KafkaMessage;
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
        // Over the member's memory budget: stop taking messages until a write ends. A batch being re-formed is
        // exempt: its end is fixed, and it may be what the others wait for.
        const overBudget = st.pendingEnd === undefined && this.overBudget(st);
        // At its row or byte limit with its previous batch still being written.
        const blocked =
          !overBudget && st.pendingEnd === undefined && st.buffer.isFull() && !this.startFlush(st);
        if (overBudget || blocked) {
          // A write that ends soon is waited for here, and the same message taken after it: paused, the
          // partition would be fetched again only after kafkajs's fetch wait (up to 500 ms while every
          // partition is paused, which left the engine idle for ~20% of a 1M-event run: a timeline of fetches
          // and inserts). Past the wait it is paused (its write's end resumes it), and the rest of this fetch,
          // unresolved, is fetched again after the resume.
          if (await this.writeEnds(blocked ? st : undefined)) {
            await heartbeat();
            if (!current()) return;
            now = Date.now();
            i -= 1;
            continue;
          }
          if (overBudget) this.budgetPaused.add(st);
          return this.pauseFor(st);
        }
        const result = decodeMessage(msg.value, now, msg.headers);
        const bytes = (msg.value?.length ?? 0) + (msg.key?.length ?? 0);
        // The raw message is kept for a dead letter only: kafkajs's values are views of the whole fetch
        // response, so holding one valid message's bytes until the flush would hold every fetch buffered.
        st.buffer.add(
          result.ok
            ? { offset: msg.offset, bytes, result }
            : { offset: msg.offset, bytes, result, key: msg.key, value: msg.value, headers: msg.headers },
          now,
        );
        this.stats.consumed += 1;
        st.lastTaken = offset;
        taken = msg;
        if (st.pendingEnd !== undefined && offset >= st.pendingEnd && !this.startFlush(st))
          return this.pauseFor(st);
      }
    } finally {
      if (taken) {
        resolveOffset(taken.offset);
        st.lastMessageTime = Number(taken.timestamp);
        this.lastMessageAt = now;
      }
    }
    // Every message of the fetch was taken: records after the last one (a transaction's commit marker, aborted
    // messages) were filtered out by kafkajs and are passed over once the partition is idle.
    const fetchedLast = BigInt(batch.lastOffset());
    if (st.lastTaken !== undefined && fetchedLast > st.lastTaken) st.filteredEnd = fetchedLast;
    this.lastFetchAt = Date.now();
    if (this.isDue(st, Date.now())) this.startFlush(st);
    this.updateGauges();
    await heartbeat();
  }

  /**
   * Waits for `st`'s write to end (or any write, for the budget), at most WRITE_WAIT_MS; true when one ended.
   * False at once when there is none to wait for.
   */
  private async writeEnds(st: PartitionState | undefined): Promise<boolean> {
    const writes: Promise<unknown>[] = [];
    if (st) {
      if (st.inflight) writes.push(st.inflight);
    } else {
      for (const p of this.parts.values()) if (p.inflight) writes.push(p.inflight);
    }
    if (writes.length === 0) return false;
    let timer: NodeJS.Timeout | undefined;
    const ended = await Promise.race([
      Promise.race(writes).then(() => true),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(false), Math.min(WRITE_WAIT_MS, this.opts.limits.waitMs));
      }),
    ]);
    clearTimeout(timer);
    return ended;
  }

  /**
   * A batch leaves at its row or byte limit, or once its first message has waited the batch wait; on a
   * backlog (the partition has more than was fetched) it waits BACKLOG_WAITS times longer to fill: an insert's
   * cost per row falls steeply with its size, and the backlog's messages wait anyway.
   */
  private isDue(st: PartitionState, now: number): boolean {
    if (st.pendingEnd !== undefined) return false;
    const wait = this.opts.limits.waitMs * (st.behind ? BACKLOG_WAITS : 1);
    return st.buffer.isDue(now, wait);
  }

  private onTick(): void {
    const now = Date.now();
    let writing = false;
    let largest: PartitionState | undefined;
    for (const st of this.parts.values()) {
      if (this.isDue(st, now)) this.startFlush(st);
      else this.passFiltered(st);
      if (st.inflight) writing = true;
      else if (
        st.pendingEnd === undefined &&
        st.buffer.size > 0 &&
        st.buffer.byteSize > (largest?.buffer.byteSize ?? 0)
      )
        largest = st;
    }
    // Partitions waiting for the budget wait for a write to end; with none under way, the largest batch goes
    // now rather than at its wait.
    if (!writing && largest && this.budgetPaused.size > 0) this.startFlush(largest);
    this.resumeBudgetPaused();
    this.reportHealth(now);
  }

  /**
   * kafkajs does not hand eachBatch a fetch whose records were all filtered out (only a transaction marker, or
   * only aborted messages); it says so in END_BATCH_PROCESS with batchSize 0. Such records directly after the
   * last message taken are passed over like the rest.
   */
  private onFilteredBatch(p: {
    topic: string;
    partition: number;
    batchSize: number;
    firstOffset: string;
    lastOffset: string;
  }): void {
    if (p.batchSize !== 0 || !p.firstOffset || !/^\d+$/.test(p.lastOffset)) return;
    const st = this.state(p.topic, p.partition);
    const first = BigInt(p.firstOffset);
    const last = BigInt(p.lastOffset);
    if (st.lastTaken === undefined ? st.buffer.size === 0 : first === st.lastTaken + 1n) {
      if (st.filteredEnd === undefined || last > st.filteredEnd) st.filteredEnd = last;
    }
  }

  /**
   * Commits past filtered records once the partition is idle (nothing buffered, written or re-formed), so the
   * committed offset reaches the end of the partition and the lag reads 0. The commit runs as the partition's
   * in-flight operation, so no batch's intent commit can race it.
   */
  private passFiltered(st: PartitionState): void {
    const end = st.filteredEnd;
    if (end === undefined || st.inflight || st.paused || st.buffer.size > 0 || st.pendingEnd !== undefined)
      return;
    st.filteredEnd = undefined;
    if (st.lastTaken !== undefined && end <= st.lastTaken) return;
    const generation = this.generation;
    if (!this.stillOwner(st, generation)) return;
    st.lastTaken = end;
    st.inflightGeneration = generation;
    st.inflight = this.commit(st, (end + 1n).toString(), null)
      .catch((err) =>
        this.opts.logger.warn(
          { err, topic: st.topic, partition: st.partition },
          'ingest: could not commit past filtered records',
        ),
      )
      .finally(() => {
        st.inflight = undefined;
        if (st.paused) this.resume(st);
      });
  }

  /** Reads the group's committed offsets and the partitions' ends: the lag, whatever the consumer is doing. */
  private async refreshLag(): Promise<void> {
    if (!this.running) return;
    try {
      const next = new Map<string, { messages: number; partitions: Map<number, number> }>();
      const committed = await this.admin.fetchOffsets({
        groupId: this.opts.groupId,
        topics: [...this.opts.topics],
      });
      for (const t of committed) {
        const ends = await this.admin.fetchTopicOffsets(t.topic);
        const partitions = new Map<number, number>();
        let messages = 0;
        for (const p of ends) {
          const c = t.partitions.find((x) => x.partition === p.partition);
          const from = c && /^\d+$/.test(c.offset) ? BigInt(c.offset) : BigInt(p.low);
          const lag = Number(BigInt(p.high) > from ? BigInt(p.high) - from : 0n);
          partitions.set(p.partition, lag);
          messages += lag;
          m.lag.set({ topic: t.topic, partition: String(p.partition) }, lag);
        }
        next.set(t.topic, { messages, partitions });
      }
      this.lag = next;
      let waiting = 0;
      for (const l of next.values()) waiting += l.messages;
      if (waiting === 0) this.waitingSince = undefined;
      else this.waitingSince ??= Date.now();
    } catch (err) {
      // The broker is away: the last lag read stays, and the state says why nothing moves.
      this.opts.logger.debug({ err }, 'ingest: could not read the lag');
    }
  }

  /** Why the ingester cannot consume right now, and since when; undefined while it can. */
  private problem(now: number): { reason: string; since: number } | undefined {
    if (this.phase !== 'consuming') {
      return { reason: this.reason ?? this.phase, since: this.unableSince ?? this.stateSince };
    }
    const quietSince = Math.max(this.lastFetchAt, this.stateSince);
    if (now - quietSince > FETCH_SILENCE_MS) {
      return {
        reason: `no answer from Kafka since ${new Date(quietSince).toISOString()}`,
        since: quietSince,
      };
    }
    let waiting = 0;
    for (const l of this.lag.values()) waiting += l.messages;
    if (waiting === 0) return undefined;
    const progressAt = Math.max(this.lastMessageAt ?? this.startedAt, this.stateSince);
    let failingSince: number | undefined;
    const steps = new Set<string>();
    for (const st of this.parts.values()) {
      if (!st.failing || st.failingSince === undefined) continue;
      failingSince = Math.min(failingSince ?? now, st.failingSince);
      if (st.failingStep) steps.add(st.failingStep);
    }
    if (failingSince !== undefined) {
      // The step says where: an insert is the storage, an offset commit or dead-letter write is Kafka.
      return {
        reason: `${waiting} messages waiting: ${[...steps].join(', ') || 'writes'} failing, retrying`,
        since: Math.max(progressAt, failingSince),
      };
    }
    // Waiting counts from when the lag was first seen without anything read since: a message published a
    // moment before the lag was read is not an outage, however long the topic had been idle.
    const stuckSince = Math.max(progressAt, this.waitingSince ?? now);
    if (now - stuckSince > FETCH_SILENCE_MS) {
      return {
        reason: `${waiting} messages waiting, none read since ${new Date(stuckSince).toISOString()}`,
        since: stuckSince,
      };
    }
    return undefined;
  }

  private failingAfter(): number {
    return this.opts.failingAfterMs ?? 30_000;
  }

  /** The ingester's state for /readyz; `failing` once it has not been able to consume for the grace period. */
  status(now: number = Date.now()): IngestStatus {
    const problem = this.running ? this.problem(now) : undefined;
    const lag: Record<string, TopicLag> = {};
    for (const topic of this.opts.topics) {
      const l = this.lag.get(topic);
      let newest: number | undefined;
      for (const st of this.parts.values()) {
        if (st.topic === topic && st.lastMessageTime !== undefined)
          newest = Math.max(newest ?? 0, st.lastMessageTime);
      }
      const messages = l?.messages ?? 0;
      // How old the newest message read from the topic is, while messages wait (0 when caught up).
      const seconds = messages > 0 ? Math.max(0, Math.round((now - (newest ?? this.startedAt)) / 1000)) : 0;
      lag[topic] = { messages, seconds };
    }
    return {
      state: this.running ? this.phase : 'stopped',
      ...(problem ? { reason: problem.reason, since: new Date(problem.since).toISOString() } : {}),
      failing: problem !== undefined && now - problem.since > this.failingAfter(),
      lag,
      ...(this.lastMessageAt ? { last_message_at: new Date(this.lastMessageAt).toISOString() } : {}),
    };
  }

  /** Metrics every tick, and one error system log per episode once the ingester counts as failing. */
  private reportHealth(now: number): void {
    const problem = this.problem(now);
    m.up.set(problem ? 0 : 1);
    m.sinceLastMessage.set((now - (this.lastMessageAt ?? this.startedAt)) / 1000);
    for (const [topic, l] of Object.entries(this.status(now).lag)) m.lagSeconds.set({ topic }, l.seconds);
    if (!problem) {
      this.reportedProblemSince = undefined;
      return;
    }
    if (now - problem.since > this.failingAfter() && this.reportedProblemSince !== problem.since) {
      this.reportedProblemSince = problem.since;
      const message = `ingestion cannot consume since ${new Date(problem.since).toISOString()}: ${problem.reason}`;
      this.opts.logger.error({ since: new Date(problem.since).toISOString() }, `ingest: ${message}`);
      this.opts.reportFault?.('ingest.down', message);
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
        this.resumeBudgetPaused();
        this.updateGauges();
      });
    this.updateGauges();
    return true;
  }

  private heldBytes(): number {
    let bytes = 0;
    for (const st of this.parts.values()) bytes += st.buffer.byteSize + st.inflightBytes;
    return bytes;
  }

  private memoryBytes(): number {
    return this.opts.memoryBytes ?? 2 * this.opts.limits.bytes;
  }

  /**
   * Whether a partition must stop taking messages for the memory budget: at the budget, or, to start a new
   * batch, while the other partitions hold half of it. Without the second rule every owned partition fills a
   * share of the budget and flushes it at the batch wait, so batches shrink as partitions are added (8
   * partitions and 32 MiB: ~20,000 rows on average), and an insert's cost per row grows steeply as it shrinks
   * (measured into the raw tables and every view: 40,000 rows ~95,000 rows/s, 10,000 rows ~35,000). With it a
   * few partitions at a time fill whole batches while the others wait their turn.
   */
  private overBudget(st: PartitionState): boolean {
    const held = this.heldBytes();
    if (held >= this.memoryBytes()) return true;
    if (st.buffer.size > 0) return false;
    return held - st.inflightBytes >= this.memoryBytes() / 2;
  }

  /**
   * Resumes the partitions paused for the budget once under half of it, the share at which a new batch may start
   * (those with a write of their own wait for it).
   */
  private resumeBudgetPaused(): void {
    if (this.budgetPaused.size === 0 || this.heldBytes() >= this.memoryBytes() / 2) return;
    for (const st of this.budgetPaused) {
      this.budgetPaused.delete(st);
      if (st.paused && !st.inflight) this.resume(st);
    }
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
        await this.opts.ledger?.(batch);
        await this.opts.write(
          { usage: batch.usage, logs: batch.logs, delivery: batchDelivery(batch) },
          token,
        );
        break;
      } catch (err) {
        this.stats.failures += 1;
        m.retries.inc();
        if (this.stopping) throw err;
        // Infrastructure errors are never dead-lettered: the partition pauses, the batch waits uncommitted.
        if (!st.failing) st.failingSince = Date.now();
        st.failing = true;
        this.pauseFor(st);
        const what = !intentDone ? 'offset commit' : !deadSent ? 'dead-letter write' : 'insert';
        st.failingStep = what;
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

  /** Listens to the consumer's events, on this consumer and on every one a restart makes. */
  on(...args: Parameters<Consumer['on']>): void {
    this.listeners.push(args);
    this.consumer.on(...args);
  }

  /** Stops taking messages, writes and commits what is buffered, and leaves the group. */
  async stop(): Promise<void> {
    if (!this.running) return;
    if (this.timer) clearInterval(this.timer);
    if (this.lagTimer) clearInterval(this.lagTimer);
    try {
      this.consumer.pause(this.opts.topics.map((topic) => ({ topic })));
    } catch {
      // Not running (restarting, or never joined): nothing to pause.
    }
    // From here a failing write gives up at once: its intent is committed, so the next owner re-forms it.
    this.stopping = true;
    this.wake?.();
    // A supervisor still connecting to an absent broker may take the client's retries to notice: not longer
    // than the drain allows.
    await Promise.race([this.loop, sleep(5_000)]);
    for (const st of this.parts.values()) await st.inflight;
    for (const st of this.parts.values()) {
      if (st.pendingEnd === undefined) this.startFlush(st);
      await st.inflight;
    }
    this.running = false;
    this.setState('stopped');
    await this.consumer.disconnect().catch(() => undefined);
    await this.producer.disconnect().catch(() => undefined);
    await this.admin.disconnect().catch(() => undefined);
  }
}

function key(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
