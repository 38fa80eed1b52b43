// Native at a client's protocol revision, from the embedded engine's revision-0 Native. clickhouse-go (Grafana's
// driver) asks /clickhouse for `FORMAT Native` with client_protocol_version; the engine can only write revision 0.
// What differs, per ClickHouse's NativeWriter (the wire layout, not its code):
// - revision > 0: each block starts with BlockInfo (field 1 is_overflows UInt8, field 2 bucket_num Int32, 0);
// - revision >= 54454 (custom serialization): a UInt8 "has custom serialization" after each column's type (0:
//   the engine's output is never sparse at revision 0, so 0 is always true);
// - revision >= 54337: a top-level DateTime keeps its time zone in the type name (revision 0 drops it);
// - revision >= 54452: versioned AggregateFunction states would change: such columns are refused, as is every
//   type whose bytes this module cannot delimit (AggregateFunction, Variant, Dynamic, JSON, Object, geo types).
// Column data is copied byte for byte; only its length is read, so a column is never re-encoded.
import { sqlError } from './errors.ts';

/** The newest revision this module writes: clickhouse-go v2's (DBMS_TCP_PROTOCOL_VERSION). */
export const MAX_NATIVE_REVISION = 54460;
const WITH_CUSTOM_SERIALIZATION = 54454;
const WITH_DATETIME_TIME_ZONE = 54337;

/** A type name as a tree: `Array(Nullable(String))` is Array with one argument. */
export interface TypeNode {
  name: string;
  args: TypeNode[];
  /** The argument text as written (numbers, quoted strings, `name Type` of a named tuple element). */
  raw: string;
}

/** Parses a ClickHouse type name; arguments that are not types (numbers, Enum entries) keep their text. */
export function parseType(text: string): TypeNode {
  const s = text.trim();
  const open = s.indexOf('(');
  if (open < 0 || !s.endsWith(')')) return { name: s, args: [], raw: s };
  const name = s.slice(0, open).trim();
  const args: TypeNode[] = [];
  let depth = 0;
  let quote = false;
  let start = open + 1;
  for (let i = open + 1; i < s.length - 1; i++) {
    const c = s[i];
    if (quote) {
      if (c === '\\') i++;
      else if (c === "'") quote = false;
    } else if (c === "'") quote = true;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      args.push(argument(s.slice(start, i)));
      start = i + 1;
    }
  }
  args.push(argument(s.slice(start, s.length - 1)));
  return { name, args, raw: s };
}

