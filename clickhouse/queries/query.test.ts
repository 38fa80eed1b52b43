// inlineParams: every placeholder replaced, every value closed inside its literal whatever it holds.
import { describe, expect, it } from 'vitest';
import { inlineParams, quoteLiteral } from './query.ts';

describe('inlineParams', () => {
  it('casts each placeholder to its type and escapes quotes and backslashes', () => {
    const sql = inlineParams({
      query: 'SELECT 1 WHERE d >= {start_date:Date} AND s = {service:String} AND n < {n:UInt64}',
      query_params: { start_date: '2025-01-01', service: "x' OR 1=1 -- \\", n: 5 },
    });
    expect(sql).toBe(
      "SELECT 1 WHERE d >= CAST('2025-01-01' AS Date) AND s = CAST('x\\' OR 1=1 -- \\\\' AS String) AND n < CAST('5' AS UInt64)",
    );
  });

  it('refuses a placeholder without a value', () => {
    expect(() => inlineParams({ query: 'SELECT {x:String}', query_params: {} })).toThrow(/x has no value/);
  });

  it('quotes a literal so that a trailing backslash cannot escape the closing quote', () => {
    expect(quoteLiteral('a\\')).toBe("'a\\\\'");
    expect(quoteLiteral("'")).toBe("'\\''");
  });
});
