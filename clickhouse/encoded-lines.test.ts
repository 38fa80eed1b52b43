// Rows held as bytes give the same insert body as the rows as strings, across chunks and multi-byte text.
import { describe, expect, it } from 'vitest';
import { EncodedLines } from './encoded-lines.ts';
import { linesBody } from './inserts.ts';

const asBody = (rows: string[], tail: string) => {
  const lines = new EncodedLines();
  for (const r of rows) lines.push(r);
  expect(lines.length).toBe(rows.length);
  return lines.body(tail);
};

describe('EncodedLines', () => {
  it('gives the body the strings give, byte for byte', () => {
    const rows = ['["a",1', '["é ü 漢字 😀",2', '["line\\nbreak escaped"', '[""'];
    const tail = ',"kafka:t/0/1-9/u';
    expect(asBody(rows, tail).equals(linesBody(rows, tail))).toBe(true);
  });

  it('spans many chunks, a row longer than a chunk included, and indexes past 10, 100, 1000', () => {
    const rows = Array.from({ length: 3_000 }, (_, i) => `["${'x'.repeat(i % 500)}${i}",${i}`);
    rows.splice(1_234, 0, `["${'ß'.repeat(200_000)}"`);
    const tail = ',"d/l';
    const body = asBody(rows, tail);
    expect(body.equals(linesBody(rows, tail))).toBe(true);
  });

  it('is empty with no rows', () => {
    expect(asBody([], ',"d/u').length).toBe(0);
  });
});
