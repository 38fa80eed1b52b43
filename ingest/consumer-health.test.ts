// The ingester's health rules on a stand-in for kafkajs (pure logic: no broker here; the fault tests in
// test/faults/ingest-down.test.ts and test/integration/codec-crash.test.ts show the same on a real one).
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../core/logger.ts';
import { Ingester } from './consumer.ts';
import type { Kafka } from './kafka.ts';

const EVENTS = {
  GROUP_JOIN: 'consumer.group_join',
  FETCH: 'consumer.fetch',
  CRASH: 'consumer.crash',
  STOP: 'consumer.stop',
  END_BATCH_PROCESS: 'consumer.end_batch_process',
};

/** A consumer group whose events the test fires, and whose lag it sets. */
function fakeKafka() {
  const consumers: {
    emit(event: string, payload: object): void;
    eachBatch?: (payload: object) => Promise<void>;
  }[] = [];
  const lag = { committed: '0', high: '0' };
  const kafka = {
    consumer() {
      const listeners = new Map<string, ((e: { payload: object }) => void)[]>();
      const c: {
        events: typeof EVENTS;
        eachBatch?: (payload: object) => Promise<void>;
        [k: string]: unknown;
      } = {
        events: EVENTS,
        on(event: string, fn: (e: { payload: object }) => void) {
          listeners.set(event, [...(listeners.get(event) ?? []), fn]);
          return () => undefined;
        },
        emit(event: string, payload: object) {
          for (const fn of listeners.get(event) ?? []) fn({ payload });
        },
        connect: async () => undefined,
        subscribe: async () => undefined,
        run: async (o: { eachBatch: (payload: object) => Promise<void> }) => {
          c.eachBatch = o.eachBatch;
        },
        // Commits "succeed" but the coordinator never has them: the ingester's read-back fails, as when a
        // commit is lost.
        commitOffsets: async () => undefined,
        disconnect: async () => undefined,
        pause: () => undefined,
        resume: () => undefined,
      };
      consumers.push(c as unknown as (typeof consumers)[number]);
      return c;
    },
    producer: () => ({
      connect: async () => undefined,
      disconnect: async () => undefined,
      send: async () => [],
      sendBatch: async () => [],
    }),
    admin: () => ({
      connect: async () => undefined,
      disconnect: async () => undefined,
      listTopics: async () => ['t', 't.dlq'],
      fetchOffsets: async () => [{ topic: 't', partitions: [{ partition: 0, offset: lag.committed }] }],
      fetchTopicOffsets: async () => [{ partition: 0, low: '0', high: lag.high }],
    }),
  };
  return { kafka: kafka as unknown as Kafka, consumers, lag };
}

