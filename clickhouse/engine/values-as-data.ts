// The embedded engine's shared connection (the sealer, retention, migrations) runs its statements
// without binding: each one's values go in as data on its own session (queries/query.ts, paramsAsData), then
// the statement runs unbound. chdb runs every bound call of the process one at a time, on one chain shared by
// all its connections; bound, the sealer's statements (10-20 ms each at 100M events, a few every round) held
// the API's reads, which are bound, behind them. Unbound, they run beside the reads (measured: a few
// milliseconds more per statement, for the value reads; docs/operators.md, the sealer).
import { randomUUID } from 'node:crypto';
import { type ParamsAsData, paramsAsData, STREAM_PARAMS_TABLE } from '../queries/query.ts';

/** The calls of a connection (@clickhouse/client-common's Connection) that carry a statement and its values. */
interface StatementParams {
  query: string;
  query_params?: Record<string, unknown> | undefined;
}

type Call = (params: StatementParams) => Promise<unknown>;

/** The part of chdb's connection this wraps: its statements, and a way in for the values' rows. */
export interface StatementConnection {
  query: Call;
  exec: Call;
  command: Call;
  insert: (params: StatementParams & { values: string }) => Promise<unknown>;
}

const MUTATION = /^\s*(ALTER|DELETE)\b/i;

/** Rows the params table may hold before it is emptied, at a moment when no statement needs any of them. */
const HELD_ROWS_BEFORE_CLEARING = 2_000;

/**
 * The connection, with every statement that has values run unbound: the values are inserted into the
 * session's params table (created on this connection first: STREAM_PARAMS_DDL), then the statement reads them
 * there. Everything else is the connection's own.
 */
export function valuesAsData<C extends StatementConnection>(connection: C): C {
  let inFlight = 0;
  let held = 0;
  let clearing: Promise<unknown> = Promise.resolve();
  const unbound =
    (call: Call): Call =>
    async (params) => {
      const values = params.query_params;
      // A mutation (ALTER ... DELETE, a lightweight DELETE) runs in the engine's background, where the session's
      // params table does not exist: those few stay bound.
      if (values === undefined || Object.keys(values).length === 0 || MUTATION.test(params.query))
        return call(params);
      const { query, rows, body }: ParamsAsData = paramsAsData(params, randomUUID());
      // Emptied only while no statement is between its insert and its end; any statement that arrives meanwhile
      // inserts after the table is empty (it awaits `clearing`), so no statement ever loses its values.
      if (inFlight === 0 && held >= HELD_ROWS_BEFORE_CLEARING) {
        held = 0;
        // A failed emptying keeps the rows, which only costs memory until the next one.
        clearing = connection
          .command({ query: `TRUNCATE TABLE ${STREAM_PARAMS_TABLE}` })
          .catch(() => undefined);
      }
      inFlight++;
      try {
        await clearing;
        if (body !== '') {
          held += rows.length;
          await connection.insert({
            query: `INSERT INTO ${STREAM_PARAMS_TABLE} FORMAT JSONEachRow`,
            values: body,
          });
        }
        return await call({ ...params, query, query_params: undefined });
      } finally {
        inFlight--;
      }
    };
  const own = {
    query: unbound(connection.query.bind(connection)),
    exec: unbound(connection.exec.bind(connection)),
    command: unbound(connection.command.bind(connection)),
  };
  return new Proxy(connection, {
    get(target, prop) {
      if (prop === 'query' || prop === 'exec' || prop === 'command') return own[prop];
      const v: unknown = Reflect.get(target, prop, target);
      // chdb's connection keeps its session in private fields: its methods must run on it, not on the proxy.
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}
