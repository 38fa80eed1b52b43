// The control store's guarantees, on PGlite and on a PostgreSQL server (TEST_DATABASE_URL): the quota and the
// Idempotency-Key under concurrent admissions, each queued job claimed once by concurrent claimers, leases that
// expire and are taken over (the loser's writes change nothing), one run per (schedule, period), the per-user
// schedule cap, the webhook outbox written with the job's finish and claimed once, API keys, migrations once.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  admitJob,
  claimJob,
  completeJob,
  failJob,
  getJob,
  heartbeat,
  type NewJob,
} from '../../control/jobs.ts';
import { getKey, insertKey, listKeys, revokeKey } from '../../control/keys.ts';
import { migrateControl } from '../../control/migrate.ts';
import { createSchedule, type ExportSchedule, runsOf, startRun } from '../../control/schedules.ts';
import { claimDelivery, getDelivery, recordDelivery } from '../../control/webhooks.ts';
import { type ApiKeyRecord, newKey } from '../../core/api-keys.ts';
import { backends, type TestControl } from '../helpers/control.ts';

const DAY = '2026-12-05';
const job = (over: Partial<NewJob> = {}): NewJob => ({
  job_id: randomUUID(),
  user_id: 'u1',
  day: DAY,
  idempotency_key: '',
  report_type: 'usage-summary',
  format: 'csv',
  params: '{}',
  file_name: 'f.csv',
  created_at: Date.now(),
  ...over,
});
const schedule = (over: Partial<ExportSchedule> = {}): ExportSchedule => ({
  schedule_id: randomUUID(),
  user_id: 'u1',
  report_type: 'usage-summary',
  format: 'csv',
  cadence: 'daily',
  params: '{}',
  webhook_url: 'http://127.0.0.1:1/hook',
  webhook_secret: 'whsec_x',
  created_at: Date.now(),
  ...over,
});

