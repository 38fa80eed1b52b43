// ClickHouse's HTTP interface as clients speak it: credentials (Basic, X-ClickHouse-User/-Key, Bearer), the
// query (URL `query`, then the body), `param_*`, settings and protocol parameters; and the answers: errors in
// ClickHouse's text form with its exception codes, X-ClickHouse-* headers, content types, compression.
import { constants, createBrotliCompress, createDeflate, createGzip } from 'node:zlib';
import {
  CLIENT_SETTINGS,
  errorText,
  LOWERABLE_LIMITS,
  PROTOCOL_PARAMS,
  SqlError,
  sqlError,
} from '../../clickhouse/sql/index.ts';
import { parseKey } from '../../core/api-keys.ts';

/** The credentials a request carries, as the API's authenticator takes them. */
export interface Credentials {
  authorization: string | undefined;
  apiKey: string | undefined;
}

/**
 * HTTP Basic (user = the API key's id, password = the whole key), X-ClickHouse-User / X-ClickHouse-Key (the
 * same pair), or Authorization: Bearer <JWT>. A user that is not the key's own id is refused, so a key pasted
 * under another name never passes for it.
 */
export function credentialsOf(header: (name: string) => string | undefined): Credentials {
  const authorization = header('authorization');
  const chUser = header('x-clickhouse-user');
  const chKey = header('x-clickhouse-key');
  if (chKey !== undefined || chUser !== undefined) {
    if (authorization !== undefined) {
      throw sqlError(
        'AUTHENTICATION_FAILED',
        'send either Authorization or X-ClickHouse-User/X-ClickHouse-Key, not both',
      );
    }
    return { authorization: undefined, apiKey: keyFor(chUser ?? '', chKey ?? '') };
  }
  const basic =
    authorization === undefined ? undefined : /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization);
  if (basic) {
    const decoded = Buffer.from(basic[1] as string, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw sqlError('AUTHENTICATION_FAILED', 'Basic credentials must be user:password');
    return { authorization: undefined, apiKey: keyFor(decoded.slice(0, colon), decoded.slice(colon + 1)) };
  }
  return { authorization, apiKey: undefined };
}

function keyFor(user: string, key: string): string {
  const parsed = parseKey(key.trim());
  if (!parsed || parsed.id !== user.trim()) {
    throw sqlError(
      'AUTHENTICATION_FAILED',
      'user: authentication failed: the user must be the API key id and the password the whole key',
    );
  }
  return key.trim();
}

export interface ParsedRequest {
  query: string;
  params: Record<string, string>;
  settings: Record<string, string>;
  defaultFormat: string;
  queryId: string | undefined;
  /** enable_http_compression=1: the answer may be compressed as Accept-Encoding allows. */
  compression: boolean;
  clientProtocolVersion: string | undefined;
}

/** The URL's parameters: protocol parameters read, `param_*` collected, settings checked against the allow-list. */
export function parseParams(
  url: URL,
  body: string,
  header: (name: string) => string | undefined,
  database: string,
): ParsedRequest {
  const params: Record<string, string> = {};
  const settings: Record<string, string> = {};
  const get = (name: string) => url.searchParams.get(name) ?? undefined;
  for (const [name, value] of url.searchParams) {
    if (name.startsWith('param_')) {
      params[name.slice('param_'.length)] = value;
    } else if ((name === 'compress' || name === 'decompress') && value === '1') {
      // ClickHouse's own LZ4 block framing (checksummed blocks); HTTP compression is what this route writes.
      throw sqlError(
        'SUPPORT_IS_DISABLED',
        `${name}=1 (ClickHouse's block compression) is not supported on /clickhouse: use HTTP compression (enable_http_compression=1 with Accept-Encoding)`,
      );
    } else if (name === 'readonly') {
      // Read-only already; asking for it is fine, asking for writes is what a readonly server refuses.
      if (value !== '1' && value !== '2') throw readonlySetting(name);
    } else if (PROTOCOL_PARAMS.has(name)) {
      // read below, or ignored (session_id: every query runs in a session of its own)
    } else if (CLIENT_SETTINGS.has(name) || (LOWERABLE_LIMITS as readonly string[]).includes(name)) {
      settings[name] = value;
    } else {
      throw readonlySetting(name);
    }
  }
  const db = get('database') ?? header('x-clickhouse-database');
  if (db !== undefined && db !== '' && db !== 'default' && db !== database) {
    throw sqlError(
      'DATABASE_ACCESS_DENIED',
      `Access denied to database ${db}: /clickhouse reads ${database}`,
    );
  }
  const query = [get('query'), body].filter((s) => s !== undefined && s.trim() !== '').join('\n');
  if (query === '') throw sqlError('SYNTAX_ERROR', 'Empty query');
  return {
    query,
    params,
    settings,
    defaultFormat: get('default_format') ?? header('x-clickhouse-format') ?? 'TabSeparated',
    queryId: get('query_id'),
    compression: get('enable_http_compression') === '1',
    clientProtocolVersion: get('client_protocol_version'),
  };
}

