// Query-parameter schemas shared by the read routes; they validate requests and describe them in OpenAPI.
import { z } from '@hono/zod-openapi';

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

export const idParam = (name: string, max = 256) =>
  z
    .string()
    .min(1, { error: 'must not be empty' })
    .max(max, { error: `must be at most ${max} characters` })
    .optional()
    .openapi({ param: { name, in: 'query' } });

export const formatParam = z
  .enum(['json', 'csv'], { error: 'must be json or csv' })
  .optional()
  .openapi({
    param: { name: 'format', in: 'query' },
    description: 'csv for text/csv (also via Accept: text/csv)',
  });

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
