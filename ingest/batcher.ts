// Per-partition batching: messages accumulate in offset order and leave as one batch at a row, byte or age
// limit, whichever comes first. Pure logic, no I/O: the consumer decides when to flush and what to do after.

import { EncodedLines } from '../clickhouse/encoded-lines.ts';
import { type EncodedRows, encodeLog, encodeUsage } from '../clickhouse/inserts.ts';
import type { ParseResult } from '../core/events.ts';
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
  /** Valid events, encoded for their insert (clickhouse/inserts.ts encodeUsage / encodeLog), in offset order. */
  usage: EncodedRows['usage'];
  logs: EncodedRows['logs'];
  dead: DeadLetter[];
}

/** The insert token of a batch: a pure function of where the batch sits in the log. */
export function batchToken(b: Pick<Batch, 'topic' | 'partition' | 'firstOffset' | 'lastOffset'>): string {
  return `${b.topic}/${b.partition}/${b.firstOffset}-${b.lastOffset}`;
}

// Each valid event is held as the bytes its insert needs (EncodedLines, outside V8's heap), not as the parsed
// object graph nor as a string: a member holds up to its memory budget of events, and the objects (JSON value,
// row, attributes) cost several times the string, and strings survive into the old generation while they wait.
export class PartitionBuffer {
  private usage = new EncodedLines();
  private logs = new EncodedLines();
  private dead: DeadLetter[] = [];
  private count = 0;
  private first = '';
  private last = '';
  private bytes = 0;
  private firstAt = 0;

  constructor(
    readonly topic: string,
    readonly partition: number,
    private readonly limits: BatchLimits,
  ) {}

  get size(): number {
    return this.count;
  }

  get byteSize(): number {
    return this.bytes;
  }

  add(item: Buffered, nowMs: number): void {
    if (this.count === 0) {
      this.firstAt = nowMs;
      this.first = item.offset;
    }
    this.count += 1;
    this.last = item.offset;
    this.bytes += item.bytes;
    const r = item.result;
    if (!r.ok)
      this.dead.push({
        offset: item.offset,
        reason: r.error,
        key: item.key ?? null,
        value: item.value ?? null,
        headers: item.headers,
      });
    else if (r.event.kind === 'usage') this.usage.push(encodeUsage(r.event.row));
    else this.logs.push(encodeLog(r.event.row));
  }

  /** At the row or byte limit: flush before taking more. */
  isFull(): boolean {
    return this.count >= this.limits.rows || this.bytes >= this.limits.bytes;
  }

  /** Non-empty and its oldest message has waited long enough (`waitMs`, default the batch wait). */
  isDue(nowMs: number, waitMs = this.limits.waitMs): boolean {
    return this.count > 0 && (this.isFull() || nowMs - this.firstAt >= waitMs);
  }

  /** Empties the buffer into a batch, or returns null when there is nothing. */
  take(): Batch | null {
    if (this.count === 0) return null;
    const batch: Batch = {
      topic: this.topic,
      partition: this.partition,
      firstOffset: this.first,
      lastOffset: this.last,
      count: this.count,
      bytes: this.bytes,
      usage: this.usage,
      logs: this.logs,
      dead: this.dead,
    };
    this.clear();
    return batch;
  }

  /** Drops what is buffered (the partition was revoked: its new owner re-reads from the last commit). */
  clear(): void {
    this.usage = new EncodedLines();
    this.logs = new EncodedLines();
    this.dead = [];
    this.count = 0;
    this.bytes = 0;
  }
}
