// The Native re-framer against bytes the embedded engine wrote at revision 0 (captured from chdb 26.7) and the
// layout ClickHouse's NativeWriter gives a client at a revision: BlockInfo first, a zero custom-serialization
// byte after each type from 54454, column data unchanged.
import { describe, expect, it } from 'vitest';
import { SqlError } from './errors.ts';
import { MAX_NATIVE_REVISION, NativeTranscoder, parseType } from './native.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const str = (s: string) => Buffer.concat([Buffer.from([Buffer.byteLength(s)]), Buffer.from(s)]);
const INFO = hex('01 00 02 ffffffff 00');

/** A block as NativeWriter writes it: `flag` is the custom-serialization byte (revision >= 54454). */
function block(
  rows: number,
  cols: Array<[string, string, string]>,
  opts: { info?: boolean; flag?: boolean } = {},
): Buffer {
  const parts = [opts.info ? INFO : Buffer.alloc(0), Buffer.from([cols.length, rows])];
  for (const [name, type, data] of cols) {
    parts.push(str(name), str(type));
    if (opts.flag) parts.push(Buffer.from([0]));
    parts.push(hex(data));
  }
  return Buffer.concat(parts);
}

// Column data as chdb wrote it for these queries (revision 0).
const COLUMNS: Array<[string, string, string]> = [
  // ['x','y','x']::Array(LowCardinality(Nullable(String))): keys version, offsets, one granule (UInt8 indexes,
  // additional keys: null placeholder, '', 'x', 'y'), three indexes.
  [
    'a',
    'Array(LowCardinality(Nullable(String)))',
    '0100000000000000 0300000000000000 0006000000000000 0400000000000000 00 00 0178 0179 0300000000000000 020302',
  ],
  // NULL: Nullable(Nothing), a null map byte and one '0'.
  ['n', 'Nullable(Nothing)', '01 30'],
  // map('k', 2)::Map(String, UInt16): offsets, keys, values.
  ['m', 'Map(String, UInt16)', '0100000000000000 016b 0200'],
  // tuple(1::UInt8, 'x')
  ['t', 'Tuple(UInt8, String)', '01 0178'],
  // [[1::UInt8], []]
  ['aa', 'Array(Array(UInt8))', '0200000000000000 0100000000000000 0100000000000000 01'],
  // toDecimal64(1.5, 2)
  ['d', 'Decimal(18, 2)', '9600000000000000'],
  // toUUID('61f0c404-5cb3-11e7-907b-a6006ad3dba0')
  ['u', 'UUID', 'e711b35c04c4f061a0dbd36a00a67b90'],
  ['s', 'SimpleAggregateFunction(sum, UInt64)', '0100000000000000'],
  ['e', "Enum8('a,b' = 1, 'c' = 2)", '02'],
  ['dt', "DateTime64(3, 'UTC')", '7b7c291f94010000'],
  // Hand-derived: every element's state prefix (the LowCardinality keys version) before any element's data.
  [
    'nt',
    'Tuple(a Nullable(String), `b c` LowCardinality(String))',
    '0100000000000000 00 0178 0006000000000000 0200000000000000 00 0179 0100000000000000 01',
  ],
  ['f', 'FixedString(2)', '6869'],
];

describe('NativeTranscoder', () => {
  it('adds BlockInfo and, from 54454, the custom-serialization byte; the data goes through unchanged', () => {
    const input = block(1, COLUMNS);
    const t = new NativeTranscoder({ revision: 54460 });
    expect(Buffer.concat(t.push(input))).toEqual(block(1, COLUMNS, { info: true, flag: true }));
    t.end();
    const old = new NativeTranscoder({ revision: 54453 });
    expect(Buffer.concat(old.push(input))).toEqual(block(1, COLUMNS, { info: true }));
  });

  it('re-frames blocks split anywhere across chunks, and several blocks in one chunk', () => {
    const one = block(1, COLUMNS);
    const input = Buffer.concat([one, one, block(0, [['x', 'UInt8', '']])]);
    const expected = Buffer.concat([
      block(1, COLUMNS, { info: true, flag: true }),
      block(1, COLUMNS, { info: true, flag: true }),
      block(0, [['x', 'UInt8', '']], { info: true, flag: true }),
    ]);
    const t = new NativeTranscoder({ revision: MAX_NATIVE_REVISION });
    const out: Buffer[] = [];
    for (let i = 0; i < input.length; i += 7) out.push(...t.push(input.subarray(i, i + 7)));
    t.end();
    expect(Buffer.concat(out)).toEqual(expected);
    expect(out).toHaveLength(3);
  });

  it('an empty array of LowCardinality has its keys version and no granule', () => {
    const cols: Array<[string, string, string]> = [
      ['a', 'Array(LowCardinality(String))', '0100000000000000 0000000000000000'],
    ];
    const t = new NativeTranscoder({ revision: 54460 });
    expect(Buffer.concat(t.push(block(1, cols)))).toEqual(block(1, cols, { info: true, flag: true }));
  });

  it("gives a top-level DateTime its zone back from the query's types (revision 0 drops it)", () => {
    const input = block(1, [['d', 'DateTime', '70977467']]);
    expect(NativeTranscoder.columnTypes(input)).toEqual(['DateTime']);
    const t = new NativeTranscoder({ revision: 54460, types: ["DateTime('Europe/Berlin')"] });
    expect(Buffer.concat(t.push(input))).toEqual(
      block(1, [['d', "DateTime('Europe/Berlin')", '70977467']], { info: true, flag: true }),
    );
  });

  it('refuses with 344 a type it cannot delimit, naming it, before any byte', () => {
    const agg = block(1, [
      ['x', 'UInt8', '01'],
      ['s', 'AggregateFunction(sumMap, Array(UInt8), Array(UInt64))', '01 01 02'],
    ]);
    const t = new NativeTranscoder({ revision: 54460 });
    let err: unknown;
    try {
      t.push(agg);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SqlError);
    expect((err as SqlError).code).toBe(344);
    expect((err as SqlError).message).toContain('AggregateFunction(sumMap, Array(UInt8), Array(UInt64))');
    for (const type of ['Variant(String, UInt8)', 'JSON', 'Dynamic', 'Array(Point)', "Object('json')"]) {
      expect(() => new NativeTranscoder({ revision: 54460 }).push(block(0, [['v', type, '']]))).toThrow(
        SqlError,
      );
    }
  });

  it('refuses revisions it does not write', () => {
    for (const revision of [54461, 0, -1, Number.NaN, 1.5]) {
      expect(() => new NativeTranscoder({ revision })).toThrow(/client_protocol_version/);
    }
  });

  it('a stream that ends inside a block is an error, never a short answer', () => {
    const input = block(1, COLUMNS);
    const t = new NativeTranscoder({ revision: 54460 });
    expect(t.push(input.subarray(0, input.length - 1))).toEqual([]);
    expect(() => t.end()).toThrow(/inside a block/);
  });
});

describe('parseType', () => {
  it('reads nested, named and quoted arguments', () => {
    const t = parseType("Tuple(a Nullable(String), `b c` Map(String, Enum8('x,)' = 1)))");
    expect(t.name).toBe('Tuple');
    expect(t.args.map((a) => a.name)).toEqual(['Nullable', 'Map']);
    expect(t.args[1]?.args[1]?.args.map((a) => a.raw)).toEqual(["'x,)' = 1"]);
  });
});
