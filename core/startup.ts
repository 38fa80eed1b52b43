// Start-up failures a newcomer or operator meets, each told in one line naming the variable or the fix instead
// of a stack trace: the listen address taken or not ours, an unreachable CLICKHOUSE_URL, a data directory that
// is not a directory, not writable, or held by another process.
import { closeSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';

/** A failure already explained: the entry prints its message as one line and exits. */
export class StartupError extends Error {
  override readonly name = 'StartupError';
}

const NETWORK = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ECONNRESET',
]);

function codeOf(err: unknown): { code?: string; path?: string; message: string } {
  for (let e = err, depth = 0; e && depth < 6; depth++) {
    const x = e as { code?: unknown; path?: unknown; message?: unknown; cause?: unknown };
    if (typeof x.code === 'string' && (NETWORK.has(x.code) || x.code.startsWith('E'))) {
      return {
        code: x.code,
        ...(typeof x.path === 'string' ? { path: x.path } : {}),
        message: String(x.message ?? ''),
      };
    }
    e = x.cause;
  }
  return { message: err instanceof Error ? err.message : String(err) };
}

/** A server URL without its credentials, for a message. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return 'the configured URL';
  }
}

/** The listen call failed: which variable to change. */
export function listenFailure(err: unknown, host: string, port: number): StartupError | undefined {
  const { code } = codeOf(err);
  if (code === 'EADDRINUSE') {
    return new StartupError(
      `PORT: ${host}:${port} is already in use; stop what listens there, or set PORT (npm start -- --port N)`,
    );
  }
  if (code === 'EACCES') {
    return new StartupError(`PORT: not allowed to listen on ${host}:${port}; choose a port above 1024`);
  }
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new StartupError(`HOST: ${host} is not an address of this machine; set HOST (e.g. 127.0.0.1)`);
  }
  return undefined;
}

/** Opening the ClickHouse server failed in a way that means it cannot be reached. */
export function storageFailure(err: unknown, url: string | undefined): StartupError | undefined {
  const { code, message } = codeOf(err);
  if (url && code !== undefined && NETWORK.has(code)) {
    return new StartupError(
      `CLICKHOUSE_URL: cannot reach the ClickHouse server at ${redactUrl(url)} (${code}); start it, or fix CLICKHOUSE_URL`,
    );
  }
  if (url && /Authentication failed|password is incorrect|AUTHENTICATION_FAILED/i.test(message)) {
    return new StartupError(
      `CLICKHOUSE_URL: the ClickHouse server at ${redactUrl(url)} refused the user or password in it`,
    );
  }
  return undefined;
}

/** A file-system failure under the data directory. */
export function dataDirFailure(err: unknown, dataDir: string): StartupError | undefined {
  const { code, path } = codeOf(err);
  const under = path === undefined || resolve(path) === dataDir || resolve(path).startsWith(dataDir + sep);
  if (!under) return undefined;
  if (code === 'ENOTDIR' || code === 'EEXIST') {
    return new StartupError(
      `DATA_DIR: ${dataDir} (or a folder in it) is not a directory; set DATA_DIR to a directory (created if missing)`,
    );
  }
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new StartupError(
      `DATA_DIR: ${dataDir} is not writable by this user; set DATA_DIR to a writable directory`,
    );
  }
  return undefined;
}

/**
 * Claims `dataDir` for this process while it runs the embedded engine: the engine allows one process per
 * directory and, when a second one tries, prints its own error and a stack before failing. A pid file is
 * checked first instead; one left by a process that is gone is taken over. Released when the process exits.
 */
export function claimDataDir(dataDir: string, pid = process.pid): void {
  try {
    if (!statSync(dataDir).isDirectory())
      throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw dataDirFailure(err, dataDir) ?? err;
    try {
      mkdirSync(dataDir, { recursive: true });
    } catch (e) {
      throw dataDirFailure(e, dataDir) ?? e;
    }
  }
  const file = join(dataDir, 'tally.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o644);
      writeSync(fd, `${pid}\n`);
      closeSync(fd);
      process.once('exit', () => {
        try {
          if (readFileSync(file, 'utf8').trim() === String(pid)) unlinkSync(file);
        } catch {
          // already gone
        }
      });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw dataDirFailure(err, dataDir) ?? err;
    }
    const holder = Number(readFileSync(file, 'utf8').trim());
    if (Number.isInteger(holder) && holder > 0 && holder !== pid && alive(holder)) {
      throw new StartupError(
        `DATA_DIR: ${dataDir} is in use by another Tally process (pid ${holder}); stop it, or set DATA_DIR to another directory`,
      );
    }
    unlinkSync(file);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A recycled pid of something else is not a holder: on Linux, only a node process counts.
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('node');
  } catch {
    return true;
  }
}
