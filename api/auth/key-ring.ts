// The API's view of API_KEYS_FILE: keys by id, re-read when the file changes (checked at most once a second), so
// keys created or revoked with `npm run keys` while the API runs take effect within about a second.
import { readFile, stat } from 'node:fs/promises';
import { type ApiKeyRecord, parseKeyFile } from '../../core/api-keys.ts';
import type { Logger } from '../../core/logger.ts';

export interface KeyRingOptions {
  path: string;
  /** How long a look at the file's identity (inode, size, mtime) is trusted (default 1000 ms). */
  checkEveryMs?: number;
  logger?: Logger;
  now?: () => number;
}

export class KeyRing {
  private keys = new Map<string, ApiKeyRecord>();
  private version = '';
  private checkedAt = Number.NEGATIVE_INFINITY;
  private pending: Promise<void> | undefined;
  private readonly checkEveryMs: number;
  private readonly now: () => number;

  constructor(private readonly opts: KeyRingOptions) {
    this.checkEveryMs = opts.checkEveryMs ?? 1000;
    this.now = opts.now ?? Date.now;
  }

  /** The record with this id, after a reload if the file changed. */
  async get(id: string): Promise<ApiKeyRecord | undefined> {
    if (this.now() - this.checkedAt >= this.checkEveryMs) {
      // One reload at a time: concurrent requests wait for the same read.
      this.pending ??= this.refresh().finally(() => {
        this.pending = undefined;
      });
      await this.pending;
    }
    return this.keys.get(id);
  }

  private async refresh(): Promise<void> {
    this.checkedAt = this.now();
    let version: string;
    try {
      const s = await stat(this.opts.path);
      version = `${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.keys = new Map();
      this.version = '';
      return;
    }
    if (version === this.version) return;
    try {
      const records = parseKeyFile(await readFile(this.opts.path, 'utf8'), this.opts.path);
      this.keys = new Map(records.map((r) => [r.id, r]));
      this.version = version;
    } catch (err) {
      // A file caught mid-edit by hand, or broken: keep the last good keys rather than lock every service out.
      this.opts.logger?.error(
        { err: (err as Error).message },
        'api keys: cannot read the key file; keeping the last good keys',
      );
    }
  }
}
