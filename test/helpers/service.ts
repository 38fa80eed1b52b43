// Runs the service (`bin/start.ts`, what `npm start` runs) as a child process, for tests that kill it.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
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

/** What a spawned service inherits from the test runner: how to run programs, nothing that configures Tally. */
const INHERITED = ['PATH', 'HOME', 'TMPDIR', 'LANG', 'TZ', 'SystemRoot'];

/**
 * The environment of a service a test spawns: exactly what the test gives, over the bare minimum to run. The
 * runner's own `KAFKA_BROKERS`, `CLICKHOUSE_URL` or secrets never leak in (a service that silently joined the
 * runner's Kafka on the default topics once consumed other tests' events). A service with Kafka must name its
 * own topics and group.
 */
export function serviceEnv(env: Record<string, string>): Record<string, string> {
  const base: Record<string, string> = { LOG_LEVEL: 'warn' };
  for (const k of INHERITED) {
    const v = process.env[k];
    if (v !== undefined) base[k] = v;
  }
  if (env.KAFKA_BROKERS) {
    const missing = ['KAFKA_TOPIC_SESSIONS', 'KAFKA_TOPIC_LOGS', 'KAFKA_GROUP_ID'].filter((k) => !env[k]);
    if (missing.length > 0) {
      throw new Error(`a test service with Kafka needs its own ${missing.join(', ')} (from uniqueName)`);
    }
  }
  return { ...base, ...env };
}

export async function startService(
  env: Record<string, string>,
  args: string[] = [],
  /** The checkout to run (default: this one); `entry` the role's file in it. */
  where: { cwd?: string; entry?: string } = {},
): Promise<Service> {
  const port = await freePort();
  // As `npm start` runs it (bin/launch.mjs: compiled ahead when built), in a checkout that has the launcher.
  const launcher = existsSync(join(where.cwd ?? '.', 'bin', 'launch.mjs'));
  const entry = where.entry ?? 'bin/start.ts';
  const node = launcher ? ['bin/launch.mjs', entry] : ['--import', 'tsx', entry];
  const child = spawn(process.execPath, [...node, ...args], {
    ...(where.cwd ? { cwd: where.cwd } : {}),
    env: { ...serviceEnv(env), PORT: String(port) },
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
