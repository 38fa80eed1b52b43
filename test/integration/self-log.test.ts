// The service's own system logs: written to log_events as service "tally", one per kind per window, what was
// held back summed up in one record when the window ends (by its timer, even if nothing else of that kind
// comes), per subject where asked (webhook give-ups), and kept (bounded) while the storage is down.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordAuthFailures } from '../../api/auth/audit.ts';
import type { ClickHouse } from '../../clickhouse/client.ts';
import { SelfLog } from '../../clickhouse/self-log.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { waitFor } from '../helpers/wait.ts';

describe('SelfLog', () => {
  let engine: TestEngine;
  beforeAll(async () => {
    engine = await openTestEngine();
  });
  afterAll(async () => engine?.dispose());

  async function messages(only?: RegExp): Promise<{ severity: string; message: string }[]> {
    const rs = await engine.ch.client.query({
      query:
        "SELECT severity, message FROM log_events FINAL WHERE service = 'tally' ORDER BY timestamp, message",
      format: 'JSONEachRow',
    });
    const rows = await rs.json<{ severity: string; message: string }>();
    return only ? rows.filter((r) => only.test(r.message)) : rows;
  }

  it('rate-limits per kind and sums up what was held back when the window ends', async () => {
    let now = Date.UTC(2026, 0, 1);
    const log = new SelfLog(engine.ch, { windowMs: 60_000, now: () => now });
    for (let i = 0; i < 5; i++) log.record('error', 'ingest.insert', `insert failed #${i}`);
    log.record('warning', 'auth.failed', 'refused a token');
    await log.flush();
    now += 61_000;
    // The window has ended by this clock: its summary is written before the next window's first record.
    log.record('error', 'ingest.insert', 'insert failed again');
    await log.flush();
    expect(await messages(/^\[(ingest\.insert|auth\.failed)\]/)).toEqual([
      { severity: 'warning', message: '[auth.failed] refused a token' },
      { severity: 'error', message: '[ingest.insert] insert failed #0' },
      {
        severity: 'error',
        message: '[ingest.insert] 4 more record(s) of this kind held back since 2026-01-01T00:00:00.000Z',
      },
      { severity: 'error', message: '[ingest.insert] insert failed again' },
    ]);
    await log.close();
  });

  it('writes a burst of 50 failed authentications as the first record plus one summary, by its timer', async () => {
    const log = new SelfLog(engine.ch, { windowMs: 2000 });
    const report = recordAuthFailures(log);
    for (let i = 0; i < 50; i++) {
      report({
        reason: 'bad-signature',
        who: `sub=burst-${i}`,
        address: '198.51.100.7',
        message: 'invalid token signature',
      });
    }
    await log.flush();
    const burst = /^\[auth-failed:bad-signature\]/;
    expect(await messages(burst)).toEqual([
      {
        severity: 'warning',
        message: expect.stringMatching(/who: sub=burst-0; from: 198\.51\.100\.7$/),
      },
    ]);
    // No further record of this kind ever comes: the window's end alone writes the count.
    const written = await waitFor(
      'the summary',
      async () => {
        const m = await messages(burst);
        return m.length >= 2 ? m : undefined;
      },
      { timeoutMs: 10_000, everyMs: 50 },
    );
    expect(written).toHaveLength(2);
    expect(written[1]).toEqual({
      severity: 'warning',
      message: expect.stringMatching(
        /^\[auth-failed:bad-signature\] 49 more record\(s\) of this kind held back since \S+Z; subjects: sub=burst-1 from 198\.51\.100\.7, .*sub=burst-20 from 198\.51\.100\.7, and more$/,
      ),
    });
    // Closing writes whatever is still held back or queued: a record the summary had not accounted for would
    // show up now as a third.
    await log.close();
    expect(await messages(burst)).toHaveLength(2);
  });

  it('keeps two webhook give-ups of two jobs apart within one window, and names subjects in summaries', async () => {
    let now = Date.UTC(2026, 1, 1);
    const log = new SelfLog(engine.ch, { now: () => now });
    log.record('error', 'webhook-failed', 'webhook of export job-a not delivered', {
      subject: 'job-a',
      perSubject: true,
    });
    now += 5_000;
    log.record('error', 'webhook-failed', 'webhook of export job-b not delivered', {
      subject: 'job-b',
      perSubject: true,
    });
    // Throttled per kind but carrying subjects: the summary lists whom the held-back records were about.
    for (const who of ['svc-1', 'svc-2', 'svc-1', 'svc-3']) {
      log.record('warning', 'quota.refused', `refused ${who}`, { subject: who });
    }
    await log.flush();
    expect(await messages(/^\[webhook-failed\]/)).toEqual([
      { severity: 'error', message: '[webhook-failed] webhook of export job-a not delivered' },
      { severity: 'error', message: '[webhook-failed] webhook of export job-b not delivered' },
    ]);
    // Shutdown writes the open windows' summaries at once.
    await log.close();
    expect((await messages(/^\[quota\.refused\]/)).map((m) => m.message)).toEqual([
      '[quota.refused] 3 more record(s) of this kind held back since 2026-02-01T00:00:05.000Z; subjects: svc-2, svc-1, svc-3',
      '[quota.refused] refused svc-1',
    ]);
  });

  it('keeps a bounded queue while the storage is down and writes it when it is back', async () => {
    let down = true;
    const refused = () => Promise.reject(new Error('ECONNREFUSED'));
    const flaky: ClickHouse = {
      ...engine.ch,
      insert: (p) => (down ? refused() : engine.ch.insert(p)),
    };
    const log = new SelfLog(flaky, { windowMs: 0, maxQueued: 3 });
    for (let i = 0; i < 5; i++) {
      log.record('error', `outage.${i}`, `fault ${i}`);
      await log.flush();
    }
    expect(log.pending).toBe(3);
    expect(log.droppedCount).toBe(2);
    down = false;
    await log.flush();
    expect(log.pending).toBe(0);
    const written = (await messages()).map((m) => m.message).filter((m) => m.startsWith('[outage.'));
    expect(written.sort()).toEqual(['[outage.2] fault 2', '[outage.3] fault 3', '[outage.4] fault 4']);
  });
});
