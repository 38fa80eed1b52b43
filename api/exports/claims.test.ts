// The Idempotency-Key reservation of JobAdmission (with a ClaimStore) as pure logic: the store's rules in memory
// and a stand-in for ClickHouse whose inserts become readable only when the test says so (a lagging replica).
// The real Redis and engine, and the attempt claims of workers and dispatchers: test/integration/claims-redis.
import { describe, expect, it } from 'vitest';
import type { ClickHouse } from '../../clickhouse/client.ts';
import { Unavailable } from '../../core/errors.ts';
import type { ClaimKind, ClaimStore } from './claims.ts';
import { JobAdmission } from './quota.ts';

/** The Redis steps' rules, in memory (no expiry: the tests are shorter than any ttl). */
class MemoryClaims implements ClaimStore {
  readonly keys = new Map<string, string>();
  async claim(kind: ClaimKind, id: string, attempt: number, owner: string) {
    const k = `${kind}:${id}:${attempt}`;
    if (this.keys.has(k)) return false;
    this.keys.set(k, owner);
    return true;
  }
  async release(kind: ClaimKind, id: string, attempt: number, owner: string) {
    const k = `${kind}:${id}:${attempt}`;
    if (this.keys.get(k) === owner) this.keys.delete(k);
  }
  async reserve(userId: string, key: string, jobId: string) {
    const k = JSON.stringify([userId, key]);
    const held = this.keys.get(k);
    if (held !== undefined) return held;
    this.keys.set(k, jobId);
    return jobId;
  }
  async reservation(userId: string, key: string) {
    return this.keys.get(JSON.stringify([userId, key]));
  }
  async settle(userId: string, key: string, jobId: string, ttlMs: number) {
    const k = JSON.stringify([userId, key]);
    if (this.keys.get(k) === jobId && ttlMs === 0) this.keys.delete(k);
  }
  async ready() {}
  async close() {}
}

type Row = Record<string, unknown> & { job_id: string; user_id: string; idempotency_key: string };

/**
 * A stand-in for ClickHouse: inserted jobs are readable only after `publish()` (or at once with `eager`);
 * inserts fail while `failing` (and take reads down with them when `outage`); reads fail while `reads` is false.
 */
function lagging({ eager = false } = {}) {
  const state = {
    stored: [] as Row[],
    readable: [] as Row[],
    failing: false,
    outage: false,
    reads: true,
    inserts: 0,
  };
  const client = {
    query: async ({ query, query_params }: { query: string; query_params: Record<string, string> }) => {
      if (!state.reads) throw new Error('storage down');
      const rows = state.readable;
      let found: Row[] = [];
      if (query.includes('count()')) return { json: async () => [{ n: rows.length }] };
      if (query.includes('idempotency_key = {key:String}')) {
        found = rows.filter(
          (r) => r.user_id === query_params.user_id && r.idempotency_key === query_params.key,
        );
      } else if (query.includes('job_id = {job_id:String}')) {
        found = rows.filter((r) => r.job_id === query_params.job_id);
      }
      return { json: async () => found.slice(0, 1) };
    },
    insert: async ({ values }: { values: Row[] }) => {
      if (state.failing) {
        if (state.outage) state.reads = false;
        throw new Error('connection reset');
      }
      state.inserts++;
      state.stored.push(...values);
      if (eager) state.readable.push(...values);
    },
  };
  return {
    state,
    publish: () => {
      state.readable = [...state.stored];
    },
    ch: { client, embedded: true, database: 'x', close: async () => {} } as unknown as ClickHouse,
  };
}

const req = (idempotencyKey: string | undefined) => ({
  userId: 'u',
  reportType: 'system-events' as const,
  format: 'csv' as const,
  params: {},
  idempotencyKey,
});
const file = (id: string) => `${id}.csv`;

describe('JobAdmission with an Idempotency-Key reserved in a shared store', () => {
  it('two replicas, six concurrent requests, one key: one insert, every answer names its job', async () => {
    const claims = new MemoryClaims();
    const storage = lagging();
    const replicas = [0, 1].map(() => new JobAdmission(storage.ch, 10, Date.now, undefined, { claims }));
    const answers = Promise.all(
      Array.from({ length: 6 }, (_, i) => (replicas[i % 2] as JobAdmission).admit(req('k'), file)),
    );
    await new Promise((r) => setTimeout(r, 120)); // the losers wait for a job no read shows yet
    expect(storage.state.inserts).toBe(1);
    storage.publish();
    const done = await answers;
    expect(new Set(done.map((a) => a.job.job_id)).size).toBe(1);
    expect(done.filter((a) => a.created)).toHaveLength(1);
  });

  it('an insert that failed and is surely absent frees the key for the next request', async () => {
    const claims = new MemoryClaims();
    const storage = lagging({ eager: true });
    const admission = new JobAdmission(storage.ch, 10, Date.now, undefined, { claims });
    storage.state.failing = true;
    await expect(admission.admit(req('k'), file)).rejects.toThrow('connection reset');
    expect(await claims.reservation('u', 'k')).toBeUndefined();
    storage.state.failing = false;
    const { job, created } = await admission.admit(req('k'), file);
    expect(created).toBe(true);
    expect((await admission.admit(req('k'), file)).job.job_id).toBe(job.job_id);
  });

  it('when a failed insert cannot be checked, the key stays reserved: 503, never a second job', async () => {
    const claims = new MemoryClaims();
    const storage = lagging({ eager: true });
    const admission = new JobAdmission(storage.ch, 10, Date.now, undefined, {
      claims,
      idempotencyWaitMs: 100,
      idempotencyPollMs: 10,
    });
    // The insert fails, and so does the read that would tell whether it landed.
    storage.state.failing = true;
    storage.state.outage = true;
    await expect(admission.admit(req('k'), file)).rejects.toThrow('connection reset');
    storage.state.reads = true;
    storage.state.failing = false;
    expect(await claims.reservation('u', 'k')).toBeDefined();
    await expect(admission.admit(req('k'), file)).rejects.toBeInstanceOf(Unavailable);
    expect(storage.state.inserts).toBe(0);
    // Requests without a key are not held up by it.
    expect((await admission.admit(req(undefined), file)).created).toBe(true);
  });
});
