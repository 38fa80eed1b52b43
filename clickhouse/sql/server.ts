// /clickhouse on a ClickHouse server: the same analysis (formatQuery, EXPLAIN AST, EXPLAIN QUERY TREE on the
// server), then the query sent with the fixed limits, the client's allowed settings and readonly = 1 as the
// request's own settings (nothing outlives the request), its output streamed back as the server writes it.
import type { ClickHouseClient } from '@clickhouse/client';
import type { ClickHouse } from '../client.ts';
import { parseExplainAst } from './ast.ts';
import { checkAst, checkQueryTree, clausesOf } from './check.ts';
import {
  effectiveLimits,
  emptySummary,
  fixedSettings,
  type SqlEngine,
  type SqlLimits,
  type SqlRequest,
  type SqlSummary,
} from './engine.ts';
import { fromEngine, SqlError, sqlError } from './errors.ts';
import { LOWERABLE_LIMITS } from './policy.ts';

const engineError = (err: unknown): unknown => fromEngine(err) ?? err;

// Query parameters as the HTTP interface takes them (param_<name>, ClickHouse's text form), passed through as
// they came: the client library would re-quote strings.
const asParams = (params: Readonly<Record<string, string>>) =>
  Object.fromEntries(Object.entries(params).map(([k, v]) => [`param_${k}`, v]));

async function text(client: ClickHouseClient, query: string, settings: Record<string, string | number>) {
  const { stream } = await client.exec({
    query: `${query}\nFORMAT TSVRaw`,
    clickhouse_settings: settings as never,
  });
  const parts: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer>) parts.push(c);
  return Buffer.concat(parts).toString('utf8');
}

export function serverSqlEngine(ch: ClickHouse, limits: SqlLimits, version = 'unknown'): SqlEngine {
  const client = ch.client;
  const locked = (s: Record<string, string | number>) =>
    ({ ...s, readonly: '1' }) as Record<string, string | number>;
  return {
    version,
    async run(req: SqlRequest) {
      const analysisSettings = locked(fixedSettings(limits));
      let formatted: string;
      try {
        const rs = await client.query({
          query: 'SELECT formatQuery({q:String}) AS q',
          query_params: { q: req.query },
          format: 'JSONEachRow',
          clickhouse_settings: analysisSettings as never,
        });
        const [row] = await rs.json<{ q: string }>();
        formatted = row?.q ?? '';
      } catch (err) {
        throw engineError(err);
      }
      const clauses = clausesOf(formatted);
      if (clauses.outfile)
        throw sqlError('SUPPORT_IS_DISABLED', 'INTO OUTFILE is not allowed on /clickhouse');
      const withParams = { ...analysisSettings, ...asParams(req.params) } as Record<string, string | number>;
      try {
        const checked = checkAst(
          parseExplainAst(await text(client, `EXPLAIN AST ${clauses.explainable}`, withParams)),
          ch.database,
        );
        if (checked.needsTree) {
          checkQueryTree(
            await text(client, `EXPLAIN QUERY TREE ${clauses.explainable}`, withParams),
            ch.database,
          );
        }
      } catch (err) {
        if (err instanceof SqlError) throw err;
        throw engineError(err);
      }
      const format = clauses.format ?? req.defaultFormat;
      const own = effectiveLimits(limits, req.settings);
      const client_settings = Object.fromEntries(
        Object.entries(req.settings).filter(([k]) => !(LOWERABLE_LIMITS as readonly string[]).includes(k)),
      );
      const summary: SqlSummary = emptySummary();
      try {
        const res = await client.exec({
          query: clauses.format ? formatted : `${formatted}\nFORMAT ${format}`,
          abort_signal: req.signal,
          clickhouse_settings: {
            ...client_settings,
            ...fixedSettings(own),
            ...asParams(req.params),
            cancel_http_readonly_queries_on_client_close: 1,
            ...(req.clientProtocolVersion ? { client_protocol_version: req.clientProtocolVersion } : {}),
            readonly: '1',
          } as Record<string, string | number>,
        });
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.response_headers)) {
          if (typeof v === 'string' && /^(content-type|x-clickhouse-(summary|format|timezone))$/i.test(k))
            headers[k] = v;
        }
        async function* body(): AsyncIterable<Uint8Array> {
          for await (const c of res.stream as AsyncIterable<Buffer>) {
            summary.result_bytes += c.length;
            yield c;
          }
        }
        return { format, body: body(), summary: () => summary, headers };
      } catch (err) {
        throw engineError(err);
      }
    },
    close: () => undefined,
  };
}
