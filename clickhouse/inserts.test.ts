// The insert body of encoded rows: the same bytes the line-by-line strings gave, multi-byte text included.
import { describe, expect, it } from 'vitest';
import { linesBody } from './inserts.ts';

describe('linesBody', () => {
  it('closes each line with the tail and its index, byte for byte', () => {
    const lines = ['["a",1', '["é ü 漢字 😀",2', '[""', ...Array.from({ length: 12 }, (_, i) => `["x${i}"`)];
    const tail = ',"kafka:t/0/1-9/u';
    const expected = Buffer.from(lines.map((l, i) => `${l}${tail}${i}"]\n`).join(''));
    const body = linesBody(lines, tail);
    expect(body.equals(expected)).toBe(true);
    expect(body.length).toBe(expected.length);
  });

  it('is empty for no lines', () => {
    expect(linesBody([], ',"d/u').length).toBe(0);
  });
});
