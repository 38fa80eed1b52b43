// Runs the service (`bin/start.ts`, what `npm start` runs) as a child process, for tests that kill it.
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { waitFor } from './wait.ts';

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Service {
  child: ChildProcess;
  base: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: () => string;
}

export async function startService(env: Record<string, string>, args: string[] = []): Promise<Service> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'bin/start.ts', ...args], {
    env: { ...process.env, LOG_LEVEL: 'warn', ...env, PORT: String(port) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr?.on('data', (d) => {
    err = (err + d).slice(-20_000);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  );
  const base = `http://127.0.0.1:${port}`;
  const ready = waitFor(
    'the service to answer /readyz',
    async () => (await fetch(`${base}/readyz`)).status === 200,
    {
      timeoutMs: 60_000,
      everyMs: 100,
    },
  );
  const early = exited.then(() => {
    throw new Error(`the service exited before it was ready: ${err.slice(-2000)}`);
  });
  await Promise.race([ready, early]);
  early.catch(() => undefined);
  return { child, base, exited, stderr: () => err };
}
