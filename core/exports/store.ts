// The export files: DATA_DIR/exports by default. A file is written under a temporary name and renamed when
// complete, so a reader never sees half a file; names come from server-made job ids, never from a request.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ExportFormat } from './formats.ts';

/** The most an export's file write hashes and writes between two turns of the event loop. */
const SLICE_BYTES = 1 << 20;

const JOB_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const EXTENSION: Record<ExportFormat, string> = { csv: 'csv', parquet: 'parquet' };

export interface WrittenFile {
  fileName: string;
  bytes: number;
  sha256: string;
}

export class ExportStore {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  /** The stored name of a job's file (job ids are UUIDs the service made). */
  fileName(jobId: string, format: ExportFormat): string {
    if (!JOB_ID.test(jobId)) throw new Error(`not a job id: ${JSON.stringify(jobId)}`);
    return `${jobId}.${EXTENSION[format]}`;
  }

  /** The absolute path of a stored name; refuses anything that is not a plain name this store made. */
  path(fileName: string): string {
    if (!/^[0-9a-f-]{36}\.(csv|parquet)$/.test(fileName)) throw new Error('not an export file name');
    return join(this.dir, fileName);
  }

  /**
   * Writes chunks to `<name>.<attempt>.part` with backpressure, hashing as it goes, then renames it into place.
   * `onChunk` sees the running totals (for progress). A failure removes the partial file; success, the parts
   * that earlier attempts left.
   */
  async write(
    fileName: string,
    attempt: number,
    chunks: AsyncIterable<Uint8Array>,
    onChunk: (bytes: number) => void = () => undefined,
  ): Promise<WrittenFile> {
    const final = this.path(fileName);
    const temp = `${final}.${attempt}.part`;
    const out = createWriteStream(temp, { flags: 'w', mode: 0o600 });
    const hash = createHash('sha256');
    let bytes = 0;
    try {
      for await (const chunk of chunks) {
        // The engine hands over chunks of several MB, and hashing one (~17 ms per 7 MB here) would hold the
        // event loop, and every API request waiting on it, that long: a slice at a time, yielding between them.
        for (let at = 0; at < chunk.byteLength; at += SLICE_BYTES) {
          if (at > 0) await new Promise((r) => setImmediate(r));
          const slice = chunk.subarray(at, at + SLICE_BYTES);
          hash.update(slice);
          bytes += slice.byteLength;
          if (!out.write(slice)) await once(out, 'drain');
        }
        onChunk(bytes);
      }
      await new Promise<void>((resolve, reject) =>
        out.end((err?: Error | null) => (err ? reject(err) : resolve())),
      );
      renameSync(temp, final);
      // Earlier attempts' parts (a worker killed mid-write) are superseded now rather than at the next sweep.
      for (let a = 1; a < attempt; a++) rmSync(`${final}.${a}.part`, { force: true });
      return { fileName, bytes, sha256: hash.digest('hex') };
    } catch (err) {
      out.destroy();
      rmSync(temp, { force: true });
      throw err;
    }
  }

  size(fileName: string): number | undefined {
    try {
      return statSync(this.path(fileName)).size;
    } catch {
      return undefined;
    }
  }

  /**
   * Removes every file not in `keep` (names of live jobs' files) and older than `graceMs`: expired exports,
   * files of failed jobs, and partial files a crashed worker left behind. Returns the names removed.
   */
  sweep(keep: ReadonlySet<string>, nowMs: number = Date.now(), graceMs = 60_000): string[] {
    const removed: string[] = [];
    for (const name of readdirSync(this.dir)) {
      const base = name.replace(/\.\d+\.part$/, '');
      if (keep.has(base) && !name.endsWith('.part')) continue;
      // A partial file of a job still being written is kept (its worker may be writing it right now).
      if (keep.has(`${base}#processing`)) continue;
      const full = join(this.dir, name);
      try {
        if (nowMs - statSync(full).mtimeMs < graceMs) continue;
        rmSync(full, { force: true });
        removed.push(name);
      } catch {
        // Gone already: another sweeper got it.
      }
    }
    return removed;
  }
}