/** A tuple element may be named (`a UInt8`, `` `a b` String``): the type is what follows the name. */
function argument(text: string): TypeNode {
  const t = text.trim();
  const named = /^(`(?:[^`\\]|\\.)*`|[A-Za-z_][A-Za-z0-9_]*)\s+([A-Za-z].*)$/s.exec(t);
  if (named && !/^(Nullable|LowCardinality|Array|Tuple|Map)$/.test(named[1] as string)) {
    return { ...parseType(named[2] as string), raw: t };
  }
  return parseType(t);
}

const FIXED: Readonly<Record<string, number>> = {
  UInt8: 1,
  Int8: 1,
  Bool: 1,
  Enum8: 1,
  UInt16: 2,
  Int16: 2,
  Enum16: 2,
  Date: 2,
  BFloat16: 2,
  UInt32: 4,
  Int32: 4,
  Float32: 4,
  Date32: 4,
  DateTime: 4,
  IPv4: 4,
  Decimal32: 4,
  UInt64: 8,
  Int64: 8,
  Float64: 8,
  DateTime64: 8,
  Decimal64: 8,
  UInt128: 16,
  Int128: 16,
  UUID: 16,
  IPv6: 16,
  Decimal128: 16,
  UInt256: 32,
  Int256: 32,
  Decimal256: 32,
};

/** The bytes of one value of a fixed-width type, or undefined when the type has no fixed width. */
function fixedWidth(t: TypeNode): number | undefined {
  if (t.name === 'Decimal') {
    const p = Number(t.args[0]?.raw);
    if (!Number.isInteger(p) || p < 1 || p > 76) return undefined;
    return p <= 9 ? 4 : p <= 18 ? 8 : p <= 38 ? 16 : 32;
  }
  if (t.name === 'FixedString') {
    const n = Number(t.args[0]?.raw);
    return Number.isInteger(n) && n > 0 ? n : undefined;
  }
  if (t.name.startsWith('Interval')) return 8;
  return FIXED[t.name];
}

const PARAMETRIC_FIXED = new Set([
  'Decimal',
  'Decimal32',
  'Decimal64',
  'Decimal128',
  'Decimal256',
  'FixedString',
  'DateTime',
  'DateTime64',
  'Enum8',
  'Enum16',
]);

/** Throws the refusal ClickHouse gives for a type this module cannot carry to the client's revision. */
export function checkType(t: TypeNode, top = t): void {
  const bad = () =>
    sqlError(
      'SUPPORT_IS_DISABLED',
      `Native with client_protocol_version on the embedded engine cannot carry the type ${top.raw}: select it as another type (e.g. toString, finalizeAggregation) or use RowBinaryWithNamesAndTypes (docs/sql.md)`,
    );
  if (fixedWidth(t) !== undefined || t.name === 'String' || t.name === 'Nothing') {
    if (t.args.length > 0 && !PARAMETRIC_FIXED.has(t.name)) throw bad();
    return;
  }
  switch (t.name) {
    case 'Nullable':
    case 'Array':
    case 'LowCardinality':
      if (t.args.length !== 1) throw bad();
      checkType(t.args[0] as TypeNode, top);
      return;
    case 'Map':
      if (t.args.length !== 2) throw bad();
      for (const a of t.args) checkType(a, top);
      return;
    case 'Tuple':
      if (t.args.length === 0) throw bad();
      for (const a of t.args) checkType(a, top);
      return;
    case 'SimpleAggregateFunction':
      if (t.args.length < 2) throw bad();
      checkType(t.args[t.args.length - 1] as TypeNode, top);
      return;
    default:
      throw bad();
  }
}

/** Raised when the bytes so far end inside a block: wait for more. */
class NeedMore extends Error {}
const NEED_MORE = new NeedMore('incomplete block');

class Cursor {
  pos = 0;
  constructor(readonly b: Buffer) {}
  need(n: number): void {
    if (this.pos + n > this.b.length) throw NEED_MORE;
  }
  skip(n: number): void {
    this.need(n);
    this.pos += n;
  }
  varUInt(): number {
    let value = 0;
    let shift = 0;
    for (;;) {
      this.need(1);
      const byte = this.b[this.pos++] as number;
      value += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) return value;
      shift += 7;
      if (shift > 63) throw new Error('Native: VarUInt too long');
    }
  }
  uint64(): number {
    this.need(8);
    const v = this.b.readBigUInt64LE(this.pos);
    this.pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error('Native: count out of range');
    return Number(v);
  }
  string(): string {
    const n = this.varUInt();
    this.need(n);
    const s = this.b.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
}

/** The serialization's state prefix, written for the whole column before its data (LowCardinality's version). */
function skipPrefix(c: Cursor, t: TypeNode): void {
  switch (t.name) {
    case 'LowCardinality': {
      c.need(8);
      if (c.uint64() !== 1) throw new Error('Native: unknown LowCardinality keys version');
      return;
    }
    case 'SimpleAggregateFunction':
      skipPrefix(c, t.args[t.args.length - 1] as TypeNode);
      return;
    default:
      for (const a of t.args) if (isType(a)) skipPrefix(c, a);
  }
}

const isType = (a: TypeNode) => a.name !== '' && /^[A-Za-z]/.test(a.name) && !/^'/.test(a.raw);

/** Skips `rows` values of type `t` (their data streams, in NativeWriter's order). */
function skipData(c: Cursor, t: TypeNode, rows: number): void {
  if (rows === 0) return;
  const width = fixedWidth(t);
  if (width !== undefined) {
    c.skip(width * rows);
    return;
  }
  switch (t.name) {
    case 'String':
      for (let i = 0; i < rows; i++) c.skip(c.varUInt());
      return;
    case 'Nothing':
      c.skip(rows);
      return;
    case 'Nullable':
      c.skip(rows);
      skipData(c, t.args[0] as TypeNode, rows);
      return;
    case 'Array':
    case 'Map': {
      c.skip(8 * (rows - 1));
      const total = c.uint64();
      // Map(K, V) is Array(Tuple(K, V)): the keys, then the values.
      for (const a of t.args) skipData(c, a, total);
      return;
    }
    case 'Tuple':
      for (const a of t.args) skipData(c, a, rows);
      return;
    case 'SimpleAggregateFunction':
      skipData(c, t.args[t.args.length - 1] as TypeNode, rows);
      return;
    case 'LowCardinality': {
      const inner = t.args[0] as TypeNode;
      const keys = inner.name === 'Nullable' ? (inner.args[0] as TypeNode) : inner;
      let done = 0;
      while (done < rows) {
        const flags = c.uint64();
        const indexType = flags & 0xff;
        if (indexType > 3 || (flags & 0x100) !== 0 || flags >> 11 !== 0) {
          throw new Error('Native: unexpected LowCardinality index serialization');
        }
        if ((flags & 0x200) !== 0) skipData(c, keys, c.uint64());
        const n = c.uint64();
        c.skip(n * 2 ** indexType);
        done += n;
      }
      if (done !== rows) throw new Error('Native: LowCardinality row count mismatch');
      return;
    }
    default:
      throw new Error(`Native: no layout for ${t.raw}`);
  }
}

function varUInt(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return Buffer.from(out);
}

function stringBinary(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  return Buffer.concat([varUInt(b.length), b]);
}

/** BlockInfo of a plain result block: is_overflows = false, bucket_num = -1, end. */
const BLOCK_INFO = Buffer.from([0x01, 0x00, 0x02, 0xff, 0xff, 0xff, 0xff, 0x00]);

export interface NativeTranscoderOptions {
  /** The client's client_protocol_version (1 ..= MAX_NATIVE_REVISION). */
  revision: number;
  /**
   * The full type names of the result's columns, when known: revision 0 writes a top-level `DateTime('tz')` as
   * `DateTime`, and these restore the time zone.
   */
  types?: readonly string[] | undefined;
}

/**
 * Re-frames a stream of revision-0 Native blocks at `revision`. Feed it chunks as they come (a block may span
 * chunks); each call returns the whole blocks completed so far. The first block's types are checked: a type
 * this module cannot delimit is the 344 error, before any byte goes out.
 */
export class NativeTranscoder {
  private pending: Buffer = Buffer.alloc(0);
  private checked = false;
  private types: readonly string[] | undefined;
  private readonly revision: number;

  constructor(opts: NativeTranscoderOptions) {
    if (!Number.isInteger(opts.revision) || opts.revision < 1 || opts.revision > MAX_NATIVE_REVISION) {
      throw sqlError(
        'SUPPORT_IS_DISABLED',
        `Native with client_protocol_version=${opts.revision} is not supported on the embedded engine (1 to ${MAX_NATIVE_REVISION}): use RowBinaryWithNamesAndTypes or a JSON format (docs/sql.md)`,
      );
    }
    this.revision = opts.revision;
    this.types = opts.types;
  }

  /**
   * The top-level column types of the first revision-0 block in `bytes`, or undefined when it is not all there.
   * A `DateTime` among them may have lost its time zone: the caller then finds the full types (setTypes).
   */
  static columnTypes(bytes: Uint8Array): string[] | undefined {
    try {
      const c = new Cursor(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      const cols = c.varUInt();
      const rows = c.varUInt();
      const out: string[] = [];
      for (let i = 0; i < cols; i++) {
        c.string();
        const name = c.string();
        out.push(name);
        const type = parseType(name);
        checkType(type);
        if (rows > 0) {
          skipPrefix(c, type);
          skipData(c, type, rows);
        }
      }
      return out;
    } catch (err) {
      if (err instanceof NeedMore) return undefined;
      throw err;
    }
  }

  /** Sets the full type names (before the first block goes through). */
  setTypes(types: readonly string[] | undefined): void {
    this.types = types;
  }

  push(chunk: Uint8Array): Buffer[] {
    this.pending =
      this.pending.length === 0
        ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
        : Buffer.concat([this.pending, chunk]);
    const out: Buffer[] = [];
    for (;;) {
      if (this.pending.length === 0) return out;
      const c = new Cursor(this.pending);
      let block: Buffer;
      try {
        block = this.block(c);
      } catch (err) {
        if (err instanceof NeedMore) return out;
        throw err;
      }
      out.push(block);
      this.pending = this.pending.subarray(c.pos);
    }
  }

  /** Throws when the stream ended inside a block. */
  end(): void {
    if (this.pending.length > 0) throw new Error('Native: the stream ended inside a block');
  }

  private block(c: Cursor): Buffer {
    const parts: Buffer[] = [BLOCK_INFO];
    const cols = c.varUInt();
    const rows = c.varUInt();
    parts.push(varUInt(cols), varUInt(rows));
    for (let i = 0; i < cols; i++) {
      const name = c.string();
      let typeName = c.string();
      const full = this.types?.[i];
      if (
        this.revision >= WITH_DATETIME_TIME_ZONE &&
        typeName === 'DateTime' &&
        full !== undefined &&
        /^DateTime\('(?:[^'\\]|\\.)*'\)$/.test(full)
      ) {
        typeName = full;
      }
      const type = parseType(typeName);
      if (!this.checked) checkType(type);
      const dataStart = c.pos;
      if (rows > 0) {
        skipPrefix(c, type);
        skipData(c, type, rows);
      }
      parts.push(stringBinary(name), stringBinary(typeName));
      if (this.revision >= WITH_CUSTOM_SERIALIZATION) parts.push(Buffer.from([0]));
      parts.push(c.b.subarray(dataStart, c.pos));
    }
    this.checked = true;
    return Buffer.concat(parts);
  }
}
