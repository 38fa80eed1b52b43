// Export query builders: values only as parameters, formula escaping in CSV only, format settings stated.
import { describe, expect, it } from 'vitest';
import { buildLogExportQuery, buildUsageExportQuery, textColumn } from './exports.ts';

describe('export queries', () => {
  it('binds every value as a parameter', () => {
    const evil = "x' OR 1=1 --";
    const u = buildUsageExportQuery(
      { start_date: '2025-01-01', end_date: '2025-01-31', team_id: evil, service: evil, user_id: evil },
      'csv',
    );
    const l = buildLogExportQuery({ service: evil, severity: 'error', start_date: '2025-01-01' }, 'parquet');
    for (const q of [u, l]) expect(q.query).not.toContain(evil);
    expect(u.query_params).toMatchObject({ team_id: evil, service: evil, user_id: evil });
    expect(l.query_params).toMatchObject({ service: evil, severity: 'error', start_date: '2025-01-01' });
  });

  it('escapes text cells against formulas in CSV only', () => {
    expect(textColumn('message', 'message', 'csv')).toMatch(
      /^if\(match\(message, '\^\[=\+\\\\-@\\\\t\\\\r\]'\)/,
    );
    expect(textColumn('message', 'message', 'parquet')).toBe('message AS message');
    expect(buildLogExportQuery({}, 'csv').query).toContain("concat('''', msg)");
    expect(buildLogExportQuery({}, 'parquet').query).not.toContain("concat('''', msg)");
  });

  it('states the output settings in the query, never in the session', () => {
    expect(buildLogExportQuery({}, 'parquet').query).toContain(
      "output_format_parquet_compression_method = 'snappy'",
    );
    expect(
      buildUsageExportQuery({ start_date: '2025-01-01', end_date: '2025-01-02' }, 'csv').query,
    ).toContain('join_use_nulls = 1');
  });
});