describe.each(backends())('control store on $name', (backend) => {
  let t: TestControl;
  beforeAll(async () => {
    t = await backend.open();
  });
  afterAll(async () => {
    await t?.dispose();
  });

  it('applies each migration once', async () => {
    expect(await migrateControl(t.db)).toEqual([]);
  });

  it('admits exactly the quota of 30 concurrent requests, and one job per Idempotency-Key', async () => {
    const user = `quota-${randomUUID()}`;
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => admitJob(t.db, job({ user_id: user, created_at: i }), 10)),
    );
    expect(results.filter((r) => 'job' in r && r.created)).toHaveLength(10);
    expect(results.filter((r) => 'full' in r)).toHaveLength(20);
    const [q] = await t.db.query('SELECT used FROM export_quota WHERE user_id = $1', [user]);
    expect(Number(q?.used)).toBe(10);

    const keyed = `idem-${randomUUID()}`;
    const same = await Promise.all(
      Array.from({ length: 12 }, () => admitJob(t.db, job({ user_id: keyed, idempotency_key: 'k1' }), 10)),
    );
    const ids = new Set(same.map((r) => ('job' in r ? r.job.job_id : 'full')));
    expect([...ids]).toHaveLength(1);
    expect(ids.has('full')).toBe(false);
    expect(same.filter((r) => 'job' in r && r.created)).toHaveLength(1);
    // A replay spends no quota; another user's same key is another job.
    const [k] = await t.db.query('SELECT used FROM export_quota WHERE user_id = $1', [keyed]);
    expect(Number(k?.used)).toBe(1);
    const other = await admitJob(t.db, job({ user_id: `${keyed}-b`, idempotency_key: 'k1' }), 10);
    expect('job' in other && other.created).toBe(true);
  });

  it('claims each of 20 queued jobs exactly once among 6 concurrent claimers', async () => {
    // Older than anything the other tests queue, so these are claimed first.
    const mine = Array.from({ length: 20 }, (_, i) => job({ user_id: `claims-${i}`, created_at: -1000 + i }));
    for (const j of mine) expect('job' in (await admitJob(t.db, j, 100))).toBe(true);
    const wanted = new Set(mine.map((j) => j.job_id));
    const taken: string[] = [];
    await Promise.all(
      Array.from({ length: 6 }, async (_, w) => {
        for (;;) {
          const got = await claimJob(t.db, `worker-${w}`, Date.now(), 60_000, 3);
          if (!got || !wanted.has(got.job_id)) return;
          expect(got.status).toBe('processing');
          expect(got.lease_owner).toBe(`worker-${w}`);
          taken.push(got.job_id);
        }
      }),
    );
    expect(taken.sort()).toEqual([...wanted].sort());
  });

  it('takes over an expired lease; the first worker then changes nothing; spent attempts fail the job', async () => {
    const j = job({ user_id: `lease-${randomUUID()}`, created_at: -5000 });
    await admitJob(t.db, j, 10);
    const t0 = Date.now();
    const a = await claimJob(t.db, 'a', t0, 1000, 2);
    expect(a?.job_id).toBe(j.job_id);
    // Not before the lease runs out...
    expect((await claimJob(t.db, 'b', t0 + 500, 1000, 2))?.job_id).not.toBe(j.job_id);
    // ...then it is another worker's, with its attempt counted.
    const b = await claimJob(t.db, 'b', t0 + 1500, 1000, 2);
    expect(b).toMatchObject({ job_id: j.job_id, attempts: 2, lease_owner: 'b' });
    expect(await heartbeat(t.db, j.job_id, 'a', t0 + 1600, 1000, { rows: 1, bytes: 1 })).toBe(false);
    const done = { rows: 1, bytes: 2, sha256: 'x', expiresAt: t0 + 1e6 };
    expect(await completeJob(t.db, j.job_id, 'a', t0 + 1600, done)).toBeUndefined();
    expect(await failJob(t.db, j.job_id, 'a', t0 + 1600, 'no')).toBeUndefined();
    // b dies too: its lease expires with both attempts spent, and the next claim fails the job.
    const c = await claimJob(t.db, 'c', t0 + 3000, 1000, 2);
    expect(c).toMatchObject({ job_id: j.job_id, status: 'failed' });
    expect(c?.error).toMatch(/stopped before finishing 2 times/);
    expect((await getJob(t.db, j.job_id))?.status).toBe('failed');
  });

  it('makes one run and one job of a period however many schedulers race, and caps schedules per user', async () => {
    const s = schedule({ user_id: `cap-${randomUUID()}` });
    const made = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        createSchedule(t.db, { ...s, schedule_id: `${s.schedule_id}-${i}` }, 3),
      ),
    );
    expect(made.filter(Boolean)).toHaveLength(3);
    const sid = `${s.schedule_id}-${made.indexOf(true)}`;
    const jobId = randomUUID();
    const run = {
      schedule_id: sid,
      period_start: '2026-12-01',
      period_end: '2026-12-01',
      user_id: s.user_id,
      created_at: 1,
    };
    const started = await Promise.all(
      Array.from({ length: 5 }, () =>
        startRun(t.db, run, job({ job_id: jobId, user_id: s.user_id, day: '2026-12-01' })),
      ),
    );
    expect(started.filter(Boolean)).toHaveLength(1);
    const [n] = await t.db.query('SELECT count(*) AS n FROM export_jobs WHERE job_id = $1', [jobId]);
    expect(Number(n?.n)).toBe(1);
    // A skipped period is a run without a job: never made later.
    const skip = { ...run, period_start: '2026-12-02', period_end: '2026-12-02' };
    expect(await startRun(t.db, skip, undefined)).toBe(true);
    expect(await startRun(t.db, skip, job({ user_id: s.user_id }))).toBe(false);
    expect((await runsOf(t.db, sid, 10)).map((r) => r.job_id)).toEqual([jobId]);
  });

  it('writes the webhook outbox row with the job finish and lets one dispatcher claim it at a time', async () => {
    const s = schedule({ user_id: `hook-${randomUUID()}` });
    expect(await createSchedule(t.db, s, 5)).toBe(true);
    const jobId = randomUUID();
    await startRun(
      t.db,
      {
        schedule_id: s.schedule_id,
        period_start: '2026-11-01',
        period_end: '2026-11-01',
        user_id: s.user_id,
        created_at: 1,
      },
      job({ job_id: jobId, user_id: s.user_id, day: '2026-11-01', created_at: -9000 }),
    );
    const claimed = await claimJob(t.db, 'w', Date.now(), 60_000, 3);
    expect(claimed?.job_id).toBe(jobId);
    expect(await getDelivery(t.db, jobId)).toBeUndefined();
    const t0 = Date.now();
    await completeJob(t.db, jobId, 'w', t0, { rows: 3, bytes: 4, sha256: 'h', expiresAt: t0 + 1e6 });
    expect(await getDelivery(t.db, jobId)).toMatchObject({
      state: 'pending',
      delivery_id: `${jobId}:completed`,
      attempts: 0,
    });

    const got = await Promise.all(
      Array.from({ length: 5 }, (_, i) => claimDelivery(t.db, `d${i}`, t0 + 10, 1000)),
    );
    const winners = got.filter((g) => g?.delivery.job_id === jobId);
    expect(winners).toHaveLength(1);
    expect(winners[0]).toMatchObject({
      webhook_url: s.webhook_url,
      period_start: '2026-11-01',
      job: { status: 'completed' },
    });
    const first = winners[0]?.delivery.lease_owner as string;
    // Its dispatcher dies: after the lease another one takes it, with the same delivery id; the first's record is refused.
    const again = await claimDelivery(t.db, 'd-next', t0 + 2000, 1000);
    expect(again?.delivery).toMatchObject({ job_id: jobId, delivery_id: `${jobId}:completed` });
    expect(
      await recordDelivery(t.db, jobId, first, t0 + 2100, {
        state: 'delivered',
        attempts: 1,
        lastStatus: 200,
        lastError: '',
      }),
    ).toBe(false);
    expect(
      await recordDelivery(t.db, jobId, 'd-next', t0 + 2100, {
        state: 'delivered',
        attempts: 1,
        lastStatus: 200,
        lastError: '',
      }),
    ).toBe(true);
    expect(await claimDelivery(t.db, 'd-late', t0 + 9000, 1000)).toBeUndefined();
    expect((await runsOf(t.db, s.schedule_id, 10))[0]).toMatchObject({
      webhook_state: 'delivered',
      webhook_attempts: 1,
    });
  });

  it('keeps API keys hashed, found by id, revoked in place', async () => {
    const { record } = newKey({ name: 'svc', scopes: ['read:analytics'], teamId: 't1' });
    expect(await insertKey(t.db, record)).toBe(true);
    expect(await insertKey(t.db, record)).toBe(false);
    expect(await getKey(t.db, record.id)).toEqual(record);
    expect(await revokeKey(t.db, record.id, '2026-12-05T00:00:00.000Z')).toBe(true);
    expect(((await getKey(t.db, record.id)) as ApiKeyRecord).revoked_at).toBe('2026-12-05T00:00:00.000Z');
    expect(await revokeKey(t.db, '0123456789abcdef', 'x')).toBe(false);
    expect((await listKeys(t.db)).some((k) => k.id === record.id)).toBe(true);
  });
});
