// The one piece of a binary format this module reads: where RowBinaryWithNamesAndTypes' header ends.

/** The names-and-types header of a RowBinaryWithNamesAndTypes block: a count, then that many names and types. */
export function rowBinaryHeader(b: Uint8Array): Buffer | undefined {
  const leb = (at: number): [number, number] | undefined => {
    let value = 0;
    let shift = 0;
    for (let i = at; i < b.length && shift < 35; i++) {
      const byte = b[i] as number;
      value += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) return [value, i + 1];
      shift += 7;
    }
    return undefined;
  };
  const n = leb(0);
  if (!n) return undefined;
  let pos = n[1];
  for (let i = 0; i < 2 * n[0]; i++) {
    const len = leb(pos);
    if (!len) return undefined;
    pos = len[1] + len[0];
    if (pos > b.length) return undefined;
  }
  return Buffer.from(b.subarray(0, pos));
}
