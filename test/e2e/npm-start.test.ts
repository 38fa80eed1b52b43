// `npm start` as a newcomer runs it: embedded engine, no Kafka, ready within 10 seconds, an admin token on
// first start only, data kept across restarts, and a clean exit on SIGTERM.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { serviceEnv } from '../helpers/service.ts';
import { waitFor } from '../helpers/wait.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'tally-start-'));

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

interface Started {
  child: ChildProcess;
  stdout: () => string;
  base: string;
  readyMs: number;
}

async function start(port: number): Promise<Started> {
  const env = serviceEnv({ DATA_DIR: dataDir, PORT: String(port) });
  const t0 = Date.now();
  const child = spawn('npm', ['start', '--silent'], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  child.stdout?.on('data', (d) => {
    out += d;
  });
  child.stderr?.on('data', () => undefined);
  const base = `http://127.0.0.1:${port}`;
  await waitFor('/readyz', async () => (await fetch(`${base}/readyz`)).status === 200, {
    timeoutMs: 30_000,
    everyMs: 100,
  });
  return { child, stdout: () => out, base, readyMs: Date.now() - t0 };
}

/** SIGTERM to npm, which passes it on to the service; resolves when the port is closed. */
async function stop(s: Started): Promise<void> {
  const exited = new Promise<void>((r) => s.child.once('exit', () => r()));
  s.child.kill('SIGTERM');
  await exited;
  await waitFor('the service to close its port', async () => {
    try {
      await fetch(`${s.base}/healthz`);
      return false;
    } catch {
      return true;
    }
  });
}

describe('npm start', () => {
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('serves within 10 seconds, prints the URL and a working admin token on first start only', async () => {
    const port = await freePort();
    const first = await start(port);
    expect(first.readyMs).toBeLessThan(10_000);
    await waitFor('the token line', async () => /eyJ[\w-]+\.[\w-]+\.[\w-]+/.test(first.stdout()));
    expect(first.stdout()).toContain(`http://127.0.0.1:${port}`);
    const token = (/eyJ[\w-]+\.[\w-]+\.[\w-]+/.exec(first.stdout()) as RegExpExecArray)[0];
    const auth = { authorization: `Bearer ${token}` };
    const post = await fetch(`${first.base}/events`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({
        event_id: 'e-1',
        type: 'session_start',
        timestamp: '2025-01-02T10:00:00Z',
        user_id: 'u1',
        team_id: 't1',
        service: 'billing',
        session_id: 's1',
      }),
    });
    expect(post.status).toBe(202);
    const q = `${first.base}/reports/usage-summary?start_date=2025-01-01&end_date=2025-01-31`;
    expect(await (await fetch(q, { headers: auth })).json()).toEqual({
      total_users: 1,
      active_users: 1,
      total_sessions: 1,
    });
    await stop(first);

    // The embedded engine's data directory is free again: the first process has really ended.
    const second = await start(port);
    expect(second.stdout()).not.toMatch(/eyJ/);
    // Same generated secret, same data.
    expect(await (await fetch(q, { headers: auth })).json()).toEqual({
      total_users: 1,
      active_users: 1,
      total_sessions: 1,
    });
    await stop(second);
  });
});
