import type { ClickHouse } from '../client.ts';

// A query as the client sends it: fixed SQL text with {name:Type} placeholders, and the values apart.
// Builders return this shape so tests can check that no value ever becomes part of the SQL text.
export interface BuiltQuery {
  query: string;
  query_params: Record<string, string | number>;
}

/** The embedded engine's session table that carries a streamed query's values as data (see paramsAsData). */
export const STREAM_PARAMS_TABLE = 'tally_stream_params';
export const STREAM_PARAMS_DDL = `CREATE TEMPORARY TABLE IF NOT EXISTS ${STREAM_PARAMS_TABLE} (run String, name String, value String) ENGINE = Memory`;

export interface ParamsAsData {
  /** The SQL, each `{name:Type}` read from the params table instead: no value in the text. */
  query: string;
  /** What to insert (as data) into the params table before running the query. */
  rows: Array<{ run: string; name: string; value: string }>;
  /** The rows as JSONEachRow, the insert's body ('' when there are none). */
  body: string;
}

const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_]*):([A-Za-z0-9_(), ']+)\}/g;

/** A query with values apart, as callers hand it to the client: values may be arrays (of arrays, ...). */
export interface ValuesApart {
  query: string;
  query_params?: Readonly<Record<string, unknown>> | undefined;
}

/**
 * The query with each `{name:Type}` placeholder replaced by a scalar subquery on the session's params table,
 * for the embedded engine's statements that must not take chdb's binding (exports, background work: see
 * engine/values-as-data.ts). chdb binds parameters in state its connections share and serializes every bound
 * call on one process-wide chain: a bound export would hold the API's queries for its whole length, and a
 * bound stream (not on that chain) raced them (CI: a usage summary answered with an export's end_date). Read
 * as data, the values never enter the SQL text and no binding is involved; the engine evaluates the scalar
 * subqueries first, so the primary key still prunes on them. `x IN {a:Array(T)}` becomes `x IN` the set of
 * the array's elements, as a bound array gives. A value missing from the table fails the query rather than
 * reading as NULL. `run` is our own UUID and names and types come from our own SQL.
 */
export function paramsAsData(q: ValuesApart, run: string): ParamsAsData {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(run))
    throw new Error('run must be a UUID');
  const rows: ParamsAsData['rows'] = [];
  const params = q.query_params ?? {};
  const query = q.query.replace(
    PLACEHOLDER,
    (_whole, name: string, type: string, at: number, text: string) => {
      const value = params[name];
      if (value === undefined || value === null) throw new Error(`query parameter ${name} has no value`);
      if (!rows.some((r) => r.name === name)) rows.push({ run, name, value: paramText(value, name) });
      // One row per name and run: the guard fails the query when it is missing, where a scalar subquery would
      // read NULL. assumeNotNull: a scalar subquery's type is Nullable, which a table function's argument or a
      // LIMIT refuses.
      const read = `CAST([any(value)][1 + throwIf(count() != 1, 'query parameter ${name} not found')] AS ${type})`;
      const from = `FROM ${STREAM_PARAMS_TABLE} WHERE run = '${run}' AND name = '${name}'`;
      const inSet = type.startsWith('Array(') && /\bIN\s*$/i.test(text.slice(0, at));
      return inSet ? `(SELECT arrayJoin(${read}) ${from})` : `assumeNotNull((SELECT ${read} ${from}))`;
    },
  );
  return { query, rows, body: rows.map((r) => `${JSON.stringify(r)}\n`).join('') };
}

/**
 * A value as the text CAST(... AS Type) reads: strings as they are at the top (the column holds them exactly),
 * inside arrays quoted with ClickHouse's escapes, as the engine's text format writes them.
 */
function paramText(value: unknown, name: string, nested = false): string {
  if (typeof value === 'string') {
    return nested ? quoteLiteral(value) : value;
  }
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  if (typeof value === 'boolean') return value ? '1' : '0';
  if (Array.isArray(value)) return `[${value.map((v) => paramText(v, name, true)).join(',')}]`;
  throw new Error(`query parameter ${name}: unsupported value type ${typeof value}`);
}

/**
 * A ClickHouse string literal: in SQL text only of one of our own values (a file path under DATA_DIR), never
 * request input; as data, how the engine's text format quotes a string inside an array (paramText).
 */
export function quoteLiteral(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** A built query's rows, as JSONEachRow objects (64-bit numbers may arrive as strings). */
export async function rows<T>(ch: ClickHouse, q: BuiltQuery): Promise<T[]> {
  const rs = await ch.client.query({ ...q, format: 'JSONEachRow' });
  return rs.json<T>();
}

/**
 * A stored text as the engine's `hex()` gives it (uppercase hex of its UTF-8 bytes): a producer's text (a team,
 * a service) compared or keyed this way needs no separator and no escaping shared between SQL and JS.
 */
export const engineHex = (s: string): string => Buffer.from(s, 'utf8').toString('hex').toUpperCase();
