// Request bodies against a real socket on the real engine: each operation's limit, nothing read before
// authentication, and a chunked body (no Content-Length) of 200 MB ended at the limit with 413 and the
// connection closed, with the bytes the server read and its memory measured.
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BODY_LIMITS, createApp } from '../../api/app.ts';
import type { ExportDeps } from '../../api/exports/deps.ts';
import { JobAdmission } from '../../api/exports/quota.ts';
import { createAuthenticator } from '../../api/middleware/auth.ts';
import { JSON_BODY_BYTES } from '../../api/middleware/body-limit.ts';
import { MAX_QUERY_BYTES } from '../../api/routes/clickhouse.ts';
import { MAX_BODY_BYTES } from '../../api/routes/events.ts';
import { ExportStore } from '../../core/exports/store.ts';
import { createLogger } from '../../core/logger.ts';
import { mintToken } from '../../core/tokens.ts';
import { createDirectSink } from '../../ingest/direct.ts';
import { memoryControl } from '../helpers/control.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';

const SECRET = 'body-limit-test-secret-body-limit-test-secret-01';
const MB = 1024 * 1024;

interface Upload {
  status: number | undefined;
  body: string;
  /** What the client got onto the wire before the server closed the connection (or the body ended). */
  written: number;
  /** What the server's socket read: the request line, headers and whatever of the body it took. */
  serverRead: number;
  /** Whether the server closed the connection (rather than the client ending it). */
  closed: boolean;
  headers: Record<string, string | string[] | undefined>;
}

