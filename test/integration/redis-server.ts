// A throwaway Redis for the tests that share state through it: Debian's redis-server started on a free loopback
// port, without persistence, stopped afterwards. Where redis-server is missing the tests skip with a warning,
// except under CI (CI set), where a skipped proof would hide a missing install: there they fail.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';

export const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;

/** True when the Redis tests must be skipped: no redis-server here, and not under CI (where they fail instead). */
export function skipWithoutRedis(what: string): boolean {
  if (hasRedisServer || process.env.CI) return false;
  console.warn(`SKIPPED: ${what} needs redis-server (apt-get install -y redis-server)`);
  return true;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.once('error', reject);
  });
}

export interface TestRedis {
  url: string;
  port: number;
  /** Stops the server, losing every key (no persistence), and starts a new one on the same port. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts redis-server and resolves once it answers PING; throws (never skips) when it cannot. */
export async function startRedis(): Promise<TestRedis> {
  if (!hasRedisServer) {
    throw new Error('redis-server is not installed (apt-get install -y redis-server): CI must run this test');
  }
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  let proc: ChildProcess | undefined;
  const launch = async () => {
    proc = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    await answering(url);
  };
  const halt = async () => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGTERM');
    });
  };
  await launch();
  return {
    url,
    port,
    restart: async () => {
      await halt();
      await launch();
    },
    stop: halt,
  };
}

async function answering(url: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      if ((await probe.ping()) === 'PONG') return;
    } catch {
      // not yet
    } finally {
      probe.disconnect();
    }
    if (Date.now() > deadline)
      throw new Error(`redis-server on ${url} did not answer within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
