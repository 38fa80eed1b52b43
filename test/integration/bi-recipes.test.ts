// The BI recipes of docs/bi/ as written: every literal Tally URL in those pages, called with a read-only API key
// (the credential the pages tell users to create), answers 200 with CSV and a header row; the same key can
// neither write events nor queue exports. Runs on the real engine with a little data.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../api/app.ts';
import { createAuthenticator } from '../../api/middleware/auth.ts';
import { insertEvents } from '../../clickhouse/inserts.ts';
import { createKey } from '../../core/api-keys.ts';
import { createLogger } from '../../core/logger.ts';
import { createDirectSink } from '../../ingest/direct.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { fileKeys } from '../helpers/keys.ts';
import { rowsOf } from '../helpers/rows.ts';

const DOCS = join(import.meta.dirname, '..', '..', 'docs', 'bi');

/** Every literal URL of the service in the BI pages (templated ones, with `$`, are left out). */
function documentedUrls(): string[] {
  const urls = new Set<string>();
  for (const f of readdirSync(DOCS).filter((n) => n.endsWith('.md'))) {
    for (const m of readFileSync(join(DOCS, f), 'utf8').matchAll(
      /https:\/\/tally\.example\.com(\/[^\s"'`)|]*)/g,
    )) {
      if (m[1] && m[1] !== '/' && !m[1].includes('$')) urls.add(m[1]);
    }
  }
  return [...urls];
}

describe('docs/bi recipes with a read-only API key', () => {
  let engine: TestEngine;
  let dir: string;
  let app: ReturnType<typeof createApp>;
  let key: string;

  beforeAll(async () => {
    engine = await openTestEngine();
    dir = mkdtempSync(join(tmpdir(), 'tally-bi-'));
    const keysPath = join(dir, 'api-keys.json');
    key = createKey(keysPath, { name: 'powerbi', scopes: ['read:analytics'] }).key;
    app = createApp({
      ch: engine.ch,
      sink: createDirectSink(engine.ch),
      logger: createLogger('silent'),
      auth: createAuthenticator({
        secret: 'b'.repeat(40),
        issuer: undefined,
        audience: undefined,
        keys: fileKeys(keysPath),
      }),
    });
    await insertEvents(
      engine.ch,
      rowsOf([
        {
          event_id: 'bi-1',
          type: 'session_start',
          timestamp: '2025-02-03T09:00:00Z',
          user_id: 'u1',
          team_id: 't1',
          service: 'billing',
          session_id: 's1',
        },
        {
          event_id: 'bi-2',
          type: 'log',
          timestamp: '2025-02-03T09:00:01Z',
          severity: 'error',
          service: 'billing',
          message: '=HYPERLINK("x") escaped for spreadsheets',
        },
      ]),
      'bi/0',
    );
  });
  afterAll(async () => {
    await engine?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('finds the documented URLs', () => {
    const urls = documentedUrls();
    expect(urls.length).toBeGreaterThanOrEqual(4);
    expect(urls.some((u) => u.startsWith('/logs/system-events'))).toBe(true);
    expect(urls.some((u) => u.includes('group_by=team'))).toBe(true);
  });

  it('answers every documented URL with CSV for the key', async () => {
    for (const path of documentedUrls()) {
      const res = await app.request(path, { headers: { 'x-api-key': key } });
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type'), path).toMatch(/^text\/csv/);
      const text = await res.text();
      expect(text.split('\r\n')[0], path).toMatch(/^[a-z_]+(,[a-z_]+)*$/);
      if (path.startsWith('/logs/')) expect(text).toContain(`'=HYPERLINK`);
    }
    // Today as end_date, as the rolling-range recipes ask.
    const today = new Date().toISOString().slice(0, 10);
    const rolling = await app.request(
      `/reports/usage-timeseries?start_date=2025-01-01&end_date=${today}&interval=day&format=csv`,
      { headers: { 'x-api-key': key } },
    );
    expect(rolling.status).toBe(200);
  });

  it('gives the key nothing beyond reading', async () => {
    const res = await app.request('/events', {
      method: 'POST',
      headers: { 'x-api-key': key },
      body: '[]',
    });
    expect(res.status).toBe(403);
  });
});
