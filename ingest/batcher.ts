// Per-partition batching: messages accumulate in offset order and leave as one batch at a row, byte or age
// limit, whichever comes first. Pure logic, no I/O: the consumer decides when to flush and what to do after.

import type { LogRow, ParseResult, UsageRow } from '../core/events.ts';
import type { MessageHeaders } from './decode.ts';

export interface BatchLimits {
  rows: number;
  bytes: number;
  waitMs: number;
}

/** One consumed message, already decoded; the raw parts are kept only for dead letters. */
export interface Buffered {
  offset: string;
  bytes: number;
  result: ParseResult;
  /** The message's key, value and headers: kept for a dead letter only (set when `result` is not ok). */
  key?: Buffer | null;
  value?: Buffer | null;
  /** A binary-mode CloudEvent's attributes are in the headers. */
  headers?: MessageHeaders | undefined;
}

export interface DeadLetter {
  offset: string;
  reason: string;
  key: Buffer | null;
  value: Buffer | null;
  headers?: MessageHeaders | undefined;
}

export interface Batch {
  topic: string;
  partition: number;
  firstOffset: string;
  lastOffset: string;
  /** Messages in the batch, valid or not. */
  count: number;
  /** Raw bytes of its messages. */
  bytes: number;
  usage: UsageRow[];
  logs: LogRow[];
  dead: DeadLetter[];
}

/** The insert token of a batch: a pure function of where the batch sits in the log. */
export function batchToken(b: Pick<Batch, 'topic' | 'partition' | 'firstOffset' | 'lastOffset'>): string {
  return `${b.topic}/${b.partition}/${b.firstOffset}-${b.lastOffset}`;
}

export class PartitionBuffer {
  private items: Buffered[] = [];
  private bytes = 0;
  private firstAt = 0;

  constructor(
    readonly topic: string,
    readonly partition: number,
    private readonly limits: BatchLimits,
  ) {}

  get size(): number {
    return this.items.length;
  }

  get byteSize(): number {
    return this.bytes;
  }

  add(item: Buffered, nowMs: number): void {
    if (this.items.length === 0) this.firstAt = nowMs;
    this.items.push(item);
    this.bytes += item.bytes;
  }

  /** At the row or byte limit: flush before taking more. */
  isFull(): boolean {
    return this.items.length >= this.limits.rows || this.bytes >= this.limits.bytes;
  }

  /** Non-empty and its oldest message has waited long enough. */
  isDue(nowMs: number): boolean {
    return this.items.length > 0 && (this.isFull() || nowMs - this.firstAt >= this.limits.waitMs);
  }

  /** Empties the buffer into a batch, or returns null when there is nothing. */
  take(): Batch | null {
    const items = this.items;
    if (items.length === 0) return null;
    const bytes = this.bytes;
    this.items = [];
    this.bytes = 0;
    const batch: Batch = {
      topic: this.topic,
      partition: this.partition,
      firstOffset: (items[0] as Buffered).offset,
      lastOffset: (items[items.length - 1] as Buffered).offset,
      count: items.length,
      bytes,
      usage: [],
      logs: [],
      dead: [],
    };
    for (const it of items) {
      const r = it.result;
      if (!r.ok)
        batch.dead.push({
          offset: it.offset,
          reason: r.error,
          key: it.key ?? null,
          value: it.value ?? null,
          headers: it.headers,
        });
      else if (r.event.kind === 'usage') batch.usage.push(r.event.row);
      else batch.logs.push(r.event.row);
    }
    return batch;
  }

  /** Drops what is buffered (the partition was revoked: its new owner re-reads from the last commit). */
  clear(): void {
    this.items = [];
    this.bytes = 0;
  }
}