describe('ingester health', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  async function started() {
    const f = fakeKafka();
    const faults: string[] = [];
    const ingester = new Ingester({
      kafka: f.kafka,
      write: async () => undefined,
      topics: ['t'],
      groupId: 'g',
      limits: { rows: 10, bytes: 1_000_000, waitMs: 200 },
      logger: createLogger('silent'),
      reportFault: (kind, message) => faults.push(`${kind}: ${message}`),
    });
    await ingester.start();
    return { ingester, faults, ...f };
  }

  it('joining, then consuming; caught up is healthy however long nothing arrives', async () => {
    const { ingester, consumers } = await started();
    expect(ingester.status()).toMatchObject({
      state: 'joining',
      reason: 'joining the consumer group',
      failing: false,
    });
    consumers[0]?.emit(EVENTS.GROUP_JOIN, { memberAssignment: { t: [0] } });
    for (let i = 0; i < 12; i++) {
      consumers[0]?.emit(EVENTS.FETCH, {});
      await vi.advanceTimersByTimeAsync(10_000);
    }
    expect(ingester.status()).toMatchObject({
      state: 'consuming',
      failing: false,
      lag: { t: { messages: 0 } },
    });
    expect(ingester.status().reason).toBeUndefined();
  });

  it('a lag just seen is no outage; a lag with nothing read for 15 s is, and failing after 30 s more, once logged', async () => {
    const { ingester, consumers, lag, faults } = await started();
    consumers[0]?.emit(EVENTS.GROUP_JOIN, { memberAssignment: { t: [0] } });
    // Idle for a long while, then messages arrive.
    for (let i = 0; i < 10; i++) {
      consumers[0]?.emit(EVENTS.FETCH, {});
      await vi.advanceTimersByTimeAsync(10_000);
    }
    lag.high = '5';
    await vi.advanceTimersByTimeAsync(5_000);
    consumers[0]?.emit(EVENTS.FETCH, {});
    expect(ingester.status()).toMatchObject({ failing: false, lag: { t: { messages: 5 } } });
    expect(ingester.status().reason).toBeUndefined();
    // Nothing is read: after 15 s a reason, after 30 s more failing and one error record.
    for (let i = 0; i < 4; i++) {
      consumers[0]?.emit(EVENTS.FETCH, {});
      await vi.advanceTimersByTimeAsync(5_000);
    }
    expect(ingester.status()).toMatchObject({
      failing: false,
      reason: expect.stringMatching(/^5 messages waiting/),
    });
    for (let i = 0; i < 7; i++) {
      consumers[0]?.emit(EVENTS.FETCH, {});
      await vi.advanceTimersByTimeAsync(5_000);
    }
    expect(ingester.status().failing).toBe(true);
    expect(faults.filter((f) => f.startsWith('ingest.down'))).toHaveLength(1);
    expect(faults[0]).toMatch(
      /^ingest\.down: ingestion cannot consume since \d{4}-\d\d-\d\dT.*: 5 messages waiting/,
    );
    // Caught up again: healthy at once.
    lag.committed = '5';
    await vi.advanceTimersByTimeAsync(5_000);
    expect(ingester.status()).toMatchObject({ failing: false, lag: { t: { messages: 0 } } });
  });

  it('no fetch answered for 15 s is a disconnection; a crash restarts the consumer and says why', async () => {
    const { ingester, consumers, faults } = await started();
    consumers[0]?.emit(EVENTS.GROUP_JOIN, { memberAssignment: { t: [0] } });
    consumers[0]?.emit(EVENTS.FETCH, {});
    await vi.advanceTimersByTimeAsync(16_000);
    expect(ingester.status().reason).toMatch(/^no answer from Kafka since/);
    consumers[0]?.emit(EVENTS.CRASH, {
      error: new Error('Snappy compression not implemented'),
      restart: false,
    });
    await vi.advanceTimersByTimeAsync(10);
    expect(ingester.status()).toMatchObject({
      state: 'restarting',
      reason: 'the Kafka consumer crashed: Snappy compression not implemented',
    });
    expect(faults).toContain('ingest.consumer: Kafka consumer crashed: Snappy compression not implemented');
    // The outage began at the last answer, before the crash: failing 30 s after that, not after the crash.
    await vi.advanceTimersByTimeAsync(15_000);
    expect(consumers.length).toBeGreaterThanOrEqual(2);
    expect(ingester.status().failing).toBe(true);
    consumers.at(-1)?.emit(EVENTS.GROUP_JOIN, { memberAssignment: { t: [0] } });
    consumers.at(-1)?.emit(EVENTS.FETCH, {});
    expect(ingester.status()).toMatchObject({ state: 'consuming', failing: false });
  });
});

describe('ingester health while writes fail', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('names the failing step, and counts from when the writes began to fail', async () => {
    const f = fakeKafka();
    const ingester = new Ingester({
      kafka: f.kafka,
      write: async () => undefined,
      topics: ['t'],
      groupId: 'g',
      limits: { rows: 1, bytes: 1_000_000, waitMs: 200 },
      logger: createLogger('silent'),
    });
    await ingester.start();
    const c = f.consumers[0];
    c?.emit(EVENTS.GROUP_JOIN, { memberAssignment: { t: [0] } });
    f.lag.high = '1';
    const value = Buffer.from(
      JSON.stringify({
        event_id: 'w-1',
        type: 'activity',
        timestamp: '2025-01-02T10:00:00Z',
        user_id: 'u',
        team_id: 't',
        service: 's',
      }),
    );
    await c?.eachBatch?.({
      batch: {
        topic: 't',
        partition: 0,
        messages: [{ offset: '0', key: null, value, timestamp: String(Date.now()), headers: {} }],
        lastOffset: () => '0',
      },
      resolveOffset: () => undefined,
      heartbeat: async () => undefined,
      isRunning: () => true,
      isStale: () => false,
    });
    for (let i = 0; i < 4; i++) {
      c?.emit(EVENTS.FETCH, {});
      await vi.advanceTimersByTimeAsync(5_000);
    }
    expect(ingester.status()).toMatchObject({
      state: 'consuming',
      reason: '1 messages waiting: offset commit failing, retrying',
      failing: false,
    });
    for (let i = 0; i < 6; i++) {
      c?.emit(EVENTS.FETCH, {});
      await vi.advanceTimersByTimeAsync(5_000);
    }
    expect(ingester.status().failing).toBe(true);
    expect(ingester.stats.failures).toBeGreaterThan(2);
  });
});
