// The optional user / team / service filters shared by the usage queries: fixed SQL fragments, values bound
// as parameters, so no request value is ever part of the SQL text.
export interface UsageFilters {
  user_id?: string | undefined;
  team_id?: string | undefined;
  service?: string | undefined;
}

export function filterClause(f: UsageFilters): { sql: string; params: Record<string, string> } {
  let sql = '';
  const params: Record<string, string> = {};
  if (f.user_id !== undefined) {
    sql += ' AND user_id = {user_id:String}';
    params.user_id = f.user_id;
  }
  if (f.team_id !== undefined) {
    sql += ' AND team_id = {team_id:String}';
    params.team_id = f.team_id;
  }
  if (f.service !== undefined) {
    sql += ' AND service = {service:String}';
    params.service = f.service;
  }
  return { sql, params };
}
