// The service's own notable events (failed authentications, failed exports, ingestion faults) recorded as
// system logs of service "tally", so they page and alert like any other log. Rate-limited per kind so that an
// outage cannot flood the table, and held in a small bounded queue while the storage itself is down.
import { randomUUID } from 'node:crypto';
import type { LogRow, Severity } from '../core/events.ts';
import { toClickHouseTime } from '../core/events.ts';
import type { ClickHouse } from './client.ts';
import { insertEvents } from './inserts.ts';

export const SELF_SERVICE = 'tally';

export interface SelfLogOptions {
  /** At most one record per kind in this window; the rest are counted into the next one (default 60 s). */
  windowMs?: number;
  /** Records kept while the storage is down; older ones are dropped and counted (default 100). */
  maxQueued?: number;
  now?: () => number;
}

export class SelfLog {
  private readonly last = new Map<string, number>();
  private readonly suppressed = new Map<string, number>();
  private queue: LogRow[] = [];
  private dropped = 0;
  private writing: Promise<void> | undefined;
  private readonly windowMs: number;
  private readonly maxQueued: number;
  private readonly now: () => number;

  constructor(
    private readonly ch: ClickHouse,
    opts: SelfLogOptions = {},
  ) {
    this.windowMs = opts.windowMs ?? 60_000;
    this.maxQueued = opts.maxQueued ?? 100;
    this.now = opts.now ?? Date.now;
  }

  /** Records an event of `kind` unless one was recorded within the window. Never throws. */
  record(severity: Severity, kind: string, message: string): void {
    const now = this.now();
    const prev = this.last.get(kind);
    if (prev !== undefined && now - prev < this.windowMs) {
      this.suppressed.set(kind, (this.suppressed.get(kind) ?? 0) + 1);
      return;
    }
    this.last.set(kind, now);
    const more = this.suppressed.get(kind) ?? 0;
    this.suppressed.delete(kind);
    const text = more > 0 ? `${message} (and ${more} more of this kind since the last record)` : message;
    this.queue.push({
      event_id: `tally-${randomUUID()}`,
      timestamp: toClickHouseTime(now),
      severity,
      service: SELF_SERVICE,
      message: `[${kind}] ${text}`.slice(0, 4096),
    });
    if (this.queue.length > this.maxQueued) {
      this.dropped += this.queue.length - this.maxQueued;
      this.queue = this.queue.slice(-this.maxQueued);
    }
    void this.flush();
  }

  /** Writes what is queued; on failure keeps it for the next attempt. */
  flush(): Promise<void> {
    if (this.writing) return this.writing;
    if (this.queue.length === 0) return Promise.resolve();
    const rows = this.queue;
    this.queue = [];
    let written = false;
    this.writing = insertEvents(this.ch, { usage: [], logs: rows }, `self/${rows[0]?.event_id}`)
      .then(() => {
        written = true;
      })
      .catch(() => {
        this.queue = [...rows, ...this.queue].slice(-this.maxQueued);
      })
      .finally(() => {
        this.writing = undefined;
        // Records queued during this write would otherwise wait for the next record() (maybe never); after a
        // failure they wait for it on purpose, rather than retrying in a tight loop against a storage that is down.
        if (written && this.queue.length > 0) void this.flush();
      });
    return this.writing;
  }

  get pending(): number {
    return this.queue.length;
  }

  get droppedCount(): number {
    return this.dropped;
  }
}
