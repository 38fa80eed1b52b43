// A query as the client sends it: fixed SQL text with {name:Type} placeholders, and the values apart.
// Builders return this shape so tests can check that no value ever becomes part of the SQL text.
export interface BuiltQuery {
  query: string;
  query_params: Record<string, string | number>;
}
