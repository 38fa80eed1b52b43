// Start-up as a newcomer meets it: every failure is one line on stderr naming the variable or the fix (port in
// use, unreachable CLICKHOUSE_URL, a data directory that is a file or already in use), unknown flags are refused,
// `npm start -- --port N` listens on N, and the printed "mint more" command works as printed.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/wait.ts';

const root = join(import.meta.dirname, '..', '..');
const work = mkdtempSync(join(tmpdir(), 'tally-startup-'));
const children: ChildProcess[] = [];

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function baseEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'warn', ...extra };
  for (const k of ['KAFKA_BROKERS', 'CLICKHOUSE_URL', 'AUTH_JWT_SECRET', 'RATE_LIMIT_REDIS_URL']) {
    if (!(k in extra)) delete env[k];
  }
  return env;
}

/** Runs `npm start` with `args` until it exits; resolves with its exit code and output. */
function startFails(env: Record<string, string>, args: string[] = []) {
  return new Promise<{ code: number | null; stderr: string; stdout: string }>((resolve) => {
    execFile(
      'node',
      ['--import', 'tsx', 'bin/start.ts', ...args],
      { cwd: root, env: baseEnv(env), timeout: 120_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
  });
}

afterAll(async () => {
  for (const c of children) {
    if (c.exitCode === null) {
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      await exited;
    }
  }
  rmSync(work, { recursive: true, force: true });
});

describe('start-up', () => {
  it('refuses unknown flags and stray arguments in one line', async () => {
    for (const [args, want] of [
      [['--prot', '9000'], 'tally: npm start: unknown option --prot; see npm start -- --help'],
      [['9000'], 'tally: npm start: unexpected argument 9000; see npm start -- --help'],
    ] as const) {
      const r = await startFails({ DATA_DIR: join(work, 'flags') }, [...args]);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(`${want}\n`);
    }
  });

  it('explains an unreachable CLICKHOUSE_URL and a DATA_DIR that is a file, one line each', async () => {
    const port = await freePort();
    const ch = await startFails({
      CLICKHOUSE_URL: `http://u:pw@127.0.0.1:${port}`,
      DATA_DIR: join(work, 'ch'),
    });
    expect(ch.code).toBe(1);
    expect(ch.stderr).toBe(
      `tally: CLICKHOUSE_URL: cannot reach the ClickHouse server at http://127.0.0.1:${port} (ECONNREFUSED); start it, or fix CLICKHOUSE_URL\n`,
    );
    const file = join(work, 'a-file');
    writeFileSync(file, '');
    const dd = await startFails({ DATA_DIR: file });
    expect(dd.code).toBe(1);
    expect(dd.stderr).toMatch(
      /^tally: DATA_DIR: .*a-file.* is not a directory; set DATA_DIR to a directory[^\n]*\n$/,
    );
  });

  it('listens on --port, prints a mint command that works as printed, and explains a busy port and data dir', async () => {
    const dataDir = join(work, 'data dir');
    const port = await freePort();
    const child = spawn('npm', ['start', '--silent', '--', '--port', String(port)], {
      cwd: root,
      env: baseEnv({ DATA_DIR: dataDir, PORT: '1' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let out = '';
    child.stdout?.on('data', (d) => {
      out += d;
    });
    child.stderr?.on('data', () => undefined);
    const base = `http://127.0.0.1:${port}`;
    await waitFor(
      '/readyz on --port',
      async () => (await fetch(`${base}/readyz`).catch(() => null))?.status === 200,
      {
        timeoutMs: 60_000,
        everyMs: 100,
      },
    );
    await waitFor('the mint hint', async () => /Mint more with: .*\n/.test(out), { timeoutMs: 10_000 });
    const hint = /Mint more with: (.*)\n/.exec(out)?.[1] ?? '';
    // The data directory has a space: the printed command quotes it, and it is run by a shell exactly as printed.
    expect(hint).toBe(`DATA_DIR='${dataDir}' npm run token -- --sub NAME`);
    const token = await new Promise<string>((resolve, reject) =>
      execFile(
        'bash',
        ['-c', hint.replace('npm run token', 'npm run -s token').replace('NAME', 'hinted')],
        { cwd: root, env: baseEnv({}) },
        (err, stdout) => (err ? reject(err) : resolve(stdout.trim())),
      ),
    );
    const res = await fetch(`${base}/reports/usage-summary?start_date=2025-01-01&end_date=2025-01-02`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(200);

    // The same port again, another data dir: the port is named. The same data dir, another port: it is in use.
    const busyPort = await startFails({ DATA_DIR: join(work, 'other'), PORT: String(port) });
    expect(busyPort.code).toBe(1);
    expect(busyPort.stderr).toBe(
      `tally: PORT: 127.0.0.1:${port} is already in use; stop what listens there, or set PORT (npm start -- --port N)\n`,
    );
    const busyDir = await startFails({ DATA_DIR: dataDir, PORT: String(await freePort()) });
    expect(busyDir.code).toBe(1);
    expect(busyDir.stderr).toMatch(
      /^tally: DATA_DIR: .* is in use by another Tally process \(pid \d+\); [^\n]*\n$/,
    );
  });
});
