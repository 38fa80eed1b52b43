// The quota's clock arithmetic, the in-process lock that makes "count + insert" one step, and the admission's
// use of a shared counter (seeding, refusal, refund after a failed insert) with a counter in memory and a
// stand-in for ClickHouse: pure logic only; the real Redis and engine are in test/integration.
import { describe, expect, it } from 'vitest';
import type { ClickHouse } from '../../clickhouse/client.ts';
import { RateLimited } from '../../core/errors.ts';
import { KeyedMutex } from './lock.ts';
import { JobAdmission, type SharedQuota, secondsToUtcMidnight, utcDay } from './quota.ts';

describe('quota day', () => {
  it('counts seconds to the next UTC midnight, never 0', () => {
    expect(secondsToUtcMidnight(Date.parse('2025-03-04T23:59:30Z'))).toBe(30);
    expect(secondsToUtcMidnight(Date.parse('2025-03-04T00:00:00Z'))).toBe(86_400);
    expect(secondsToUtcMidnight(Date.parse('2025-03-04T23:59:59.900Z'))).toBe(1);
    expect(utcDay(Date.parse('2025-03-04T23:59:59.999Z'))).toBe('2025-03-04');
  });
});

describe('KeyedMutex', () => {
  it('runs calls of one key one at a time, in order, and other keys alongside', async () => {
    const m = new KeyedMutex();
    const log: string[] = [];
    const step = (key: string, name: string, ms: number) =>
      m.run(key, async () => {
        log.push(`${name}+`);
        await new Promise((r) => setTimeout(r, ms));
        log.push(`${name}-`);
      });
    await Promise.all([step('a', 'a1', 20), step('a', 'a2', 1), step('b', 'b1', 5)]);
    expect(log).toEqual(['a1+', 'b1+', 'b1-', 'a1-', 'a2+', 'a2-']);
  });

  it('releases the key when a call throws', async () => {
    const m = new KeyedMutex();
    await expect(m.run('k', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await m.run('k', async () => 7)).toBe(7);
  });
});

/** The Lua script's rules, in memory. */
class MemoryQuota implements SharedQuota {
  readonly counters = new Map<string, number>();
  readonly ttls: number[] = [];
  seeds = 0;
  async take(userId: string, day: string, cap: number, ttlMs: number, durable: () => Promise<number>) {
    const key = `${day}:${userId}`;
    let n = this.counters.get(key);
    if (n === undefined) {
      this.seeds++;
      n = await durable();
      this.ttls.push(ttlMs);
    }
    if (n >= cap) {
      this.counters.set(key, n);
      return { admitted: false, used: n };
    }
    this.counters.set(key, n + 1);
    return { admitted: true, used: n + 1 };
  }
  async giveBack(userId: string, day: string) {
    const key = `${day}:${userId}`;
    const n = this.counters.get(key);
    if (n !== undefined && n > 0) this.counters.set(key, n - 1);
  }
  async ready() {}
  async close() {}
}

/** A stand-in for ClickHouse: `durable` jobs counted for the day, inserts that fail while `failing`. */
function fakeStorage(durable: number) {
  const state = { durable, failing: false, inserted: 0 };
  const client = {
    query: async ({ query }: { query: string }) => ({
      json: async () => (query.includes('count()') ? [{ n: state.durable }] : []),
    }),
    insert: async () => {
      if (state.failing) throw new Error('connection reset');
      state.inserted++;
    },
  };
  return {
    state,
    ch: { client, embedded: true, database: 'x', close: async () => {} } as unknown as ClickHouse,
  };
}

describe('JobAdmission with a shared counter', () => {
  const now = Date.parse('2025-03-04T22:00:00Z');
  const req = (userId: string) => ({
    userId,
    reportType: 'system-events' as const,
    format: 'csv' as const,
    params: {},
    idempotencyKey: undefined,
  });
  const file = (id: string) => `${id}.csv`;

  it('seeds an absent counter from the durable count, then admits up to the cap only', async () => {
    const shared = new MemoryQuota();
    const { ch, state } = fakeStorage(7);
    const admission = new JobAdmission(ch, 10, () => now, shared);
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, () => admission.admit(req('u'), file)),
    );
    expect(results.map((r) => r.status)).toEqual([
      'fulfilled',
      'fulfilled',
      'fulfilled',
      'rejected',
      'rejected',
    ]);
    const refusal = (results[3] as PromiseRejectedResult).reason as RateLimited;
    expect(refusal).toBeInstanceOf(RateLimited);
    expect(refusal.retryAfterSeconds).toBe(2 * 3600);
    expect(state.inserted).toBe(3);
    expect(shared.seeds).toBe(1);
    // The counter outlives the day by the grace hour, no less.
    expect(shared.ttls).toEqual([(2 * 3600 + 3600) * 1000]);
  });

  it('gives a job back when the insert failed and ClickHouse does not hold it', async () => {
    const shared = new MemoryQuota();
    const { ch, state } = fakeStorage(0);
    const admission = new JobAdmission(ch, 2, () => now, shared);
    state.failing = true;
    await expect(admission.admit(req('u'), file)).rejects.toThrow('connection reset');
    expect(shared.counters.get(`${utcDay(now)}:u`)).toBe(0);
    state.failing = false;
    await admission.admit(req('u'), file);
    await admission.admit(req('u'), file);
    await expect(admission.admit(req('u'), file)).rejects.toBeInstanceOf(RateLimited);
    expect(state.inserted).toBe(2);
  });

  it('keeps the job counted when it cannot tell whether the failed insert landed', async () => {
    const shared = new MemoryQuota();
    const { ch, state } = fakeStorage(0);
    // The insert fails and the check fails too (storage gone): the job stays spent.
    const failingQuery = { ...ch.client, query: async () => Promise.reject(new Error('down')) };
    const broken = { ...ch, client: failingQuery } as unknown as ClickHouse;
    shared.counters.set(`${utcDay(now)}:u`, 0);
    state.failing = true;
    const admission = new JobAdmission(broken, 2, () => now, shared);
    await expect(admission.admit(req('u'), file)).rejects.toThrow('connection reset');
    expect(shared.counters.get(`${utcDay(now)}:u`)).toBe(1);
  });
});
