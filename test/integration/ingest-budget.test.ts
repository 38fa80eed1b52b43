// POST /events has a budget of its own. With the default configuration, wired as `npm start` wires it
// (startApi): 150 POST /events from one identity within a minute (half again over the reporting budget) are all
// accepted, each answer saying the ingest limit (6,000); the same identity still has its 100 reporting requests,
// and the 101st is refused. 150, not more: each is an insert through every view (~0.15 s on a busy CI machine),
// and all of them must fit in the minute.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi } from '../../bin/runtime.ts';
import { SelfLog } from '../../clickhouse/self-log.ts';
import { loadConfig } from '../../core/config.ts';
import { createLogger } from '../../core/logger.ts';
import { mintToken } from '../../core/tokens.ts';
import { createDirectSink } from '../../ingest/direct.ts';
import { memoryControl } from '../helpers/control.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { freePort } from '../helpers/service.ts';

const SECRET = 'ingest-budget-secret-ingest-budget-secret-01';

describe('the ingest budget', () => {
  let engine: TestEngine;
  let api: Awaited<ReturnType<typeof startApi>>;
  let selfLog: SelfLog | undefined;
  let dataDir: string;

  beforeAll(async () => {
    engine = await openTestEngine();
    dataDir = mkdtempSync(join(tmpdir(), 'tally-budget-'));
    const config = loadConfig({ PORT: String(await freePort()), DATA_DIR: dataDir, AUTH_JWT_SECRET: SECRET });
    expect(config.ingestRateLimitPerMinute).toBe(6000);
    expect(config.rateLimitPerMinute).toBe(100);
    selfLog = new SelfLog(engine.ch);
    api = await startApi(
      config,
      { ch: engine.ch, control: await memoryControl(), logger: createLogger('silent'), selfLog },
      { sink: createDirectSink(engine.ch), secret: SECRET },
    );
  });
  afterAll(async () => {
    await api?.stop();
    await selfLog?.close();
    await engine?.dispose();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('150 POST /events in a minute from one identity: all accepted; the reads keep their own 100', async () => {
    const token = await mintToken(SECRET, {
      sub: 'one-request-per-event',
      scope: 'write:events read:analytics',
    });
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const started = Date.now();
    const statuses = new Map<number, number>();
    for (let i = 0; i < 150; i++) {
      const res = await fetch(`${api.url}/events`, {
        method: 'POST',
        headers,
        body: JSON.stringify([
          {
            event_id: `budget-${i}`,
            type: 'activity',
            timestamp: '2025-04-01T10:00:00Z',
            user_id: `u${i % 7}`,
            team_id: 't1',
            service: 'billing',
          },
        ]),
      });
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      expect(res.headers.get('ratelimit-limit')).toBe('6000');
      expect(res.headers.get('ratelimit-remaining')).toBe(String(6000 - 1 - i));
      await res.arrayBuffer();
    }
    expect(Date.now() - started).toBeLessThan(60_000);
    expect(Object.fromEntries(statuses)).toEqual({ 202: 150 });

    const summary = `${api.url}/reports/usage-summary?start_date=2025-04-01&end_date=2025-04-01`;
    const reads = new Map<number, number>();
    for (let i = 0; i < 101; i++) {
      const res = await fetch(summary, { headers });
      reads.set(res.status, (reads.get(res.status) ?? 0) + 1);
      expect(res.headers.get('ratelimit-limit')).toBe('100');
      if (i === 0) expect(await res.json()).toMatchObject({ active_users: 7 });
      else await res.arrayBuffer();
    }
    expect(Object.fromEntries(reads)).toEqual({ 200: 100, 429: 1 });
  });
});
