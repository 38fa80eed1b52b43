// CSV answers for BI tools: a header row, RFC 4180 quoting, and the formula escape of core/csv.ts.
import type { Context } from 'hono';
import { CSV_LINE_END, type CsvEscape, escapeCell } from '../core/csv.ts';

export interface CsvOptions {
  /** `?csv_escape=`: 'none' leaves formula-like cells as they are (default 'formula'). */
  escape?: CsvEscape | undefined;
}

export function csvCell(v: unknown, opts: CsvOptions = {}): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'string' ? escapeCell(v, opts.escape) : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv<T extends object>(
  columns: readonly string[],
  rows: readonly T[],
  opts: CsvOptions = {},
): string {
  const lines = [columns.join(',')];
  for (const r of rows) {
    const cells = r as Record<string, unknown>;
    lines.push(columns.map((col) => csvCell(cells[col], opts)).join(','));
  }
  return `${lines.join(CSV_LINE_END)}${CSV_LINE_END}`;
}

/** True when the caller asked for CSV with ?format=csv or an Accept header preferring text/csv. */
export function wantsCsv(c: Context, format: string | undefined): boolean {
  if (format) return format === 'csv';
  const accept = c.req.header('accept') ?? '';
  return /\btext\/csv\b/i.test(accept) && !/\bapplication\/json\b/i.test(accept.split('text/csv')[0] ?? '');
}

export function csvResponse(c: Context, body: string): Response {
  c.header('Content-Type', 'text/csv; charset=utf-8');
  return c.body(body, 200);
}
