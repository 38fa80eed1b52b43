// valuesAsData's bookkeeping of the session's params table, on a stand-in connection that keeps the table as a
// set of runs and fails a statement whose values are gone: the table is emptied now and then, never under a
// statement that still needs its rows, however statements interleave.
import { describe, expect, it } from 'vitest';
import { STREAM_PARAMS_TABLE } from '../queries/query.ts';
import { type StatementConnection, valuesAsData } from './values-as-data.ts';

const pause = () => new Promise((ok) => setTimeout(ok, Math.floor(Math.random() * 3)));

function standIn() {
  const runs = new Set<string>();
  const seen: string[] = [];
  let truncations = 0;
  const runOf = (sql: string) => /run = '([0-9a-f-]{36})'/.exec(sql)?.[1];
  const conn: StatementConnection & { runs: Set<string> } = {
    runs,
    async insert({ query, values }) {
      expect(query).toBe(`INSERT INTO ${STREAM_PARAMS_TABLE} FORMAT JSONEachRow`);
      await pause();
      for (const line of values.trim().split('\n')) runs.add((JSON.parse(line) as { run: string }).run);
      return {};
    },
    async command({ query, query_params }) {
      await pause();
      if (query === `TRUNCATE TABLE ${STREAM_PARAMS_TABLE}`) {
        truncations++;
        runs.clear();
        return {};
      }
      seen.push(query_params === undefined ? `unbound ${query}` : `bound ${query}`);
      return {};
    },
    async query({ query, query_params }) {
      expect(query_params).toBeUndefined();
      const run = runOf(query);
      await pause();
      if (run !== undefined && !runs.has(run)) throw new Error(`values of ${run} gone`);
      seen.push(query);
      return {};
    },
    async exec() {
      return {};
    },
  };
  return { conn, seen, truncations: () => truncations };
}

describe('valuesAsData', () => {
  it('never empties the params table under a statement that needs it', async () => {
    const { conn, truncations } = standIn();
    const wrapped = valuesAsData(conn);
    // Waves of concurrent statements, 5,000 in all, each with two values: the table passes its bound often.
    for (let wave = 0; wave < 100; wave++) {
      await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          wrapped.query({ query: 'SELECT {a:UInt32} + {b:UInt32}', query_params: { a: i, b: wave } }),
        ),
      );
    }
    expect(truncations()).toBeGreaterThan(0);
  });

  it('passes statements without values, and mutations, through as they are', async () => {
    const { conn, seen } = standIn();
    const wrapped = valuesAsData(conn);
    await wrapped.command({ query: 'SYSTEM FLUSH LOGS' });
    await wrapped.command({ query: 'DELETE FROM t WHERE d = {d:Date}', query_params: { d: '2025-01-01' } });
    await wrapped.command({
      query: 'ALTER TABLE t DELETE WHERE d = {d:Date}',
      query_params: { d: '2025-01-01' },
    });
    expect(seen).toEqual([
      'unbound SYSTEM FLUSH LOGS',
      'bound DELETE FROM t WHERE d = {d:Date}',
      'bound ALTER TABLE t DELETE WHERE d = {d:Date}',
    ]);
    expect(conn.runs.size).toBe(0);
  });
});
