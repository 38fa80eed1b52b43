// The service's own system logs: written to log_events as service "tally", one per kind per window with a
// count of what was held back, and kept (bounded) while the storage is down.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClickHouse } from '../../clickhouse/client.ts';
import { SelfLog } from '../../clickhouse/self-log.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';

describe('SelfLog', () => {
  let engine: TestEngine;
  beforeAll(async () => {
    engine = await openTestEngine();
  });
  afterAll(async () => engine?.dispose());

  async function messages(): Promise<{ severity: string; message: string }[]> {
    const rs = await engine.ch.client.query({
      query:
        "SELECT severity, message FROM log_events FINAL WHERE service = 'tally' ORDER BY timestamp, message",
      format: 'JSONEachRow',
    });
    return rs.json();
  }

  it('rate-limits per kind and says how many were held back', async () => {
    let now = Date.UTC(2026, 0, 1);
    const log = new SelfLog(engine.ch, { windowMs: 60_000, now: () => now });
    for (let i = 0; i < 5; i++) log.record('error', 'ingest.insert', `insert failed #${i}`);
    log.record('warning', 'auth.failed', 'refused a token');
    await log.flush();
    now += 61_000;
    log.record('error', 'ingest.insert', 'insert failed again');
    await log.flush();
    expect(await messages()).toEqual([
      { severity: 'warning', message: '[auth.failed] refused a token' },
      { severity: 'error', message: '[ingest.insert] insert failed #0' },
      {
        severity: 'error',
        message: '[ingest.insert] insert failed again (and 4 more of this kind since the last record)',
      },
    ]);
  });

  it('keeps a bounded queue while the storage is down and writes it when it is back', async () => {
    let down = true;
    const refused = () => Promise.reject(new Error('ECONNREFUSED'));
    const raw = engine.ch.insertRaw;
    const flaky: ClickHouse = {
      ...engine.ch,
      // Both insert paths: the embedded engine's raw insert and the client's.
      ...(raw ? { insertRaw: (p) => (down ? refused() : raw(p)) } : {}),
      client: new Proxy(engine.ch.client, {
        get(target, prop, receiver) {
          if (prop === 'insert' && down) return refused;
          return Reflect.get(target, prop, receiver);
        },
      }),
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
