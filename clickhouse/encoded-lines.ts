// Encoded rows held until their insert as bytes outside V8's heap: each row's JSON (clickhouse/inserts.ts
// encodeUsage / encodeLog, an array missing its closing bracket) and a newline, in chunks (below). JSON
// text has no raw newline, so the newlines alone delimit the rows. The insert closes each row with its delivery
// (`tail`, the row's index, `"]`) as it copies them into the body.
//
// Why not strings: the ingester holds up to its memory budget (twice INGEST_BATCH_BYTES) of rows across its
// partitions for about a second, long enough for V8 to move them into its old generation, which then grows to
// a multiple of them before it collects. Measured with bench/ingest.ts (1,000,000 events, RSS sampled with the
// engine's own figures, bench/engine-memory.ts): V8's heap was 110-180 MB of the ingesting process's RSS at
// its peak, of which ~50 MB live; see bench/RESULTS.md (ingest) for the figures with the rows held as bytes.

/**
 * Chunks double from 16 KiB up to 256 KiB (a row longer than that gets a chunk of its own), so that a member
 * owning many quiet partitions holds little per partition.
 */
const MIN_CHUNK = 16 * 1024;
const MAX_CHUNK = 256 * 1024;
const NEWLINE = 10;
const CLOSE = Buffer.from('"]\n');

export class EncodedLines {
  private readonly chunks: Buffer[] = [];
  /** Bytes used in each chunk. */
  private readonly used: number[] = [];
  private bytes = 0;
  private count = 0;

  /** Rows held. */
  get length(): number {
    return this.count;
  }

  /** Appends one encoded row (it must not contain a newline: JSON text never does). */
  push(line: string): void {
    const n = Buffer.byteLength(line);
    let last = this.chunks.at(-1);
    let at = this.used.at(-1) ?? 0;
    if (!last || at + n + 1 > last.length) {
      last = Buffer.allocUnsafeSlow(Math.max(n + 1, Math.min(MAX_CHUNK, Math.max(MIN_CHUNK, this.bytes))));
      this.chunks.push(last);
      this.used.push(0);
      at = 0;
    }
    at += last.write(line, at);
    last[at++] = NEWLINE;
    this.used[this.used.length - 1] = at;
    this.bytes += n + 1;
    this.count += 1;
  }

  /** The insert's body: every row followed by `tail`, its index and `"]`, one row per line. */
  body(tail: string): Buffer {
    const end = Buffer.from(tail);
    let digits = 0;
    for (let i = 0, p = 1, d = 1; i < this.count; i++) {
      if (i === p * 10) {
        p *= 10;
        d += 1;
      }
      digits += d;
    }
    const out = Buffer.allocUnsafe(this.bytes + this.count * (end.length + CLOSE.length - 1) + digits);
    let at = 0;
    let i = 0;
    for (const [c, chunk] of this.chunks.entries()) {
      const size = this.used[c] as number;
      let from = 0;
      while (from < size) {
        // Within the used bytes, every row ends in its newline.
        const nl = chunk.indexOf(NEWLINE, from);
        at += chunk.copy(out, at, from, nl);
        at += end.copy(out, at);
        at += out.write(String(i), at, 'latin1');
        at += CLOSE.copy(out, at);
        i += 1;
        from = nl + 1;
      }
    }
    return out;
  }
}
