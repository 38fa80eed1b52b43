// The service's own notable events (failed authentications, failed exports, ingestion faults) recorded as
// system logs of service "tally", so they page and alert like any other log. Rate-limited per kind (or per kind
// and subject) so that an outage cannot flood the table: the first record of a window is written at once, the
// rest are held back and summed up in one record when the window ends (a timer, so the count is written even
// if no further record of that kind ever comes). Held in a small bounded queue while the storage is down.
import { randomUUID } from 'node:crypto';
import type { LogRow, Severity } from '../core/events.ts';
import { toClickHouseTime } from '../core/events.ts';
import type { ClickHouse } from './client.ts';
import { insertEvents } from './inserts.ts';

export const SELF_SERVICE = 'tally';

export interface SelfLogOptions {
  /**
   * At most one record per kind (per kind and subject with `perSubject`) in this window; the ones held back are
   * written as one summary record when the window ends (default 60 s).
   */
  windowMs?: number;
  /** Records kept while the storage is down; older ones are dropped and counted (default 100). */
  maxQueued?: number;
  now?: () => number;
}

export interface RecordOptions {
  /** What the record is about (a job id, a claimed identity): the summary of held-back records lists these. */
  subject?: string;
  /**
   * Throttle per (kind, subject) instead of per kind, so that records about two subjects (two jobs given up)
   * never collapse into one. Only for kinds whose subjects are bounded by the service itself (default false).
   */
  perSubject?: boolean;
}

/** Subjects named in one summary at most; the rest are counted. */
const MAX_SUBJECTS = 20;
const RANK: Record<Severity, number> = { info: 0, warning: 1, error: 2 };

interface Window {
  kind: string;
  startedAt: number;
  held: number;
  /** The highest severity among the held-back records. */
  severity: Severity;
  subjects: Set<string>;
  timer: NodeJS.Timeout | undefined;
}

export class SelfLog {
  private readonly windows = new Map<string, Window>();
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

  /**
   * Records an event of `kind`, or holds it back when one was recorded within the window (the window's
   * summary then counts it). Never throws.
   */
  record(severity: Severity, kind: string, message: string, opts: RecordOptions = {}): void {
    const key = opts.perSubject && opts.subject !== undefined ? `${kind}\u0000${opts.subject}` : kind;
    const now = this.now();
    let w = this.windows.get(key);
    // A window that has ended (by this clock) but whose timer has not fired yet is closed first, so the summary
    // always comes before the next window's first record.
    if (w && now - w.startedAt >= this.windowMs) {
      this.endWindow(key, w, now);
      w = undefined;
    }
    if (w) {
      w.held += 1;
      if (RANK[severity] > RANK[w.severity]) w.severity = severity;
      if (opts.subject !== undefined && w.subjects.size <= MAX_SUBJECTS) w.subjects.add(opts.subject);
      this.arm(key, w);
      return;
    }
    if (this.windows.size >= 256) this.prune(now);
    this.windows.set(key, {
      kind,
      startedAt: now,
      held: 0,
      severity,
      subjects: new Set(),
      timer: undefined,
    });
    this.push(now, severity, kind, message);
  }

  /** Writes what is queued; on failure keeps it for the next attempt. */
  flush(): Promise<void> {
    // A write in flight holds what was queued when it began; what came since is written by the write its end
    // starts (inserts run on a connection of their own, so a read after this returns must not find them
    // still on the way).
    const inFlight = this.writing;
    if (inFlight) return inFlight.then(() => this.writing);
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

  /** Shutdown: writes the summaries of every open window now (not at its end), then what is queued. */
  async close(): Promise<void> {
    const now = this.now();
    for (const [key, w] of [...this.windows]) this.endWindow(key, w, now);
    await this.flush();
    // A write in flight when close began starts another, when it ends, for what was queued meanwhile: wait for
    // that one too (else the last records could land after close() returned).
    while (this.writing) await this.writing;
    // A write that failed keeps its rows queued; one more try before giving up on them.
    if (this.queue.length > 0) await this.flush();
  }

  get pending(): number {
    return this.queue.length;
  }

  get droppedCount(): number {
    return this.dropped;
  }

  private push(now: number, severity: Severity, kind: string, text: string): void {
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

  // Ends a window: its summary record when something was held back.
  private endWindow(key: string, w: Window, now: number): void {
    clearTimeout(w.timer);
    if (this.windows.get(key) === w) this.windows.delete(key);
    if (w.held === 0) return;
    const listed = [...w.subjects].slice(0, MAX_SUBJECTS);
    const unlisted = w.subjects.size > MAX_SUBJECTS ? ', and more' : '';
    const about = listed.length > 0 ? `; subjects: ${listed.join(', ')}${unlisted}` : '';
    this.push(
      now,
      w.severity,
      w.kind,
      `${w.held} more record(s) of this kind held back since ${new Date(w.startedAt).toISOString()}${about}`,
    );
  }

  // The window's end as a timer (unref'd: it never keeps the process alive). Checked against this clock when
  // it fires, so an injected clock decides; a window its clock has not ended yet is armed again.
  private arm(key: string, w: Window): void {
    if (w.timer) return;
    const left = Math.max(1, w.startedAt + this.windowMs - this.now());
    w.timer = setTimeout(() => {
      w.timer = undefined;
      if (this.windows.get(key) !== w) return;
      const now = this.now();
      if (now - w.startedAt >= this.windowMs) this.endWindow(key, w, now);
      else this.arm(key, w);
    }, left);
    w.timer.unref();
  }

  // Forgets windows that have ended with nothing held back (per-subject keys would otherwise pile up).
  private prune(now: number): void {
    for (const [key, w] of this.windows) {
      if (w.held === 0 && now - w.startedAt >= this.windowMs) this.windows.delete(key);
    }
  }
}
