// CSV as Tally writes it, in API answers (api/csv.ts) and in export files (written by ClickHouse from
// clickhouse/queries/exports.ts): RFC 4180 line ends, and text cells that a spreadsheet would run as a formula
// (starting with = + - @ tab or CR) prefixed with a quote, unless the caller asked for csv_escape=none.

/** `csv_escape`: 'none' leaves formula-like cells as stored (for scripts, not spreadsheets). */
export const CSV_ESCAPES = ['formula', 'none'] as const;
export type CsvEscape = (typeof CSV_ESCAPES)[number];

/** RFC 4180's record separator, in answers and export files alike. */
export const CSV_LINE_END = '\r\n';

/** A formula-like cell, in the regular-expression syntax JavaScript and ClickHouse (re2) read alike. */
export const FORMULA_PATTERN = '^[=+\\-@\\t\\r]';

const FORMULA = new RegExp(FORMULA_PATTERN);

/** The cell as written under the escape rule: a formula-like text gets a leading quote. */
export function escapeCell(s: string, rule: CsvEscape = 'formula'): string {
  return rule !== 'none' && FORMULA.test(s) ? `'${s}` : s;
}
