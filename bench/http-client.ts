// The scale bench's HTTP client in a process of its own, as a dashboard or BI tool is: the server's event loop,
// heap and RSS then hold the service alone. Run in the serving process, the client's fetch (undici: parsing,
// promises, its garbage) shared the loop with every request it timed, and its memory was counted as the
// service's. Each request is timed here, from the request to the body read; the serving process only passes
// requests and answers over IPC, outside the timing.
//
// As a module: `startHttpClient()` forks this file and returns a `get` that any number of callers may await at
// once (the dashboard's 8 clients). As the child: it answers each message with one fetch.
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

interface Ask {
  id: number;
  url: string;
  headers: Record<string, string>;
}

export interface Answer {
  status: number;
  text: string;
  /** From the request to the whole body read, in the client's process. */
  ms: number;
}

export interface HttpClient {
  get(url: string, headers?: Record<string, string>): Promise<Answer>;
  close(): void;
}

/** A client in a child process (BENCH_SCALE_CLIENT=process, the default), or in this one (`inline`). */
export async function startHttpClient(where: 'process' | 'inline'): Promise<HttpClient> {
  if (where === 'inline') {
    return { get: (url, headers = {}) => timedFetch(url, headers), close() {} };
  }
  // Plain node with tsx: none of the serving process's flags (its heap settings are the service's).
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--child'], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const pending = new Map<number, { ok: (a: Answer) => void; fail: (e: Error) => void }>();
  let next = 0;
  child.on('message', (m: Answer & { id: number; error?: string }) => {
    const p = pending.get(m.id);
    pending.delete(m.id);
    if (m.error !== undefined) p?.fail(new Error(m.error));
    else p?.ok({ status: m.status, text: m.text, ms: m.ms });
  });
  child.on('exit', (code) => {
    for (const p of pending.values()) p.fail(new Error(`bench HTTP client exited (${code})`));
    pending.clear();
  });
  await new Promise<void>((ok, fail) => {
    child.once('spawn', ok);
    child.once('error', fail);
  });
  return {
    get(url, headers = {}) {
      const id = next++;
      return new Promise<Answer>((ok, fail) => {
        pending.set(id, { ok, fail });
        child.send({ id, url, headers } satisfies Ask);
      });
    },
    close() {
      child.disconnect();
    },
  };
}

async function timedFetch(url: string, headers: Record<string, string>): Promise<Answer> {
  const t0 = performance.now();
  const res = await fetch(url, { headers });
  const text = await res.text();
  return { status: res.status, text, ms: performance.now() - t0 };
}

if (process.argv.includes('--child') && process.send) {
  process.on('message', (m: Ask) => {
    timedFetch(m.url, m.headers).then(
      (a) => process.send?.({ id: m.id, ...a }),
      (err: unknown) => process.send?.({ id: m.id, error: String(err) }),
    );
  });
  process.on('disconnect', () => process.exit(0));
}
