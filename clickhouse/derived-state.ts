// Small state derived from the stored data that every read needs first (which usage days are sealed and under
// which prefixes, how many logs each day holds): computed once per data version (data-version.ts) and shared
// by every read that saw that version, instead of once per request. Most of an uncached report's time was these
// few-thousand-row queries, repeated for each request although the data had not changed.
//
// Never stale: a snapshot is taken for the version a request read after it arrived (api/read-cache.ts), and
// what is derived for it is computed after that read, so it reflects that version or a later one. A later
// version never reuses it: versions do not repeat, and every change to a table (an insert through any path, a
// seal, a merge, a delete, a TTL drop) is a new version.

/** What one request's reads share: the version they saw, and the state derived from the data at it. */
export interface Snapshot {
  /** The data version the request read, or undefined when none was read (nothing is then shared). */
  readonly version: string | undefined;
  /** `compute()` once per version and key; concurrent requests of one version share the same promise. */
  derive<T>(key: string, compute: () => Promise<T>): Promise<T>;
}

/** No version: every read computes its own state (no read cache, or the version could not be read). */
export const UNVERSIONED: Snapshot = {
  version: undefined,
  derive: (_key, compute) => compute(),
};

/** Default bound on keys kept for one version (filters are part of some keys, and clients choose filters). */
export const DEFAULT_DERIVED_KEYS = 256;

export class DerivedState {
  private version: string | undefined;
  private readonly values = new Map<string, Promise<unknown>>();

  constructor(private readonly maxKeys = DEFAULT_DERIVED_KEYS) {}

  /** The snapshot of `version`; what was derived for an older version is dropped. */
  at(version: string): Snapshot {
    if (version !== this.version) {
      this.values.clear();
      this.version = version;
    }
    return {
      version,
      derive: <T>(key: string, compute: () => Promise<T>): Promise<T> => {
        // A request of an older version that is still running computes for itself: the map is the newest's.
        if (this.version !== version) return compute();
        const held = this.values.get(key) as Promise<T> | undefined;
        if (held) {
          // Most recently used last: Map keeps insertion order.
          this.values.delete(key);
          this.values.set(key, held);
          return held;
        }
        const p = compute();
        this.values.set(key, p);
        // A failure is not kept: the next request tries again.
        p.catch(() => {
          if (this.values.get(key) === p) this.values.delete(key);
        });
        for (const k of this.values.keys()) {
          if (this.values.size <= this.maxKeys) break;
          this.values.delete(k);
        }
        return p;
      },
    };
  }

  /** Keys held for the current version (tests, metrics). */
  get size(): number {
    return this.values.size;
  }
}
