// The opaque cursor of GET /logs/system-events: base64url JSON of the last log shown (timestamp, event_id),
// the page it leads to, and a digest of the parameters it belongs to, so that a cursor replayed with other
// filters or another limit is refused (400 naming `cursor`) instead of silently walking another list.
import { createHash } from 'node:crypto';
import type { LogFilters, LogKey } from '../clickhouse/queries/system-events.ts';
import { ValidationError } from '../core/errors.ts';

export interface CursorState {
  after: LogKey;
  /** The page number the cursor leads to (labels the answer; the position is `after`). */
  page: number;
  /** Digest of the filters and limit it was issued for. */
  binding: string;
}

/** A digest of everything that defines the list being walked. */
export function cursorBinding(f: LogFilters, limit: number): string {
  const key = JSON.stringify([
    f.severity ?? null,
    f.service ?? null,
    f.start_date ?? null,
    f.end_date ?? null,
    limit,
  ]);
  return createHash('sha256').update(key).digest('base64url').slice(0, 22);
}

export function encodeCursor(s: CursorState): string {
  return Buffer.from(
    JSON.stringify({ v: 1, t: s.after.ms, i: s.after.event_id, p: s.page, b: s.binding }),
  ).toString('base64url');
}

const invalid = () =>
  new ValidationError('cursor', 'is not a cursor this API issued (use next_cursor as given)');

export function decodeCursor(text: string): CursorState {
  if (!/^[A-Za-z0-9_-]+$/.test(text)) throw invalid();
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    throw invalid();
  }
  const o = v as { v?: unknown; t?: unknown; i?: unknown; p?: unknown; b?: unknown } | null;
  if (
    typeof o !== 'object' ||
    o === null ||
    o.v !== 1 ||
    typeof o.t !== 'number' ||
    !Number.isSafeInteger(o.t) ||
    typeof o.i !== 'string' ||
    o.i.length === 0 ||
    o.i.length > 128 ||
    typeof o.p !== 'number' ||
    !Number.isSafeInteger(o.p) ||
    o.p < 2 ||
    typeof o.b !== 'string'
  ) {
    throw invalid();
  }
  return { after: { ms: o.t, event_id: o.i }, page: o.p, binding: o.b };
}
