// /clickhouse: ClickHouse's HTTP interface, read-only, for data engineers' own tools (docs/sql.md). Its errors
// are ClickHouse's text form, not the API's JSON (the one documented exception), so clients raise their usual
// exceptions; every failure is answered here, never by the app's JSON error handler.
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { errorText, fromEngine, type SqlEngine, SqlError, sqlError } from '../../clickhouse/sql/index.ts';
import { PayloadTooLarge, Unauthenticated } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { SQL_SCOPE } from '../../core/tokens.ts';
import { AuthFailure } from '../auth/failure.ts';
import { readBodyText } from '../body.ts';
import type { AppEnv, Identity } from '../env.ts';
import { type Authenticator, type AuthFailureReport, remoteAddress } from '../middleware/auth.ts';
import type { SlidingLogStore } from '../middleware/rate-limit-store.ts';
import {
  compressor,
  contentTypeOf,
  credentialsOf,
  encodingFor,
  errorResponse,
  parseParams,
} from '../sql/protocol.ts';
import type { Outcome, SqlUsage } from '../sql/usage.ts';

/** The largest query body: far beyond any hand-written or generated dashboard query. */
export const MAX_QUERY_BYTES = 1024 * 1024;

export interface SqlDeps {
  engine: SqlEngine;
  /** The analytics database (the only one a query may make current). */
  database: string;
  auth: Authenticator;
  onAuthFailure?: (f: AuthFailureReport) => void;
  /** SQL_RATE_LIMIT_PER_MINUTE per identity (a budget of its own, apart from the API's). */
  rateLimit: { store: SlidingLogStore; perMinute: number };
  /** SQL_CONCURRENT_QUERIES: queries one identity may run at once. */
  concurrentQueries: number;
  usage: SqlUsage;
  logger: Logger;
}

const text = { 'text/plain': { schema: z.string() } };
const answers = {
  200: {
    description:
      "The query's output in its format (the query's FORMAT, default_format, else TabSeparated), with " +
      'X-ClickHouse-Query-Id, X-ClickHouse-Format, X-ClickHouse-Summary and X-ClickHouse-Timezone',
    content: { 'application/octet-stream': { schema: z.string() }, ...text },
  },
  400: { description: 'ClickHouse error text: a bad query (X-ClickHouse-Exception-Code)', content: text },
  401: { description: 'ClickHouse error text: AUTHENTICATION_FAILED (516)', content: text },
  403: {
    description:
      'ClickHouse error text: not scope query:sql, a team-bound credential, a write (READONLY, 164), a table, ' +
      'function or table function that is not allowed (ACCESS_DENIED, 497), INTO OUTFILE (344)',
    content: text,
  },
  404: { description: 'ClickHouse error text: unknown table (60)', content: text },
  429: {
    description: 'ClickHouse error text: QUOTA_EXCEEDED (201) or TOO_MANY_SIMULTANEOUS_QUERIES (202)',
    content: text,
  },
  500: {
    description: 'ClickHouse error text: TIMEOUT_EXCEEDED (159), too many rows (396), memory (241), ...',
    content: text,
  },
};

const request = {
  query: z
    .object({
      query: z
        .string()
        .optional()
        .openapi({ description: 'the SQL (or its beginning, the rest in the body)' }),
      database: z.string().optional(),
      default_format: z.string().optional(),
      query_id: z.string().optional(),
    })
    .passthrough(),
};

const description =
  "ClickHouse's HTTP interface, read-only (docs/sql.md): scope query:sql; HTTP Basic with an API key (user = " +
  'its id, password = the whole key), X-ClickHouse-User/X-ClickHouse-Key, or Bearer. Errors are ClickHouse error ' +
  'text, not JSON.';

const routes = ['/clickhouse', '/clickhouse/'].flatMap((path) =>
  (['get', 'post'] as const).map((method) =>
    createRoute({
      method,
      path,
      summary: `${method.toUpperCase()} a read-only ClickHouse query`,
      description,
      security: [{ basic: [] }, { bearer: [] }],
      request,
      responses: answers,
    }),
  ),
);

const pingRoute = createRoute({
  method: 'get',
  path: '/clickhouse/ping',
  summary: "ClickHouse's /ping (clients check the connection with it); no credentials",
  responses: { 200: { description: 'Ok.', content: text } },
});

