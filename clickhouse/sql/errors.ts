// ClickHouse's own errors as values: the code, the name and the message a ClickHouse server would give, so the
// /clickhouse route can answer in ClickHouse's text form and clients raise their usual exceptions.

/** An error of a /clickhouse query, refused by the policy or raised by the engine. */
export class SqlError extends Error {
  constructor(
    /** ClickHouse's numeric error code (e.g. 159). */
    readonly code: number,
    /** ClickHouse's name for it (e.g. TIMEOUT_EXCEEDED). */
    readonly codeName: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The codes this module raises itself; names as ClickHouse spells them. */
export const CODES = {
  SYNTAX_ERROR: 62,
  UNKNOWN_DATABASE: 81,
  TIMEOUT_EXCEEDED: 159,
  READONLY: 164,
  QUOTA_EXCEEDED: 201,
  TOO_MANY_SIMULTANEOUS_QUERIES: 202,
  DATABASE_ACCESS_DENIED: 291,
  SUPPORT_IS_DISABLED: 344,
  ACCESS_DENIED: 497,
  AUTHENTICATION_FAILED: 516,
} as const;

export type CodeName = keyof typeof CODES;

export function sqlError(name: CodeName, message: string, cause?: unknown): SqlError {
  return new SqlError(CODES[name], name, message, cause === undefined ? undefined : { cause });
}

// The engine's text: "[Query failed: ]Code: 159. DB::Exception: <message>. (TIMEOUT_EXCEEDED)[ (version ...)]".
// Nested exceptions repeat the prefix; the outermost code is the one ClickHouse reports.
const ENGINE_TEXT =
  /Code: (\d+)\. DB::Exception: ([\s\S]*?)\s*\(([A-Z_0-9]+)\)(?: \(version [^)]*\))?\.?\s*$/;

/** The engine's error as a SqlError (code, name, message), or undefined when it is not one of the engine's. */
export function fromEngine(err: unknown): SqlError | undefined {
  if (err instanceof SqlError) return err;
  const e = err as { message?: unknown; code?: unknown; type?: unknown; clickhouseCode?: unknown };
  if (typeof e?.message !== 'string') return undefined;
  const m = ENGINE_TEXT.exec(e.message);
  if (m) {
    const message = (m[2] as string)
      .replace(/^(?:Code: \d+\. DB::Exception: )+/, '')
      .replace(/\.?\s*\([A-Z_0-9]+\)\s*\(version [^)]*\)\s*$/, '')
      .replace(/\.$/, '');
    return new SqlError(Number(m[1]), m[3] as string, message, { cause: err });
  }
  // @clickhouse/client's ClickHouseError: code as a string, type the name.
  if (typeof e.code === 'string' && /^\d+$/.test(e.code) && typeof e.type === 'string') {
    return new SqlError(Number(e.code), e.type, e.message, { cause: err });
  }
  return undefined;
}

/** The engine version the route reports (X-ClickHouse-Server-Display-Name's companion, error texts). */
export const ENGINE_VERSION_UNKNOWN = 'unknown';

/** ClickHouse's text form of an error: what a server writes as the body of a failed HTTP query. */
export function errorText(e: SqlError, version: string): string {
  const message = e.message.replace(/\.\s*$/, '');
  return `Code: ${e.code}. DB::Exception: ${message}. (${e.codeName}) (version ${version})\n`;
}