describe('request bodies: limits per operation, nothing read before authentication', () => {
  let engine: TestEngine;
  let server: ReturnType<typeof serve>;
  let port: number;
  let token: string;
  let filesDir: string;
  const socketsRead: number[] = [];

  beforeAll(async () => {
    engine = await openTestEngine();
    filesDir = mkdtempSync(join(tmpdir(), 'tally-body-'));
    const exports: ExportDeps = {
      control: await memoryControl(),
      admission: new JobAdmission(await memoryControl(), 10),
      store: new ExportStore(filesDir),
      keys: { current: 'k1', keys: new Map([['k1', Buffer.alloc(32, 7)]]) },
      publicBaseUrl: 'http://127.0.0.1',
      urlTtlSeconds: 600,
    };
    const app = createApp({
      ch: engine.ch,
      sink: createDirectSink(engine.ch),
      logger: createLogger('silent'),
      auth: createAuthenticator({ secret: SECRET, issuer: undefined, audience: undefined }),
      exports,
    });
    token = await mintToken(SECRET, { sub: 'limits', ttlSeconds: 600 });
    await new Promise<void>((resolve) => {
      server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => {
        port = info.port;
        resolve();
      });
    });
    server.on('connection', (s) => s.on('close', () => socketsRead.push(s.bytesRead)));
  });
  afterAll(async () => {
    await new Promise<void>((r) => server?.close(() => r()));
    await engine?.dispose();
    if (filesDir) rmSync(filesDir, { recursive: true, force: true });
  });

  /**
   * Streams `total` bytes of `fill` (chunked, no Content-Length) to `path`, honouring backpressure, and stops
   * when the server answers and closes; resolves with what each side saw.
   */
  function upload(path: string, total: number, headers: Record<string, string> = {}): Promise<Upload> {
    return new Promise((resolve, reject) => {
      const before = socketsRead.length;
      let written = 0;
      let status: number | undefined;
      let resHeaders: Upload['headers'] = {};
      let body = '';
      let closed = false;
      const chunk = Buffer.alloc(64 * 1024, 'x');
      const req = request({
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        agent: false,
      });
      const finish = () => {
        // The server's count lands when its socket closes.
        const deadline = Date.now() + 5000;
        const poll = () => {
          if (socketsRead.length > before || Date.now() > deadline) {
            resolve({
              status,
              body,
              written,
              serverRead: socketsRead[socketsRead.length - 1] ?? -1,
              closed,
              headers: resHeaders,
            });
          } else setTimeout(poll, 20);
        };
        poll();
      };
      req.on('response', (res) => {
        status = res.statusCode;
        resHeaders = res.headers;
        res.setEncoding('utf8');
        res.on('data', (d) => {
          body += d;
        });
        res.on('end', () => {
          closed = true;
          req.destroy();
          finish();
        });
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        closed = true;
        if (status === undefined && !['ECONNRESET', 'EPIPE'].includes(err.code ?? '')) reject(err);
        else if (status === undefined) finish();
      });
      const pump = () => {
        while (written < total && !closed && !req.destroyed) {
          written += chunk.length;
          if (!req.write(chunk)) {
            req.once('drain', pump);
            return;
          }
        }
        if (written >= total && !req.destroyed) req.end();
      };
      req.flushHeaders();
      pump();
    });
  }

  it('lists a limit for each operation that takes a body, and none for the rest', () => {
    expect(BODY_LIMITS).toEqual({
      'POST /events': MAX_BODY_BYTES,
      'POST /reports/export': JSON_BODY_BYTES,
      'POST /reports/export-schedules': JSON_BODY_BYTES,
      'POST /admin/keys': JSON_BODY_BYTES,
      // read by the route itself once the caller is known (api/routes/clickhouse.ts)
      'POST /clickhouse': MAX_QUERY_BYTES,
      'POST /clickhouse/': MAX_QUERY_BYTES,
    });
  });

  it('ends a 200 MB chunked body to POST /events at the 10 MB limit: 413, connection closed, memory flat', async () => {
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    }, 10);
    const r = await upload('/events', 200 * MB, { authorization: `Bearer ${token}` });
    clearInterval(sampler);
    if (process.env.BODY_LIMIT_FIGURES)
      console.info({ ...r, body: undefined, rssGrowth: rssPeak - rssBefore });
    expect(r.status).toBe(413);
    expect(JSON.parse(r.body)).toMatchObject({ error: 'Payload Too Large' });
    expect(r.headers.connection).toBe('close');
    expect(r.closed).toBe(true);
    // The server read the limit and what was in flight, not the 200 MB.
    expect(r.serverRead).toBeGreaterThan(MAX_BODY_BYTES);
    expect(r.serverRead).toBeLessThan(MAX_BODY_BYTES + 8 * MB);
    expect(r.written).toBeLessThan(40 * MB);
    expect(rssPeak - rssBefore).toBeLessThan(100 * MB);
  });

  it('ends a chunked body over 64 KiB to POST /reports/export at the limit, after authentication', async () => {
    const r = await upload('/reports/export', 200 * MB, { authorization: `Bearer ${token}` });
    expect(r.status).toBe(413);
    expect(JSON.parse(r.body).message).toContain(String(JSON_BODY_BYTES));
    expect(r.headers.connection).toBe('close');
    expect(r.closed).toBe(true);
    expect(r.serverRead).toBeLessThan(8 * MB);
  });

  it('reads nothing of an unauthenticated body: 401 and the connection closed', async () => {
    for (const path of ['/events', '/reports/export']) {
      const r = await upload(path, 200 * MB);
      expect(r.status).toBe(401);
      expect(r.headers.connection).toBe('close');
      expect(r.serverRead).toBeLessThan(8 * MB);
      expect(r.written).toBeLessThan(40 * MB);
    }
  });

  it('still validates an export request within the limit (the buffered body reaches the validator)', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/reports/export`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ report_type: 'nope', format: 'csv' }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toMatch(/report_type/);
  });

  it('refuses a declared length over the limit before reading, and a body on an operation that takes none', async () => {
    const over = await fetch(`http://127.0.0.1:${port}/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-length': String(MAX_BODY_BYTES + 1) },
      body: 'x'.repeat(16),
      duplex: 'half',
    } as RequestInit).catch((err: Error) => err);
    if (!(over instanceof Error)) expect(over.status).toBe(413);
    const r = await upload('/reports/usage-summary?start_date=2025-01-01&end_date=2025-01-02', 200 * MB, {
      authorization: `Bearer ${token}`,
    });
    // POST on a GET route: 405 before anything else, and the body left unread.
    expect(r.status).toBe(405);
    expect(r.headers.connection).toBe('close');
    expect(r.serverRead).toBeLessThan(8 * MB);
  });

  it('still takes a body within the limit, chunked, on a kept-alive connection', async () => {
    const ev = {
      event_id: 'bl-1',
      type: 'session_start',
      timestamp: '2025-01-02T10:00:00Z',
      user_id: 'u1',
      team_id: 't1',
      service: 's',
      session_id: 's1',
    };
    const res = await fetch(`http://127.0.0.1:${port}/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: new Blob([JSON.stringify([ev])]).stream(),
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(202);
    expect(res.headers.get('connection')).not.toBe('close');
  });
});
