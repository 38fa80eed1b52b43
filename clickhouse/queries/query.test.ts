// paramsAsData: every placeholder read from the params table, no value ever in the SQL text.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildLogExportQuery, buildUsageExportQuery } from './exports.ts';
import { paramsAsData, STREAM_PARAMS_TABLE } from './query.ts';

const RUN = '0f8fad5b-d9cb-469f-a165-70867728950e';

describe('paramsAsData', () => {
  it('replaces every placeholder by a read of its value, once per name', () => {
    const { query, rows } = paramsAsData(
      { query: "SELECT {a:String}, {b:DateTime64(3, 'UTC')}, {a:String}", query_params: { a: "x'y", b: 5 } },
      RUN,
    );
    expect(query).not.toMatch(/\{[a-z]+:/);
    expect(query).toContain(
      `assumeNotNull((SELECT CAST([any(value)][1 + throwIf(count() != 1, 'query parameter b not found')] AS DateTime64(3, 'UTC')) FROM ${STREAM_PARAMS_TABLE} WHERE run = '${RUN}' AND name = 'b'))`,
    );
    expect(query).not.toContain("x'y");
    expect(rows).toEqual([
      { run: RUN, name: 'a', value: "x'y" },
      { run: RUN, name: 'b', value: '5' },
    ]);
    expect(() => paramsAsData({ query: 'SELECT {x:String}', query_params: {} }, RUN)).toThrow(
      /x has no value/,
    );
    expect(() => paramsAsData({ query: 'SELECT 1', query_params: {} }, "1' OR 1")).toThrow(/UUID/);
  });

  it('reads arrays as the engine writes them, and `IN` an array as the set of its elements', () => {
    const { query, rows } = paramsAsData(
      {
        query:
          'SELECT x FROM t WHERE x IN {ids:Array(String)} AND has({days:Array(Date)}, d) AND n NOT IN {ns:Array(UInt32)}',
        query_params: { ids: ["a'b", 'c\\d'], days: "['2025-01-01']", ns: [1, 2] },
      },
      RUN,
    );
    expect(query).toMatch(/x IN \(SELECT arrayJoin\(CAST\(.* AS Array\(String\)\)\) FROM/);
    expect(query).toMatch(/has\(assumeNotNull\(\(SELECT CAST\(.* AS Array\(Date\)\) FROM/);
    expect(query).toMatch(/NOT IN \(SELECT arrayJoin\(CAST\(.* AS Array\(UInt32\)\)\) FROM/);
    expect(query).not.toContain("a'b");
    expect(rows.map((r) => r.value)).toEqual(["['a\\'b','c\\\\d']", "['2025-01-01']", '[1,2]']);
    expect(() => paramsAsData({ query: 'SELECT {o:String}', query_params: { o: { a: 1 } } }, RUN)).toThrow(
      /unsupported/,
    );
  });

  it('keeps hostile filter values out of the export SQL, whose text depends only on which filters are set', () => {
    const hostile = fc.string({ maxLength: 40 });
    fc.assert(
      fc.property(hostile, hostile, hostile, (team, user, service) => {
        const usage = paramsAsData(
          buildUsageExportQuery(
            { start_date: '2025-01-01', end_date: '2025-01-31', team_id: team, user_id: user, service },
            'csv',
          ),
          RUN,
        );
        const neutral = paramsAsData(
          buildUsageExportQuery(
            { start_date: '2025-01-01', end_date: '2025-01-31', team_id: 't', user_id: 'u', service: 's' },
            'csv',
          ),
          RUN,
        );
        expect(usage.query).toBe(neutral.query);
        expect(usage.rows.map((r) => r.value)).toEqual(expect.arrayContaining([team, user, service]));
        const logs = (svc: string) =>
          paramsAsData(
            buildLogExportQuery(
              { start_date: '2025-01-01', end_date: '2025-01-31', service: svc, severity: 'error' },
              'csv',
            ),
            RUN,
          );
        expect(logs(service).query).toBe(logs('s').query);
        expect(logs(service).rows.find((r) => r.name === 'service')?.value).toBe(service);
      }),
    );
  });
});
