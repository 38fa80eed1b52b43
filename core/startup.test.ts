// One-line explanations of start-up failures, and the data-directory claim (pure: temp files, no network).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { claimDataDir, dataDirFailure, listenFailure, StartupError, storageFailure } from './startup.ts';

const errno = (code: string, extra: object = {}) => Object.assign(new Error(code), { code, ...extra });
const dir = mkdtempSync(join(tmpdir(), 'tally-startup-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('start-up failures in one line', () => {
  it('names PORT or HOST for listen errors', () => {
    expect(listenFailure(errno('EADDRINUSE'), '127.0.0.1', 8080)?.message).toBe(
      'PORT: 127.0.0.1:8080 is already in use; stop what listens there, or set PORT (npm start -- --port N)',
    );
    expect(listenFailure(errno('EADDRNOTAVAIL'), '10.9.9.9', 8080)?.message).toMatch(/^HOST: 10\.9\.9\.9/);
    expect(listenFailure(new Error('other'), 'h', 1)).toBeUndefined();
  });

  it('names CLICKHOUSE_URL without its password when the server cannot be reached', () => {
    const e = storageFailure(
      new Error('wrapped', { cause: errno('ECONNREFUSED') }),
      'http://user:secret@127.0.0.1:1/',
    );
    expect(e?.message).toBe(
      'CLICKHOUSE_URL: cannot reach the ClickHouse server at http://127.0.0.1:1 (ECONNREFUSED); start it, or fix CLICKHOUSE_URL',
    );
    expect(e?.message).not.toContain('secret');
    expect(storageFailure(errno('ECONNREFUSED'), undefined)).toBeUndefined();
  });

  it('names DATA_DIR for a path under it that is not a directory or not writable', () => {
    expect(dataDirFailure(errno('ENOTDIR', { path: `${dir}/x/jwt-secret` }), dir)?.message).toMatch(
      /^DATA_DIR: .* is not a directory/,
    );
    expect(dataDirFailure(errno('EACCES', { path: dir }), dir)?.message).toMatch(/not writable/);
    expect(dataDirFailure(errno('ENOTDIR', { path: '/elsewhere' }), dir)).toBeUndefined();
  });

  it('claims a data directory once, takes over a stale claim, and refuses a live one', () => {
    const d = join(dir, 'data');
    claimDataDir(d, process.pid);
    expect(readFileSync(join(d, 'tally.pid'), 'utf8').trim()).toBe(String(process.pid));
    // The same process again (a restart in place): fine. A live node process (this one) as another pid: refused.
    expect(() => claimDataDir(d, process.pid)).not.toThrow();
    const other = join(dir, 'other');
    claimDataDir(other, process.pid);
    expect(() => claimDataDir(other, process.pid + 1_000_000)).toThrow(StartupError);
    expect(() => claimDataDir(other, process.pid + 1_000_000)).toThrow(/in use by another Tally process/);
    // A pid that no longer runs: taken over.
    const stale = join(dir, 'stale');
    claimDataDir(stale, process.pid);
    writeFileSync(join(stale, 'tally.pid'), '2147483646\n');
    expect(() => claimDataDir(stale, process.pid)).not.toThrow();
    // A file where the directory should be.
    const file = join(dir, 'file');
    writeFileSync(file, '');
    expect(() => claimDataDir(file)).toThrow(/^DATA_DIR: .* is not a directory/);
  });
});