export function clickhouseRoutes(deps: SqlDeps) {
  const app = new OpenAPIHono<AppEnv>();
  const running = new Map<string, number>();
  const version = deps.engine.version;

  app.openapi(pingRoute, (c) => c.text('Ok.\n', 200));
  for (const route of routes) {
    app.openapi(route, ((c: Context<AppEnv>) => handle(c)) as never);
  }

  async function identify(c: Context<AppEnv>): Promise<Identity> {
    try {
      const creds = credentialsOf((n) => c.req.header(n));
      return await deps.auth(creds.authorization, creds.apiKey);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (err instanceof Unauthenticated || err instanceof SqlError) {
        const f = err instanceof AuthFailure ? err : undefined;
        deps.onAuthFailure?.({
          reason: f?.reason ?? 'clickhouse',
          who: f?.who,
          address: remoteAddress(c),
          message,
        });
        throw sqlError('AUTHENTICATION_FAILED', `Authentication failed: ${message}`, err);
      }
      throw err;
    }
  }

  async function handle(c: Context<AppEnv>): Promise<Response> {
    const started = performance.now();
    // The client's query_id comes back in a header: one that a header cannot carry is replaced.
    const asked = c.req.query('query_id');
    const queryId = asked !== undefined && /^[\x21-\x7e]{1,128}$/.test(asked) ? asked : randomUUID();
    const common: Record<string, string> = {
      'X-ClickHouse-Query-Id': queryId,
      'X-ClickHouse-Server-Display-Name': 'tally',
    };
    let who: string | undefined;
    let slot = false;
    let outcome: Outcome = 'refused';
    const release = (rows: number) => {
      if (slot) {
        const n = (running.get(who as string) ?? 1) - 1;
        if (n <= 0) running.delete(who as string);
        else running.set(who as string, n);
        slot = false;
      }
      if (who !== undefined) deps.usage.finished(who, outcome, rows, performance.now() - started);
    };
    try {
      const id = await identify(c);
      // Counted once the caller is known, before what it may do (as the API's limit): every answer from here on
      // carries the RateLimit headers of the SQL budget.
      const hit = deps.rateLimit.store.increment(id.id);
      const limit = deps.rateLimit.perMinute;
      const retry = Math.max(1, Math.ceil(((hit.resetTime?.getTime() ?? Date.now()) - Date.now()) / 1000));
      common['RateLimit-Limit'] = String(limit);
      common['RateLimit-Remaining'] = String(Math.max(0, limit - hit.totalHits));
      common['RateLimit-Reset'] = String(retry);
      if (!id.scopes.has(SQL_SCOPE)) {
        throw sqlError('ACCESS_DENIED', `Not enough privileges: /clickhouse needs the ${SQL_SCOPE} scope`);
      }
      // Raw tables hold every team's rows: a credential bound to one team cannot be given SQL over them.
      if (id.teamId !== undefined) {
        throw sqlError(
          'ACCESS_DENIED',
          'Not enough privileges: a team-bound credential cannot use /clickhouse',
        );
      }
      who = id.id;
      if (hit.totalHits > limit) {
        const e = sqlError(
          'QUOTA_EXCEEDED',
          `Quota for user ${id.id} for 60 seconds has been exceeded: more than ${limit} queries; retry after ${retry} s`,
        );
        return errorResponse(e, version, { ...common, 'Retry-After': String(retry) });
      }
      if ((running.get(id.id) ?? 0) >= deps.concurrentQueries) {
        const e = sqlError(
          'TOO_MANY_SIMULTANEOUS_QUERIES',
          `Too many simultaneous queries for user ${id.id}. Maximum: ${deps.concurrentQueries}`,
        );
        return errorResponse(e, version, { ...common, 'Retry-After': '1' });
      }
      running.set(id.id, (running.get(id.id) ?? 0) + 1);
      slot = true;
      const body = c.req.method === 'POST' ? await readBodyText(c.req.raw, MAX_QUERY_BYTES) : '';
      const parsed = parseParams(new URL(c.req.url), body, (n) => c.req.header(n), deps.database);
      outcome = 'failed';
      const result = await deps.engine.run({
        query: parsed.query,
        params: parsed.params,
        settings: parsed.settings,
        defaultFormat: parsed.defaultFormat,
        clientProtocolVersion: parsed.clientProtocolVersion,
        signal: c.req.raw.signal,
      });
      const headers = new Headers({
        ...common,
        'Content-Type': result.headers?.['content-type'] ?? contentTypeOf(result.format),
        'X-ClickHouse-Format': result.format,
        'X-ClickHouse-Timezone': 'UTC',
        'X-ClickHouse-Summary': summaryHeader(result.summary()),
      });
      const encoding = parsed.compression ? encodingFor(c.req.header('accept-encoding')) : undefined;
      const finish = async function* () {
        try {
          for await (const chunk of result.body) yield chunk;
          outcome = 'ok';
        } catch (err) {
          // Headers are gone: the error goes at the end of the body, as ClickHouse writes it.
          const e = fromEngine(err) ?? sqlError('READONLY', 'the query failed');
          if (!fromEngine(err)) deps.logger.warn({ err, queryId }, '/clickhouse: query failed mid-stream');
          yield Buffer.from(`\n${errorText(e, version)}`);
        } finally {
          const s = result.summary();
          release(s.result_rows || s.read_rows);
        }
      };
      let stream = Readable.from(finish(), { objectMode: false });
      if (encoding) {
        headers.set('Content-Encoding', encoding);
        stream = stream.pipe(compressor(encoding)) as unknown as Readable;
      }
      return new Response(Readable.toWeb(stream) as ReadableStream, { status: 200, headers });
    } catch (err) {
      const e = fromEngine(err);
      if (e) {
        if (e.code !== 497 && e.code !== 164 && e.code !== 344 && e.code !== 516) outcome = 'failed';
        release(0);
        return errorResponse(e, version, common);
      }
      outcome = 'failed';
      release(0);
      if (err instanceof PayloadTooLarge) {
        return errorResponse(
          sqlError('SYNTAX_ERROR', `Query is too large: more than ${MAX_QUERY_BYTES} bytes`),
          version,
          {
            ...common,
            Connection: 'close',
          },
        );
      }
      deps.logger.error({ err, queryId }, '/clickhouse: unexpected error');
      return errorResponse(
        new SqlError(1001, 'STD_EXCEPTION', `internal error (query id ${queryId})`),
        version,
        common,
      );
    }
  }

  return app;
}

function summaryHeader(s: {
  read_rows: number;
  read_bytes: number;
  result_rows: number;
  result_bytes: number;
  elapsed_ns: number;
}): string {
  const str = (n: number) => String(Math.round(n));
  return JSON.stringify({
    read_rows: str(s.read_rows),
    read_bytes: str(s.read_bytes),
    written_rows: '0',
    written_bytes: '0',
    total_rows_to_read: str(s.read_rows),
    result_rows: str(s.result_rows),
    result_bytes: str(s.result_bytes),
    elapsed_ns: str(s.elapsed_ns),
  });
}
