// /clickhouse on the embedded engine: each query analysed on a session kept for analysis, then run on a chdb
// Session of its own (same data directory, same engine), whose limits, priority and the client's allowed
// settings are SET first and locked with readonly = 1. Nothing set there reaches the service's own queries on
// the shared connection, and nothing a query says can change its limits (a SETTINGS clause is the engine's
// READONLY error). Streamed formats go out block by block (chdb's queryStream); the others are buffered whole,
// bounded by max_result_rows and max_memory_usage. Native for a client at a protocol revision (clickhouse-go) is
// re-framed block by block from the engine's revision 0 (native.ts).
import { join } from 'node:path';
import { Session } from 'chdb';
import { quoteIdent } from '../client.ts';
import { parseExplainAst } from './ast.ts';
import { checkAst, checkQueryTree, clausesOf } from './check.ts';
import {
  effectiveLimits,
  emptySummary,
  fixedSettings,
  type SqlEngine,
  type SqlLimits,
  type SqlRequest,
  type SqlResult,
  type SqlSummary,
  STREAMED_FORMATS,
  settingLiteral,
} from './engine.ts';
import { fromEngine, SqlError, sqlError } from './errors.ts';
import { NativeTranscoder } from './native.ts';
import { LOWERABLE_LIMITS } from './policy.ts';
import { rowBinaryHeader } from './row-binary.ts';

export interface EmbeddedSqlOptions {
  dataDir: string;
  database: string;
  limits: SqlLimits;
}

type Params = Readonly<Record<string, string>>;

const engineError = (err: unknown): unknown => fromEngine(err) ?? err;

/** Runs `sql` on a session, binding `params` when there are any. */
function run(s: Session, sql: string, params: Params, format: string, signal?: AbortSignal) {
  const opts = { format, ...(signal ? { signal } : {}) };
  return Object.keys(params).length > 0 ? s.queryBindAsync(sql, params, opts) : s.queryAsync(sql, opts);
}

export function embeddedSqlEngine(opts: EmbeddedSqlOptions): SqlEngine {
  const path = join(opts.dataDir, 'clickhouse');
  let analysis: Session | undefined;
  // The analysis session runs formatQuery and EXPLAIN only (EXPLAIN QUERY TREE may evaluate scalar
  // subqueries): under the same limits and readonly as the queries themselves.
  const analyser = async (): Promise<Session> => {
    if (analysis) return analysis;
    const s = new Session(path);
    await prepare(s, opts.database, fixedSettings(opts.limits));
    analysis = s;
    return s;
  };
  const version = (() => {
    try {
      const s = new Session(path);
      try {
        return s.query('SELECT version()', 'TSVRaw').trim();
      } finally {
        s.close();
      }
    } catch {
      return 'unknown';
    }
  })();

  return {
    version,
    async run(req: SqlRequest): Promise<SqlResult> {
      const a = await analyser();
      const { sql, format, explainable } = await analyse(a, req, opts.database);
      // clickhouse-go (Grafana) reads Native at its protocol revision; the engine writes revision 0, re-framed here.
      const transcoder =
        format === 'Native' && req.clientProtocolVersion !== undefined && req.clientProtocolVersion !== '0'
          ? new NativeTranscoder({ revision: Number(req.clientProtocolVersion) })
          : undefined;
      const binaryTypes = req.settings.output_format_native_encode_types_in_binary_format ?? '0';
      if (transcoder && !['0', 'false'].includes(binaryTypes.toLowerCase())) {
        // Types in binary form are not names the re-framing can read: refused rather than guessed.
        throw sqlError(
          'SUPPORT_IS_DISABLED',
          'output_format_native_encode_types_in_binary_format with client_protocol_version is not supported on the embedded engine',
        );
      }
      const native = transcoder && {
        transcoder,
        types: () => describe(a, explainable, req.params),
      };
      const limits = effectiveLimits(opts.limits, req.settings);
      const client = Object.fromEntries(
        Object.entries(req.settings).filter(([k]) => !(LOWERABLE_LIMITS as readonly string[]).includes(k)),
      );
      const s = new Session(path);
      try {
        // The client's settings before the fixed ones: a limit or priority can never come from the client.
        await prepare(s, opts.database, { ...client, ...fixedSettings(limits) });
      } catch (err) {
        s.close();
        throw engineError(err);
      }
      const started = process.hrtime.bigint();
      const summary: SqlSummary = emptySummary();
      const elapsed = () => {
        summary.elapsed_ns = Number(process.hrtime.bigint() - started);
      };
      if (STREAMED_FORMATS.has(format)) {
        try {
          return await streamed(s, sql, req.params, format, req.signal, summary, elapsed, native);
        } catch (err) {
          // The engine streams SELECTs only; SHOW, DESCRIBE and EXISTS answer small, buffered below.
          if (!/Streaming query is not supported/.test(String((err as Error)?.message))) {
            s.close();
            throw engineError(err);
          }
        }
      }
      try {
        const r = await run(s, sql, req.params, format, req.signal);
        const bytes = native ? await reframeWhole(native, r.bytes()) : r.bytes();
        summary.read_rows = r.rowsRead;
        summary.read_bytes = r.bytesRead;
        summary.result_bytes = bytes.length;
        elapsed();
        return { format, body: once(bytes), summary: () => summary };
      } catch (err) {
        throw engineError(err);
      } finally {
        s.close();
      }
    },
    close() {
      analysis?.close();
      analysis = undefined;
    },
  };
}

