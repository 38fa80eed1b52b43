import { describe, expect, it } from 'vitest';
import { escapeCell, FORMULA_PATTERN } from './csv.ts';

describe('the CSV formula escape', () => {
  it('prefixes a cell starting with = + - @ tab or CR, and nothing else', () => {
    for (const lead of ['=', '+', '-', '@', '\t', '\r']) expect(escapeCell(`${lead}x`)).toBe(`'${lead}x`);
    for (const s of ['', 'x=1', ' =1', "'=1", '\n=1', '3']) expect(escapeCell(s)).toBe(s);
    expect(escapeCell('=1', 'none')).toBe('=1');
  });

  it('is one pattern with no quote or character class re2 would read otherwise', () => {
    // The pattern goes into an SQL string literal for ClickHouse's match(): plain escapes only.
    expect(FORMULA_PATTERN).toMatch(/^\^\[[^'\]]+\]$/);
  });
});
