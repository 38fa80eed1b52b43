// Export query builders: values only as parameters, format settings stated. The formula escape is checked on
// the engine itself, against the API's CSV (test/integration/csv-escape.test.ts).
import { describe, expect, it } from 'vitest';
import { buildLogExportQuery, buildUsageExportQuery } from './exports.ts';

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

  it('states the output settings in the query, never in the session', () => {
    expect(buildLogExportQuery({}, 'parquet').query).toContain(
      "output_format_parquet_compression_method = 'snappy'",
    );
    expect(
      buildUsageExportQuery({ start_date: '2025-01-01', end_date: '2025-01-02' }, 'csv').query,
    ).toContain('join_use_nulls = 1');
  });
});
