// jsonLines: rows parsed from a source's pieces, wherever the pieces cut the lines.
import { describe, expect, it } from 'vitest';
import { type ExportSource, jsonLines } from './export-stream.ts';

/** A source whose read gives `pieces` as they are. */
const sourceOf = (pieces: Uint8Array[]): ExportSource => ({
  async *stream() {},
  async *read() {
    yield* pieces;
  },
  countRows: async () => undefined,
  close: () => undefined,
});

const rowsOf = async (pieces: Uint8Array[]) => {
  const out: unknown[] = [];
  for await (const row of jsonLines(sourceOf(pieces), { query: 'SELECT 1', query_params: {} })) out.push(row);
  return out;
};

describe('jsonLines', () => {
  const rows = [
    ['team "Ω"', 'сервис 🚀', [1, 2, 3]],
    ['t\\2', '', []],
    ['t3', 's', [20089, 20090]],
  ];
  const text = Buffer.from(rows.map((r) => `${JSON.stringify(r)}\n`).join(''));

  it('parses one piece holding every line', async () => {
    expect(await rowsOf([text])).toEqual(rows);
  });

  it('joins lines cut anywhere between pieces, inside a character too', async () => {
    // Every cut of the text in two, and in single bytes: a multi-byte character is split by most of them.
    for (let cut = 0; cut <= text.length; cut++) {
      expect(await rowsOf([text.subarray(0, cut), text.subarray(cut)])).toEqual(rows);
    }
    expect(await rowsOf([...text].map((b) => Uint8Array.of(b)))).toEqual(rows);
  });

  it('takes a last line without its newline, and skips empty pieces', async () => {
    const open = text.subarray(0, text.length - 1);
    expect(await rowsOf([new Uint8Array(0), open, new Uint8Array(0)])).toEqual(rows);
    expect(await rowsOf([])).toEqual([]);
  });
});