interface Reframing {
  transcoder: NativeTranscoder;
  /** The query's full column types (DESCRIBE), asked for only when the first block has a bare DateTime. */
  types: () => Promise<string[] | undefined>;
}

/** Revision 0 writes a top-level DateTime('tz') as DateTime: the query's own types give the zone back. */
async function restoreTypes(native: Reframing, firstBlock: Uint8Array): Promise<void> {
  if (firstBlock.length === 0) return;
  const tops = NativeTranscoder.columnTypes(firstBlock);
  if (tops === undefined || tops.includes('DateTime')) native.transcoder.setTypes(await native.types());
}

/** A whole buffered answer, re-framed. */
async function reframeWhole(native: Reframing, bytes: Uint8Array): Promise<Buffer> {
  await restoreTypes(native, bytes);
  const out = Buffer.concat(native.transcoder.push(bytes));
  native.transcoder.end();
  return out;
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

/** USE the database, SET the settings, then readonly = 1: from here on the session's settings are fixed. */
async function prepare(
  s: Session,
  database: string,
  settings: Record<string, string | number>,
): Promise<void> {
  await s.queryAsync(`USE ${quoteIdent(database)}`);
  // Names are the allow-list's or our own (policy.ts, fixedSettings); values are literals.
  const set = Object.entries(settings).map(([k, v]) => `${quoteIdent(k)} = ${settingLiteral(v)}`);
  if (set.length > 0) await s.queryAsync(`SET ${set.join(', ')}`);
  await s.queryAsync('SET readonly = 1');
}

/**
 * The engine parses the query (formatQuery: one statement, or SYNTAX_ERROR "Multi-statements are not allowed"),
 * the policy checks its syntax tree (EXPLAIN AST), and for SELECTs the tables the engine resolved (EXPLAIN
 * QUERY TREE: CTEs, unqualified names). What runs is the engine's own formatting of what was checked.
 */
async function analyse(
  s: Session,
  req: SqlRequest,
  database: string,
): Promise<{ sql: string; format: string; explainable: string }> {
  let formatted: string;
  try {
    const r = await s.queryBindAsync(
      'SELECT formatQuery({q:String})',
      { q: req.query },
      { format: 'TSVRaw' },
    );
    formatted = r.text().replace(/\n$/, '');
  } catch (err) {
    throw engineError(err);
  }
  const clauses = clausesOf(formatted);
  if (clauses.outfile) throw sqlError('SUPPORT_IS_DISABLED', 'INTO OUTFILE is not allowed on /clickhouse');
  let ast: string;
  try {
    ast = (await run(s, `EXPLAIN AST ${clauses.explainable}`, req.params, 'TSVRaw')).text();
  } catch (err) {
    throw engineError(err);
  }
  let checked: ReturnType<typeof checkAst>;
  try {
    checked = checkAst(parseExplainAst(ast), database);
  } catch (err) {
    if (err instanceof SqlError) throw err;
    // A tree this module cannot read is refused, never run.
    throw sqlError('ACCESS_DENIED', `the query could not be analysed (${(err as Error).message})`, err);
  }
  if (checked.needsTree) {
    let tree: string;
    try {
      tree = (await run(s, `EXPLAIN QUERY TREE ${clauses.explainable}`, req.params, 'TSVRaw')).text();
    } catch (err) {
      throw engineError(err);
    }
    checkQueryTree(tree, database);
  }
  return { sql: formatted, format: clauses.format ?? req.defaultFormat, explainable: clauses.explainable };
}

async function streamed(
  s: Session,
  sql: string,
  params: Params,
  format: string,
  signal: AbortSignal,
  summary: SqlSummary,
  elapsed: () => void,
  native?: Reframing,
): Promise<SqlResult> {
  const opts = { format, signal };
  const stream =
    Object.keys(params).length > 0 ? s.queryStreamBind(sql, params, opts) : s.queryStream(sql, opts);
  const it = stream[Symbol.asyncIterator]();
  // The first block (or the engine's error) before any header goes out: a refused or failed query still gets
  // its error status.
  const first = await it.next();
  if (first.done) {
    // No block at all: the same query's empty answer, with the header its format has (names and types).
    const r = await run(s, sql, params, format, signal);
    let bytes: Uint8Array;
    try {
      bytes = native ? await reframeWhole(native, r.bytes()) : r.bytes();
    } finally {
      s.close();
    }
    summary.result_bytes = bytes.length;
    elapsed();
    return { format, body: once(bytes), summary: () => summary };
  }
  const header = format === 'RowBinaryWithNamesAndTypes' ? rowBinaryHeader(first.value.raw()) : undefined;
  // Re-framed before any header goes out, so a type it cannot carry is still the 344 error.
  let firstOut: Buffer | undefined;
  if (native) {
    try {
      await restoreTypes(native, first.value.raw());
      firstOut = Buffer.concat(native.transcoder.push(first.value.raw()));
    } catch (err) {
      if (!stream.closed) stream.cancel();
      throw err;
    }
  }
  async function* body(): AsyncIterable<Uint8Array> {
    try {
      let chunk: IteratorResult<{ raw(): Uint8Array; numRows: number }> = first;
      while (!chunk.done) {
        let bytes =
          native === undefined
            ? Buffer.from(chunk.value.raw())
            : chunk === first
              ? (firstOut as Buffer)
              : Buffer.concat(native.transcoder.push(chunk.value.raw()));
        // Each block is written alone, names and types again: only the first keeps them.
        if (header && chunk !== first && bytes.subarray(0, header.length).equals(header)) {
          bytes = bytes.subarray(header.length);
        }
        summary.result_rows += chunk.value.numRows;
        summary.result_bytes += bytes.length;
        yield bytes;
        chunk = await it.next();
      }
      native?.transcoder.end();
      elapsed();
    } finally {
      if (!stream.closed) stream.cancel();
      s.close();
    }
  }
  return { format, body: body(), summary: () => summary };
}

/** The full type names of a query's columns (DESCRIBE of the checked query), or undefined when it has none. */
async function describe(s: Session, explainable: string, params: Params): Promise<string[] | undefined> {
  try {
    const r = await run(s, `DESCRIBE (${explainable})`, params, 'JSONEachRow');
    return r
      .text()
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => (JSON.parse(l) as { type: string }).type);
  } catch {
    // Not a SELECT (SHOW, DESCRIBE, EXISTS): their columns have no DateTime to restore.
    return undefined;
  }
}
