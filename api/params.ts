// Query-parameter schemas shared by the read routes, and the fields the export and schedule bodies share; they
// validate requests and describe them in OpenAPI.

import { z } from '@hono/zod-openapi';
import { CSV_ESCAPES } from '../core/csv.ts';
import { ValidationError } from '../core/errors.ts';
import { SEVERITIES } from '../core/events.ts';
import { EXPORT_FORMATS, REPORT_TYPES } from '../core/exports/formats.ts';

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** A UTC calendar day, YYYY-MM-DD, within the range ClickHouse's Date holds. */
export function isCalendarDate(s: string): boolean {
  const m = DATE.exec(s);
  if (!m) return false;
  const y = Number(m[1]);
  const mo = Number(m[2]);
  const d = Number(m[3]);
  if (y < 1970 || y > 2148) return false;
  const t = new Date(Date.UTC(y, mo - 1, d));
  return t.getUTCFullYear() === y && t.getUTCMonth() === mo - 1 && t.getUTCDate() === d;
}

export const dateParam = (name: string) =>
  z
    .string({ error: (iss) => (iss.input === undefined ? 'is required' : 'must be a string') })
    .refine(isCalendarDate, { error: 'must be a calendar date YYYY-MM-DD (UTC, 1970..2148)' })
    .openapi({ param: { name, in: 'query' }, example: '2025-01-01', format: 'date' });

export const optionalDateParam = (name: string) =>
  z
    .string({ error: 'must be a string' })
    .refine(isCalendarDate, { error: 'must be a calendar date YYYY-MM-DD (UTC, 1970..2148)' })
    .optional()
    .openapi({ param: { name, in: 'query' }, example: '2025-01-01', format: 'date' });

/** The highest page number accepted: (page - 1) * 1000 stays an exact integer. */
export const MAX_PAGE = 1_000_000_000_000;

/** An optional integer query parameter in [min, max], written in plain decimal digits. */
export const intParam = (name: string, min: number, max: number, def: number) => {
  const error = `must be an integer from ${min} to ${max}`;
  return z
    .string({ error: 'must be a single integer' })
    .regex(/^[0-9]{1,16}$/, { error })
    .transform(Number)
    .pipe(z.number().int().min(min, { error }).max(max, { error }))
    .optional()
    .openapi({
      param: { name, in: 'query' },
      type: 'integer',
      minimum: min,
      maximum: max,
      default: def,
    });
};

export const idParam = (name: string, max = 256) =>
  z
    .string()
    .min(1, { error: 'must not be empty' })
    .max(max, { error: `must be at most ${max} characters` })
    .optional()
    .openapi({ param: { name, in: 'query' } });

const CSV_ESCAPE_DESCRIPTION =
  "CSV only. formula (the default): a text cell starting with = + - @ tab or CR gets a leading ' so a " +
  'spreadsheet shows it instead of running it. none: cells exactly as stored, for scripts that parse the CSV ' +
  '(never open such a file in a spreadsheet).';

/** `csv_escape` in an export request's body. */
export const csvEscapeField = z
  .enum(CSV_ESCAPES, { error: 'must be formula or none' })
  .optional()
  .openapi({ description: CSV_ESCAPE_DESCRIPTION });

/** `?csv_escape=` of the read routes. */
export const csvEscapeParam = z
  .enum(CSV_ESCAPES, { error: 'must be formula or none' })
  .optional()
  .openapi({ param: { name: 'csv_escape', in: 'query' }, description: CSV_ESCAPE_DESCRIPTION });

export const formatParam = z
  .enum(['json', 'csv'], { error: 'must be json or csv' })
  .optional()
  .openapi({
    param: { name: 'format', in: 'query' },
    description: 'csv for text/csv (also via Accept: text/csv)',
  });

/** A non-empty id of at most `max` characters in a request body. */
export const idField = (max: number) =>
  z
    .string({ error: 'must be a string' })
    .min(1, { error: 'must not be empty' })
    .max(max, { error: `must be at most ${max} characters` });

export const reportTypeField = z.enum(REPORT_TYPES, { error: 'must be usage-summary or system-events' });

export const exportFormatField = z.enum(EXPORT_FORMATS, { error: 'must be csv or parquet' });

/** A log severity asked for (a body field or, with .openapi({ param }), a query parameter). */
export const severityField = z.enum(SEVERITIES, { error: 'must be info, warning or error' });

/** Routes needing a caller: a bearer JWT, or an API key (either one). */
export const SECURITY: Array<Record<string, string[]>> = [{ bearer: [] }, { apiKey: [] }];

/** The CSV alternative of a read route's 200 (header row, then data rows). */
export const CSV_CONTENT = {
  'text/csv': { schema: z.string().openapi({ description: 'RFC 4180 CSV with a header row' }) },
};

export const ErrorSchema = z
  .object({
    error: z.string().openapi({ example: 'Bad Request' }),
    message: z.string().openapi({ example: 'start_date: must be a calendar date YYYY-MM-DD' }),
  })
  .openapi('Error');

export const errorResponses = (...codes: number[]) =>
  Object.fromEntries(
    codes.map((code) => [
      code,
      { description: String(code), content: { 'application/json': { schema: ErrorSchema } } },
    ]),
  );

/** Dates are UTC days, both inclusive: a range whose start is after its end is a 400 naming start_date. */
export function checkRange(start: string | undefined, end: string | undefined): void {
  if (start !== undefined && end !== undefined && start > end) {
    throw new ValidationError('start_date', 'must not be after end_date');
  }
}
