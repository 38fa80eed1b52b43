import { describe, expect, it } from 'vitest';
import { csvCell, toCsv } from './csv.ts';

describe('csv', () => {
  it('quotes and neutralises formulas', () => {
    expect(csvCell('=SUM(A1)')).toBe("'=SUM(A1)");
    expect(csvCell('-3')).toBe("'-3");
    expect(csvCell(-3)).toBe('-3');
    expect(csvCell('a,"b"')).toBe('"a,""b"""');
    expect(toCsv(['x', 'y'], [{ x: 1, y: 'two' }])).toBe('x,y\r\n1,two\r\n');
  });

  it('leaves formula-like cells as stored with csv_escape none, still quoting per RFC 4180', () => {
    expect(csvCell('=SUM(A1)', { escape: 'none' })).toBe('=SUM(A1)');
    expect(csvCell('-3', { escape: 'none' })).toBe('-3');
    expect(csvCell('=a,b', { escape: 'none' })).toBe('"=a,b"');
    expect(toCsv(['m'], [{ m: '@x' }], { escape: 'none' })).toBe('m\r\n@x\r\n');
    expect(toCsv(['m'], [{ m: '@x' }], { escape: 'formula' })).toBe("m\r\n'@x\r\n");
  });
});
