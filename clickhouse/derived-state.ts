// Small state derived from the stored data that every read needs first (which usage days are sealed and under
// which prefixes, how many logs each day holds, a filter's sealed pairs): computed once per version of the
// tables it reads (data-version.ts) and shared by every read that saw that version, instead of once per
// request. Most of an uncached report's time was these queries, repeated for each request although the data
// had not changed.
//
// Never stale: a snapshot is taken for the version a request read after it arrived (api/read-cache.ts), and
// what is derived for it is computed after that read, so it reflects that version or a later one. Each value
// names the tables it is computed from (data-version.ts, TableSet) and is reused only while their version is
// the one it was computed at: versions do not repeat, and every change to a table (an insert through any path,
// a seal, a merge, a delete, a TTL drop) is a new version of it, so equal versions mean no change in between.
// A value computed from another derived value names that one's tables too.
import { type TableSet, versionOf } from './data-version.ts';

/** What one request's reads share: the version they saw, and the state derived from the data at it. */
export interface Snapshot {
  /** The data version the request read, or undefined when none was read (nothing is then shared). */
  readonly version: string | undefined;
  /**
   * `compute()` once per version of `tables` and key; concurrent requests share the same promise. `tables`
   * must name every table `compute` reads. `weigh` gives the bytes a value holds, for the bound on what is
   * kept (default: counted as 1 KiB).
   */
  derive<T>(
    key: string,
    tables: TableSet,
    compute: () => Promise<T>,
    weigh?: (value: T) => number,
  ): Promise<T>;
}

/** No version: every read computes its own state (no read cache, or the version could not be read). */
export const UNVERSIONED: Snapshot = {
  version: undefined,
  derive: (_key, _tables, compute) => compute(),
};

export interface DerivedStateOptions {
  /** Keys kept (filters are part of some keys, and clients choose filters). Default 256. */
  maxKeys?: number;
  /** Bytes kept, as weighed. Default 64 MiB. */
  maxBytes?: number;
}

interface Held {
  value: Promise<unknown>;
  bytes: number;
  /** The tables it is computed from, and their version then. */
  tables: TableSet;
  at: string;
}

const UNWEIGHED_BYTES = 1024;

export class DerivedState {
  // The newest version asked for: a request of an older one still running shares what is held (when its tables
  // are at the same version) but keeps what it computes to itself.
  private version: string | undefined;
  private readonly values = new Map<string, Held>();
  // Every computation still running, whatever its version: what a shutdown waits for before the engine closes
  // (some are started in the background, by no request that would otherwise be waited for).
  private readonly running = new Set<Promise<unknown>>();
  private bytes = 0;
  private readonly maxKeys: number;
  private readonly maxBytes: number;

  constructor(opts: DerivedStateOptions = {}) {
    this.maxKeys = opts.maxKeys ?? 256;
    this.maxBytes = opts.maxBytes ?? 64 * 1024 * 1024;
  }

  /** The snapshot of `version`; what was derived from tables changed since is dropped. */
  at(version: string): Snapshot {
    if (version !== this.version) {
      this.version = version;
      for (const [key, held] of this.values)
        if (versionOf(version, held.tables) !== held.at) this.drop(key, held);
    }
    return {
      version,
      derive: <T>(
        key: string,
        tables: TableSet,
        compute: () => Promise<T>,
        weigh?: (value: T) => number,
      ): Promise<T> => {
        const at = versionOf(version, tables);
        const held = this.values.get(key);
        if (held && held.at === at) {
          // Most recently used last: Map keeps insertion order.
          this.values.delete(key);
          this.values.set(key, held);
          return held.value as Promise<T>;
        }
        const p = compute();
        this.running.add(p);
        const done = () => this.running.delete(p);
        p.then(done, done);
        if (this.version !== version) return p;
        if (held) this.drop(key, held);
        // Weighed once it resolves; until then it holds nothing yet.
        const entry: Held = { value: p, bytes: 0, tables, at };
        this.values.set(key, entry);
        p.then(
          (value) => {
            if (this.values.get(key) !== entry) return;
            const bytes = weigh ? weigh(value) : UNWEIGHED_BYTES;
            this.bytes += bytes - entry.bytes;
            entry.bytes = bytes;
            this.evict();
          },
          // A failure is not kept: the next request tries again.
          () => this.drop(key, entry),
        );
        this.evict();
        return p;
      },
    };
  }

  private drop(key: string, entry: Held): void {
    if (this.values.get(key) !== entry) return;
    this.values.delete(key);
    this.bytes -= entry.bytes;
  }

  // Least recently used first; the newest entry stays even alone over the bound (its request is using it).
  private evict(): void {
    for (const [key, entry] of this.values) {
      if (this.values.size <= 1 || (this.values.size <= this.maxKeys && this.bytes <= this.maxBytes)) break;
      this.drop(key, entry);
    }
  }

  /** Resolves once nothing derived is still being computed (shutdown, before the engine closes). */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  /** Keys held (tests, metrics). */
  get size(): number {
    return this.values.size;
  }

  /** Bytes held, as weighed (tests, metrics). */
  get heldBytes(): number {
    return this.bytes;
  }
}
