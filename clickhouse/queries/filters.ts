// The optional user / team / service filters shared by the usage queries: fixed SQL fragments, values bound
// as parameters, so no request value is ever part of the SQL text.
import type { Severity } from '../../core/events.ts';

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

/** The system-events filters, shared by the page read (log_events) and the day counts (log_cells_daily). */
export interface LogFilters {
  severity?: Severity | undefined;
  service?: string | undefined;
  /** First UTC day, inclusive. */
  start_date?: string | undefined;
  /** Last UTC day, inclusive. */
  end_date?: string | undefined;
}

/** Fixed fragments for the log filters given; `col` is the time column of the table read. */
export function logFilterClause(
  f: LogFilters,
  col: 'timestamp' | 'day',
): { sql: string; params: Record<string, string> } {
  let sql = '';
  const params: Record<string, string> = {};
  if (f.severity !== undefined) {
    sql += ' AND severity = {severity:String}';
    params.severity = f.severity;
  }
  if (f.service !== undefined) {
    sql += ' AND service = {service:String}';
    params.service = f.service;
  }
  if (f.start_date !== undefined) {
    sql +=
      col === 'day'
        ? ' AND day >= {start_date:Date}'
        : " AND timestamp >= toDateTime({start_date:Date}, 'UTC')";
    params.start_date = f.start_date;
  }
  if (f.end_date !== undefined) {
    sql +=
      col === 'day'
        ? ' AND day <= {end_date:Date}'
        : " AND timestamp < toDateTime({end_date:Date} + 1, 'UTC')";
    params.end_date = f.end_date;
  }
  return { sql, params };
}
