// Small state derived from the stored data that every read needs first (which usage days are sealed and under
// which prefixes, how many logs each day holds, a filter's sealed pairs): computed once per data version
// (data-version.ts) and shared by every read that saw that version, instead of once per request. Most of an
// uncached report's time was these queries, repeated for each request although the data had not changed.
//
// Never stale: a snapshot is taken for the version a request read after it arrived (api/read-cache.ts), and
// what is derived for it is computed after that read, so it reflects that version or a later one. A later
// version never reuses it: versions do not repeat, and every change to a table (an insert through any path, a
// seal, a merge, a delete, a TTL drop) is a new version.

/** What one request's reads share: the version they saw, and the state derived from the data at it. */
export interface Snapshot {
  /** The data version the request read, or undefined when none was read (nothing is then shared). */
  readonly version: string | undefined;
  /**
   * `compute()` once per version and key; concurrent requests of one version share the same promise. `weigh`
   * gives the bytes a value holds, for the bound on what a version keeps (default: counted as 1 KiB).
   */
  derive<T>(key: string, compute: () => Promise<T>, weigh?: (value: T) => number): Promise<T>;
  /** The value derived for `key` if it is computed already, else undefined (nothing is started). */
  ready<T>(key: string): T | undefined;
  /** How many times `key` has been asked for at this version, this time included. */
  ask(key: string): number;
}

/** No version: every read computes its own state (no read cache, or the version could not be read). */
export const UNVERSIONED: Snapshot = {
  version: undefined,
  derive: (_key, compute) => compute(),
  ready: () => undefined,
  ask: () => 1,
};

export interface DerivedStateOptions {
  /** Keys kept for one version (filters are part of some keys, and clients choose filters). Default 256. */
  maxKeys?: number;
  /** Bytes kept for one version, as weighed. Default 64 MiB. */
  maxBytes?: number;
}

interface Held {
  value: Promise<unknown>;
  bytes: number;
  settled?: { value: unknown };
}

const UNWEIGHED_BYTES = 1024;

export class DerivedState {
  private version: string | undefined;
  private readonly values = new Map<string, Held>();
  private readonly asked = new Map<string, number>();
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

  /** The snapshot of `version`; what was derived for an older version is dropped. */
  at(version: string): Snapshot {
    if (version !== this.version) {
      this.values.clear();
      this.asked.clear();
      this.bytes = 0;
      this.version = version;
    }
    return {
      version,
      ready: <T>(key: string): T | undefined =>
        this.version === version ? (this.values.get(key)?.settled?.value as T | undefined) : undefined,
      ask: (key: string): number => {
        if (this.version !== version) return 1;
        const n = (this.asked.get(key) ?? 0) + 1;
        // Clients choose filters: a bounded tally (losing it only delays an index by a request).
        if (this.asked.size >= 16 * this.maxKeys) this.asked.clear();
        this.asked.set(key, n);
        return n;
      },
      derive: <T>(key: string, compute: () => Promise<T>, weigh?: (value: T) => number): Promise<T> => {
        // A request of an older version that is still running computes for itself: the map is the newest's.
        if (this.version !== version) return compute();
        const held = this.values.get(key);
        if (held) {
          // Most recently used last: Map keeps insertion order.
          this.values.delete(key);
          this.values.set(key, held);
          return held.value as Promise<T>;
        }
        const p = compute();
        this.running.add(p);
        const done = () => this.running.delete(p);
        p.then(done, done);
        // Weighed once it resolves; until then it holds nothing yet.
        const entry: Held = { value: p, bytes: 0 };
        this.values.set(key, entry);
        p.then(
          (value) => {
            if (this.values.get(key) !== entry) return;
            const bytes = weigh ? weigh(value) : UNWEIGHED_BYTES;
            this.bytes += bytes - entry.bytes;
            entry.bytes = bytes;
            entry.settled = { value };
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

  /** Keys held for the current version (tests, metrics). */
  get size(): number {
    return this.values.size;
  }

  /** Bytes held for the current version, as weighed (tests, metrics). */
  get heldBytes(): number {
    return this.bytes;
  }
}
