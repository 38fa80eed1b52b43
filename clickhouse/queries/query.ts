// A query as the client sends it: fixed SQL text with {name:Type} placeholders, and the values apart.
// Builders return this shape so tests can check that no value ever becomes part of the SQL text.
export interface BuiltQuery {
  query: string;
  query_params: Record<string, string | number>;
}

/**
 * The query with each `{name:Type}` placeholder replaced by `CAST('<value>' AS Type)`, the value quoted as a
 * ClickHouse string literal (backslash and quote escaped, so nothing in it can end the literal).
 *
 * Only for the embedded engine's streaming queries: chdb binds parameters in state that its connections share,
 * and serializes every bound call but the streaming one, so a bound stream running beside the API's bound
 * queries swapped their values (CI: a usage summary answered with an export's end_date). Types come from our
 * own SQL; a placeholder without a value is an error, as it would be from the engine.
 */
export function inlineParams(q: BuiltQuery): string {
  return q.query.replace(
    /\{([A-Za-z_][A-Za-z0-9_]*):([A-Za-z0-9_(), ']+)\}/g,
    (_whole, name: string, type: string) => {
      const value = q.query_params[name];
      if (value === undefined) throw new Error(`query parameter ${name} has no value`);
      return `CAST(${quoteLiteral(String(value))} AS ${type})`;
    },
  );
}

export function quoteLiteral(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}