const readonlySetting = (name: string) =>
  sqlError(
    'READONLY',
    `Cannot modify '${name}' setting in readonly mode (/clickhouse allows formatting settings only)`,
  );

/** ClickHouse's HTTP status for an exception code (as its HTTP handler answers them). */
export function statusOf(code: number): 400 | 401 | 403 | 404 | 429 | 500 {
  if (code === 516 || code === 194 || code === 192) return 401;
  if (code === 497 || code === 164 || code === 291 || code === 344) return 403;
  if (code === 60 || code === 81) return 404;
  if (code === 201 || code === 202) return 429;
  // Bad queries: syntax, unknown identifiers, functions, settings, parameters, types, arguments.
  if ([6, 27, 36, 38, 41, 43, 44, 46, 47, 53, 62, 115, 184, 215, 386, 456, 457, 472].includes(code))
    return 400;
  return 500;
}

/** An error as a ClickHouse server answers it: text body, X-ClickHouse-Exception-Code, its status. */
export function errorResponse(e: SqlError, version: string, headers: Record<string, string> = {}): Response {
  const status = statusOf(e.code);
  const h = new Headers({
    'Content-Type': 'text/plain; charset=UTF-8',
    'X-ClickHouse-Exception-Code': String(e.code),
    ...headers,
  });
  if (status === 401) h.set('WWW-Authenticate', 'Basic realm="tally", charset="UTF-8", Bearer realm="tally"');
  return new Response(errorText(e, version), { status, headers: h });
}

/** The Content-Type ClickHouse gives a format's output. */
export function contentTypeOf(format: string): string {
  if (/^(TabSeparated|TSV)/.test(format)) return 'text/tab-separated-values; charset=UTF-8';
  if (format.startsWith('CSV')) return 'text/csv; charset=UTF-8; header=absent';
  if (
    format === 'JSONEachRow' ||
    format === 'JSONLines' ||
    format === 'NDJSON' ||
    format.includes('EachRow')
  ) {
    return 'application/x-ndjson; charset=UTF-8';
  }
  if (format.startsWith('JSON')) return 'application/json; charset=UTF-8';
  if (format.startsWith('Pretty') || format === 'Vertical' || format === 'Markdown')
    return 'text/plain; charset=UTF-8';
  if (format === 'XML') return 'application/xml; charset=UTF-8';
  return 'application/octet-stream';
}

export type Encoding = 'gzip' | 'deflate' | 'br';

/** The first encoding of Accept-Encoding this route can write (ClickHouse's own order: the client's). */
export function encodingFor(acceptEncoding: string | undefined): Encoding | undefined {
  for (const part of (acceptEncoding ?? '').split(',')) {
    const [name, q] = part.trim().toLowerCase().split(';');
    if (q?.trim() === 'q=0') continue;
    if (name === 'gzip' || name === 'deflate' || name === 'br') return name;
  }
  return undefined;
}

export function compressor(e: Encoding) {
  if (e === 'gzip') return createGzip({ level: 3 });
  if (e === 'deflate') return createDeflate({ level: 3 });
  return createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: 4 } });
}

export { SqlError };
